"""Tiny LayerGraphs built by hand (no TensorFlow) for the profile tests, and the geometry tests on them.

The other test_profile*.py modules import the builders from here.
"""

from __future__ import annotations

from typing import Any

import pytest

from splitsdk.graph.model import Layer, LayerGraph, TensorInfo
from splitsdk.profile.geometry import SimLayer, layer_work


def conv_layer(name: str, inp: str, out: str, k: int, cin: int, cout: int, oh: int, ow: int,
               attrs: dict[str, Any] | None = None, op: str = "Conv2D", groups: int = 1) -> Layer:
    macs = oh * ow * k * k * (cin // groups) * cout
    return Layer(name, op, [inp], [out], weights=k * k * (cin // groups) * cout + cout, macs=macs,
                 attrs=attrs or {})


def toy_graph() -> LayerGraph:
    """conv -> depthwise -> add(conv, dw) -> maxpool -> flatten -> dense: every kind of layer once."""
    T = TensorInfo
    inp = T("in", (32, 32, 3))
    tensors = {
        "c1": T("c1", (32, 32, 16), producer="conv1"),
        "d1": T("d1", (32, 32, 16), producer="dw"),
        "a1": T("a1", (32, 32, 16), producer="add"),
        "p1": T("p1", (16, 16, 16), producer="pool"),
        "f1": T("f1", (4096,), producer="flat"),
        "o": T("o", (10,), producer="fc"),
    }
    layers = [
        conv_layer("conv1", "in", "c1", 3, 3, 16, 32, 32),
        Layer("dw", "DepthwiseConv2D", ["c1"], ["d1"], weights=9 * 16 + 16, macs=32 * 32 * 9 * 16),
        Layer("add", "Add", ["c1", "d1"], ["a1"]),
        Layer("pool", "MaxPooling2D", ["a1"], ["p1"]),
        Layer("flat", "Flatten", ["p1"], ["f1"]),
        Layer("fc", "Dense", ["f1"], ["o"], weights=4096 * 10 + 10, macs=4096 * 10),
    ]
    return LayerGraph("toy", [inp], ["o"], layers, tensors)


def single_layer_graph(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                       model_input: bool = False) -> LayerGraph:
    """One layer; its input is a model input or (default) the output of a free Reshape before it."""
    T = TensorInfo
    src = layer.inputs[0]
    tensors = {layer.outputs[0]: T(layer.outputs[0], out_shape, producer=layer.name)}
    if model_input:
        return LayerGraph("one", [T(src, in_shape)], [layer.outputs[0]], [layer], tensors)
    tensors[src] = T(src, in_shape, producer="pre")
    pre = Layer("pre", "Reshape", ["x"], [src])
    return LayerGraph("one", [T("x", in_shape)], [layer.outputs[0]], [pre, layer], tensors)


# -- geometry -----------------------------------------------------------------------------------------

GEOMETRY_CASES = [
    # (layer, in_shape, out_shape, expected SimLayer)
    (conv_layer("c", "x", "y", 3, 8, 16, 14, 14), (16, 16, 8), (14, 14, 16),
     SimLayer(16, 16, 3, 3, 8, 16, 1, 1)),  # valid 3x3: shapes and MACs alone
    (conv_layer("c", "x", "y", 3, 8, 16, 16, 16), (16, 16, 8), (16, 16, 16),
     SimLayer(18, 18, 3, 3, 8, 16, 1, 1)),  # 'same' padding: SCALE-Sim gets the padded ifmap
    (conv_layer("c", "x", "y", 3, 4, 8, 8, 8), (16, 16, 4), (8, 8, 8),
     SimLayer(17, 17, 3, 3, 4, 8, 2, 2)),  # stride 2 from shapes
    (conv_layer("c", "x", "y", 3, 4, 8, 8, 8, attrs={"kernel": [3, 3], "strides": [2, 2]}), (16, 16, 4),
     (8, 8, 8), SimLayer(17, 17, 3, 3, 4, 8, 2, 2)),  # the same from attrs
    (conv_layer("c", "x", "y", 1, 16, 32, 7, 7), (7, 7, 16), (7, 7, 32), SimLayer(7, 7, 1, 1, 16, 32)),
    (Layer("d", "DepthwiseConv2D", ["x"], ["y"], weights=9 * 6, macs=10 * 10 * 9 * 6), (10, 10, 6),
     (10, 10, 6), SimLayer(12, 12, 3, 3, 1, 1, 1, 1, repeat=6)),  # one conv per channel, as SCALE-Sim
    (Layer("g", "Conv2D", ["x"], ["y"], weights=9 * 2 * 8, macs=6 * 6 * 9 * 2 * 8,
           attrs={"kernel": 3, "strides": 1, "filters": 8, "groups": 4}), (8, 8, 8), (6, 6, 8),
     SimLayer(8, 8, 3, 3, 2, 2, 1, 1, repeat=4)),  # grouped conv
    (Layer("c1d", "Conv1D", ["x"], ["y"], weights=5 * 4 * 8, macs=20 * 5 * 4 * 8), (24, 4), (20, 8),
     SimLayer(1, 24, 1, 5, 4, 8, 1, 1)),
    (Layer("fc", "Dense", ["x"], ["y"], weights=64 * 10, macs=640), (64,), (10,), SimLayer.gemm(1, 10, 64)),
    (Layer("fc3", "Dense", ["x"], ["y"], weights=32 * 16, macs=5 * 32 * 16), (5, 32), (5, 16),
     SimLayer.gemm(5, 16, 32)),  # a Dense on a sequence: one GEMM row per step
    (Layer("c", "Conv2D", ["x"], ["y"], weights=9 * 8 * 16 + 16, macs=14 * 14 * 16 * (72 + 1)), (16, 16, 8),
     (14, 14, 16), SimLayer(16, 16, 3, 3, 8, 16)),  # an importer counting the fused activation as an op
    (Layer("lstm", "LSTM", ["x"], ["y"], weights=4 * (8 + 16) * 16, macs=10 * 4 * (8 + 16) * 16), (10, 8),
     (16,), SimLayer.gemm(1, 16, 10 * 4 * 24)),  # anything else: the GEMM its MACs imply
]


@pytest.mark.parametrize("layer,in_shape,out_shape,expected", GEOMETRY_CASES,
                         ids=[f"{c[0].op}-{i}" for i, c in enumerate(GEOMETRY_CASES)])
def test_layer_geometry(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                        expected: SimLayer) -> None:
    graph = single_layer_graph(layer, in_shape, out_shape)
    work = layer_work(graph, graph.layer(layer.name))
    assert work.sims == (expected,)
    assert expected.macs <= layer.macs


def test_layers_without_macs_are_data_only_and_relabelling_is_free() -> None:
    g = toy_graph()
    add = layer_work(g, g.layer("add"))
    assert add.sims == () and add.elementwise_ops == 2 * 32 * 32 * 16
    assert add.input_elements == 2 * 32 * 32 * 16 and add.output_elements == 32 * 32 * 16
    assert layer_work(g, g.layer("flat")).free
    first = layer_work(g, g.layer("conv1"))
    assert first.model_input_elements == 32 * 32 * 3 and first.input_elements == 0
