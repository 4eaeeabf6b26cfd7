"""The licence-plate plan re-made from measured edge tables (issue 19), in one run.

The small reader (`sdk/examples/lpr`) goes through the demo's chain with the demo's flags (`host_tools/demo.sh`:
cortex-a7, 3 Mbit/s, <= 1 point exact-plate drop on validation frames; the planner keeps the BiLSTM, which does
not convert for the camera, in the cloud by itself):

1. `splitsdk plan` on the analytic Cortex-A7 model -> `convert` -> `generate` -> `build` twice: against the
   sysroot's TFLite (Debian's armhf build: NEON off) and with `--tflite-root` against the NEON build of
   `splitsdk toolchain tflite-neon cortex-a7` (the runtime the target's rates assume);
2. `splitsdk image` (the emulated camera) and, for each firmware, `splitsdk profile FIRMWARE --camera IMAGE
   --modes all` (qemu-system-arm booted with `-icount shift=0`: instruction-count time, 1 instruction = 1 ns,
   not Cortex-A7 milliseconds) on a real test frame: the measured per-layer table of the shipped model and of
   the edge converted at each runtime mode (int16x8, dynamic_int8, float32);
3. `splitsdk plan ... --edge-profile` with each table and the same flags, and `splitsdk report` on each;
4. prints, as Markdown, the three plans side by side, each report's per-layer table (modelled vs measured),
   and per runtime mode the edge's measured instructions on both builds against the analytic model.

Each step's output is kept in the work folder and reused by a later run (`--fresh` redoes everything).
`python benchmarks/bench_lpr_profile.py [--work out/bench-lpr-profile] [--val 200] [--runs 3] [--ruy-source DIR]
[--fresh]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SPLITSDK = [sys.executable, "-m", "splitsdk"]
PLAN_FLAGS = ["--target", "cortex-a7", "--uplink", "3mbit", "--max-accuracy-drop", "1", "--metric", "lpr_exact"]
MODES = ("int8", "int16x8", "dynamic_int8", "float32")


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


def calib_and_val(work: Path, val: int) -> tuple[Path, Path]:
    """The demo's calibration (64 train frames, pixels only) and validation (`val` frames, labelled) sets."""
    from splitsdk.examples.lpr import data

    calib, val_npz = work / "calib.npz", work / f"val-{val}.npz"
    if not calib.exists():
        labelled = data.write_npz(work / "calib-labelled.npz", 0, 64)
        np.savez(calib, x=np.load(labelled)["x"])
        labelled.unlink()
    if not val_npz.exists():
        data.write_npz(val_npz, 1, val)
    return calib, val_npz


def make_data(work: Path, val: int) -> tuple[Path, Path, Path]:
    """Calibration, validation (`calib_and_val`) and one test frame (PPM)."""
    from splitsdk.examples.lpr import data

    calib, val_npz = calib_and_val(work, val)
    frames = work / "frames"
    if not frames.exists():
        data.write_frames(frames, 2, 1)
    return calib, val_npz, sorted(frames.iterdir())[0]


def side_by_side(plans: dict[str, Path]) -> str:
    """The plans' choices and their baselines, as Markdown."""
    from splitsdk.plan.schema import load_plan

    loaded = {name: load_plan(path) for name, path in plans.items()}
    lines = ["| plan made with | split after | edge layers | edge ms | transmit ms | cloud ms | total ms | "
             "edge figures from |", "|---|---|---|---|---|---|---|---|"]
    for name, plan in loaded.items():
        s, p = plan.solution, plan.solution.predicted
        last = f"{s.edge_layers[-1]} ({s.kind})" if s.edge_layers else s.kind
        lines.append(f"| {name} | {last} | {len(s.edge_layers)} | {p.edge_ms:.2f} | {p.transmit_ms:.2f} "
                     f"| {p.cloud_ms:.2f} | {p.total_ms:.2f} | `{plan.profile_source}` |")
    first = next(iter(loaded.values()))
    lines += ["", "| baseline | " + " | ".join(f"total ms ({n})" for n in loaded) + " | accuracy drop (points) |",
              "|---|" + "---|" * (len(loaded) + 1)]
    for key, b in first.baselines.items():
        if all(key in p.baselines for p in loaded.values()):
            drop = b.predicted.accuracy_drop
            totals = " | ".join(f"{p.baselines[key].predicted.total_ms:.2f}" for p in loaded.values())
            lines.append(f"| {b.name} | {totals} | {'-' if drop is None else f'{drop:.2f}'} |")
    return "\n".join(lines).replace(f"{REPO}/", "")


