"""Shared by the codegen/build/emulate tests: tiny real bundles, frame folders, the host-only pipeline.

Bundles come from test_wire_bundle.build_bundle (one bundle builder for the test suite): a Keras conv
edge part converted to int8 TFLite, a float cloud head, a manifest with LUTs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from test_wire_bundle import INPUT_SHAPE, build_bundle

from splitsdk.wire.bundle import Bundle, load_bundle

if TYPE_CHECKING:
    from splitsdk.toolchain.build import Firmware
    from splitsdk.toolchain.emulate import AppRun, ReceiverProcess

__all__ = [
    "INPUT_SHAPE",
    "app_arrivals_ms",
    "ShapedRun",
    "build_bundle",
    "host_pipeline",
    "host_edge_outputs",
    "shaped_run",
    "write_frames",
]


def write_frames(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` .f32 frames (real-valued model input, as calibration samples are) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rng.random(INPUT_SHAPE, dtype=np.float32).tofile(folder / f"frame{i:03d}.f32")
    return folder


def read_frames(folder: Path) -> list[tuple[str, np.ndarray]]:
    return [(p.name, np.fromfile(p, dtype=np.float32).reshape(INPUT_SHAPE)) for p in sorted(folder.glob("*.f32"))]


def host_edge_outputs(bundle: Bundle, image: np.ndarray) -> list[np.ndarray]:
    """The edge model under the host's ai-edge-litert, crossing (wire) order."""
    from splitsdk.wire.edge import EdgeModel

    return EdgeModel(bundle).run(image)


def host_pipeline(bundle_dir: Path, frames: Path) -> list[str]:
    """RESULT bodies of the host-only pipeline: litert edge -> LUT -> pack -> unpack -> cloud -> post-process."""
    from splitsdk import wire
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.cloud.postprocess import resolve
    from splitsdk.wire.edge import EdgeModel, frame_from_edge_outputs

    bundle = load_bundle(bundle_dir)
    edge, cloud, post = EdgeModel(bundle), load_cloud_runner(bundle), resolve(bundle.postprocess)
    bodies = []
    for i, (_, image) in enumerate(read_frames(frames)):
        frame = frame_from_edge_outputs(bundle, edge.run(image), i)
        inputs = [
            wire.unpack_dequantize(t.payload, c.shape, t.bits, t.scale, t.zero_point)[None]
            for t, c in zip(frame.tensors, bundle.crossing, strict=True)
        ]
        bodies.append(post([o[0] for o in cloud(inputs)]).decode())
    return bodies


def shared_dir(factory: object) -> Path:
    """One directory per test session for the expensive artefacts (bundle, builds) of several modules."""
    base = Path(factory.getbasetemp()) / "edge-app"  # type: ignore[attr-defined]
    base.mkdir(exist_ok=True)
    return base


def shared_bundle(base: Path, name: str = "one", **kw: object) -> Path:
    """A bundle built once per session (build_bundle arguments in `kw`)."""
    root = base / f"bundle-{name}"
    if not (root / "manifest.json").is_file():
        build_bundle(root, **kw)  # type: ignore[arg-type]
    return root


def shared_firmware(base: Path, bundle: Path, target: str, sanitize: bool = False) -> Path:
    """Generate + build `bundle` for `target` once per session; returns the firmware directory."""
    from splitsdk.codegen import generate
    from splitsdk.toolchain.build import build_firmware

    tag = f"{target}{'-asan' if sanitize else ''}"
    fw = base / f"fw-{tag}"
    if not (fw / "firmware.json").is_file():
        project = base / f"proj-{target}"
        generate(bundle, target, project)
        build_firmware(project, fw, sanitize=sanitize, build_dir=base / f"build-{tag}")
    return fw


