"""The frame-rate queueing model (splitsdk.plan.traffic.predict_queue) against the real pipeline: the host-built edge
app, a real `splitsdk serve` subprocess, and the link shaper (`splitsdk.toolchain.linkshaper`) between them at a slow
uplink so that sending is the bottleneck stage. Frames arrive at a rate (`--realtime-fps`, periodic or `--arrivals
poisson`): well below capacity nothing is dropped; clearly above it frames are dropped at the capture queue, every
captured frame is inferred or counted as dropped, and the drop ratio is the one the model predicts from the stage
times the app measured at the low rate (within 0.15 absolute)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_app_helpers import ShapedRun, app_arrivals_ms, shaped_run, shared_firmware, write_frames

from splitsdk.plan.traffic import EDGE_QUEUE_CAPACITY, Arrivals, knee_fps, predict_queue
from splitsdk.toolchain.build import Firmware, load_firmware
from splitsdk.toolchain.emulate import ReceiverProcess, run_app

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.slow]

MBIT, RTT_MS = 0.05, 40.0  # ~220 B frames: ~35 ms on the wire + 40 ms RTT + the receiver, far above inference
QUEUE_DEPTH = 1
LOW_FPS, LOW_FRAMES = 5.0, 20  # the measuring run: a frame every 200 ms, well below capacity
FRAMES = 100  # per loaded run


@pytest.fixture(scope="module")
def app(base: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Firmware, Path]:
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    return fw, write_frames(tmp_path_factory.mktemp("traffic") / "frames", 3)


@pytest.fixture(scope="module")
def receiver(bundle: Path) -> Iterator[ReceiverProcess]:
    """One receiver for the module's runs (each run is its own camera in the database)."""
    with ReceiverProcess(bundle) as rx:
        yield rx


@pytest.fixture(scope="module")
def low_rate(app: tuple[Firmware, Path], bundle: Path, receiver: ReceiverProcess) -> ShapedRun:
    fw, frames = app
    return shaped_run(
        fw, bundle, frames, mbit=MBIT, rtt_ms=RTT_MS, fps=LOW_FPS, n=LOW_FRAMES, queue_depth=QUEUE_DEPTH,
        receiver=receiver,
    )  # fmt: skip


def test_well_below_capacity_nothing_is_dropped(low_rate: ShapedRun) -> None:
    c = low_rate.app.counters
    assert (c["captured"], c["dropped"], c["inferred"], c["results"]) == (LOW_FRAMES, 0, LOW_FRAMES, LOW_FRAMES)
    assert len(low_rate.stored_us) == LOW_FRAMES
    service = low_rate.service_ms()
    samples, capture, infer = service["send"], service["capture"], service["infer"]
    assert isinstance(samples, list) and isinstance(capture, float) and isinstance(infer, float)
    send = statistics.mean(samples)
    assert send > 10 * max(capture, infer)  # the link is the bottleneck
    assert 1000.0 / LOW_FPS > 2 * send  # and the low rate is well below its capacity


@pytest.mark.parametrize(("arrivals", "load"), [("periodic", 2.0), ("poisson", 1.6)])
def test_above_capacity_the_drop_ratio_is_the_predicted_loss(
    app: tuple[Firmware, Path], bundle: Path, receiver: ReceiverProcess, low_rate: ShapedRun, arrivals: str,
    load: float,
) -> None:  # fmt: skip
    fw, frames = app
    service = low_rate.service_ms()
    fps = load * knee_fps(service)
    run = shaped_run(
        fw, bundle, frames, mbit=MBIT, rtt_ms=RTT_MS, fps=fps, n=FRAMES, arrivals=arrivals, seed=7,
        queue_depth=QUEUE_DEPTH, receiver=receiver,
    )  # fmt: skip
    c = run.app.counters
    assert c["captured"] == FRAMES == c["inferred"] + c["dropped"] and c["dropped"] > 0
    assert c["results"] == c["inferred"] == len(run.stored_us)  # every inferred frame is answered once
    predicted = predict_queue(Arrivals(fps, arrivals), service, EDGE_QUEUE_CAPACITY(QUEUE_DEPTH))  # type: ignore[arg-type]
    assert predicted.bottleneck == "send"
    assert abs(predicted.loss_ratio - run.drop_ratio) <= 0.15, (predicted, c)


def test_poisson_arrivals_are_the_seeded_sequence(
    app: tuple[Firmware, Path], bundle: Path, receiver: ReceiverProcess
) -> None:
    """`--arrivals poisson --seed 3`: each frame is captured at its arrival time in the sequence the seed
    gives (app_arrivals_ms: the same generator in Python). Never before it (a lower bound), and at it for
    most frames (a loaded machine may wake the capture thread late now and then; it then catches up)."""
    fw, frames = app
    n, fps = 30, 10.0
    run = shaped_run(
        fw, bundle, frames, mbit=MBIT, rtt_ms=RTT_MS, fps=fps, n=n, arrivals="poisson", seed=3,
        queue_depth=QUEUE_DEPTH, receiver=receiver,
    )  # fmt: skip
    assert run.seqs[0] == 0
    late_ms = run.capture_late_ms()
    assert min(late_ms) > -5.0  # never early (5 ms: the first frame may itself be a little late)
    assert sum(x < 10.0 for x in late_ms) >= 0.8 * len(late_ms), late_ms
    model = app_arrivals_ms(fps, "poisson", 3, n)
    gaps = [b - a for a, b in zip(model, model[1:], strict=False)]
    assert statistics.pstdev(gaps) > 0.5 * statistics.mean(gaps)  # exponential gaps, not a period


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arrivals", "bursty"], "--arrivals: arrivals: expected periodic or poisson, got 'bursty'"),
        (["--arrivals", "poisson"], "--arrivals poisson needs --realtime-fps F"),
        (["--seed", "-1"], "--seed: seed: expected a non-negative integer"),
        (["--seed", "x", "--realtime-fps", "5"], "--seed: seed: expected a non-negative integer, got 'x'"),
    ],
)
def test_bad_arrival_flags_end_with_one_error_line(app: tuple[Firmware, Path], args: list[str], message: str) -> None:
    fw, frames = app
    run = run_app(fw, ["--frames", str(frames), *args])
    assert run.returncode == 2 and run.stderr.startswith(f"splitsdk-edge: error: {message}"), run.stderr
