"""Convert benchmark: plan + convert Keras ResNet-50 and MobileNetV2 (random weights, 224x224) for cortex-a7.

Each model runs in its own process (peak RSS is its own). Reports the plan's split, convert wall time,
peak memory, edge.tflite's real bytes next to the plan's predicted edge weight bytes, and the host
pipeline's measured output error next to the plan's float simulation and error proxy.
Unless --no-mix, the planned split is converted a second time with a per-layer precision mix written into the
plan (every third weighted edge layer at int16 activations, the second one in float, the rest int8), next
to the plain int8 conversion, in separate processes.
Usage: python benchmarks/bench_convert.py [--models resnet50,mobilenetv2] [--uplinks 3,0.5] [--samples 16] [--no-mix]
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


def mixed_solution(plan_path: Path, model: Path) -> dict[str, object]:
    """Rewrite the plan's solution in place with the benchmark's precision mix; returns the mix."""
    import dataclasses

    from splitsdk.graph import load_graph
    from splitsdk.plan import load_plan, save_plan
    from splitsdk.plan.problem import edge_file_bytes
    from splitsdk.target import load_target

    plan = load_plan(plan_path)
    graph = load_graph(model)
    sol = plan.solution
    weighted = [n for n in sol.edge_layers if graph.layer(n).quantizable]
    wbits, abits = dict(sol.weight_bits), dict(sol.activation_bits)
    for i, n in enumerate(weighted):
        if i == 1:
            wbits[n] = abits[n] = 32
        elif i % 3 == 2:
            wbits[n], abits[n] = 8, 16
    crossing = [c.tensor for c in sol.crossing]
    predicted = edge_file_bytes(graph, sol.edge_layers, wbits, abits, crossing, load_target(plan.target).quant)
    new = dataclasses.replace(sol, weight_bits=wbits, activation_bits=abits)
    save_plan(dataclasses.replace(plan, solution=new), plan_path)
    return {"float": sum(1 for b in abits.values() if b == 32), "int16": sum(1 for b in abits.values() if b == 16),
            "predicted": predicted}


def measure(name: str, samples: int, uplink: float, mix: bool = False) -> dict[str, object]:
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
        if mix and not plan.solution.edge_layers:
            return {"skip": True}  # CLOUD-ONLY: no edge layer to mix
        mixed = mixed_solution(Path(tmp) / "plan.json", path) if mix else None
        t1 = time.perf_counter()
        report = convert_plan(Path(tmp) / "plan.json", path, Path(tmp) / "bundle", samples=samples)
        t2 = time.perf_counter()
        v = report.verification
        assert v is not None
        return {
            "kind": report.kind, "split": plan.solution.split_index, "layers": len(plan.layers),
            "crossing": [(c.tensor, c.bits) for c in report.crossing],
            "plan_s": t1 - t0, "convert_s": t2 - t1,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "edge_bytes": report.edge_tflite_bytes,
            "predicted_bytes": mixed["predicted"] if mixed else report.predicted_edge_weight_bytes,
            "mix": f" mixed: {mixed['int16']} int16x8, {mixed['float']} float layers" if mixed else "",
            "mse": v.output_mse, "simulated": v.simulated_mse, "proxy": v.predicted_error,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--uplinks", default="3,0.5", help="uplink rates in Mbit/s, each a plan (default 3,0.5)")
    ap.add_argument("--no-mix", dest="mix", action="store_false",
                    help="skip the second conversion of each split with a per-layer precision mix")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-mix", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.samples, float(args.uplinks), args.child_mix)))
        return
    print("| model | Mbit/s | plan (split / layers, sent) | plan s | convert s | peak RSS GB | edge.tflite bytes | "
          "predicted edge bytes | ratio | output MSE | float simulation | error proxy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [(name, rate, mix) for name in args.models.split(",") for rate in args.uplinks.split(",")
            for mix in ((False, True) if args.mix else (False,))]
    for name, rate, mix in runs:
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--samples", str(args.samples),
                               "--uplinks", rate, *(["--child-mix"] if mix else [])],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1][:100]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if r.get("skip"):
            continue
        sent = ", ".join(f"{t}@{b}b" for t, b in r["crossing"])
        ratio = f"{r['edge_bytes'] / r['predicted_bytes']:.3f}" if r["predicted_bytes"] else "–"
        print(f"| {name} | {rate} | {r['kind']} {r['split']}/{r['layers']} ({sent}){r['mix']} | {r['plan_s']:.1f} | "
              f"{r['convert_s']:.1f} | "
              f"{r['peak_rss_gb']:.2f} | {r['edge_bytes']:,} | {r['predicted_bytes']:,} | "
              f"{ratio} | {r['mse']:.3g} | {r['simulated']:.3g} | "
              f"{r['proxy']:.3g} |")


if __name__ == "__main__":
    main()
