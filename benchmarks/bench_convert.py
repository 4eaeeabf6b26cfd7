"""Convert benchmark: plan + convert Keras ResNet-50 and MobileNetV2 (random weights, 224x224) for cortex-a7.

Each model runs in its own process (peak RSS is its own). Reports the plan's split, convert wall time,
peak memory, edge.tflite's real bytes next to the plan's predicted edge weight bytes, and the host
pipeline's measured output error next to the plan's float simulation and error proxy.
Usage: python benchmarks/bench_convert.py [--models resnet50,mobilenetv2] [--samples 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"resnet50": "ResNet50", "mobilenetv2": "MobileNetV2"}


def measure(name: str, samples: int, uplink: float) -> dict[str, object]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from splitsdk.convert import convert_plan
    from splitsdk.plan import Constraints, plan_model, save_plan
    from splitsdk.profile.types import Link

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, MODELS[name])(weights=None, input_shape=(224, 224, 3))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        t0 = time.perf_counter()
        plan = plan_model(str(path), "cortex-a7", Link(uplink, 10.0), Constraints(), exact=None)
        save_plan(plan, Path(tmp) / "plan.json")
        t1 = time.perf_counter()
        report = convert_plan(Path(tmp) / "plan.json", path, Path(tmp) / "bundle", samples=samples)
        t2 = time.perf_counter()
        v = report.verification
        assert v is not None
        return {
            "kind": report.kind, "split": plan.solution.split_index, "layers": len(plan.layers),
            "crossing": [(c["tensor"], c["bits"]) for c in report.crossing],
            "plan_s": t1 - t0, "convert_s": t2 - t1,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "edge_bytes": report.edge_tflite_bytes, "predicted_bytes": report.predicted_edge_weight_bytes,
            "mse": v.output_mse, "simulated": v.simulated_mse, "proxy": v.predicted_error,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--uplink", type=float, default=3.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.samples, args.uplink)))
        return
    print("| model | plan (split / layers, sent) | plan s | convert s | peak RSS GB | edge.tflite bytes | "
          "predicted edge bytes | ratio | output MSE | float simulation | error proxy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--samples", str(args.samples),
                               "--uplink", str(args.uplink)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1][:100]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        sent = ", ".join(f"{t}@{b}b" for t, b in r["crossing"])
        print(f"| {name} | {r['kind']} {r['split']}/{r['layers']} ({sent}) | {r['plan_s']:.1f} | "
              f"{r['convert_s']:.1f} | "
              f"{r['peak_rss_gb']:.2f} | {r['edge_bytes']:,} | {r['predicted_bytes']:,} | "
              f"{r['edge_bytes'] / max(r['predicted_bytes'], 1):.3f} | {r['mse']:.3g} | {r['simulated']:.3g} | "
              f"{r['proxy']:.3g} |")


if __name__ == "__main__":
    main()
