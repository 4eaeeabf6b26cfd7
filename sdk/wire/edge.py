"""Reference edge side: what the generated C++ app does, in Python, for tests, load tests and users
without a camera.

`EdgeModel` runs the bundle's `edge.tflite` with ai-edge-litert; `frame_from_edge_outputs` requantises
its int8 outputs through each crossing tensor's LUT, packs them and (where the manifest's crossing says
`codec: zstd`) compresses them into a FRAME; a bundle whose crossing says `codec: jpeg` sends the frame's
pixels as a JPEG instead (`jpeg_frame`); `EdgeClient`
connects, says HELLO with the bundle's plan hash and sends frames.
"""

from __future__ import annotations

import collections
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import BundleError, DataError
from splitsdk.wire.bundle import Bundle, ManifestCrossing
from splitsdk.wire.client import WireClient
from splitsdk.wire.compression import compress, encode_jpeg, to_pixels
from splitsdk.wire.frame import Codec, Frame, Result, Stats, TensorKind, WireTensor
from splitsdk.wire.packing import pack, requantize_lut


def frame_from_edge_outputs(
    bundle: Bundle, outputs: Sequence[np.ndarray], seq: int, timestamp_us: int | None = None, split: int = 0
) -> Frame:
    """Requantise (LUT) and pack the edge model's int8 outputs, in crossing order, into a FRAME; a crossing
    whose codec is zstd is sent compressed (as the edge app does), unless that is not smaller. `split`: the
    member of a multi-split bundle the outputs are for (FRAME.split; 0 for a single-split bundle)."""
    bundle = bundle.member(split) if bundle.manifest.splits else bundle
    if len(outputs) != len(bundle.crossing):
        raise BundleError(f"edge model gave {len(outputs)} outputs, the bundle has {len(bundle.crossing)} crossings")
    tensors = []
    for out, c in zip(outputs, bundle.crossing, strict=True):
        arr = np.asarray(out)
        if arr.dtype != np.int8 or arr.size != c.elements:
            raise BundleError(f"edge output for {c.tensor}: {arr.dtype}{list(arr.shape)}, expected int8{list(c.shape)}")
        payload, codec = pack(requantize_lut(arr, c.lut_table), c.bits), Codec.NONE
        if c.codec == "zstd":
            payload, codec = smaller(payload, compress(payload))
        tensors.append(WireTensor(TensorKind.PACKED, c.bits, c.scale, c.zero_point, c.shape, payload, codec))
    ts = int(time.time() * 1e6) if timestamp_us is None else timestamp_us
    return Frame(seq, ts, tuple(tensors), split)


def jpeg_quality(bundle: Bundle) -> int | None:
    """The JPEG quality a single-split CLOUD_ONLY bundle sends its frames at (crossing codec "jpeg"), else None."""
    c = bundle.crossing
    return c[0].jpeg_quality if len(c) == 1 and c[0].codec == "jpeg" and not bundle.manifest.splits else None


def jpeg_frame(bundle: Bundle, image: np.ndarray, seq: int, timestamp_us: int | None = None) -> Frame:
    """A JPEG bundle's FRAME: the raw HWC image mapped to the model input as the edge app maps it (real = raw *
    scale + offset, float32), back to the 8-bit pixels that input is made from, and those pixels as one
    baseline JPEG at the manifest's quality (codec JPEG; the edge app's libjpeg-turbo writes the same bytes).
    The tensor's scale 1 and zero point 0 say the codes are plain pixels."""
    quality = jpeg_quality(bundle)
    if quality is None:
        raise BundleError(f"{bundle.root}: the bundle does not send its frames as JPEG")
    spec = bundle.input
    arr = np.asarray(image)
    if tuple(arr.shape) != spec.shape:
        raise DataError(f"image shape {arr.shape} does not match the bundle input {spec.shape}")
    real = arr.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    payload = encode_jpeg(to_pixels(real, spec.scale, spec.offset), quality)
    ts = int(time.time() * 1e6) if timestamp_us is None else timestamp_us
    return Frame(seq, ts, (WireTensor(TensorKind.PACKED, 8, 1.0, 0, spec.shape, payload, Codec.JPEG),))


def smaller(packed: bytes, zstd: bytes) -> tuple[bytes, Codec]:
    """The payload to send and its codec: the zstd frame when it is smaller than the packed bytes (the
    edge app's rule too: a frame that does not shrink goes uncompressed, codec 0)."""
    return (zstd, Codec.ZSTD) if len(zstd) < len(packed) else (packed, Codec.NONE)


def _load(path: Path) -> Any:
    from splitsdk.runtime import interpreter

    try:
        return interpreter(path.read_bytes())
    except (ValueError, RuntimeError, OSError) as exc:
        raise BundleError(f"{path}: cannot load the edge model: {exc}") from None


