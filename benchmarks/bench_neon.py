"""Baseline vs NEON TFLite on the example models, instruction counts per op type (issue 19), in one run.

The licence-plate reader's edge (the `bench_lpr_profile.py` plan: the demo's flags) and the digits CNN (planned
at 100 kbit/s, so that its edge holds the convolutions) are each built twice from the same generated project:
against the sysroot's TFLite (Debian's armhf build: no NEON) and with `--tflite-root` against the NEON build of
`splitsdk toolchain tflite-neon cortex-a7`. Both firmwares run on the emulated camera booted once with
`-icount shift=0` (qemu-system-arm: the guest clock counts instructions, 1 instruction = 1 ns), through the
same code as `splitsdk profile --camera IMAGE --icount 0` (its measured tables are written beside). Every op's
time is its minimum over the runs, in instructions; they are summed per op type.

A third model, the calibration CNN built here (`calibration_model`: CONV_2D on 3-64 channels, DEPTHWISE_CONV_2D,
ADD, LOGISTIC, MAX/AVERAGE_POOL_2D, FULLY_CONNECTED at a few sizes), planned whole on the edge, is built with NEON
only and profiled in the same camera session.

Prints, as Markdown: per model and op type, baseline and NEON instructions and their ratio, the whole model's,
and the NEON instructions per MAC of the MAC ops; then, over the NEON runs of all three models, the fit
instructions = a * work + b per op type and per op kind of `[device.op_rates]` (work: MACs, or elements for the
other ops; relative least squares), its worst relative error and the rate it implies at 1 instruction per cycle
(what targets/cortex-a7.toml's op_rates hold). The fitted points are written to neon-ops.csv in the work folder.
Each step's output is kept in the work folder and reused (`--fresh` redoes them).
`python benchmarks/bench_neon.py [--work out/bench-neon] [--ruy-source DIR] [--runs 2]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lpr_profile as lpr_bench  # noqa: E402

SPLITSDK = lpr_bench.SPLITSDK
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def lpr_project(work: Path, timings: dict[str, float]) -> tuple[Path, Path, Path]:
    """The licence-plate bundle and generated project of bench_lpr_profile (its work folder, reused), and a frame."""
    from splitsdk.examples.lpr import weights_path

    calib, val, frame = lpr_bench.make_data(work, 200)
    data = ["--calib", str(calib), "--eval", str(val)]
    plan = lpr_bench.step("lpr plan", work / "plan-analytic.json", [
        *SPLITSDK, "plan", str(weights_path("small")), *lpr_bench.PLAN_FLAGS, *data, "-o",
        str(work / "plan-analytic.json")], timings)
    bundle = lpr_bench.step("lpr convert", work / "bundle", [
        *SPLITSDK, "convert", str(plan), "--model", str(weights_path("small")), "--calib", str(calib),
        "--postprocess", "lpr_ctc", "-o", str(work / "bundle")], timings)
    app = lpr_bench.step("lpr generate", work / "edge-app", [
        *SPLITSDK, "generate", "--target", "cortex-a7", "--bundle", str(bundle), "-o", str(work / "edge-app")], timings)
    return bundle, app, frame


def digits_project(work: Path, timings: dict[str, float]) -> tuple[Path, Path, None]:
    """The digits CNN planned for cortex-a7 at 100 kbit/s (its edge holds the conv blocks), converted, generated."""
    from splitsdk.examples.digits import data, weights_path

    work.mkdir(parents=True, exist_ok=True)
    calib = work / "calib.npz"
    if not calib.exists():
        data.save_npz(calib, "train", 64, labels=False)
    plan = lpr_bench.step("digits plan", work / "plan.json", [
        *SPLITSDK, "plan", str(weights_path()), "--target", "cortex-a7", "--uplink", "100kbit", "--calib", str(calib),
        "--jpeg", "none", "-o", str(work / "plan.json")], timings)
    bundle = lpr_bench.step("digits convert", work / "bundle", [
        *SPLITSDK, "convert", str(plan), "--model", str(weights_path()), "--calib", str(calib), "-o",
        str(work / "bundle")], timings)
    app = lpr_bench.step("digits generate", work / "edge-app", [
        *SPLITSDK, "generate", "--target", "cortex-a7", "--bundle", str(bundle), "-o", str(work / "edge-app")], timings)
    return bundle, app, None


def calibration_model(path: Path) -> Path:
    """A small CNN with the op types the planner meets on the edge, at a few sizes each (issue 19's fit): 3x3
    CONV_2D on 3-64 channels, 1x1 CONV_2D, DEPTHWISE_CONV_2D on 16-64 channels, ADD, LOGISTIC, MAX_POOL_2D,
    AVERAGE_POOL_2D, a 4608 x 64 FULLY_CONNECTED and a 64 x 10 one. Random weights (a fixed seed): only the
    op shapes matter for instruction counts."""
    if path.exists():
        return path
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((48, 48, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(16, 1, activation="relu")(y)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.Activation("sigmoid")(y)
    x = layers.Add()([x, y])
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(64, 1)(y)
    y = layers.Activation("sigmoid")(y)
    x = layers.Add()([x, y])
    x = layers.Conv2D(128, 1, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(10, activation="softmax")(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(inp, out).save(path)
    return path


def calibration_project(work: Path, timings: dict[str, float]) -> tuple[Path, Path, None]:
    """The calibration model planned for cortex-a7 at 10 kbit/s (the whole model on the edge), converted,
    generated; calibrated on 64 random frames."""
    model = calibration_model(work / "calibration.keras")
    calib = work / "calib.npz"
    if not calib.exists():
        np.savez(calib, x=np.random.default_rng(0).random((64, 48, 48, 3), dtype=np.float32))
    plan = lpr_bench.step("calibration plan", work / "plan.json", [
        *SPLITSDK, "plan", str(model), "--target", "cortex-a7", "--uplink", "10kbit", "--calib", str(calib),
        "--jpeg", "none", "-o", str(work / "plan.json")], timings)
    bundle = lpr_bench.step("calibration convert", work / "bundle", [
        *SPLITSDK, "convert", str(plan), "--model", str(model), "--calib", str(calib), "-o",
        str(work / "bundle")], timings)
    app = lpr_bench.step("calibration generate", work / "edge-app", [
        *SPLITSDK, "generate", "--target", "cortex-a7", "--bundle", str(bundle), "-o", str(work / "edge-app")],
        timings)
    return bundle, app, None


def op_macs(model: Path) -> dict[int, int]:
    """MACs of each MAC op of a TFLite model (by op index), from its tensors' shapes."""
    from splitsdk.runtime import interpreter

    interp = interpreter(model.read_bytes())
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    out = {}
    for op in interp._get_ops_details():  # noqa: SLF001
        name, ins, outs = str(op["op_name"]), list(op["inputs"]), list(op["outputs"])
        if name not in MAC_OPS or len(ins) < 2:
            continue
        w, o = shapes[ins[1]], shapes[outs[0]]
        if name == "CONV_2D":  # weights [O, KH, KW, I], output [N, H, W, O]
            out[int(op["index"])] = int(np.prod(o)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # weights [1, KH, KW, O]
            out[int(op["index"])] = int(np.prod(o)) * w[1] * w[2]
        else:  # FULLY_CONNECTED: weights [O, I]
            out[int(op["index"])] = int(np.prod(o)) * w[1]
    return out


# TFLite op -> the op kind of `device.op_rates` (splitsdk.profile.geometry.op_kind on the imported layer)
OP_KINDS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense", "MAX_POOL_2D": "pool",
            "AVERAGE_POOL_2D": "pool", "ADD": "elementwise", "LOGISTIC": "elementwise",
            "QUANTIZE": "quantize"}  # the frame's: each edge model here quantises its float input once


def op_elements(model: Path) -> dict[int, int]:
    """Elements of each op without MACs, as the analytic model counts them (geometry.layer_work): the larger of
    the elements it reads and those it writes."""
    from splitsdk.runtime import interpreter

    interp = interpreter(model.read_bytes())
    sizes = {t["index"]: int(np.prod(t["shape"])) for t in interp.get_tensor_details()}
    return {int(op["index"]): max(sum(sizes[i] for i in op["inputs"] if i >= 0),
                                  sum(sizes[o] for o in op["outputs"]))
            for op in interp._get_ops_details() if str(op["op_name"]) not in MAC_OPS}  # noqa: SLF001


def op_outputs(model: Path) -> dict[int, int]:
    """Output elements of each op of a TFLite model (by op index)."""
    from splitsdk.runtime import interpreter

    interp = interpreter(model.read_bytes())
    sizes = {t["index"]: int(np.prod(t["shape"])) for t in interp.get_tensor_details()}
    return {int(op["index"]): sum(sizes[o] for o in op["outputs"]) for op in interp._get_ops_details()}  # noqa: SLF001


@dataclass(frozen=True)
class Fit:
    """instructions = a * work + c * outputs + b, and the worst relative error over the points."""

    a: float
    b: float
    worst: float
    c: float = 0.0


def fit(points: list[tuple[float, float]], outputs: list[float] | None = None) -> Fit:
    """instructions = a * work + b (with `outputs`, the ops' output elements, and more than 3 points: + c * outputs)
    by relative least squares (each op's error relative to its count); a negative term is dropped and the rest
    fitted again."""
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    out = np.array(outputs if outputs is not None else [0.0] * len(points), dtype=float)
    terms = ["a", "c", "b"] if outputs is not None and len(points) > 3 else ["a", "b"]  # more points than terms
    column = {"a": x, "c": out, "b": np.ones_like(y)}
    while True:
        if len(points) < len(terms):
            terms = ["a"]
        mat = np.stack([column[t] / y for t in terms], axis=1)
        coef = dict(zip(terms, np.linalg.lstsq(mat, np.ones_like(y), rcond=None)[0], strict=True))
        negative = [t for t in terms if t != "a" and coef[t] < 0]
        if not negative:
            break
        terms.remove("b" if "b" in negative else negative[0])
    a, b, c = float(coef["a"]), float(coef.get("b", 0.0)), float(coef.get("c", 0.0))
    worst = float(np.max(np.abs((a * x + c * out + b) / y - 1.0)))
    return Fit(a, b, worst, c)


def fit_table(results: dict[str, Profiled], work: dict[str, dict[int, int]], outputs: dict[str, dict[int, int]],
              mhz: float) -> str:
    """Per op type and per op kind: the fit of the NEON instructions on the ops' work (and for the MAC ops
    their output elements), and the rates it implies at 1 instruction per cycle and `mhz`."""
    by_type: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    by_kind: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    models: dict[str, set[str]] = defaultdict(set)
    for model, prof in results.items():
        for index, op, insns in prof.ops:
            if index in work[model] and work[model][index] > 0:
                point = (work[model][index], outputs[model].get(index, 0), insns)
                by_type[op].append(point)
                models[op].add(model)
                if op in OP_KINDS:
                    by_kind[OP_KINDS[op]].append(point)
    lines = ["| op type / kind | ops | models | work | instructions per unit | per output element | "
             "fixed per op (k instr) | worst error | implied rate at IPC 1 | fixed per op at 900 MHz (us) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(op, pts, ", ".join(sorted(models[op]))) for op, pts in sorted(by_type.items())]
    rows += [(f"**{kind}**", pts, "") for kind, pts in sorted(by_kind.items())]
    for name, pts, used in rows:
        mac = name.strip("*") in MAC_OPS or name.strip("*") in ("conv", "depthwise", "dense")
        f = fit([(p[0], p[2]) for p in pts], [p[1] for p in pts] if mac else None)
        unit = "MAC" if mac else "element"
        lines.append(f"| {name} | {len(pts)} | {used} | {unit} | {f.a:.3f} | {f'{f.c:.1f}' if mac else '-'} | "
                     f"{f.b / 1e3:.1f} | {f.worst * 100:.0f}% | {1 / f.a:.2f} {unit}s per cycle | {f.b / mhz:.1f} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Profiled:
    """One firmware's run: (op index, op type, instructions) per op, the invoke's instructions, the runtime."""

    ops: list[tuple[int, str, float]]
    invoke: float
    runtime: Any  # splitsdk.target.RuntimeBuild


def profile(fw_dir: Path, bundle: Path, image: Path, frame: Path | None, runs: int, table: Path) -> Profiled:
    """One firmware on the running camera, as `splitsdk profile --camera` runs it: per-op instructions (the
    minimum over the runs), the invoke's, and the measured per-layer table written to `table`."""
    from splitsdk.profile.device import bundle_edge, layer_timings, measured_source, run_on_camera, to_rows
    from splitsdk.profile.measured import write_measured
    from splitsdk.toolchain.build import load_firmware

    fw = load_firmware(fw_dir)
    run, _ = run_on_camera(fw, image, runs, 1, frame, icount=0)
    assert run.clock == "camera-icount" and run.icount_shift == 0, "the camera must run with -icount shift=0"
    source = measured_source(fw, run)
    write_measured(table, to_rows(layer_timings(run.profile, bundle_edge(bundle), fewest=True)), source)
    ops = [(o.index, o.op, o.min_ms * 1e6) for o in run.profile.ops if o.subgraph == 0 and not o.delegate_internal]
    return Profiled(ops, run.profile.invoke.min_ms * 1e6, source.runtime)


def table(results: dict[str, dict[str, Profiled]], macs: dict[str, dict[int, int]]) -> str:
    lines = ["| model | op type | ops | baseline instructions (k) | NEON instructions (k) | baseline / NEON | "
             "NEON instructions per MAC |", "|---|---|---|---|---|---|---|"]
    overall: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for model, by in results.items():
        per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        for side, col in (("baseline", 0), ("neon", 1)):
            for index, op, insns in by[side].ops:
                per[op][col] += insns
                if col == 0:
                    per[op][2] += 1
                    per[op][3] += macs[model].get(index, 0)
        for op, (b, n, count, m) in sorted(per.items(), key=lambda kv: -kv[1][0]):
            ipm = f"{n / m:.3f}" if m else "-"
            lines.append(f"| {model} | {op} | {count:.0f} | {b / 1e3:,.0f} | {n / 1e3:,.0f} | {b / n:.2f}x | {ipm} |")
            overall[op][0] += b
            overall[op][1] += n
            overall[op][2] += m
        b, n = by["baseline"].invoke, by["neon"].invoke
        lines.append(f"| {model} | **whole model (invoke)** | | {b / 1e3:,.0f} | {n / 1e3:,.0f} | **{b / n:.2f}x** | |")
    lines += ["", "| op type (both models) | baseline / NEON | NEON instructions per MAC | "
              "implied int8 MACs per cycle at IPC 1 |", "|---|---|---|---|"]
    for op, (b, n, m) in sorted(overall.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {op} | {b / n:.2f}x | {f'{n / m:.3f}' if m else '-'} | {f'{m / n:.2f}' if m else '-'} |")
    return "\n".join(lines)


def modelled_vs_measured(sources: dict[str, tuple[Path, Path, Path]], mhz: float) -> str:
    """Per model (its file, bundle, NEON measured table): the edge layers' measured time (emulated instructions
    at `mhz`, one per cycle) against the analytic cortex-a7 model at the plan's bits, as Markdown."""
    from splitsdk.graph import load_graph
    from splitsdk.plan.schema import load_plan
    from splitsdk.profile import build_profile, load_measured

    lines = ["| edge | layers | measured at IPC 1 | modelled (analytic, `op_rates`) | modelled / measured |",
             "|---|---|---|---|---|"]
    for name, (model, bundle, table) in sources.items():
        sol = load_plan(bundle / "plan.json").solution
        profile = build_profile(load_graph(model), "cortex-a7", "cloud-gpu")
        rows = load_measured(table).by_bits
        measured = sum(ms for layer in sol.edge_layers for ms in rows.get(layer, {}).values()) * 1e3 / mhz
        modelled = sum(profile.edge_ms(layer, sol.weight_bits.get(layer, 8), sol.activation_bits.get(layer, 8))
                       for layer in sol.edge_layers)
        lines.append(f"| {name} | {len(sol.edge_layers)} | {measured:.2f} ms | {modelled:.2f} ms "
                     f"| {modelled / measured:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench-neon")
    p.add_argument("--lpr-work", type=Path, default=REPO / "out" / "bench-lpr-profile",
                   help="bench_lpr_profile.py's work folder (its plan, bundle and camera image are reused)")
    p.add_argument("--ruy-source", type=Path, help="passed to `splitsdk toolchain tflite-neon`")
    p.add_argument("--runs", type=int, default=2, help="profile runs per firmware (minimum kept), after 1 warm-up")
    p.add_argument("--fresh", action="store_true", help="redo every step of this benchmark")
    args = p.parse_args(argv)
    from splitsdk.camera.qemu import camera_down, camera_up
    from splitsdk.target import load_target
    from splitsdk.toolchain.tflite_neon import ensure_tflite

    work = args.work.resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    lpr_work = args.lpr_work.resolve()
    lpr_work.mkdir(parents=True, exist_ok=True)
    # what `splitsdk toolchain tflite-neon cortex-a7 [--ruy-source DIR]` prints: the cached NEON build
    started = time.perf_counter()
    prefix = ensure_tflite(load_target("cortex-a7"), ruy_source=args.ruy_source)
    timings["NEON TFLite (cached after the first run)"] = time.perf_counter() - started
    print(f"-- NEON TFLite: {prefix}", flush=True)
    image = lpr_bench.step("image", lpr_work / "image", [
        *SPLITSDK, "image", "--target", "cortex-a7", "-o", str(lpr_work / "image")], timings)
    models = {"licence plate (small)": lpr_project(lpr_work, timings),
              "digits CNN": digits_project(work / "digits", timings),
              "calibration": calibration_project(work / "calibration", timings)}
    sides = {model: ("neon",) if model == "calibration" else ("baseline", "neon") for model in models}
    firmwares = {}
    for i, (model, (_, app, _)) in enumerate(models.items()):
        for side in sides[model]:
            extra = ["--tflite-root", str(prefix)] if side == "neon" else []
            fw = work / f"fw-{i}-{side}"
            firmwares[model, side] = lpr_bench.step(f"build {model} ({side})", fw, [
                *SPLITSDK, "build", str(app), "-o", str(fw), "--build-dir", str(work / f"build-{i}-{side}"),
                *extra], timings)
    started = time.perf_counter()
    camera_up(image, icount=0, timeout_s=300.0)
    try:
        results: dict[str, dict[str, Profiled]] = {}
        for i, (model, (bundle, _, frame)) in enumerate(models.items()):
            results[model] = {side: profile(firmwares[model, side], bundle, image, frame, args.runs,
                                            work / f"measured-{i}-{side}.csv") for side in sides[model]}
    finally:
        camera_down(image)
    timings["camera boot and the profiles"] = time.perf_counter() - started
    macs = {model: op_macs(bundle / "edge.tflite") for model, (bundle, _, _) in models.items()}
    print()
    for model, by in results.items():
        for side in sides[model]:
            rt = by[side].runtime
            print(f"- {model}, {side}: TFLite {rt.tflite}, NEON {'on' if rt.neon else 'off'} ({rt.how})")
    print()
    print(table({m: by for m, by in results.items() if len(by) == 2}, macs).replace(f"{REPO}/", ""))
    work_per_op = {model: {**op_elements(bundle / "edge.tflite"), **macs[model]}
                   for model, (bundle, _, _) in models.items()}
    outputs = {model: op_outputs(bundle / "edge.tflite") for model, (bundle, _, _) in models.items()}
    with (work / "neon-ops.csv").open("w") as fh:  # the points of the fits
        fh.write("model,op_index,op,work,outputs,instructions\n")
        for model, by in results.items():
            fh.writelines(f"{model},{i},{op},{work_per_op[model].get(i, 0)},{outputs[model].get(i, 0)},{n:.0f}\n"
                          for i, op, n in by["neon"].ops)
    print("\nFits of the NEON instructions per op (all three models; relative least squares):\n")
    print(fit_table({m: by["neon"] for m, by in results.items()}, work_per_op, outputs,
                    load_target("cortex-a7").device.clock_mhz))
    from splitsdk.examples.digits import weights_path as digits_weights
    from splitsdk.examples.lpr import weights_path as lpr_weights

    files = {"licence plate (small)": lpr_weights("small"), "digits CNN": digits_weights(),
             "calibration": work / "calibration" / "calibration.keras"}
    print("\nThe analytic model with these rates against the NEON measurements, per edge:\n")
    print(modelled_vs_measured({model: (files[model], bundle, work / f"measured-{i}-neon.csv")
                                for i, (model, (bundle, _, _)) in enumerate(models.items())},
                               load_target("cortex-a7").device.clock_mhz))
    if timings:
        print("\nStep wall times (s, this run): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
