"""The quantised pipeline of an ONNX-sourced graph in onnxruntime: measured accuracy and convert's float
simulation for ONNX models.

The model is copied with its kernels on the grid they ship on (`splitsdk.convert.onnx_split`'s weight
rounding) and, after each chosen tensor, the float ops of the activation grid (`splitsdk.quant.grid`):
Div, Round, Add, Clip, Sub, Mul, so onnxruntime computes exactly what the Keras path's fake-quantisation
computes. Outputs come back channels-last like the Keras path's (and the bundle's).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from splitsdk.errors import PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.quant import RangeCalibration
from splitsdk.quant.grid import activation_grid
from splitsdk.target import FLOAT_BITS

BATCH = 32


@dataclass(frozen=True)
class Grid:
    """An activation grid a tensor is rounded onto: `bits` over [lo, hi], asymmetric or `symmetric`."""

    lo: float
    hi: float
    bits: int
    symmetric: bool = False


def nhwc(outs: list[np.ndarray]) -> list[np.ndarray]:
    """ONNX (NCHW) 4-D values channels-last, as the rest of the SDK holds them."""
    return [np.moveaxis(o, 1, -1) if o.ndim == 4 else o for o in outs]


def _layer_tensors(graph: LayerGraph) -> list[tuple[str, str]]:
    return [(name, t) for name in graph.topological_order() for t in graph.layer(name).outputs]


def replay(graph: LayerGraph, x: np.ndarray, hook: Callable[[str, str, np.ndarray], np.ndarray]) -> np.ndarray:
    """The float ONNX model on `x` with every layer output shown to `hook(layer, tensor, value)` (an observer:
    onnxruntime runs the graph whole, so a hook that replaces values is refused). Returns the first output."""
    from splitsdk.quant.sensitivity import activation_runner

    pairs = _layer_tensors(graph)
    tensors = list(dict.fromkeys([graph.outputs[0], *(t for _, t in pairs)]))
    run = activation_runner(graph, tensors)
    outs = []
    for i in range(0, len(x), BATCH):
        values = dict(zip(tensors, run(x[i : i + BATCH]), strict=True))
        for name, t in pairs:
            if hook(name, t, values[t]) is not values[t]:
                raise PlanError(f"layer {name!r}: an ONNX model is replayed whole; its values cannot be replaced")
        outs.append(nhwc([values[graph.outputs[0]]])[0])
    return np.concatenate(outs)


def fake_quant_model(graph: LayerGraph, weight_bits: Mapping[str, int], grids: Mapping[str, list[Grid]],
                     container: bool = False) -> Any:
    """A copy of the graph's ONNX model with `weight_bits`' kernels on their grid (8-bit ones too with
    `container`) and each tensor of `grids` rounded onto its grids, in order."""
    from onnx import helper, numpy_helper

    from splitsdk.convert.onnx_split import quantize_onnx_weights

    proto = copy.deepcopy(graph.source)
    quantize_onnx_weights(proto, graph, {n: b for n, b in weight_bits.items() if b < FLOAT_BITS}, container)
    g = proto.graph
    producers = {o: node for node in g.node for o in node.output}
    for k, (tensor, steps) in enumerate(sorted(grids.items())):
        raw = f"{tensor}__float{k}"
        if tensor in producers:  # the producer writes `raw`, the grid nodes write `tensor` for every reader
            node = producers[tensor]
            node.output[:] = [raw if o == tensor else o for o in node.output]
        else:  # a graph input: its readers read the rounded copy
            for node in g.node:
                node.input[:] = [raw if i == tensor else i for i in node.input]
            tensor, raw = raw, tensor
        src = raw
        for j, grid in enumerate(steps):
            scale, zp, qmin, qmax = activation_grid(grid.lo, grid.hi, grid.bits, grid.symmetric)
            p = f"{raw}__fq{j}_"
            consts = {"scale": scale, "zp": float(zp), "qmin": float(qmin), "qmax": float(qmax)}
            g.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), p + c) for c, v in consts.items())
            dst = tensor if j == len(steps) - 1 else p + "out"
            g.node.extend([
                helper.make_node("Div", [src, p + "scale"], [p + "div"]),
                helper.make_node("Round", [p + "div"], [p + "round"]),
                helper.make_node("Add", [p + "round", p + "zp"], [p + "add"]),
                helper.make_node("Clip", [p + "add", p + "qmin", p + "qmax"], [p + "clip"]),
                helper.make_node("Sub", [p + "clip", p + "zp"], [p + "sub"]),
                helper.make_node("Mul", [p + "sub", p + "scale"], [dst]),
            ])
            src = dst
    _topological_sort(g)
    return proto


def _topological_sort(g: Any) -> None:
    """Reorder the graph's nodes so every node follows the producers of its inputs (ONNX requires it)."""
    known = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise PlanError("the fake-quantised ONNX graph has a cycle")
        for n in ready:
            known.update(n.output)
        ordered.extend(ready)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del g.node[:]
    g.node.extend(ordered)


def run_fake_quant(graph: LayerGraph, proto: Any, x: np.ndarray, tensors: list[str]) -> list[np.ndarray]:
    """`tensors` of the fake-quantised model `proto` on `x`, channels-last."""
    from splitsdk.quant.sensitivity import activation_runner

    quantised = copy.copy(graph)
    quantised.source = proto
    run = activation_runner(quantised, tensors)
    parts = [run(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    return nhwc([np.concatenate(p) for p in zip(*parts, strict=True)])


def run_quantised(graph: LayerGraph, x: np.ndarray, ranges: RangeCalibration, wbits: Mapping[str, int],
                  abits: Callable[[str, str], int]) -> np.ndarray:
    """`splitsdk.plan.accuracy.run_quantised` for an ONNX model: the first output with `wbits`' kernels on
    their grid and each layer output on `abits(layer, tensor)` bits over its calibrated range (32: float)."""
    grids = {t: [Grid(*ranges.range(t), b)] for n, t in _layer_tensors(graph) if (b := abits(n, t)) < FLOAT_BITS}
    return run_fake_quant(graph, fake_quant_model(graph, wbits, grids), x, [graph.outputs[0]])[0]