def prepared(bundle: Bundle, image: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Raw HWC image (uint8 or float) -> the input tensor `detail`, via the manifest's scale/offset."""
    spec = bundle.input
    arr = np.asarray(image)
    if tuple(arr.shape) != spec.shape:
        raise DataError(f"image shape {arr.shape} does not match the bundle input {spec.shape}")
    from splitsdk.runtime import to_input

    real = arr.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    return to_input(real, detail)[None]


class EdgeModel:
    """The bundle's int8 edge model under ai-edge-litert; outputs in crossing (output index) order."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._interp: Any = _load(bundle.edge_model)
        self._input = self._interp.get_input_details()[0]
        self._outputs = self._interp.get_output_details()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Raw HWC image (uint8 or float) -> the model's input tensor, via the manifest's scale/offset."""
        return prepared(self.bundle, image, self._input)

    def run(self, image: np.ndarray) -> list[np.ndarray]:
        self._interp.set_tensor(self._input["index"], self.prepare(image))
        self._interp.invoke()
        # wire (crossing) order; each crossing names the edge model output that holds it
        return [self._interp.get_tensor(self._outputs[c.edge_output]["index"])[0] for c in self.bundle.crossing]


class EdgeChain:
    """A multi-split bundle's edge chain under ai-edge-litert: `run(image, split)` runs the segments up to
    that member's cut (each segment fed its predecessor's int8 outputs, dequantised and requantised onto its
    own input grid) and returns the cut's int8 tensors in crossing order. A single-split bundle is a chain of
    one segment (split 0)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._interps: dict[str, Any] = {}
        self._produces: dict[str, tuple[ManifestCrossing, ...]] = {}  # segment file -> the cut it outputs
        for split in bundle.split_indices:
            member = bundle.member(split)
            segments = bundle.segments(split)
            for seg in segments:
                if seg.file not in self._interps:
                    self._interps[seg.file] = _load(bundle.root / seg.file)
            self._produces[segments[-1].file] = member.crossing

    def run(self, image: np.ndarray, split: int = 0) -> list[np.ndarray]:
        from splitsdk.runtime import to_input

        segments = self.bundle.segments(self.bundle.check_split(split))
        values: list[np.ndarray] = []
        previous: tuple[ManifestCrossing, ...] = ()
        for n, seg in enumerate(segments):
            interp = self._interps[seg.file]
            ins = interp.get_input_details()
            if n == 0:
                interp.set_tensor(ins[0]["index"], prepared(self.bundle, image, ins[0]))
            else:
                for d, pos in zip(ins, seg.inputs, strict=True):
                    c = previous[pos]
                    real = (values[pos].astype(np.float32) - c.edge_zero_point) * np.float32(c.edge_scale)
                    interp.set_tensor(d["index"], to_input(real[None], d))
            interp.invoke()
            outs = interp.get_output_details()
            if seg.file in self._produces:
                previous = self._produces[seg.file]
                values = [interp.get_tensor(outs[c.edge_output]["index"])[0] for c in previous]
        return values


class EdgeClient:
    """A simulated camera: edge model + protocol client. `infer(image)` returns the RESULT."""

    def __init__(
        self,
        bundle: Bundle,
        host: str,
        port: int,
        device_id: str,
        tls: ssl.SSLContext | None = None,
        first_seq: int = 0,
        split: int | None = None,
    ) -> None:
        self.bundle = bundle
        # a multi-split bundle: the deepest unless told
        self.split = bundle.split_indices[-1] if split is None else bundle.check_split(split)
        self.model = EdgeChain(bundle)
        self.client = WireClient(host, port, tls)
        self.client.hello(device_id, bundle.plan_sha256)
        self.seq = first_seq

    def infer(self, image: np.ndarray) -> Result:
        if jpeg_quality(self.bundle) is not None:  # CLOUD-ONLY+JPEG: the frame itself, no edge model to run
            frame = jpeg_frame(self.bundle, image, self.seq)
        else:
            frame = frame_from_edge_outputs(self.bundle, self.model.run(image, self.split), self.seq, split=self.split)
        result = self.client.send_frame(frame)
        self.seq += 1
        return result

    def close(self) -> None:
        self.client.close()


def load_frames(folder: str | Path, shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """Images of a folder, sorted by name: .npy arrays as is, .png/.jpg/.bmp resized to `shape` (HWC)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of frames")
    frames = []
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        if suffix == ".npy":
            frames.append((path.name, np.load(path)))
        elif suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            from PIL import Image

            with Image.open(path) as img:
                mode = "L" if shape[-1] == 1 else "RGB"
                arr = np.asarray(img.convert(mode).resize((shape[1], shape[0])), dtype=np.uint8)
            frames.append((path.name, arr.reshape(shape)))
    if not frames:
        raise DataError(f"{root}: no .npy/.png/.jpg frames")
    return frames


def simulate(
    bundle: Bundle,
    host: str,
    port: int,
    frames: list[tuple[str, np.ndarray]],
    device_id: str,
    tls: ssl.SSLContext | None = None,
    first_seq: int = 0,
) -> list[tuple[str, Result]]:
    """Run every frame through a simulated camera; returns (frame name, RESULT) in order."""
    camera = EdgeClient(bundle, host, port, device_id, tls, first_seq)
    try:
        return [(name, camera.infer(image)) for name, image in frames]
    finally:
        camera.close()


# ---- the adaptive camera: a multi-split bundle's member chosen per frame from the uplink it measures ----

SWITCH_GAIN = 0.10  # a switch needs the modelled latency to drop by more than this fraction...
SWITCH_HOLD = 4  # ...or the other member to be the better one for this many consecutive frames
RATE_SMOOTHING = 0.3  # weight of the newest rate sample (exponential smoothing)
INFORMATIVE = 0.10  # a frame whose transmit time is under this share of its time to RESULT gives no rate sample
PROBE_FRAMES = 8  # frames without a rate sample before one frame probes the next larger member (doubling...
PROBE_MAX_FRAMES = 32  # ...up to this: a link that got faster is found within this many frames)
BASE_WINDOW = 64  # frames over which the fixed part of the time to RESULT (RTT, receiver) is the minimum


@dataclass(frozen=True)
class Switching:
    """How the adaptive camera switches (see `AdaptiveCamera`)."""

    gain: float = SWITCH_GAIN
    hold_frames: int = SWITCH_HOLD
    smoothing: float = RATE_SMOOTHING
    informative: float = INFORMATIVE
    probe_frames: int = PROBE_FRAMES


class UplinkEstimate:
    """The uplink from the camera's own sends: a frame of B bytes whose RESULT came T seconds after its send
    began took T - base to cross, base being the fixed part (RTT and receiver), the least time to RESULT of
    the recent frames of the smallest member (before any, of the HELLO exchange); B*8/(T - base) is one
    sample, smoothed exponentially.
    A frame whose transmit share of T is under `informative` says little about the rate and is no sample."""

    def __init__(self, hello_s: float, smoothing: float = RATE_SMOOTHING, informative: float = INFORMATIVE) -> None:
        self.smoothing, self.informative = smoothing, informative
        self.mbps: float | None = None
        self._hello_s = hello_s
        self._small: collections.deque[float] = collections.deque(maxlen=BASE_WINDOW)

    @property
    def base_s(self) -> float:
        return min(self._small) if self._small else self._hello_s

    def observe(self, nbytes: int, seconds: float, smallest: bool = False) -> bool:
        """Take one frame's bytes and time to RESULT (`smallest`: a frame of the member that sends least, whose
        time is mostly the fixed part); whether it gave a rate sample."""
        if smallest:  # the fixed part, not the rate
            self._small.append(seconds)
            return False
        transmit = seconds - self.base_s
        if transmit < self.informative * seconds:
            return False
        sample = nbytes * 8 / transmit / 1e6
        self.mbps = sample if self.mbps is None else (1 - self.smoothing) * self.mbps + self.smoothing * sample
        return True


@dataclass
class CameraRecord:
    """One frame as the adaptive camera saw it (times measured on this host; `edge_s` includes the emulated
    edge time when pacing)."""

    seq: int
    split: int
    nbytes: int
    start_s: float  # capture, on the camera's monotonic clock
    edge_s: float
    latency_s: float  # capture to RESULT
    probe: bool
    result: Result


class AdaptiveCamera:
    """A camera for a multi-split bundle: runs the chain up to the chosen member, estimates the uplink from its
    own sends (`UplinkEstimate`), and between frames picks the member whose modelled latency at that estimate
    is lowest (the manifest's modelled edge and cloud times + packed bytes at the estimated rate), switching
    only with a clear gain or after `hold_frames` frames of advantage. When no frame has sampled the rate for
    a while (a small member's frames barely load the link), one frame probes the next larger member (every
    `probe_frames` frames, doubling while the choice stands). `split` forces one member (a static camera).
    `pace`: the edge stage lasts at least the member's modelled edge time (emulating the target on a host)."""

    def __init__(
        self,
        bundle: Bundle,
        host: str,
        port: int,
        device_id: str,
        tls: ssl.SSLContext | None = None,
        split: int | None = None,
        switching: Switching = Switching(),
        pace: bool = False,
        first_seq: int = 0,
    ) -> None:
        self.bundle, self.switching, self.pace, self.forced = bundle, switching, pace, split
        records = {s.split: s for s in bundle.manifest.splits}
        self.splits = bundle.split_indices
        if split is not None:
            bundle.check_split(split)
        self.edge_ms = {k: (records[k].edge_ms or 0.0) if k in records else 0.0 for k in self.splits}
        self.cloud_ms = {k: (records[k].cloud_ms or 0.0) if k in records else 0.0 for k in self.splits}
        self.nbytes = {k: bundle.member(k).wire_bytes for k in self.splits}
        self.chain = EdgeChain(bundle)
        self.client = WireClient(host, port, tls)
        t0 = time.monotonic()
        self.client.hello(device_id, bundle.plan_sha256)
        self.uplink = UplinkEstimate(time.monotonic() - t0, switching.smoothing, switching.informative)
        # with no estimate yet, start on the member that sends most: its first frame measures the link
        self.split = split if split is not None else max(self.splits, key=lambda k: self.nbytes[k])
        self.seq = first_seq
        self.frames = dict.fromkeys(self.splits, 0)
        self.switches = self.probes = 0
        self._streak = 0
        self._unsampled = 0
        self._probe_every = switching.probe_frames

    def modelled_ms(self, split: int, mbps: float) -> float:
        """Member `split`'s latency at `mbps`: modelled edge + packed bytes at that rate + modelled cloud."""
        return self.edge_ms[split] + self.nbytes[split] * 8 / (mbps * 1e3) + self.cloud_ms[split]

    def _choose(self) -> tuple[int, bool]:
        """The member for the next frame and whether it is a probe."""
        if self.forced is not None or self.uplink.mbps is None:
            return self.split, False
        est = self.uplink.mbps
        best = min(self.splits, key=lambda k: (self.modelled_ms(k, est), k))
        if best == self.split:
            self._streak = 0
        else:
            self._streak += 1
            cur, new = self.modelled_ms(self.split, est), self.modelled_ms(best, est)
            if new < (1 - self.switching.gain) * cur or self._streak >= self.switching.hold_frames:
                self.split, self._streak = best, 0
                self.switches += 1
                self._probe_every = self.switching.probe_frames
                return best, False
        larger = [k for k in self.splits if self.nbytes[k] > self.nbytes[self.split]]
        if larger and self._unsampled >= self._probe_every:
            self._unsampled = 0
            self._probe_every = min(2 * self._probe_every, PROBE_MAX_FRAMES)
            self.probes += 1
            return min(larger, key=lambda k: self.nbytes[k]), True
        return self.split, False

    def infer(self, image: np.ndarray) -> CameraRecord:
        split, probe = self._choose()
        start = time.monotonic()
        outputs = self.chain.run(image, split)
        if self.pace:
            time.sleep(max(0.0, self.edge_ms[split] / 1e3 - (time.monotonic() - start)))
        frame = frame_from_edge_outputs(self.bundle, outputs, self.seq, split=split)
        nbytes = sum(len(t.payload) for t in frame.tensors)
        sent = time.monotonic()
        result = self.client.send_frame(frame)
        done = time.monotonic()
        smallest = self.nbytes[split] == min(self.nbytes.values())
        self._unsampled = 0 if self.uplink.observe(nbytes, done - sent, smallest) else self._unsampled + 1
        self.frames[split] += 1
        self.seq += 1
        return CameraRecord(frame.seq, split, nbytes, start, sent - start, done - start, probe, result)

    def stats(self) -> dict[str, Any]:
        """The camera's counters, as its STATS message carries them."""
        return {
            "splits": {
                "frames": {str(k): n for k, n in self.frames.items()},
                "switches": self.switches,
                "probes": self.probes,
                "uplink_mbps": None if self.uplink.mbps is None else round(self.uplink.mbps, 3),
                "forced": self.forced,
            }
        }

    def close(self, send_stats: bool = True) -> None:
        """Send STATS (the switch counters) and disconnect."""
        try:
            if send_stats:
                self.client.send(Stats(json.dumps(self.stats())))
        finally:
            self.client.close()


def drive(camera: AdaptiveCamera, images: Sequence[np.ndarray], duration_s: float, max_frames: int
          ) -> list[CameraRecord]:
    """Send `images` (cycled) one after another, each after the previous one's RESULT, for `duration_s` seconds
    or `max_frames` frames, whichever ends first; the records in order."""
    if not images:
        raise DataError("no frames to send")
    records: list[CameraRecord] = []
    end = time.monotonic() + duration_s
    while len(records) < max_frames and time.monotonic() < end:
        records.append(camera.infer(images[len(records) % len(images)]))
    return records
