"""The licence-plate plan re-made from a measured edge table (issue 19), in one run.

The small reader (`sdk/examples/lpr`) goes through the demo's chain with the demo's flags (`host_tools/demo.sh`:
cortex-a7, 3 Mbit/s, <= 1 point exact-plate drop on validation frames, BiLSTM in the cloud):

1. `splitsdk plan` on the analytic Cortex-A7 model -> `convert` -> `generate` -> `build` (the ARM edge app);
2. `splitsdk image` (the emulated camera) and `splitsdk profile FIRMWARE --camera IMAGE` (qemu-system-arm booted
   with `-icount shift=0`: instruction-count time, 1 instruction = 1 ns, not Cortex-A7 milliseconds) on a real
   test frame: the measured per-layer table;
3. `splitsdk plan ... --edge-profile measured.csv` with the same flags, and `splitsdk report` on it;
4. prints, as Markdown, the two plans side by side and the report's per-layer table (modelled vs measured), each
   figure with where it came from.

Each step's output is kept in the work folder and reused by a later run (`--fresh` redoes everything).
`python benchmarks/bench_lpr_profile.py [--work out/bench-lpr-profile] [--val 200] [--runs 3] [--fresh]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SPLITSDK = [sys.executable, "-m", "splitsdk"]
PLAN_FLAGS = ["--target", "cortex-a7", "--uplink", "3mbit", "--max-accuracy-drop", "1", "--metric", "lpr_exact",
              "--cloud-ops", "Bidirectional"]


def step(what: str, out: Path, cmd: list[str], timings: dict[str, float]) -> Path:
    """Run `cmd` unless `out` exists (a previous run's output); its wall time goes into `timings`."""
    if out.exists():
        print(f"-- {what}: reusing {out}", flush=True)
        return out
    print(f"-- {what}: {' '.join(str(c) for c in cmd[2:])}", flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    timings[what] = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    (out.parent / f"{out.name}.log").write_text(proc.stdout + proc.stderr)
    return out


def make_data(work: Path, val: int) -> tuple[Path, Path, Path]:
    """Calibration (64 train frames, pixels only), validation (`val` frames, labelled) and one test frame (PPM)."""
    from splitsdk.examples.lpr import data

    calib, val_npz, frames = work / "calib.npz", work / f"val-{val}.npz", work / "frames"
    if not calib.exists():
        labelled = data.write_npz(work / "calib-labelled.npz", 0, 64)
        np.savez(calib, x=np.load(labelled)["x"])
        labelled.unlink()
    if not val_npz.exists():
        data.write_npz(val_npz, 1, val)
    if not frames.exists():
        data.write_frames(frames, 2, 1)
    return calib, val_npz, sorted(frames.iterdir())[0]


def side_by_side(analytic_plan: Path, measured_plan: Path, table: Path) -> str:
    """The two plans' choices and the report's per-layer comparison, as Markdown."""
    from splitsdk.plan.report import comparisons
    from splitsdk.plan.schema import load_plan
    from splitsdk.profile import load_measured

    plans = {"analytic Cortex-A7 model": load_plan(analytic_plan), "measured table": load_plan(measured_plan)}
    lines = ["| plan made with | split after | edge layers | edge ms | transmit ms | cloud ms | total ms | "
             "edge figures from |", "|---|---|---|---|---|---|---|---|"]
    for name, plan in plans.items():
        s, p = plan.solution, plan.solution.predicted
        last = f"{s.edge_layers[-1]} ({s.kind})" if s.edge_layers else s.kind
        lines.append(f"| {name} | {last} | {len(s.edge_layers)} | {p.edge_ms:.2f} | {p.transmit_ms:.2f} "
                     f"| {p.cloud_ms:.2f} | {p.total_ms:.2f} | `{plan.profile_source}` |")
    analytic, measured = plans["analytic Cortex-A7 model"], plans["measured table"]
    lines += ["", "| baseline | total ms (analytic) | total ms (measured table) | accuracy drop (points, measured) |",
              "|---|---|---|---|"]
    for key, b in analytic.baselines.items():
        if key in measured.baselines:
            drop = b.predicted.accuracy_drop
            lines.append(f"| {b.name} | {b.predicted.total_ms:.2f} | {measured.baselines[key].predicted.total_ms:.2f} "
                         f"| {'-' if drop is None else f'{drop:.2f}'} |")
    src = load_measured(table).source
    rows = comparisons(measured)
    lines += ["", f"Measured: `{table.name}`, {src.describe() if src is not None else 'no source line'}.", "",
              "| layer | bits w/a | measured ms (camera, -icount) | modelled ms (analytic, cortex-a7) | "
              "measured / modelled |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.measured_ms / r.modelled_ms:.1f}x" if r.modelled_ms else "-"
        lines.append(f"| {r.layer} | {r.wbits}/{r.abits} | {r.measured_ms:.3f} | {r.modelled_ms:.3f} | {ratio} |")
    total_m, total_a = sum(r.measured_ms for r in rows), sum(r.modelled_ms for r in rows)
    lines.append(f"| sum | | {total_m:.3f} | {total_a:.3f} | "
                 f"{(total_m / total_a if total_a else float('nan')):.1f}x |")
    notes = [n for n in measured.selection.notes if n.startswith(("edge latency of", "warning"))]
    lines += ["", *[f"- plan note: {n}" for n in notes]]
    return "\n".join(lines).replace(f"{REPO}/", "")  # paths as the repository names them


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench-lpr-profile")
    p.add_argument("--val", type=int, default=200, help="validation frames for the accuracy limit (demo: 500)")
    p.add_argument("--runs", type=int, default=3, help="profile runs (the minimum over them is kept)")
    p.add_argument("--fresh", action="store_true", help="redo every step")
    args = p.parse_args(argv)
    from splitsdk.examples.lpr import weights_path

    work = args.work.resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    model = str(weights_path("small"))
    calib, val, frame = make_data(work, args.val)
    data = ["--calib", str(calib), "--eval", str(val)]
    plan_a = step("plan (analytic)", work / "plan-analytic.json",
                  [*SPLITSDK, "plan", model, *PLAN_FLAGS, *data, "-o", str(work / "plan-analytic.json")], timings)
    bundle = step("convert", work / "bundle", [*SPLITSDK, "convert", str(plan_a), "--model", model, "--calib",
                                               str(calib), "--postprocess", "lpr_ctc", "-o", str(work / "bundle")],
                  timings)
    app = step("generate", work / "edge-app", [*SPLITSDK, "generate", "--target", "cortex-a7", "--bundle",
                                               str(bundle), "-o", str(work / "edge-app")], timings)
    fw = step("build", work / "firmware", [*SPLITSDK, "build", str(app), "-o", str(work / "firmware")], timings)
    image = step("image", work / "image", [*SPLITSDK, "image", "--target", "cortex-a7", "-o", str(work / "image")],
                 timings)
    table = step("profile (camera, -icount shift=0)", work / "measured.csv",
                 [*SPLITSDK, "profile", str(fw), "--bundle", str(bundle), "--camera", str(image), "--icount", "0",
                  "--runs", str(args.runs), "--warmup", "1", "--input", str(frame), "-o", str(work / "measured.csv")],
                 timings)
    plan_m = step("plan (--edge-profile)", work / "plan-measured.json",
                  [*SPLITSDK, "plan", model, *PLAN_FLAGS, *data, "--edge-profile", str(table), "-o",
                   str(work / "plan-measured.json")], timings)
    step("report", work / "report", [*SPLITSDK, "report", str(plan_m), "-o", str(work / "report")], timings)
    print()
    print(side_by_side(plan_a, plan_m, table))
    if timings:
        print("\nStep wall times (s, this run): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
