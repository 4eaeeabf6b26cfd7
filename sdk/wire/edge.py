"""Reference edge side: what the generated C++ app does, in Python, for tests, load tests and users
without a camera.

`EdgeModel` runs the bundle's `edge.tflite` with ai-edge-litert; `frame_from_edge_outputs` requantises
its int8 outputs through each crossing tensor's LUT and packs them into a FRAME; `EdgeClient`
connects, says HELLO with the bundle's plan hash and sends frames.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import BundleError, DataError
from splitsdk.wire.bundle import Bundle
from splitsdk.wire.client import WireClient
from splitsdk.wire.frame import Frame, Result, TensorKind, WireTensor
from splitsdk.wire.packing import pack, requantize_lut


def frame_from_edge_outputs(
    bundle: Bundle, outputs: Sequence[np.ndarray], seq: int, timestamp_us: int | None = None
) -> Frame:
    """Requantise (LUT) and pack the edge model's int8 outputs, in crossing order, into a FRAME."""
    if len(outputs) != len(bundle.crossing):
        raise BundleError(f"edge model gave {len(outputs)} outputs, the bundle has {len(bundle.crossing)} crossings")
    tensors = []
    for out, c in zip(outputs, bundle.crossing, strict=True):
        arr = np.asarray(out)
        if arr.dtype != np.int8 or arr.size != c.elements:
            raise BundleError(f"edge output for {c.tensor}: {arr.dtype}{list(arr.shape)}, expected int8{list(c.shape)}")
        codes = requantize_lut(arr, c.lut_table)
        tensors.append(WireTensor(TensorKind.PACKED, c.bits, c.scale, c.zero_point, c.shape, pack(codes, c.bits)))
    ts = int(time.time() * 1e6) if timestamp_us is None else timestamp_us
    return Frame(seq, ts, tuple(tensors))


class EdgeModel:
    """The bundle's int8 edge model under ai-edge-litert; outputs in crossing (output index) order."""

    def __init__(self, bundle: Bundle) -> None:
        from splitsdk.runtime import interpreter

        self.bundle = bundle
        try:
            self._interp: Any = interpreter(bundle.edge_model.read_bytes())
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{bundle.edge_model}: cannot load the edge model: {exc}") from None
        self._input = self._interp.get_input_details()[0]
        self._outputs = self._interp.get_output_details()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Raw HWC image (uint8 or float) -> the model's input tensor, via the manifest's scale/offset."""
        spec = self.bundle.input
        arr = np.asarray(image)
        if tuple(arr.shape) != spec.shape:
            raise DataError(f"image shape {arr.shape} does not match the bundle input {spec.shape}")
        from splitsdk.runtime import to_input

        real = arr.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
        return to_input(real, self._input)[None]

    def run(self, image: np.ndarray) -> list[np.ndarray]:
        self._interp.set_tensor(self._input["index"], self.prepare(image))
        self._interp.invoke()
        # wire (crossing) order; each crossing names the edge model output that holds it
        return [self._interp.get_tensor(self._outputs[c.edge_output]["index"])[0] for c in self.bundle.crossing]


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
    ) -> None:
        self.bundle = bundle
        self.model = EdgeModel(bundle)
        self.client = WireClient(host, port, tls)
        self.client.hello(device_id, bundle.plan_sha256)
        self.seq = first_seq

    def infer(self, image: np.ndarray) -> Result:
        frame = frame_from_edge_outputs(self.bundle, self.model.run(image), self.seq)
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
