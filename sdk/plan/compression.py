"""Feature compression for the planner: how well zstd shrinks each crossing tensor's packed codes, and
what compressing costs the edge.

`crossing_ratios` measures the ratio on calibration activations: each frame's crossing tensor is put on
the b-bit asymmetric min-max wire grid over the calibration range (`splitsdk.quant.grid.activation_grid`,
the grid convert builds the wire LUT from), packed as the camera packs it (`splitsdk.wire.pack`, the
shared C) and compressed frame by frame with the same C codec at the camera's level
(`splitsdk.wire.compress`). The ratio is measured, not assumed: compressed bytes over packed bytes,
summed over the frames; above 1 means compression does not pay for that tensor at that width (the camera
then sends it uncompressed).

`compress_ms` is modelled: the target's `zstd_ns_per_byte` (zstd level 3 on the device's CPU, per
uncompressed byte) times the bytes. `benchmarks/bench_compression.py` measures the figure the fallback
below uses (the shared C cross-built for a Cortex-A7, its instructions counted under qemu-arm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from splitsdk.errors import DataError
from splitsdk.quant.grid import activation_grid, value_range
from splitsdk.target import Target
from splitsdk.wire import compress, pack
from splitsdk.wire.compression import DEFAULT_LEVEL as WIRE_DEFAULT_LEVEL

DEFAULT_LEVEL: int = WIRE_DEFAULT_LEVEL  # what the edge app and edge-sim compress with (SP_ZSTD_LEVEL)
# zstd level 3 on a Cortex-A7 per uncompressed byte, used when the target names no `zstd_ns_per_byte`:
# benchmarks/bench_compression.py, instructions of sp_compress (the shared C and the cortex-a7 sysroot's
# libzstd, cross-built) counted under qemu-arm, 63.8 per byte over the example models' crossing tensors at
# 2/4/8 bits (weighted by bytes; 13-91 per byte for tensors of 1.5-64 KiB, up to ~330 for 128-byte ones,
# where zstd's ~30k instructions per frame dominate), at 900 MHz assuming 1 instruction per cycle.
FALLBACK_ZSTD_NS_PER_BYTE = 70.8


def wire_codes(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """`x` as b-bit codes (uint8) on the asymmetric min-max grid over [lo, hi] widened to hold 0."""
    scale, zero_point, qmin, qmax = activation_grid(lo, hi, bits)
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zero_point, qmin, qmax).astype(np.uint8)


def crossing_ratios(
    activations: Mapping[str, np.ndarray], bits: Sequence[int], level: int = DEFAULT_LEVEL
) -> dict[str, dict[int, float]]:
    """Per crossing tensor and bit width: zstd bytes / packed bytes over the calibration frames (measured).

    `activations[t]` is float32 (frames, *shape): tensor t on each calibration frame. Each frame is
    quantised, packed and compressed alone, as the camera sends it."""
    out: dict[str, dict[int, float]] = {}
    for tensor, acts in activations.items():
        arr = np.asarray(acts)
        if arr.ndim < 1 or arr.shape[0] == 0 or arr.size == 0:
            raise DataError(f"crossing tensor {tensor}: no calibration frames (activations of shape {arr.shape})")
        if not np.all(np.isfinite(arr)):
            raise DataError(f"crossing tensor {tensor}: activations hold NaN or Inf")
        lo, hi = value_range(arr)
        ratios: dict[int, float] = {}
        for b in bits:
            if not 1 <= b <= 8:
                raise DataError(f"crossing tensor {tensor}: bits {b} is not a wire width (1..8)")
            packed = zstd = 0
            for frame in arr:
                payload = pack(wire_codes(frame.reshape(-1), lo, hi, b), b)
                packed += len(payload)
                zstd += len(compress(payload, level))
            ratios[b] = zstd / packed
        out[tensor] = ratios
    return out


def zstd_ns_per_byte(target: Target) -> tuple[float, str]:
    """The target's zstd (level 3) cost per uncompressed byte and where the figure comes from."""
    value = getattr(target.device, "zstd_ns_per_byte", None)
    if value is not None:
        return float(value), f"{target.name} zstd_ns_per_byte"
    return FALLBACK_ZSTD_NS_PER_BYTE, "Cortex-A7 fallback zstd_ns_per_byte (the target names none)"


def compress_ms(target: Target, nbytes: float) -> float:
    """Modelled edge time to zstd-compress `nbytes` uncompressed (packed) bytes on `target`, in ms."""
    ns, _ = zstd_ns_per_byte(target)
    return ns * float(nbytes) / 1e6
