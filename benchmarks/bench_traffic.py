"""Frame rate and queueing loss: the queueing model against the real edge app, rate by rate.

The host-built edge app (the tests' small conv bundle, tests/edge_app_helpers.py) sends to a real `splitsdk
serve` subprocess through the link shaper (`splitsdk.toolchain.linkshaper`) at a slow uplink (0.05 Mbit/s, 40 ms
RTT), so sending is the bottleneck stage. One run at a low rate (5 frames/s) measures each stage's service time
(capture and infer as the app's means, send as the per-frame FRAME -> RESULT samples); from them
splitsdk.plan.traffic predicts throughput, loss and latency at each arrival rate (0.7x, 1.0x, 1.5x, 2x the
bottleneck's capacity, `knee_fps`), periodic and Poisson (`--arrivals`, seeded), and the app runs at each:

- throughput: results per second between the receiver's first and last stored result;
- drop ratio: the app's own counters, dropped / captured (frames that found the capture queue full);
- latency: capture (the app's clock) -> result stored by the receiver (the same host's clock) + the
  shaper's one-way delay back, per answered frame, mean and 95th percentile.

Measured and predicted side by side, with ratios, in one run. Every run is bounded (`--frames` arrivals).
`python benchmarks/bench_traffic.py [--frames N] [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edge_app_helpers import shaped_run, shared_bundle, shared_firmware, write_frames  # noqa: E402

from splitsdk.plan.traffic import EDGE_QUEUE_CAPACITY, Arrivals, knee_fps, predict_queue  # noqa: E402
from splitsdk.quiet import quiet  # noqa: E402
from splitsdk.toolchain.build import load_firmware  # noqa: E402
from splitsdk.toolchain.emulate import ReceiverProcess  # noqa: E402

MBIT, RTT_MS = 0.05, 40.0
QUEUE_DEPTH = 1
LOW_FPS, LOW_FRAMES = 5.0, 30
LOADS = (0.7, 1.0, 1.5, 2.0)
KINDS = ("periodic", "poisson")


def _ratio(measured: float, predicted: float) -> float:
    return measured / predicted if predicted > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200, help="arrivals per loaded run (default 200)")
    p.add_argument("--quick", action="store_true", help="80 arrivals per run")
    p.add_argument("--json", action="store_true", help="the rows as JSON instead of a table")
    args = p.parse_args(argv)
    n = 80 if args.quick else args.frames
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as tmp:
        base = Path(tmp)
        with quiet():  # TensorFlow's converter chatter
            bundle = shared_bundle(base)
        fw = load_firmware(shared_firmware(base, bundle, "host"))
        frames = write_frames(base / "frames", 3)
        with ReceiverProcess(bundle) as receiver:

            def run(fps: float, frames_n: int, kind: str) -> Any:
                return shaped_run(
                    fw, bundle, frames, mbit=MBIT, rtt_ms=RTT_MS, fps=fps, n=frames_n, arrivals=kind, seed=7,
                    queue_depth=QUEUE_DEPTH, receiver=receiver,
                )  # fmt: skip

            low = run(LOW_FPS, LOW_FRAMES, "periodic")
            service = low.service_ms()
            knee = knee_fps(service)
            capacity = EDGE_QUEUE_CAPACITY(QUEUE_DEPTH)
            send = service["send"]
            assert isinstance(send, list)
            summary = (
                f"Service times at {LOW_FPS:g} frames/s (measured, {MBIT:g} Mbit/s, {RTT_MS:g} ms RTT): capture "
                f"{service['capture']:.3f} ms, infer+pack(+compress) {service['infer']:.3f} ms, send "
                f"{statistics.mean(send):.2f} ms mean (sd {statistics.pstdev(send):.2f}, {len(send)} frames); knee "
                f"{knee:.2f} frames/s; capacity {capacity} frames (--queue-depth {QUEUE_DEPTH}); {n} arrivals per run."
            )
            print(summary, file=sys.stderr, flush=True)
            for kind in KINDS:
                for load in LOADS:
                    fps = load * knee
                    m = run(fps, n, kind)
                    pred = predict_queue(Arrivals(fps, kind), service, capacity)  # type: ignore[arg-type]
                    lat = np.asarray(m.latencies_ms)
                    late = m.capture_late_ms()  # the app's capture times against its seeded arrival times
                    rows.append(
                        {
                            "arrivals": kind,
                            "load": load,
                            "fps": fps,
                            "captured": m.app.counters["captured"],
                            "throughput": m.throughput_fps,
                            "throughput_pred": pred.throughput_fps,
                            "drop": m.drop_ratio,
                            "drop_pred": pred.loss_ratio,
                            "lat_mean": float(lat.mean()),
                            "lat_mean_pred": pred.latency_mean_ms,
                            "lat_p95": float(np.percentile(lat, 95)),
                            "lat_p95_pred": pred.latency_p95_ms,
                            "bottleneck_pred": pred.bottleneck,
                            "capture_late_median_ms": statistics.median(late),
                        }
                    )
                    print(
                        f"  {kind} {load:g}x: capture {statistics.median(late):.2f} ms after the modelled arrival "
                        "(median)",
                        file=sys.stderr,
                        flush=True,
                    )
    if args.json:
        print(json.dumps({"service_ms": service, "knee_fps": knee, "rows": rows}))
        return 0
    print(summary + "\n")
    print(
        "| arrivals | load | frames/s | throughput meas / pred (ratio) | drop meas / pred (diff) "
        "| latency mean ms meas / pred (ratio) | p95 ms meas / pred (ratio) |"
    )
    print("|---|---:|---:|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arrivals']} | {r['load']:g}x | {r['fps']:.1f} "
            f"| {r['throughput']:.1f} / {r['throughput_pred']:.1f} "
            f"({_ratio(r['throughput'], r['throughput_pred']):.2f}) "
            f"| {r['drop']:.3f} / {r['drop_pred']:.3f} ({r['drop'] - r['drop_pred']:+.3f}) "
            f"| {r['lat_mean']:.1f} / {r['lat_mean_pred']:.1f} ({_ratio(r['lat_mean'], r['lat_mean_pred']):.2f}) "
            f"| {r['lat_p95']:.1f} / {r['lat_p95_pred']:.1f} ({_ratio(r['lat_p95'], r['lat_p95_pred']):.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
