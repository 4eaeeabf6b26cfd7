"""A Python camera under a changing uplink against a real receiver: the measured runs behind the adaptive rows.

`camera_run` puts one camera (`splitsdk.wire.edge.AdaptiveCamera`, adaptive or forced to one split) behind its own
link shaper (`splitsdk.toolchain.linkshaper`) under a schedule of steps (STEPS Mbit/s, RTT_MS, `step_s` seconds
each), frames back to back (each after the previous RESULT), at most MAX_FRAMES, and reads back from the receiver's
SQLite database which frames it stored. Latency is capture to RESULT, measured on this host; with `pace=True` the
camera's edge stage waits out the member's modelled edge time (the planner's cost model), so the figure is modelled
edge time + measured wire, receiver and cloud time. `benchmarks/bench_adaptive.py` and the licence-plate case study
(`splitsdk.examples.lpr.adaptive`) both run it.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from dataclasses import dataclass

import numpy as np

from splitsdk.toolchain.emulate import ReceiverProcess
from splitsdk.toolchain.linkshaper import LinkShaper, Step
from splitsdk.wire.bundle import Bundle
from splitsdk.wire.edge import AdaptiveCamera, drive

STEPS = (20.0, 1.0, 20.0)  # Mbit/s
RTT_MS = 10.0
MAX_FRAMES = 1500


@dataclass
class Run:
    """One camera's run under the schedule: per interval the latencies of the frames captured in it, and its
    counters (`lost`: frames answered that the receiver did not store; `duplicated`: answered or stored twice)."""

    name: str
    per_interval: list[list[float]]  # latencies (ms) of the frames captured in each interval
    frames: int
    switches: int
    probes: int
    lost: int
    duplicated: int
    device: str  # the device id its frames were stored under

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
    """The 95th percentile (NaN for no values)."""
    return float(np.percentile(values, 95)) if values else float("nan")


def camera_run(bundle: Bundle, receiver: ReceiverProcess, name: str, split: int | None, step_s: float,
               images: list[np.ndarray] | None = None) -> Run:
    """One camera through its own shaper under the schedule; `images` (cycled; default 8 random frames)."""
    if images is None:
        rng = np.random.default_rng(7)
        images = list(rng.integers(0, 256, (8, *bundle.input.shape)).astype(np.uint8))
    device = f"bench-{name}-{os.getpid()}"
    schedule = [Step(step_s, r, RTT_MS) for r in STEPS]
    with LinkShaper(("127.0.0.1", receiver.port), schedule) as shaper:
        t0 = time.monotonic()
        camera = AdaptiveCamera(bundle, *shaper.address, device, split=split, pace=True)
        try:
            records = drive(camera, images, step_s * len(STEPS) - (time.monotonic() - t0), MAX_FRAMES)
        finally:
            camera.close(send_stats=False)
    assert receiver.db is not None  # set by start()
    with sqlite3.connect(receiver.db) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM results WHERE device_id = ?", (device,))]
    answered = [r.result.seq for r in records]
    per: list[list[float]] = [[] for _ in STEPS]
    for r in records:
        per[min(int((r.start_s - t0) // step_s), len(STEPS) - 1)].append(r.latency_s * 1e3)
    return Run(name, per, len(records), camera.switches, camera.probes,
               lost=len(set(range(len(records))) - set(seqs)),
               duplicated=len(answered) - len(set(answered)) + len(seqs) - len(set(seqs)), device=device)


def warm_up(bundle: Bundle, receiver: ReceiverProcess, split: int, frames: int = 20) -> None:
    """Frames of `split` straight to the receiver (no shaper), not measured."""
    camera = AdaptiveCamera(bundle, "127.0.0.1", receiver.port, f"warm-{split}-{os.getpid()}", split=split)
    try:
        drive(camera, [np.zeros(bundle.input.shape, np.uint8)], 60.0, frames)
    finally:
        camera.close(send_stats=False)
