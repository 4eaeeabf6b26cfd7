"""The licence-plate demo's plan without `--cloud-ops` against the same plan with `--cloud-ops Bidirectional`.

The demo used to name the BiLSTM as cloud-only by hand; the planner now finds by itself (it converts each layer
for the camera) that the BiLSTM does not build for it. This runs both ways side by side, with the same code and
data as `make demo` (`host_tools/demo.sh`'s flags: cortex-a7, 3 Mbit/s, <= 1 point exact-plate drop on the
validation frames): `splitsdk plan` with and without the flag -> `splitsdk convert` -> the host pipeline's exact
plates on the test frames (edge TFLite -> wire grid -> cloud half -> CTC, `splitsdk.examples.lpr.pipeline`).
Prints, as Markdown, each plan's split, bits, modelled latency, edge file bytes and SHA-256, and the measured
accuracy (the Table-3 row both ways), and whether the two edge files are the same bytes.

    .venv/bin/python benchmarks/bench_cloud_ops.py [--work out/bench-cloud-ops] [--val 500] [--test 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lpr_profile as lpr_bench  # noqa: E402

SPLITSDK = lpr_bench.SPLITSDK
FLAGS = lpr_bench.PLAN_FLAGS
WAYS = {"without --cloud-ops (the demo)": [], "with --cloud-ops Bidirectional": ["--cloud-ops", "Bidirectional"]}


def make_data(work: Path, val: int, test: int) -> tuple[Path, Path, Path]:
    """The demo's data: 64 calibration frames (pixels only), `val` validation and `test` test frames."""
    from splitsdk.examples.lpr import data

    calib, val_npz = lpr_bench.calib_and_val(work, val)
    test_npz = work / f"test-{test}.npz"
    if not test_npz.exists():
        data.write_npz(test_npz, 2, test)
    return calib, val_npz, test_npz


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench-cloud-ops")
    p.add_argument("--val", type=int, default=500, help="validation frames for the accuracy limit (the demo's 500)")
    p.add_argument("--test", type=int, default=1000, help="test frames for the accuracy (the demo's 1,000)")
    args = p.parse_args(argv)
    from splitsdk.examples.lpr import pipeline, weights_path
    from splitsdk.examples.lpr.metric import exact_rate, label_strings
    from splitsdk.plan.schema import load_plan

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = str(weights_path("small"))
    calib, val, test = make_data(work, args.val, args.test)
    with np.load(test) as d:
        x, truth = d["x"], label_strings(d["y"])
    rows, edges = [], []
    for i, (way, extra) in enumerate(WAYS.items()):
        plan, bundle = work / f"plan-{i}.json", work / f"bundle-{i}"
        started = time.perf_counter()
        run([*SPLITSDK, "plan", model, *FLAGS, "--calib", str(calib), "--eval", str(val), *extra, "-o", str(plan)])
        run([*SPLITSDK, "convert", str(plan), "--model", model, "--calib", str(calib), "--postprocess", "lpr_ctc",
             "--force", "-o", str(bundle)])
        accuracy = exact_rate(pipeline.host_plates(bundle, x), truth) * 100.0
        wall = time.perf_counter() - started
        s = load_plan(plan).solution
        edge = (bundle / "edge.tflite").read_bytes()
        edges.append(edge)
        bits = sorted({c.bits for c in s.crossing})
        rows.append(f"| {way} | {s.edge_layers[-1] if s.edge_layers else s.kind} | {', '.join(map(str, bits))} "
                    f"| {s.predicted.total_ms:.1f} | {len(edge):,} | `{hashlib.sha256(edge).hexdigest()[:16]}` "
                    f"| {accuracy:.1f}% | {wall:.0f} |")
    print(f"| plan | split after | wire bits | modelled ms | edge.tflite bytes | edge SHA-256 (first 16) | "
          f"exact plates ({len(x):,} test frames) | wall s |")
    print("|---|---|---|---:|---:|---|---:|---:|")
    print("\n".join(rows))
    print(f"\nThe two edge files are {'the same bytes' if edges[0] == edges[1] else 'different'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
