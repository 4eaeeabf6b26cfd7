"""The licence-plate reader's adaptive split bundle under a changing uplink: the case study's schedule rows.

The bundle is `splitsdk convert` of a plan made with `--uplink 1mbit..20mbit` (a split set of at most 3 splits).
It is served by a real `splitsdk serve` process; each camera run goes through its own link shaper
(`splitsdk.toolchain.linkshaper`) under the schedule 20 -> 1 -> 20 Mbit/s (RTT 10 ms), frames back to back, as
`benchmarks/bench_adaptive.py` measures it, with the same runs (`splitsdk.toolchain.schedule`): the adaptive
camera (`splitsdk.wire.edge.AdaptiveCamera`) and one static camera per member of the set. The frames are test
frames (their 8-bit pixels, cycled), so the plates the receiver stored can be checked: accuracy is exact plate
match over the frames each camera got answered, read back from the receiver's SQLite database by sequence number.

Where each figure comes from: the edge stage is paced to the member's modelled Cortex-A7 edge time (the planner's
cost model; the host runs the chain far faster); the wire (through the shaper, on loopback), the receiver and the
cloud half are measured on this host; latency is capture to RESULT. The per-interval oracle takes, per interval,
the static split with the lowest measured mean latency in it.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import DataError

IMAGES = 64  # test frames cycled by every camera
WARM_FRAMES = 5  # per member, straight to the receiver before the runs (its first calls trace the models)


@dataclass(frozen=True)
class ScheduleRun:
    """One camera under the schedule: latencies measured (ms), counters, and the plates it got answered."""

    name: str
    interval_ms: tuple[float, ...]  # mean latency of the frames captured in each interval
    mean_ms: float  # the mean of the interval means (each interval weighs the same)
    p95_ms: float  # over all frames
    frames: int
    switches: int
    probes: int
    lost: int
    duplicated: int
    answered: int  # frames whose plate the receiver stored
    accuracy: float  # percent exact plates among them


@dataclass(frozen=True)
class ScheduleResult:
    """The adaptive camera, each static member and the per-interval oracle, from one run."""

    steps_mbps: tuple[float, ...]
    step_s: float
    rtt_ms: float
    members: str  # the split set, as the table's legend names it
    images: int  # test frames 0..images-1, cycled by every camera
    runs: tuple[ScheduleRun, ...]  # the adaptive camera first
    oracle_picks: tuple[str, ...]
    oracle_mean_ms: float
    oracle_p95_ms: float


def stored_plates(db: Path, device: str) -> dict[int, str | None]:
    """The plates the receiver stored for `device`, by sequence number (None: an error status); the "lpr_ctc"
    JSON's `plate`, as `pipeline.db_plates` reads it for the QEMU run."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT seq, status, result FROM results WHERE device_id = ?", (device,)).fetchall()
    return {int(seq): str(json.loads(bytes(res))["plate"]) if status == 0 else None for seq, status, res in rows}


def members_text(bundle: Any) -> str:
    """The bundle's members: split, bytes on the wire, modelled edge time."""
    records = {s.split: s for s in bundle.manifest.splits}
    return ", ".join(
        f"split {k} ({bundle.member(k).wire_bytes:,} B, edge {records[k].edge_ms or 0.0:.1f} ms modelled)"
        for k in bundle.split_indices
    )


