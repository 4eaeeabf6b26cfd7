"""CLOUD-ONLY+JPEG: the baseline a user would really pick, the camera sending each frame as a JPEG.

`jpeg_options` measures, per quality, what the frames cost on the wire and what the loss does to the
model. Frames are the model's float input (the calibration data); the edge app makes that input from 8-bit
pixels as `real = raw * scale + offset` (the bundle's `InputSpec`, convert's `--input-scale/--input-offset`,
default 1/255 and 0), so each frame is mapped back to the pixels the camera holds, encoded with Pillow
(libjpeg-turbo, 4:2:0, baseline, no Huffman optimisation: libjpeg's defaults, as the camera's encoder
uses them; greyscale for one channel), decoded, mapped forward again, and run through the float model.

What each figure is: `mean_bytes` measured (JPEG bytes over the frames); `agreement` measured without
labels (the float model on decoded frames against the float model on the frames as given, in the metric's
own terms where `splitsdk.plan.accuracy` has them, else its task-neutral fidelity); `accuracy` measured
with labels (the metric on decoded frames); `encode_ms` modelled: the target's `jpeg_ns_per_pixel` times
the frame's pixels. `benchmarks/bench_jpeg.py` measures that figure (libjpeg-turbo cross-compiled from the
target's sysroot, instructions counted under qemu-arm) and checks that Pillow's JPEGs are the target's
libjpeg-turbo's for the same settings (byte-identical at Pillow 13 / libjpeg-turbo 3.2 against the sysroot's 3.1.3).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from splitsdk.errors import DataError, PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.target import Target
from splitsdk.wire.compression import JPEG_CHANNELS, encode_jpeg
from splitsdk.wire.compression import from_pixels as wire_from_pixels
from splitsdk.wire.compression import to_pixels as wire_to_pixels

# The edge app's pixel mapping when convert is given none (convert_plan's defaults).
DEFAULT_INPUT_SCALE = 1.0 / 255.0
DEFAULT_INPUT_OFFSET = 0.0
# libjpeg-turbo encode cost per input pixel on a Cortex-A7 (4:2:0, colour, NEON), used when the target has no
# `jpeg_ns_per_pixel`: benchmarks/bench_jpeg.py, instructions per pixel of the cross-compiled encoder under
# qemu-arm (mean over Q95/75/50 on the 128x256 licence-plate frames) at 900 MHz, assuming 1 instruction per cycle.
FALLBACK_JPEG_NS_PER_PIXEL = 47.5
PIXEL_SLACK = 0.5  # input values may round to the 0..255 grid from this far outside it
CHANNELS = JPEG_CHANNELS


@dataclass(frozen=True)
class JpegOption:
    """One JPEG quality as a CLOUD-ONLY baseline: its wire size, encode cost and accuracy."""

    quality: int
    mean_bytes: float  # measured on the frames
    encode_ms: float  # modelled from the target's jpeg_ns_per_pixel
    agreement: float | None  # label-free, percent: the float model on decoded vs raw frames
    accuracy: float | None  # with labels, percent, on decoded frames
    source: str  # one line: how each figure was measured or modelled


def jpeg_ns_per_pixel(target: Target) -> tuple[float, str]:
    """The target's JPEG encode cost per pixel and where it comes from."""
    value = target.device.jpeg_ns_per_pixel
    if value is not None:
        return float(value), f"{target.name} jpeg_ns_per_pixel"
    return FALLBACK_JPEG_NS_PER_PIXEL, "Cortex-A7 fallback jpeg_ns_per_pixel (the target names none)"


def jpeg_unavailable(graph: LayerGraph, frames: np.ndarray, input_scale: float = DEFAULT_INPUT_SCALE,
                     input_offset: float = DEFAULT_INPUT_OFFSET) -> str | None:
    """Why the model's input cannot be sent as a JPEG (one line), or None when it can: an HWC image with 1 or
    3 channels whose frames lie on the 8-bit pixel range the edge app maps from."""
    if len(graph.inputs) != 1:
        return f"JPEG baseline: the model has {len(graph.inputs)} inputs, not one camera image"
    shape = tuple(graph.tensors[graph.inputs[0]].shape)
    if len(shape) != 3 or shape[-1] not in CHANNELS:
        return f"JPEG baseline: the model input {shape} is not an HWC image with 1 or 3 channels"
    if frames.shape[1:] != shape:
        return f"JPEG baseline: the frames' shape {frames.shape[1:]} is not the model input's {shape}"
    lo, hi = input_offset, input_offset + 255.0 * input_scale
    x = np.asarray(frames, dtype=np.float64)
    if not np.isfinite(x).all():
        return "JPEG baseline: the frames hold non-finite values, not pixels"
    px = (x - input_offset) / input_scale
    if px.min() < -PIXEL_SLACK or px.max() > 255.0 + PIXEL_SLACK:
        return (f"JPEG baseline: the frames span [{x.min():.4g}, {x.max():.4g}], not the image range "
                f"[{lo:.4g}, {hi:.4g}] of pixel * {input_scale:.6g} + {input_offset:.6g} (convert's "
                "--input-scale/--input-offset)")
    return None