@dataclass
class ShapedRun:
    """One run of the host edge app against a real receiver behind the link shaper (shaped_run)."""

    app: AppRun
    fps: float
    arrivals: str
    seed: int
    rtt_ms: float
    seqs: list[int]  # the answered frames (the others were dropped), in order
    capture_us: list[int]  # per answered frame: when the app captured it
    stored_us: list[int]  # and when the receiver stored its result (the RESULT leaves right after)

    @property
    def drop_ratio(self) -> float:
        """Frames dropped at the full capture queue / frames captured (the app's counters)."""
        return self.app.counters["dropped"] / max(1, self.app.counters["captured"])

    @property
    def throughput_fps(self) -> float:
        """Results per second between the first and the last result stored by the receiver."""
        span_s = (self.stored_us[-1] - self.stored_us[0]) / 1e6
        return (len(self.stored_us) - 1) / span_s if span_s > 0 else float("nan")

    @property
    def latencies_ms(self) -> list[float]:
        """Capture -> RESULT per answered frame: capture (the app's clock) to the result stored by the
        receiver (the same host's clock), plus the shaper's one-way delay back to the camera."""
        return [(s - c) / 1e3 + self.rtt_ms / 2 for c, s in zip(self.capture_us, self.stored_us, strict=True)]

    def capture_late_ms(self) -> list[float]:
        """Per answered frame: how long after its arrival time in the sequence the app should draw
        (app_arrivals_ms) it was captured, both counted from the first answered frame's."""
        model = app_arrivals_ms(self.fps, self.arrivals, self.seed, self.seqs[-1] + 1)
        first_us, first_ms = self.capture_us[0], model[self.seqs[0]]
        return [(c - first_us) / 1e3 - (model[s] - first_ms) for s, c in zip(self.seqs, self.capture_us, strict=True)]

    def service_ms(self) -> dict[str, float | list[float]]:
        """Each pipeline stage's service time as the app measured it: capture and infer (the infer
        thread's inference + packing + compression) as means, send (FRAME out to RESULT in) as per-frame
        samples, without the first frame's, which includes connecting to the receiver."""
        mean = {k: float(v["mean_ms"]) for k, v in self.app.stages.items()}
        infer = mean["infer"] + mean.get("pack", 0.0) + mean.get("compress", 0.0)
        return {"capture": mean["capture"], "infer": infer, "send": [r.ms for r in self.app.results[1:]]}


def shaped_run(
    fw: Firmware,
    bundle: Path,
    frames: Path,
    *,
    mbit: float,
    rtt_ms: float,
    fps: float,
    n: int,
    arrivals: str = "periodic",
    seed: int = 1,
    queue_depth: int = 1,
    receiver: ReceiverProcess | None = None,
) -> ShapedRun:
    """Run the host-built edge app on `n` frames (the folder replayed) arriving at `fps` (periodic or
    poisson) through a LinkShaper at `mbit` Mbit/s and `rtt_ms` to a real `splitsdk serve` subprocess
    (`receiver`, started with a database, or a fresh one); per-frame times come from its result database."""
    import sqlite3
    import uuid

    from splitsdk.toolchain.emulate import ReceiverProcess, app_args, run_app
    from splitsdk.toolchain.linkshaper import LinkShaper, Step

    if receiver is None:
        with ReceiverProcess(bundle) as fresh:
            return shaped_run(
                fw, bundle, frames, mbit=mbit, rtt_ms=rtt_ms, fps=fps, n=n, arrivals=arrivals, seed=seed,
                queue_depth=queue_depth, receiver=fresh,
            )  # fmt: skip
    device = f"traffic-{uuid.uuid4().hex[:12]}"  # this run's rows in a shared database
    extra = ["--loop", "--realtime-fps", f"{fps:g}", "--arrivals", arrivals, "--seed", str(seed)]
    extra += ["--queue-depth", str(queue_depth), "--device-id", device]
    with LinkShaper(("127.0.0.1", receiver.port), [Step(1.0, mbit, rtt_ms)]) as shaper:
        app = run_app(fw, app_args(fw, frames, shaper.address[1], n=n, extra=extra))
    if app.returncode != 0:
        raise RuntimeError(f"the edge app exited with {app.returncode}: {app.error or app.stderr[-500:]}")
    assert receiver.db is not None
    with sqlite3.connect(receiver.db) as conn:
        rows = conn.execute(
            "SELECT seq, capture_us, stored_us FROM results WHERE device_id = ? ORDER BY seq", (device,)
        ).fetchall()
    columns = [[int(r[i]) for r in rows] for i in range(3)]
    return ShapedRun(app, fps, arrivals, seed, rtt_ms, *columns)


def app_arrivals_ms(fps: float, kind: str, seed: int, n: int) -> list[float]:
    """The arrival times (ms after the first) the edge app draws for `--realtime-fps fps --arrivals kind
    --seed seed`: the same mt19937_64 (C++ <random>, specified bit for bit by the standard) and inverse
    CDF as main.cpp's Arrivals, so a test can check the app against them."""
    if kind == "periodic":
        return [i * 1000.0 / fps for i in range(n)]
    mask = (1 << 64) - 1
    state = [seed & mask]
    for i in range(1, 312):
        state.append((6364136223846793005 * (state[-1] ^ (state[-1] >> 62)) + i) & mask)
    times, t, index = [], 0.0, 312
    for _ in range(n):
        times.append(t)
        if index == 312:  # the generator's twist, every 312 numbers
            for i in range(312):
                x = (state[i] & 0xFFFFFFFF80000000) | (state[(i + 1) % 312] & 0x7FFFFFFF)
                state[i] = state[(i + 156) % 312] ^ (x >> 1) ^ (0xB5026F5AA96619E9 if x & 1 else 0)
            index = 0
        y = state[index]
        index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        u = ((y & mask) >> 11) * 2.0**-53
        t += -math.log1p(-u) * 1000.0 / fps
    return times
