"""The adaptive split bundle, measured: the Python camera under a 20 -> 1 -> 20 Mbit/s link vs each static split of
its set vs the per-interval oracle.

One run: the test suite's ladder model (64x64x3, a cheap strided conv, three heavier convs, GAP, dense; random
weights) planned for cortex-a7 over 1..20 Mbit/s (`plan_split_set`, at most 3 splits, the dense head kept in the
cloud), converted into one multi-split bundle (`convert_split_set`), served by a real `splitsdk serve` process.
Each camera run goes through its own link shaper (`host_tools/linkshaper.py`, RTT 10 ms) with the schedule
20 -> 1 -> 20 Mbit/s, STEP_S seconds per step, frames back to back (each after the previous RESULT), at most
MAX_FRAMES: the adaptive camera (`AdaptiveCamera`: uplink estimated from its sends, hysteresis, probes) and one
static camera per member of the set (`split=` forced). The edge stage is paced to the member's modelled
cortex-a7 edge time (the planner's cost model; the host runs the chain far faster), so latency = emulated edge
time + measured wire, receiver and cloud time. Latency is capture to RESULT, measured on this host.

Per run: the mean of the three intervals' mean latencies (each interval weighs the same, whatever the number of
frames in it), the p95 over all frames, frames, switches, probes, and frames lost or answered twice (the
receiver's stored rows against the frames sent). The per-interval oracle takes, for each interval, the static
split with the lowest mean latency in that interval (measured). Goals: adaptive <= 1.1x the oracle, <= 0.8x the
best static split.

    .venv/bin/python benchmarks/bench_adaptive.py [--step-s 4] [-o out/bench_adaptive.md]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host_tools"))

STEPS = (20.0, 1.0, 20.0)  # Mbit/s
RTT_MS = 10.0
STEP_S = 4.0
MAX_FRAMES = 1500


@dataclass
class Run:
    name: str
    per_interval: list[list[float]]  # latencies (ms) of the frames captured in each interval
    frames: int
    switches: int
    probes: int
    lost: int
    duplicated: int

    @property
    def interval_means(self) -> list[float]:
        return [statistics.fmean(v) if v else float("nan") for v in self.per_interval]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.interval_means)

    @property
    def p95(self) -> float:
        return p95([x for v in self.per_interval for x in v])


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def camera_run(bundle: object, receiver: object, name: str, split: int | None, step_s: float,
               images: list[np.ndarray] | None = None) -> Run:
    """One camera through its own shaper under the schedule; `images` (cycled; default 8 random frames)."""
    from linkshaper import LinkShaper, Step

    from splitsdk.wire.edge import AdaptiveCamera, drive

    if images is None:
        rng = np.random.default_rng(7)
        images = list(rng.integers(0, 256, (8, *bundle.input.shape)).astype(np.uint8))  # type: ignore[attr-defined]
    device = f"bench-{name}-{os.getpid()}"
    schedule = [Step(step_s, r, RTT_MS) for r in STEPS]
    with LinkShaper(("127.0.0.1", receiver.port), schedule) as shaper:  # type: ignore[attr-defined]
        t0 = time.monotonic()
        camera = AdaptiveCamera(bundle, *shaper.address, device, split=split, pace=True)  # type: ignore[arg-type]
        try:
            records = drive(camera, images, step_s * len(STEPS) - (time.monotonic() - t0), MAX_FRAMES)
        finally:
            camera.close(send_stats=False)
    with sqlite3.connect(receiver.db) as conn:  # type: ignore[attr-defined]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM results WHERE device_id = ?", (device,))]
    answered = [r.result.seq for r in records]
    per: list[list[float]] = [[] for _ in STEPS]
    for r in records:
        per[min(int((r.start_s - t0) // step_s), len(STEPS) - 1)].append(r.latency_s * 1e3)
    return Run(name, per, len(records), camera.switches, camera.probes,
               lost=len(set(range(len(records))) - set(seqs)),
               duplicated=len(answered) - len(set(answered)) + len(seqs) - len(set(seqs)))


def warm_up(bundle: object, receiver: object, split: int, frames: int = 20) -> None:
    """Frames of `split` straight to the receiver (no shaper), not measured."""
    from splitsdk.wire.edge import AdaptiveCamera, drive

    camera = AdaptiveCamera(bundle, "127.0.0.1", receiver.port, f"warm-{split}-{os.getpid()}", split=split)  # type: ignore[arg-type,attr-defined]
    try:
        drive(camera, [np.zeros(bundle.input.shape, np.uint8)], 60.0, frames)  # type: ignore[attr-defined]
    finally:
        camera.close(send_stats=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--step-s", type=float, default=STEP_S, help="seconds per step of the schedule")
    ap.add_argument("-o", "--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    from plan_factory import make_plan
    from test_adaptive_bundle import POST, ladder_model, split_set_for

    from splitsdk.convert.chain import convert_split_set
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.wire.bundle import load_bundle

    with tempfile.TemporaryDirectory(prefix="bench-adaptive-") as tmp:
        root = Path(tmp)
        model = ladder_model(root / "ladder.keras")
        plan = make_plan(model, root / "plan.json")
        split_set = split_set_for(model, plan)
        convert_split_set(plan, split_set, model, root / "bundle", postprocess=POST)
        bundle = load_bundle(root / "bundle")
        runs = []
        with ReceiverProcess(bundle) as receiver:
            for k in bundle.split_indices:  # warm the receiver's cloud halves up (first calls trace the models)
                warm_up(bundle, receiver, k)
            runs.append(camera_run(bundle, receiver, "adaptive", None, args.step_s))
            for k in bundle.split_indices:
                runs.append(camera_run(bundle, receiver, f"static split {k}", k, args.step_s))
    adaptive, statics = runs[0], runs[1:]
    best = min(statics, key=lambda r: r.mean)
    oracle_per = [min(statics, key=lambda r: r.interval_means[i]) for i in range(len(STEPS))]
    oracle_mean = statistics.fmean(r.interval_means[i] for i, r in enumerate(oracle_per))
    oracle_p95 = p95([x for i, r in enumerate(oracle_per) for x in r.per_interval[i]])
    members = ", ".join(f"{m.split_index} ({m.transmit_bytes} B, edge {m.edge_ms:.2f} ms modelled)"
                        for m in split_set.members)
    lines = [
        f"Schedule {' -> '.join(f'{r:g}' for r in STEPS)} Mbit/s, {args.step_s:g} s per step, RTT {RTT_MS:g} ms "
        f"(link shaper); split set {members}; edge time paced to the modelled cortex-a7 time, the rest measured.",
        "",
        "| camera | mean ms (per-interval means) | p95 ms | frames | switches | probes | lost | answered twice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        parts = " / ".join(f"{m:.1f}" for m in r.interval_means)
        lines.append(f"| {r.name} | {r.mean:.1f} ({parts}) | {r.p95:.1f} | {r.frames} | {r.switches} | {r.probes} | "
                     f"{r.lost} | {r.duplicated} |")
    picks = " / ".join(r.name.removeprefix("static ") for r in oracle_per)
    lines.append(f"| per-interval oracle ({picks}) | {oracle_mean:.1f} | {oracle_p95:.1f} | | | | | |")
    lines += [
        "",
        f"adaptive / oracle: mean {adaptive.mean / oracle_mean:.2f}x (goal <= 1.1), "
        f"p95 {adaptive.p95 / oracle_p95:.2f}x; "
        f"adaptive / best static ({best.name}): mean {adaptive.mean / best.mean:.2f}x (goal <= 0.8), "
        f"p95 {adaptive.p95 / best.p95:.2f}x.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
