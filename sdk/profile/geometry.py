"""What a layer asks of the hardware: its matrix products (as SCALE-Sim layers) and its data.

Every layer with MACs becomes one or more SCALE-Sim conv rows (ifmap h/w, filter h/w, channels,
filters, strides), repeated `repeat` times: a grouped or depthwise conv is `groups` independent
convs (SCALE-Sim itself splits a depthwise layer into one layer per channel), a separable conv is
a depthwise then a pointwise conv. Convolutions take their geometry from `layer.attrs` (kernel,
strides, groups) where the importer filled it, else from the shapes and the MAC count. A Dense is
the GEMM of its input and output widths; anything else with MACs (LSTM, attention, transposed
conv, ...) becomes the GEMM its MACs and output shape imply (a conv row with a 1 x K filter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from splitsdk.graph.model import Layer, LayerGraph
from splitsdk.target import OpKind

# Layers that only relabel data: no compute, no data movement.
FREE_OPS = frozenset(
    {"InputLayer", "Reshape", "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "Identity",
     "GaussianNoise", "GaussianDropout", "ActivityRegularization", "Squeeze", "Unsqueeze"}
)
CONV_OPS = frozenset({"Conv1D", "Conv2D", "Conv", "DepthwiseConv1D", "DepthwiseConv2D"})
DEPTHWISE_OPS = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
SEPARABLE_OPS = frozenset({"SeparableConv1D", "SeparableConv2D"})
DENSE_OPS = frozenset({"Dense", "EinsumDense"})
ACTIVATION_PRODUCT_OPS = frozenset({"Dot", "Attention", "AdditiveAttention", "Einsum"})  # MACs, no weights
POOL_PREFIXES = ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool")  # Keras' and ONNX's names


@dataclass(frozen=True)
class SimLayer:
    """One SCALE-Sim topology row (valid padding: the ifmap is the padded input), run `repeat` times."""

    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride_h: int = 1
    stride_w: int = 1
    repeat: int = 1

    @property
    def ofmap_h(self) -> int:
        return math.ceil((self.ifmap_h - self.filter_h + self.stride_h) / self.stride_h)

    @property
    def ofmap_w(self) -> int:
        return math.ceil((self.ifmap_w - self.filter_w + self.stride_w) / self.stride_w)

    @property
    def m(self) -> int:
        """GEMM rows: output pixels per filter."""
        return self.ofmap_h * self.ofmap_w

    @property
    def n(self) -> int:
        """GEMM columns: filters."""
        return self.filters

    @property
    def k(self) -> int:
        """GEMM depth: the convolution window."""
        return self.filter_h * self.filter_w * self.channels

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.repeat

    def row(self) -> list[int]:
        """The topology row SCALE-Sim reads (without the layer name)."""
        return [self.ifmap_h, self.ifmap_w, self.filter_h, self.filter_w, self.channels, self.filters,
                self.stride_h, self.stride_w]

    @classmethod
    def gemm(cls, m: int, n: int, k: int, repeat: int = 1) -> SimLayer:
        """An M x K by K x N product as SCALE-Sim's GEMM mode writes it."""
        return cls(ifmap_h=m, ifmap_w=k, filter_h=1, filter_w=k, channels=1, filters=n, repeat=repeat)


@dataclass(frozen=True)
class LayerWork:
    """The work of one layer: matrix products, other element operations, and tensor sizes."""

    sims: tuple[SimLayer, ...]
    macs: int
    elementwise_ops: int  # element operations outside the MAC array (adds, pooling, ...)
    input_elements: int  # activations read from other layers
    model_input_elements: int  # model inputs read (camera frames: 8 bits)
    output_elements: int
    weights: int
    free: bool = False
    kind: OpKind | None = None  # the op kind a target's `device.op_rates` prices (None: none of them)

    @property
    def elements(self) -> int:
        """Elements an element op handles (what `op_rates` counts for pool and elementwise): the larger of
        those it reads and those it writes."""
        return max(self.input_elements + self.model_input_elements, self.output_elements)


def layer_work(graph: LayerGraph, layer: Layer) -> LayerWork:
    """Describe `layer` of `graph` for the latency models."""
    in_elems = sum(graph.tensors[t].elements for t in layer.inputs if t not in graph.inputs)
    model_in = sum(graph.tensors[t].elements for t in layer.inputs if t in graph.inputs)
    out_elems = sum(graph.tensors[t].elements for t in layer.outputs)
    if layer.op in FREE_OPS:
        return LayerWork((), 0, 0, in_elems, model_in, out_elems, 0, free=True)
    sims = _sim_layers(graph, layer) if layer.macs > 0 else ()
    elementwise = 0 if sims else max(in_elems + model_in, out_elems)
    return LayerWork(tuple(sims), layer.macs, elementwise, in_elems, model_in, out_elems, layer.weights,
                     kind=op_kind(layer))


def op_kind(layer: Layer) -> OpKind | None:
    """The op kind of `layer` for per-op-kind rates: conv (a separable conv too: its pointwise half dominates),
    depthwise, dense, pool, elementwise (any other layer without weights: adds, activations, ...); None for
    the other weighted layers and products of two activations (LSTM, attention, transposed conv, Dot, ...),
    which keep the mode's rate."""
    if layer.op in DEPTHWISE_OPS or (layer.op == "Conv" and int(layer.attrs.get("groups") or 1) > 1):
        return "depthwise"
    if layer.op in CONV_OPS or layer.op in SEPARABLE_OPS:
        return "conv"
    if layer.op in DENSE_OPS or layer.op in ("Gemm", "MatMul"):
        return "dense"
    if layer.op.startswith(POOL_PREFIXES):
        return "pool"
    if layer.weights == 0 and layer.op not in ACTIVATION_PRODUCT_OPS:
        return "elementwise"
    return None


