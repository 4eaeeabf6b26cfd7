"""The adaptive split bundle, measured: the Python camera under a 20 -> 1 -> 20 Mbit/s link vs each static split of
its set vs the per-interval oracle.

One run: the test suite's ladder model (64x64x3, a cheap strided conv, three heavier convs, GAP, dense; random
weights) planned for cortex-a7 over 1..20 Mbit/s (`plan_split_set`, at most 3 splits, the dense head kept in the
cloud), converted into one multi-split bundle (`convert_split_set`), served by a real `splitsdk serve` process.
Each camera run (`splitsdk.toolchain.schedule.camera_run`) goes through its own link shaper (RTT 10 ms) with the
schedule 20 -> 1 -> 20 Mbit/s, --step-s seconds per step, frames back to back (each after the previous RESULT), at most
1,500: the adaptive camera (`AdaptiveCamera`: uplink estimated from its sends, hysteresis, probes) and one
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
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--step-s", type=float, default=4.0, help="seconds per step of the schedule")
    ap.add_argument("-o", "--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    from plan_factory import make_plan
    from test_adaptive_bundle import POST, ladder_model, split_set_for

    from splitsdk.convert.chain import convert_split_set
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.toolchain.schedule import RTT_MS, STEPS, camera_run, p95, warm_up
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
