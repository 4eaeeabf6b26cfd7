"""The profile on graphs from the real Keras importer: conv geometry is recovered, every layer is priced."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from splitsdk.graph import load_graph
from splitsdk.graph.model import LayerGraph
from splitsdk.profile import build_profile, edge_bit_pairs
from splitsdk.profile.geometry import layer_work
from splitsdk.target import load_target


def mobile_block() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inp = keras.Input((16, 16, 3), name="img")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(6.0, name="relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    y = L.Conv2D(8, 1, name="pw")(y)
    x = L.Add(name="add")([x, y])
    x = L.SeparableConv2D(16, 3, strides=2, padding="valid", name="sep")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(10, name="fc")(x)
    return keras.Model(inp, x, name="mobile_block")


@pytest.fixture(scope="module")
def graph() -> LayerGraph:
    return load_graph(mobile_block())


EXPECTED = {  # layer -> [(filter h, filter w, channels, filters, stride, repeat)] of its SCALE-Sim rows
    "stem": [(3, 3, 3, 8, 2, 1)],
    "dw": [(3, 3, 1, 1, 1, 8)],
    "pw": [(1, 1, 8, 8, 1, 1)],
    "sep": [(3, 3, 1, 1, 2, 8), (1, 1, 8, 16, 1, 1)],
    "fc": [(1, 16, 1, 10, 1, 1)],
}


def test_conv_geometry_from_the_importer(graph: LayerGraph) -> None:
    for name, rows in EXPECTED.items():
        work = layer_work(graph, graph.layer(name))
        got = [(s.filter_h, s.filter_w, s.channels, s.filters, s.stride_h, s.repeat) for s in work.sims]
        assert got == rows, name
        out = graph.tensors[graph.layer(name).outputs[0]].shape
        # the importer counts a folded bias or a fused activation as one more op per output
        sim_macs = sum(s.macs for s in work.sims)
        assert sim_macs <= graph.layer(name).macs <= sim_macs + 2 * math.prod(out), name
        assert work.sims[-1].m == math.prod(out[:-1]), name


def test_geometry_without_attrs_matches(graph: LayerGraph) -> None:
    # an importer that fills no attrs (or an ONNX graph) still gets the conv rows from shapes and MACs
    for name in ("stem", "dw", "pw", "fc"):
        layer = graph.layer(name)
        bare = dataclasses.replace(layer, attrs={})
        graph.g.nodes[name]["layer"] = bare
        try:
            assert layer_work(graph, bare).sims == layer_work(graph, layer).sims, name
        finally:
            graph.g.nodes[name]["layer"] = layer


@pytest.mark.parametrize("edge,cloud", [("eyeriss", "tpu"), ("cortex-a7", "cloud-gpu"), ("host", "cloud-cpu")])
def test_every_layer_priced_on_every_device(graph: LayerGraph, edge: str, cloud: str) -> None:
    p = build_profile(graph, edge, cloud)
    pairs = set(edge_bit_pairs(load_target(edge)))
    for name in graph.topological_order():
        assert set(p.edge[name]) == pairs
        assert all(math.isfinite(v) and v >= 0 for v in p.edge[name].values())
        assert math.isfinite(p.cloud_ms(name)) and p.cloud_ms(name) >= 0
        if graph.layer(name).macs:
            assert p.edge_ms(name, 8, 8) > 0 and p.cloud_ms(name) > 0