def _sim_layers(graph: LayerGraph, layer: Layer) -> list[SimLayer]:
    out_shape = graph.tensors[layer.outputs[0]].shape if layer.outputs else ()
    in_shape = graph.tensors[layer.inputs[0]].shape if layer.inputs else ()
    conv = None
    if layer.op in DENSE_OPS and in_shape and out_shape:
        n = int(out_shape[-1])
        return [SimLayer.gemm(max(1, math.prod(out_shape) // n), n, int(in_shape[-1]))]
    if layer.op in CONV_OPS:
        conv = _conv(layer, in_shape, out_shape)
    elif layer.op in SEPARABLE_OPS:
        conv = _separable(layer, in_shape, out_shape)
    return conv if conv is not None else [_gemm_from_macs(layer.macs, out_shape)]


def _gemm_from_macs(macs: int, out_shape: Sequence[int]) -> SimLayer:
    n = int(out_shape[-1]) if out_shape else 1
    m = max(1, math.prod(out_shape) // n) if out_shape else 1
    k = max(1, math.ceil(macs / (m * n)))
    return SimLayer.gemm(m, n, k)


def _pair(value: Any) -> tuple[int, int] | None:
    """(h, w) from an int, a 1-tuple (1-D: along the width) or a 2-tuple; None for anything else."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    vals = [int(v) for v in value]
    if len(vals) == 1:
        return (1, vals[0])  # 1-D ops work along the width
    if len(vals) == 2:
        return (vals[0], vals[1])
    return None


def _spatial(in_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...] | None:
    """(ih, iw, cin, oh, ow, cout) of an NHWC (or 1-D NWC) feature map pair, else None."""
    if len(out_shape) == 2 and len(in_shape) == 2:  # 1-D: (width, channels)
        return (1, in_shape[0], in_shape[1], 1, out_shape[0], out_shape[1])
    if len(out_shape) == 3 and len(in_shape) == 3:
        return (*in_shape, *out_shape)
    return None


def _strides(layer: Layer, ih: int, iw: int, oh: int, ow: int) -> tuple[int, int] | None:
    if "strides" in layer.attrs:
        return _pair(layer.attrs["strides"])
    return (max(1, round(ih / oh)), max(1, round(iw / ow)))


def _separable(layer: Layer, in_shape: Sequence[int], out_shape: Sequence[int]) -> list[SimLayer] | None:
    """A separable conv is a depthwise conv (one row per channel) then a pointwise conv."""
    dims = _spatial(in_shape, out_shape)
    kernel = _pair(layer.attrs.get("kernel"))
    if dims is None or kernel is None:
        return None
    ih, iw, cin, oh, ow, cout = dims
    strides = _strides(layer, ih, iw, oh, ow)
    if strides is None:
        return None
    (kh, kw), (sh, sw) = kernel, strides
    mult = max(1, int(layer.macs // (oh * ow * (kh * kw * cin + cin * cout))))  # depth multiplier
    depthwise = SimLayer((oh - 1) * sh + kh, (ow - 1) * sw + kw, kh, kw, 1, mult, sh, sw, repeat=cin)
    return [depthwise, SimLayer(oh, ow, 1, 1, cin * mult, cout)]


def _kernel_from_macs(macs: int, pixels: int, channels: int, cout: int, one_d: bool) -> tuple[int, int] | None:
    """The kernel a conv's MAC count implies (`channels` per group). Importers may count a bias add
    or a fused activation as one more op per output, so 0, 1 or 2 extra ops per output are tried."""
    for extra in (0, 1, 2):
        taps, rest = divmod(macs - extra * pixels * cout, pixels * channels * cout)
        if rest or taps < 1:
            continue
        if one_d:
            return (1, taps)
        side = math.isqrt(taps)
        if side * side == taps:
            return (side, side)
    return None


def _conv(layer: Layer, in_shape: Sequence[int], out_shape: Sequence[int]) -> list[SimLayer] | None:
    """The conv rows of a (grouped, depthwise, 1-D) convolution, or None when shapes do not fit."""
    dims = _spatial(in_shape, out_shape)
    if dims is None:
        return None
    ih, iw, cin, oh, ow, cout = dims
    attrs = layer.attrs
    groups = int(attrs.get("groups", cin if layer.op in DEPTHWISE_OPS else 1))
    if groups < 1 or cin % groups or cout % groups:
        return None
    ch, nf = cin // groups, cout // groups
    kernel = _pair(attrs.get("kernel")) or _kernel_from_macs(layer.macs, oh * ow, ch, cout, ih == 1)
    strides = _strides(layer, ih, iw, oh, ow)
    if kernel is None or strides is None:
        return None
    (kh, kw), (sh, sw) = kernel, strides
    sim = SimLayer((oh - 1) * sh + kh, (ow - 1) * sw + kw, kh, kw, ch, nf, sh, sw, repeat=groups)
    if sim.m != oh * ow:
        return None
    return [sim]
