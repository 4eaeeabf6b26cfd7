"""The one set of quantisers: the planner's error proxy, convert, the accuracy check and the float simulation.

They describe what the shipped int8 TFLite file holds (read back from converted files):

- weights: symmetric per OUTPUT channel, narrow range (codes -(2^(b-1)-1)..2^(b-1)-1), one scale per
  channel of max|w| / (2^(b-1)-1). TFLite's int8 converter does exactly this for every weighted op:
  CONV_2D, DEPTHWISE_CONV_2D (one scale per cin x multiplier channel, SeparableConv2D's depthwise half
  included), TRANSPOSE_CONV and FULLY_CONNECTED. Which axis holds a kernel's output channels is
  `keras_channels` / `onnx_channels`. A b-bit kernel below the 8-bit container ships as int8: the
  converter rounds the b-bit grid once more onto its own per-channel int8 grid, so `quantize_weights`
  at b < 8 is that composite (its 2^b - 1 levels are int8 codes), exactly what the file holds;
- activations: the asymmetric min-max grid over the calibrated range widened to hold 0 (int8), or the
  symmetric grid around zero (int16), over the ranges `RangeCalibration` records on calibration data.

The activation grids run on NumPy arrays and, with `ops=keras.ops`, on Keras tensors (the FakeQuant layer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splitsdk.target import FLOAT_BITS

CONTAINER_BITS = 8  # sub-8-bit weights ship in int8

# Keras kernels whose output channels are their last two axes, (cin, multiplier), flattened in C order
_DEPTHWISE = {
    ("DepthwiseConv1D", "kernel"), ("DepthwiseConv2D", "kernel"),
    ("SeparableConv1D", "depthwise_kernel"), ("SeparableConv2D", "depthwise_kernel"),
}
# Keras transposed convolutions keep their kernel as (*spatial, out, in)
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}


# -- weights ---------------------------------------------------------------------------------------------
def quantize_symmetric(mat: np.ndarray, bits: int) -> np.ndarray:
    """The symmetric `bits`-bit grid of each channel (last axis) of a (rows, channels) matrix."""
    if bits >= FLOAT_BITS:
        return mat
    qmax = 2 ** (bits - 1) - 1
    scale = np.max(np.abs(mat), axis=0) / qmax
    scale = np.where(scale == 0, 1.0, scale)
    return np.asarray(np.clip(np.round(mat / scale), -qmax, qmax) * scale, dtype=mat.dtype)


def quantize_weights(mat: np.ndarray, bits: int) -> np.ndarray:
    """What a (rows, output channels) kernel matrix at `bits` ships as: its per-channel `bits`-bit grid,
    below the int8 container that grid as the converter rounds it onto int8 (idempotent: converting the
    result again changes nothing)."""
    q = quantize_symmetric(mat, bits)
    return quantize_symmetric(q, CONTAINER_BITS) if bits < CONTAINER_BITS else q


@dataclass(frozen=True)
class Channels:
    """Where a kernel's output channels lie: `span` consecutive axes from `axis` (2 for a depthwise kernel's
    (cin, multiplier) pair, whose output channel is cin * multiplier + m)."""

    axis: int
    span: int = 1

    def _axes(self, ndim: int) -> list[int]:
        start = self.axis % ndim
        return list(range(start, start + self.span))

    def matrix(self, kernel: np.ndarray) -> np.ndarray:
        """The kernel as a (rows, output channels) matrix."""
        n = kernel.ndim
        moved = np.moveaxis(kernel, self._axes(n), list(range(n - self.span, n)))
        return moved.reshape(-1, math.prod(moved.shape[n - self.span :]))

    def restore(self, mat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of `matrix` for a kernel of `shape`."""
        n, axes = len(shape), self._axes(len(shape))
        moved = [shape[i] for i in range(n) if i not in axes] + [shape[i] for i in axes]
        return np.moveaxis(mat.reshape(moved), list(range(n - self.span, n)), axes)


def keras_channels(layer_type: str, weight_name: str) -> Channels:
    """The output channels of the Keras weight `weight_name` of a layer of class `layer_type`."""
    if (layer_type, weight_name) in _DEPTHWISE:
        return Channels(-2, span=2)
    if layer_type in _TRANSPOSED and weight_name == "kernel":
        return Channels(-2)
    return Channels(-1)  # Conv1D/2D/3D, SeparableConv2D's pointwise kernel, Dense, recurrent kernels


def onnx_channels(node: Any) -> Channels:
    """The output channels of an ONNX Conv / ConvTranspose / Gemm / MatMul node's weight (input 1)."""
    if node.op_type == "Conv":
        return Channels(0)  # (out, in / groups, *spatial), a depthwise Conv's (cin x multiplier) included
    if node.op_type == "ConvTranspose":
        return Channels(1)  # (in, out / groups, *spatial)
    if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        return Channels(0)  # B transposed: (out, in)
    return Channels(-1)  # Gemm, MatMul: (in, out)