def per_layer(plan_file: Path, table: Path) -> str:
    """The report's per-layer comparison of a plan made with a measured table, as Markdown."""
    from splitsdk.plan.report import comparisons
    from splitsdk.plan.schema import load_plan
    from splitsdk.profile import load_measured

    plan = load_plan(plan_file)
    src = load_measured(table).source
    rows = comparisons(plan)
    lines = [f"Measured: `{table.name}`, {src.describe() if src is not None else 'no source line'}.", "",
             "| layer | bits w/a | measured ms (camera, -icount) | modelled ms (analytic, cortex-a7) | "
             "measured / modelled |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.measured_ms / r.modelled_ms:.2f}x" if r.modelled_ms else "-"
        lines.append(f"| {r.layer} | {r.wbits}/{r.abits} | {r.measured_ms:.3f} | {r.modelled_ms:.3f} | {ratio} |")
    total_m, total_a = sum(r.measured_ms for r in rows), sum(r.modelled_ms for r in rows)
    lines.append(f"| sum | | {total_m:.3f} | {total_a:.3f} | "
                 f"{(total_m / total_a if total_a else float('nan')):.2f}x |")
    notes = [n for n in plan.selection.notes if n.startswith(("edge latency of", "warning"))]
    lines += ["", *[f"- plan note: {n}" for n in notes]]
    return "\n".join(lines).replace(f"{REPO}/", "")


def per_mode(model: str, plan_file: Path, tables: dict[str, Path]) -> str:
    """Per runtime mode, the analytic plan's edge layers as measured on each build (sum of the layers, in M
    instructions; a layer the shipped model runs at sub-8-bit widths counts as int8, the mode that executes
    them) against the analytic model (ms at the target's clock and the mode's rates; the measurement taken at
    one instruction per cycle of that clock for the ratio), and the MAC rate
    each measurement implies for the mode: the int8 mode's `macs_per_cycle` times int8's time over the mode's
    (what the target's modes hold; the analytic model scales every op kind's int8 rate by it), as Markdown."""
    from splitsdk.graph import load_graph
    from splitsdk.plan.schema import load_plan
    from splitsdk.profile import build_profile, load_measured
    from splitsdk.target import load_target

    edge = load_plan(plan_file).solution.edge_layers
    target = load_target("cortex-a7")
    quant, clock_mhz = target.quant, target.device.clock_mhz
    modes = {m.name: m for m in quant.modes}
    analytic = build_profile(load_graph(model), "cortex-a7", "cloud-gpu")
    loaded = {name: load_measured(t) for name, t in tables.items()}

    def measured(table: Any, mode: str) -> float | None:
        total = 0.0
        for layer in edge:
            row = table.by_bits.get(layer, {})
            hit = [ms for pair, ms in sorted(row.items()) if quant.mode_for(*pair).name == mode]
            if not hit:
                return None
            total += hit[0]
        return total

    sums = {(n, m): measured(t, m) for n, t in loaded.items() for m in MODES}
    lines = ["| mode (w/a) | " + " | ".join(f"{n}: M instructions" for n in loaded) + " | modelled ms | "
             + " | ".join(f"{n} at IPC 1 / modelled" for n in loaded) + " | macs_per_cycle (target) | "
             + " | ".join(f"implied by {n}" for n in loaded) + " |", "|---|" + "---|" * (3 * len(loaded) + 2)]
    for name in MODES:
        mode = modes[name]
        modelled = sum(analytic.edge_ms(layer, mode.weights, mode.activations) for layer in edge)
        got = [sums[n, name] for n in loaded]
        cells = " | ".join("not measured" if v is None else f"{v:.1f}" for v in got)
        ratios = " | ".join("-" if v is None else f"{v * 1e3 / clock_mhz / modelled:.2f}x" for v in got)
        implied = []
        for n, v in zip(loaded, got, strict=True):
            base = sums[n, "int8"]
            implied.append("-" if v is None or base is None else f"{modes['int8'].macs_per_cycle * base / v:.2f}")
        lines.append(f"| {name} ({mode.weights}/{mode.activations}) | {cells} | {modelled:.2f} | {ratios} "
                     f"| {mode.macs_per_cycle:g} | {' | '.join(implied)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench-lpr-profile")
    p.add_argument("--val", type=int, default=200, help="validation frames for the accuracy limit (demo: 500)")
    p.add_argument("--runs", type=int, default=3, help="profile runs (the minimum over them is kept)")
    p.add_argument("--ruy-source", type=Path, help="passed to `splitsdk toolchain tflite-neon`")
    p.add_argument("--fresh", action="store_true", help="redo every step")
    args = p.parse_args(argv)
    from splitsdk.examples.lpr import weights_path
    from splitsdk.target import load_target
    from splitsdk.toolchain.tflite_neon import ensure_tflite

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
    started = time.perf_counter()
    prefix = ensure_tflite(load_target("cortex-a7"), ruy_source=args.ruy_source)
    timings["NEON TFLite (cached after the first run)"] = time.perf_counter() - started
    firmwares = {
        "Debian armhf TFLite": step("build (sysroot TFLite)", work / "firmware", [
            *SPLITSDK, "build", str(app), "-o", str(work / "firmware")], timings),
        "NEON TFLite": step("build (NEON TFLite)", work / "firmware-neon", [
            *SPLITSDK, "build", str(app), "-o", str(work / "firmware-neon"), "--build-dir", str(work / "build-neon"),
            "--tflite-root", str(prefix)], timings),
    }
    image = step("image", work / "image", [*SPLITSDK, "image", "--target", "cortex-a7", "-o", str(work / "image")],
                 timings)
    tables: dict[str, Path] = {}
    plans: dict[str, Path] = {"analytic Cortex-A7 model": plan_a}
    for (name, fw), tag in zip(firmwares.items(), ("", "-neon"), strict=True):
        tables[name] = step(f"profile {name} (camera, -icount shift=0, every mode)", work / f"measured{tag}.csv", [
            *SPLITSDK, "profile", str(fw), "--bundle", str(bundle), "--camera", str(image), "--icount", "0",
            "--runs", str(args.runs), "--warmup", "1", "--input", str(frame), "--modes", "all", "--model", model,
            "--calib", str(calib), "-o", str(work / f"measured{tag}.csv")], timings)
        plans[f"measured table, {name}"] = step(f"plan (--edge-profile, {name})", work / f"plan-measured{tag}.json", [
            *SPLITSDK, "plan", model, *PLAN_FLAGS, *data, "--edge-profile", str(tables[name]), "-o",
            str(work / f"plan-measured{tag}.json")], timings)
        step(f"report ({name})", work / f"report{tag}", [
            *SPLITSDK, "report", str(plans[f"measured table, {name}"]), "-o", str(work / f"report{tag}")], timings)
    print()
    print(side_by_side(plans))
    for name, table in tables.items():
        print(f"\n### The plan made with the {name} table: its edge layers\n")
        print(per_layer(plans[f"measured table, {name}"], table))
    print("\n### Per runtime mode: the analytic plan's edge layers\n")
    print(per_mode(model, plan_a, tables))
    if timings:
        print("\nStep wall times (s, this run): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