def to_pixels(frames: np.ndarray, input_scale: float = DEFAULT_INPUT_SCALE,
              input_offset: float = DEFAULT_INPUT_OFFSET) -> np.ndarray:
    """The 8-bit pixels (N, H, W, C) the edge app would map to `frames` (the inverse of its mapping)."""
    return wire_to_pixels(frames, input_scale, input_offset)


def from_pixels(pixels: np.ndarray, input_scale: float = DEFAULT_INPUT_SCALE,
                input_offset: float = DEFAULT_INPUT_OFFSET) -> np.ndarray:
    """The model input the edge app makes from 8-bit pixels: pixel * scale + offset, float32."""
    return wire_from_pixels(pixels, input_scale, input_offset)


def encode(pixels: np.ndarray, quality: int) -> bytes:
    """One HWC uint8 frame (1 or 3 channels) as a baseline JPEG at `quality`, 4:2:0 (libjpeg's defaults): the
    bytes the edge app sends (`splitsdk.wire.encode_jpeg`)."""
    return encode_jpeg(pixels, quality)


def decode(data: bytes, channels: int) -> np.ndarray:
    """A JPEG back to an HWC uint8 frame with `channels` channels."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        arr = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return arr[..., None] if channels == 1 else arr


def pillow_jpeg() -> str:
    """Pillow's JPEG library, as the source lines name it."""
    from PIL import __version__, features

    return f"Pillow {__version__} (libjpeg-turbo {features.version('libjpeg_turbo')})"


def _check_qualities(qualities: Sequence[int]) -> None:
    for q in qualities:
        if isinstance(q, bool) or not isinstance(q, int | np.integer) or not 1 <= q <= 100:
            raise PlanError(f"JPEG quality: expected integers 1..100, got {q!r}")


def jpeg_options(graph: LayerGraph, frames: np.ndarray, target: Target, qualities: Sequence[int] = (95, 75, 50),
                 labels: np.ndarray | None = None, metric: str = "top1", *,
                 input_scale: float = DEFAULT_INPUT_SCALE,
                 input_offset: float = DEFAULT_INPUT_OFFSET) -> list[JpegOption]:
    """CLOUD-ONLY+JPEG at each quality, measured on `frames` (the model's float input, N frames).

    Returns no options when the input is not an image in the pixel range the edge app maps from
    (`jpeg_unavailable` says why in one line). `labels` (one per frame) add the accuracy on decoded frames in
    `metric`; the label-free agreement is always measured."""
    from splitsdk.plan.accuracy import get_metric, label_free_agreement, replay

    _check_qualities(qualities)
    score = get_metric(metric)
    frames = np.asarray(frames)
    if frames.ndim < 1 or len(frames) == 0:
        raise DataError("JPEG baseline: no frames to measure on")
    if labels is not None and len(labels) != len(frames):
        raise DataError(f"JPEG baseline: {len(labels)} labels for {len(frames)} frames")
    if jpeg_unavailable(graph, frames, input_scale, input_offset) is not None:
        return []
    height, width, channels = frames.shape[1:]
    ns, ns_from = jpeg_ns_per_pixel(target)
    encode_ms = ns * height * width / 1e6
    reference = replay(graph, frames.astype(np.float32), lambda _n, _t, v: v)
    agree, what = label_free_agreement(graph, metric, reference)
    pixels = to_pixels(frames, input_scale, input_offset)
    n = len(frames)
    kind = "greyscale" if channels == 1 else "colour 4:2:0"
    source = (f"bytes: {kind} JPEG by {pillow_jpeg()} on {n} frames, measured; "
              f"encode_ms: {ns:g} ns/pixel x {height}x{width} ({ns_from}), modelled; agreement: label-free {what} "
              "on decoded vs raw frames, measured"
              + (f"; accuracy: {metric} on {n} labelled decoded frames, measured" if labels is not None else ""))
    out = []
    for q in qualities:
        blobs = [encode(p, int(q)) for p in pixels]
        decoded = from_pixels(np.stack([decode(b, channels) for b in blobs]), input_scale, input_offset)
        outputs = replay(graph, decoded, lambda _n, _t, v: v)
        out.append(JpegOption(
            quality=int(q), mean_bytes=float(np.mean([len(b) for b in blobs])), encode_ms=encode_ms,
            agreement=float(agree(outputs, reference)),
            accuracy=float(score(outputs, labels)) if labels is not None else None, source=source,
        ))
    return out

