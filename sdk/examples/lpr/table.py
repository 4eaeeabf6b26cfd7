"""The case study's Table 3: the reader run every way, accuracy / modelled latency / edge model size side by side.

Rows: Float on edge, Float to cloud (CLOUD-ONLY), CLOUD-ONLY+JPEG at each quality of the plan's JPEG baselines,
TQ8 edge-only, AUTO-SPLIT, AUTO-SPLIT with the large LSTM (as in the paper), and with `--adaptive` the adaptive
split bundle. Accuracy is exact plate match on the test set; for the split rows it is measured on the converted
bundle over the whole test set on the host (`split_pipeline`) and on a subset through the real chain (ARM app
under qemu-arm -> `splitsdk serve` -> plates read from its SQLite database); for the JPEG rows with the float
model on the test frames JPEG-encoded and decoded by Pillow (the camera's libjpeg-turbo settings). Latency is
the planner's model for the target at the plan's uplink (plan.json's solution and baselines; a JPEG row's
transmit term for the bytes measured on the test frames); the QEMU stage times beside it are emulation (an x86
host interpreting ARM code), not a Cortex-A7 measurement. Sizes are real file bytes where a file exists.
The adaptive bundle (a plan made with `--uplink LOW..HIGH`, converted) is also run under a 20 -> 1 -> 20 Mbit/s
link-shaper schedule against a real receiver (`splitsdk.examples.lpr.adaptive`): a second table, measured.

`python -m splitsdk.examples.lpr.table --test T.npz --calib C.npz --frames DIR -n 50 \\
    --case small MODEL WORKDIR [--case large MODEL WORKDIR] [--adaptive WORKDIR] -o table.md`
(each case's WORKDIR holds its plan.json, bundle/ and firmware/; the adaptive one its plan.json and bundle/).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.examples.lpr import pipeline as pl
from splitsdk.examples.lpr.adaptive import ScheduleResult, measure_schedule, schedule_lines, schedule_markdown
from splitsdk.examples.lpr.metric import exact_rate, label_strings


@dataclass(frozen=True)
class Row:
    """One line of the table; `accuracy` in percent (None: not measurable), `edge_bytes` None: nothing on the edge."""

    method: str
    accuracy: float | None
    accuracy_how: str
    modelled_ms: float
    vs_cloud: float
    emulated: str
    edge_bytes: int | None
    size_how: str
    fits: str
    float_accuracy: float | None = None  # the same model in float on the same frames (the goal's reference)


@dataclass(frozen=True)
class Case:
    """A planned, converted and built model: its Keras file and the folder with plan.json, bundle/, firmware/."""

    name: str
    model: Path
    workdir: Path

    @property
    def plan(self) -> dict[str, Any]:
        return dict(json.loads((self.workdir / "plan.json").read_text()))

    @property
    def bundle(self) -> Path:
        return self.workdir / "bundle"

    @property
    def firmware(self) -> Path:
        return self.workdir / "firmware"


@dataclass(frozen=True)
class SplitMeasurement:
    """A split case measured: host accuracy on the whole test set, QEMU accuracy and agreement on the subset."""

    host_accuracy: float
    qemu_accuracy: float
    qemu_frames: int
    qemu_agrees_with_host: int
    stages: dict[str, dict[str, float]]


def measure_split(case: Case, x: np.ndarray, truth: list[str], frames: Path, n: int, db: Path) -> SplitMeasurement:
    """Host pipeline over all of `x`; the first `n` PPM frames (test rows 0..n-1) through QEMU and the receiver."""
    host = pl.host_plates(case.bundle, x)
    for old in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        old.unlink(missing_ok=True)  # this table's own database from an earlier run
    run = pl.qemu_plates(case.firmware, case.bundle, frames, db, n)
    labels = pl.frame_labels(frames)
    names = sorted(run.plates)
    index = [int(name.removeprefix("frame_").removesuffix(".ppm")) for name in names]
    if any(labels[name] != truth[i] for name, i in zip(names, index, strict=True)):
        raise ValueError(f"{frames}: the frames are not the first rows of the test set")
    qemu = [run.plates[name] for name in names]
    return SplitMeasurement(
        host_accuracy=exact_rate(host, truth) * 100.0,
        qemu_accuracy=exact_rate(qemu, [labels[name] for name in names]) * 100.0,
        qemu_frames=len(names),
        qemu_agrees_with_host=sum(q == host[i] for q, i in zip(qemu, index, strict=True)),
        stages=run.stages,
    )


def _stage_text(stages: dict[str, dict[str, float]]) -> str:
    def mean(name: str, digits: int = 0) -> str:
        return f"{stages[name]['mean_ms']:.{digits}f}" if name in stages else "-"

    if "encode" in stages:  # a CLOUD-ONLY+JPEG firmware: no edge model, the frame is JPEG-encoded
        return f"QEMU (emulation): encode {mean('encode', 1)} + send/cloud/result {mean('send_result')} ms"
    return (
        f"QEMU (emulation): infer {mean('infer')} + pack {mean('pack', 2)} + send/cloud/result {mean('send_result')} ms"
    )


def _sent(c: dict[str, Any]) -> str:
    """One crossing tensor as the camera sends it."""
    what = f"{c['tensor']} {'x'.join(map(str, c['shape']))}"
    return f"{what} as JPEG-Q{c['jpeg_quality']}" if c.get("codec") == "jpeg" else f"{what} @{c['bits']}b"


def _split_row(method: str, case: Case, m: SplitMeasurement, n_test: int, cloud_ms: float, ref: float) -> Row:
    sol = case.plan["solution"]
    p = sol["predicted"]
    crossing = ", ".join(_sent(c) for c in sol["crossing"])
    return Row(
        method=method,
        accuracy=m.host_accuracy,
        accuracy_how=(
            f"host split pipeline, {n_test} frames; QEMU->receiver DB {m.qemu_accuracy:.1f}% on {m.qemu_frames} "
            f"frames ({m.qemu_agrees_with_host}/{m.qemu_frames} plates equal to the host's); "
            f"the same model in float {ref:.1f}%"
        ),
        modelled_ms=p["total_ms"],
        vs_cloud=p["total_ms"] / cloud_ms,
        emulated=f"edge {p['edge_ms']:.1f} + tx {p['transmit_ms']:.1f} + cloud {p['cloud_ms']:.2f}; "
        + _stage_text(m.stages),
        edge_bytes=(case.bundle / "edge.tflite").stat().st_size,
        size_how=f"edge.tflite (int8, split {sol['split_index']}, sends {crossing})",
        fits="yes",
        float_accuracy=ref,
    )


def adaptive_row(adaptive: Path, table_plan: dict[str, Any], res: ScheduleResult, cloud_ms: float) -> Row:
    """The adaptive bundle (`adaptive`/bundle, planned as `adaptive`/plan.json) in the main table: accuracy from
    the schedule run (the frames it got answered), latency modelled at the table's link (`table_plan`'s) for the
    member its camera picks there (as `AdaptiveCamera` models it: the manifest's edge and cloud times + the
    member's packed bytes at that rate)."""
    from splitsdk.profile.types import Link
    from splitsdk.wire.bundle import load_bundle

    bundle = load_bundle(adaptive / "bundle")
    plan = dict(json.loads((adaptive / "plan.json").read_text()))
    link = Link(table_plan["link"]["uplink_mbps"], table_plan["link"]["rtt_ms"])
    records = {s.split: s for s in bundle.manifest.splits}

    def parts(k: int) -> tuple[float, float, float]:
        return records[k].edge_ms or 0.0, link.transmit_ms(bundle.member(k).wire_bytes), records[k].cloud_ms or 0.0

    pick = min(bundle.split_indices, key=lambda k: (sum(parts(k)), k))
    edge, tx, cloud = parts(pick)
    files = {seg.file for k in bundle.split_indices for seg in bundle.segments(k)}
    camera = res.runs[0]
    steps = " -> ".join(f"{r:g}" for r in res.steps_mbps)
    return Row(
        f"AUTO-SPLIT adaptive (splits {'/'.join(map(str, bundle.split_indices))})",
        camera.accuracy,
        f"the plates a real receiver stored for the {camera.answered} frames the adaptive camera got answered "
        f"under the {steps} Mbit/s schedule (test frames 0..{res.images - 1}, cycled; "
        "table below)",
        edge + tx + cloud,
        (edge + tx + cloud) / cloud_ms,
        f"split {pick}, the member its camera picks at {link.uplink_mbps:g} Mbit/s: edge {edge:.1f} + tx {tx:.1f} + "
        f"cloud {cloud:.2f} (modelled; measured under the schedule: below)",
        sum((bundle.root / f).stat().st_size for f in files),
        f"the edge chain's {len(files)} TFLite segment files (int8; planned with --uplink "
        f"{plan['split_set']['uplink'] if plan.get('split_set') else 'a range'})",
        "yes",
    )


def jpeg_rows(case: Case, x: np.ndarray, truth: list[str], cloud_ms: float) -> list[Row]:
    """CLOUD-ONLY+JPEG at each quality of the plan's JPEG baselines, measured on the test frames `x`: exact plates
    of the float model on the Pillow-decoded frames, the mean JPEG bytes; latency is the plan's model (its encode
    and cloud terms, the transmit term at the plan's link for the bytes measured here)."""
    from splitsdk.plan.jpeg import decode, encode, from_pixels, pillow_jpeg, to_pixels
    from splitsdk.profile.types import Link

    plan = case.plan
    link = Link(plan["link"]["uplink_mbps"], plan["link"]["rtt_ms"])
    pixels = to_pixels(x)  # the convert defaults (1/255, 0) the demo's bundles use
    channels = pixels.shape[-1]
    rows = []
    for base in plan["baselines"].values():
        q = base.get("jpeg_quality")
        if q is None:
            continue
        blobs = [encode(p, q) for p in pixels]
        decoded = from_pixels(np.stack([decode(b, channels) for b in blobs]))
        nbytes = float(np.mean([len(b) for b in blobs]))
        p = base["predicted"]
        tx = link.transmit_ms(round(nbytes))
        total = p["edge_ms"] + tx + p["cloud_ms"]
        rows.append(Row(
            f"CLOUD-ONLY+JPEG-Q{q}",
            exact_rate(pl.float_plates(case.model, decoded), truth) * 100.0,
            f"float Keras on the host on {len(x)} frames JPEG-encoded and decoded by {pillow_jpeg()} "
            "(4:2:0, baseline: the camera's libjpeg-turbo settings)",
            total,
            total / cloud_ms,
            f"encode {p['edge_ms']:.1f} (modelled: jpeg_ns_per_pixel x pixels) + tx {tx:.1f} ({nbytes:,.0f} B mean, "
            f"measured on the {len(x)} test frames; the plan's {p['transmit_bytes']:,} B on its validation frames) "
            f"+ cloud {p['cloud_ms']:.2f}",
            None,
            f"nothing on the edge but its JPEG encoder (sends {nbytes:,.0f} B per frame, mean)",
            "yes",
        ))
    return rows


def build_rows(
    small: Case,
    large: Case | None,
    test: Path,
    calib: Path,
    frames: Path,
    n: int,
    workdir: Path,
    adaptive: Path | None = None,
    step_s: float = 4.0,
) -> tuple[list[Row], ScheduleResult | None]:
    """Measure everything the table needs: its rows (large None: that row is marked missing) and, with
    `adaptive` (a folder with the range plan's plan.json and its multi-split bundle/), the schedule run."""
    with np.load(test) as d:
        x, truth = d["x"], label_strings(d["y"])
    with np.load(calib) as d:
        cx = d["x"]
    plan = small.plan
    base = plan["baselines"]
    cloud_ms = base["cloud_only"]["predicted"]["total_ms"]
    float_acc = exact_rate(pl.float_plates(small.model, x), truth) * 100.0
    tq8_acc = exact_rate(pl.simulated_plates(small.model, x, cx, 8), truth) * 100.0
    memory = plan["constraints"]["memory_bytes"]

    def modelled(key: str) -> tuple[float, str]:
        p = base[key]["predicted"]
        return p["total_ms"], f"edge {p['edge_ms']:.1f} + tx {p['transmit_ms']:.1f} + cloud {p['cloud_ms']:.2f}"

    def runs(key: str) -> str:  # the planner measured which layers convert (plan.json baselines' `buildable`)
        b = base[key]
        return "runnable" if b.get("buildable", True) else f"not runnable: {b['note'].split('; ')[0]}"

    e_ms, e_how = modelled("edge_only")
    c_ms, c_how = modelled("cloud_only")
    q_ms, q_how = modelled("u8")
    fits = "yes" if base["edge_only"]["fits"] else "NO"
    ep = base["edge_only"]["predicted"]
    edge_mb = (ep["edge_weight_bytes"] + ep["peak_activation_bytes"]) / 2**20
    rows = [
        Row(
            "Float on edge",
            float_acc,
            f"float Keras on the host, {len(x)} frames",
            e_ms,
            e_ms / cloud_ms,
            e_how,
            small.model.stat().st_size,
            ".keras file (float32)",
            f"{fits} in memory ({edge_mb:.2f} of {memory / 2**20:.0f} MiB); {runs('edge_only')}",
        ),
        Row(
            "Float to cloud (CLOUD-ONLY)",
            float_acc,
            f"float Keras on the host, {len(x)} frames",
            c_ms,
            1.0,
            c_how,
            None,
            "nothing on the edge (sends the 98,304-byte frame)",
            "yes",
        ),
        Row(
            "TQ8 edge-only",
            tq8_acc,
            f"simulated: planner's 8-bit fake quantisation, {len(x)} frames",
            q_ms,
            q_ms / cloud_ms,
            q_how,
            base["u8"]["predicted"]["edge_weight_bytes"],
            "modelled weight bytes" + ("" if base["u8"].get("buildable", True) else " (no file: it does not convert)"),
            f"memory yes; {runs('u8')}",
        ),
    ]
    rows[2:2] = jpeg_rows(small, x, truth, cloud_ms)
    m = measure_split(small, x, truth, frames, n, workdir / "results-small.sqlite")
    rows.append(_split_row("AUTO-SPLIT", small, m, len(x), cloud_ms, float_acc))
    if large is None:
        rows.append(
            Row(
                "AUTO-SPLIT, large LSTM",
                None,
                "missing: no large weights",
                float("nan"),
                float("nan"),
                "-",
                None,
                "-",
                "-",
            )
        )
    else:
        ml = measure_split(large, x, truth, frames, n, workdir / "results-large.sqlite")
        lc = large.plan["baselines"]["cloud_only"]["predicted"]["total_ms"]
        large_float = exact_rate(pl.float_plates(large.model, x), truth) * 100.0
        rows.append(_split_row("AUTO-SPLIT, large LSTM", large, ml, len(x), lc, large_float))
    if adaptive is None:
        return rows, None
    res = measure_schedule(adaptive / "bundle", x, truth, step_s)
    rows.append(adaptive_row(adaptive, plan, res, cloud_ms))
    return rows, res


def markdown(rows: list[Row], title: str) -> str:
    """The table as Markdown, with a legend of how each figure was obtained under it."""
    out = [
        f"### {title}",
        "",
        "| method | test accuracy (exact plate) | modelled latency | vs CLOUD-ONLY | edge model | fits / runs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        acc = "-" if r.accuracy is None else f"{r.accuracy:.1f}%"
        ms = "-" if np.isnan(r.modelled_ms) else f"{r.modelled_ms:.1f} ms"
        vs = "-" if np.isnan(r.vs_cloud) else f"{r.vs_cloud:.2f}x"
        size = "-" if r.size_how == "-" else "0 B" if r.edge_bytes is None else f"{r.edge_bytes:,} B"
        out.append(f"| {r.method} | {acc} | {ms} | {vs} | {size} | {r.fits} |")
    out += ["", "How each figure was obtained:", ""]
    for r in rows:
        out.append(f"- **{r.method}**: accuracy: {r.accuracy_how}; latency: {r.emulated}; size: {r.size_how}.")
    return "\n".join(out) + "\n"


def goal_lines(rows: list[Row]) -> list[str]:
    """The issue's goal checked: AUTO-SPLIT <= 0.65 x CLOUD-ONLY latency, accuracy within 1 point of float."""
    by = {r.method: r for r in rows}
    out = []
    for name in ("AUTO-SPLIT", "AUTO-SPLIT, large LSTM"):
        r = by[name]
        float_acc = r.float_accuracy or 0.0
        if r.accuracy is None:
            out.append(f"{name}: missing")
            continue
        fast = "met" if r.vs_cloud <= 0.65 else "NOT met"
        close = "met" if float_acc - r.accuracy <= 1.0 else "NOT met"
        out.append(
            f"{name}: {r.vs_cloud:.2f}x CLOUD-ONLY latency (goal <= 0.65x: {fast}); accuracy {r.accuracy:.1f}% "
            f"vs {float_acc:.1f}% of the same model in float ({r.accuracy - float_acc:+.1f} points; "
            f"goal within 1: {close})"
        )
    return out


def plan_line(case: Case) -> str:
    """What the planner chose for a case, in one line."""
    plan = case.plan
    s = plan["solution"]
    p = s["predicted"]
    last = s["edge_layers"][-1] if s["edge_layers"] else "(input)"
    drop = "not measured" if p["accuracy_drop"] is None else f"{p['accuracy_drop']:+.1f} points of exact plate match"
    return (
        f"plan ({case.name} LSTM): {s['kind']} after '{last}', sends {', '.join(_sent(c) for c in s['crossing'])}, "
        f"{p['transmit_bytes']:,} B per frame; "
        f"{plan['selection']['evaluated']} candidates measured on the validation set, drop {drop} "
        f"(limit {plan['constraints']['max_accuracy_drop']})"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save the table (Markdown + JSON)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m splitsdk.examples.lpr.table", description=main.__doc__)
    ap.add_argument("--test", type=Path, required=True, help="test .npz (x, y) from splitsdk.examples.lpr.data")
    ap.add_argument("--calib", type=Path, required=True, help="calibration .npz (for the TQ8 simulation)")
    ap.add_argument("--frames", type=Path, required=True, help="PPM frames = the first rows of the test set")
    ap.add_argument("-n", type=int, required=True, help="frames through QEMU")
    ap.add_argument("--case", nargs=3, action="append", metavar=("NAME", "MODEL", "WORKDIR"), required=True)
    ap.add_argument("--adaptive", type=Path, metavar="WORKDIR",
                    help="a folder with plan.json (--uplink LOW..HIGH) and its multi-split bundle/: the schedule rows")
    ap.add_argument("--step-s", type=float, default=4.0, help="seconds per step of the adaptive schedule")
    ap.add_argument("--title", default="Licence-plate reader on a Cortex-A7 camera at 3 Mbit/s")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the Markdown file (a .json is written beside)")
    args = ap.parse_args(argv)
    cases = {name: Case(name, Path(model), Path(wd)) for name, model, wd in args.case}
    if "small" not in cases:
        ap.error("--case small MODEL WORKDIR is required")
    if args.adaptive is not None:
        missing = [p for p in ("plan.json", "bundle/manifest.json") if not (args.adaptive / p).is_file()]
        if missing:
            ap.error(f"--adaptive {args.adaptive}: no {missing[0]} (plan --uplink LOW..HIGH and convert into it)")
    if not args.step_s > 0:
        ap.error(f"--step-s: must be > 0 seconds, got {args.step_s:g}")
    rows, res = build_rows(
        cases["small"], cases.get("large"), args.test, args.calib, args.frames, args.n, args.output.parent,
        args.adaptive, args.step_s,
    )
    lines = goal_lines(rows) + [plan_line(c) for c in cases.values()]
    text = markdown(rows, args.title)
    if res is not None:
        text += "\n" + schedule_markdown(res)
        lines += schedule_lines(res)
    text += "\n" + "".join(f"- {line}\n" for line in lines)
    record: dict[str, Any] = {"rows": [asdict(r) for r in rows], "schedule": None if res is None else asdict(res)}
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
