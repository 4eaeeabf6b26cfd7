"""Inspect + sensitivity on Keras ResNet-50 and MobileNetV2 (random weights, 224x224, 32 samples).

Each model runs in its own process so that its peak RSS is its own. Prints a Markdown table:
wall time of import+optimise+split table, of the sensitivity measurement, and peak memory.
Usage: python benchmarks/bench_inspect.py [--samples 32] [--models resnet50,mobilenetv2]
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

MODELS = {
    "resnet50": "ResNet50",
    "mobilenetv2": "MobileNetV2",
}


def measure(name: str, samples: int) -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from splitsdk.graph import load_graph
    from splitsdk.quant import load_dataset, measure_sensitivity

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, MODELS[name])(weights=None, input_shape=(224, 224, 3))
    t0 = time.perf_counter()
    graph = load_graph(model)
    cands = graph.split_candidates()
    t1 = time.perf_counter()
    data = load_dataset(None, (224, 224, 3), samples=samples)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SPLITSDK_CACHE"] = cache
        t2 = time.perf_counter()
        sens = measure_sensitivity(graph, data, [2, 4, 6, 8], model_sha256=name)
        t3 = time.perf_counter()
    return {
        "layers_raw": len(model.layers),
        "layers_optimised": len(graph),
        "split_candidates": len(cands),
        "inspect_s": t1 - t0,
        "sensitivity_s": t3 - t2,
        "sensitivity_layers": len(sens.activations),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.samples)))
        return
    rows = []
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--samples", str(args.samples)],
                              capture_output=True, text=True, check=True)
        rows.append((name, json.loads(proc.stdout.strip().splitlines()[-1])))
    print(f"| model | layers (raw -> optimised) | split candidates | inspect s | sensitivity s "
          f"({args.samples} samples, bits 2/4/6/8) | peak RSS GB |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['layers_raw']} -> {r['layers_optimised']} | {r['split_candidates']} | "
              f"{r['inspect_s']:.1f} | {r['sensitivity_s']:.1f} | {r['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