def measure_schedule(bundle_dir: Path, x: np.ndarray, truth: list[str], step_s: float) -> ScheduleResult:
    """Run the adaptive camera and each static member of the bundle at `bundle_dir` under the schedule, on the
    first IMAGES frames of `x` (cycled), against one real receiver; read the stored plates back."""
    from splitsdk.plan.jpeg import to_pixels
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.toolchain.schedule import RTT_MS, STEPS, camera_run, p95, warm_up
    from splitsdk.wire.bundle import load_bundle

    if len(x) != len(truth) or len(x) == 0:
        raise DataError(f"adaptive rows: {len(x)} frames with {len(truth)} labels")
    bundle = load_bundle(bundle_dir)
    if len(bundle.split_indices) < 2:
        raise DataError(f"{bundle_dir}: not a multi-split bundle (convert a plan made with --uplink LOW..HIGH)")
    m = min(IMAGES, len(x))
    images = list(to_pixels(x[:m], bundle.input.scale, bundle.input.offset))
    names = ["adaptive", *(f"static split {k}" for k in bundle.split_indices)]
    forced = [None, *bundle.split_indices]
    with ReceiverProcess(bundle) as receiver:
        for k in bundle.split_indices:
            warm_up(bundle, receiver, k, WARM_FRAMES)
        runs = [camera_run(bundle, receiver, name, k, step_s, images)
                for name, k in zip(names, forced, strict=True)]
        db = receiver.db
        assert db is not None  # set by start()
        stored = [stored_plates(db, r.device) for r in runs]
    out = []
    for r, plates in zip(runs, stored, strict=True):
        right = sum(p == truth[seq % m] for seq, p in plates.items())
        out.append(ScheduleRun(
            r.name, tuple(r.interval_means), r.mean, r.p95, r.frames, r.switches, r.probes, r.lost, r.duplicated,
            answered=len(plates), accuracy=100.0 * right / len(plates) if plates else float("nan"),
        ))
    statics = runs[1:]
    steps = STEPS
    oracle = [min(statics, key=lambda r: r.interval_means[i]) for i in range(len(steps))]  # noqa: B023 - used at once
    return ScheduleResult(
        steps_mbps=tuple(steps), step_s=step_s, rtt_ms=RTT_MS, members=members_text(bundle), images=m,
        runs=tuple(out),
        oracle_picks=tuple(r.name.removeprefix("static ") for r in oracle),
        oracle_mean_ms=statistics.fmean(r.interval_means[i] for i, r in enumerate(oracle)),
        oracle_p95_ms=p95([v for i, r in enumerate(oracle) for v in r.per_interval[i]]),
    )


def schedule_markdown(res: ScheduleResult) -> str:
    """The schedule table and its legend (every figure says where it came from)."""
    steps = " -> ".join(f"{r:g}" for r in res.steps_mbps)
    out = [
        f"#### Adaptive split bundle under a {steps} Mbit/s schedule",
        "",
        f"{res.step_s:g} s per step, RTT {res.rtt_ms:g} ms, through the link shaper on loopback to a real `splitsdk "
        f"serve`; split set: {res.members}. Edge time paced to the modelled Cortex-A7 time; wire, receiver and "
        "cloud half measured on this host; latency capture to RESULT; accuracy: exact plates the receiver stored "
        f"(read back from its database) over the frames answered (test frames 0..{res.images - 1}, cycled).",
        "",
        "| camera | mean ms (per-interval means) | p95 ms | frames | exact plates | switches | probes | lost | "
        "answered twice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res.runs:
        parts = " / ".join(f"{v:.1f}" for v in r.interval_ms)
        out.append(f"| {r.name} | {r.mean_ms:.1f} ({parts}) | {r.p95_ms:.1f} | {r.frames} | {r.accuracy:.1f}% of "
                   f"{r.answered} | {r.switches} | {r.probes} | {r.lost} | {r.duplicated} |")
    out.append(f"| per-interval oracle ({' / '.join(res.oracle_picks)}) | {res.oracle_mean_ms:.1f} | "
               f"{res.oracle_p95_ms:.1f} | | | | | | |")
    return "\n".join(out) + "\n"


def schedule_lines(res: ScheduleResult) -> list[str]:
    """The adaptive camera against the oracle and the best static split, in one line (for the summary)."""
    adaptive, statics = res.runs[0], res.runs[1:]
    best = min(statics, key=lambda r: r.mean_ms)
    return [
        f"adaptive bundle under the schedule: mean {adaptive.mean_ms:.1f} ms = "
        f"{adaptive.mean_ms / res.oracle_mean_ms:.2f}x the per-interval oracle, "
        f"{adaptive.mean_ms / best.mean_ms:.2f}x the best static split ({best.name}); p95 {adaptive.p95_ms:.1f} ms; "
        f"{adaptive.accuracy:.1f}% exact plates of {adaptive.answered} answered; lost {adaptive.lost}, answered "
        f"twice {adaptive.duplicated} (all cameras: {sum(r.lost for r in res.runs)} / "
        f"{sum(r.duplicated for r in res.runs)})"
    ]