def quantize_kernel(kernel: np.ndarray, channels: Channels, bits: int) -> np.ndarray:
    """`quantize_weights` of a kernel in its own layout; vectors (biases, normalisation) stay as they are."""
    if kernel.ndim < 2 or bits >= FLOAT_BITS:
        return kernel
    mat = channels.matrix(np.asarray(kernel, np.float32))
    return channels.restore(quantize_weights(mat, bits), kernel.shape).astype(kernel.dtype)


def keras_kernels(op: Any) -> list[tuple[np.ndarray, Channels]]:
    """A Keras layer's kernels (weights of 2 or more axes) with their output channels."""
    kind = type(op).__name__
    out = []
    for w in op.weights:
        arr = np.asarray(w.numpy(), np.float32)
        if arr.ndim >= 2:
            out.append((arr, keras_channels(kind, w.path.split("/")[-1])))
    return out


def fake_quantize_keras(op: Any, bits: int) -> list[np.ndarray]:
    """The values of `op.get_weights()` with every kernel at `bits` as shipped (biases unchanged)."""
    kind = type(op).__name__
    return [
        quantize_kernel(np.asarray(value), keras_channels(kind, w.path.split("/")[-1]), bits)
        for w, value in zip(op.weights, op.get_weights(), strict=True)
    ]


def weight_errors(mats: list[np.ndarray], bits: Iterable[int]) -> dict[int, float]:
    """Mean squared error of (rows, output channels) kernel matrices at each width: the planner's weight proxy.
    A layer without kernels (only vectors, which stay in higher precision) has no error."""
    total = sum(m.size for m in mats)
    return {
        b: float(sum(np.sum((m - quantize_weights(m, b)) ** 2, dtype=np.float64) for m in mats) / total)
        if total else 0.0
        for b in bits
    }


# -- activations -----------------------------------------------------------------------------------------
def minmax_grid(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """The asymmetric `bits`-bit grid over [lo, hi] widened to hold 0: (scale, zero point in 0..2^bits-1)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2**bits - 1
    scale = (hi - lo) / levels if hi > lo else 1.0
    return scale, int(np.clip(round(-lo / scale), 0, levels))


def activation_grid(lo: float, hi: float, bits: int, symmetric: bool = False) -> tuple[float, int, int, int]:
    """(scale, zero point, lowest code, highest code) of the `bits`-bit grid over [lo, hi] (0 included):
    min-max asymmetric (int8 activations), or `symmetric` around zero with zero point 0 (int16 activations)."""
    if symmetric:
        top = 2 ** (bits - 1) - 1
        return max(-min(lo, 0.0), max(hi, 0.0)) / top or 1.0, 0, -top, top
    scale, zero_point = minmax_grid(lo, hi, bits)
    return scale, zero_point, 0, 2**bits - 1


def fake_quantize(x: Any, lo: float, hi: float, bits: int, symmetric: bool = False, ops: Any = np) -> Any:
    """`x` rounded onto `activation_grid(lo, hi, bits, symmetric)`, with NumPy or `ops=keras.ops`."""
    scale, zero_point, qmin, qmax = activation_grid(lo, hi, bits, symmetric)
    return (ops.clip(ops.round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale


def quantize_range(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Asymmetric fake-quantisation of `x` over the calibrated range [lo, hi] (0 always representable)."""
    if bits >= FLOAT_BITS:
        return x
    return np.asarray(fake_quantize(x, lo, hi, bits), dtype=x.dtype)


def value_range(v: np.ndarray) -> tuple[float, float]:
    """(min, max) of the values of `v`."""
    return float(np.min(v)), float(np.max(v))


@dataclass
class RangeCalibration:
    """Per tensor, the (min, max) its float values take over the calibration data seen so far: the
    activation grids' ranges."""

    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)

    def observe(self, tensor: str, value: np.ndarray) -> np.ndarray:
        """Widen `tensor`'s range to hold `value` (returned unchanged, so this serves as a replay hook)."""
        lo, hi = value_range(value)
        self.lo[tensor] = min(self.lo.get(tensor, math.inf), lo)
        self.hi[tensor] = max(self.hi.get(tensor, -math.inf), hi)
        return value

    def range(self, tensor: str) -> tuple[float, float]:
        return self.lo[tensor], self.hi[tensor]

    def quantize(self, tensor: str, value: np.ndarray, bits: int) -> np.ndarray:
        """`value` of `tensor` on its `bits`-bit asymmetric grid over the calibrated range."""
        return quantize_range(value, *self.range(tensor), bits)
