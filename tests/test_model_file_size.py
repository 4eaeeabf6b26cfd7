"""The planner's edge-file bytes (the target's quant.model_file) against what the TFLite converter really writes,
on the shapes the size model once missed: separable convs (TFLite: a depthwise op with its own bias and per-channel
parameters, then a 1x1 op) and many narrow channels (24 B of quantisation parameters and a 4 B bias each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from benchmark_module import load_benchmark
from plan_factory import forced_plan

from splitsdk.convert import convert_plan
from splitsdk.graph import load_graph
from splitsdk.plan.problem import edge_file_bytes
from splitsdk.plan.schema import load_plan
from splitsdk.target import load_target

bench = load_benchmark("bench_corpus")  # trained_like: the biases and batch-norm statistics of a trained net


def separable_net() -> Any:
    """One conv, then six 128-channel separable convs with batch norms (NASNet's and Xception's cell)."""
    import keras

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((8, 8, 16), name="img")
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="stem")(x)
    for i in range(6):
        x = keras.layers.SeparableConv2D(128, 3, padding="same", use_bias=False, name=f"sep{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="out")(x))


def wide_net() -> Any:
    """Many channels on small kernels: a 1x1 conv to 512 channels, two depthwise convs (one with a swish: two
    more ops), a Dense."""
    import keras

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((4, 4, 8), name="img")
    x = keras.layers.Conv2D(512, 1, activation="relu", name="expand")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="swish", name="dw1")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="out")(x))


@pytest.mark.parametrize("build", [separable_net, wide_net])
def test_predicted_edge_file_bytes_match_the_converted_file(build: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    bench.trained_like(build()).save(path)
    graph = load_graph(path)
    plan_path = forced_plan(path, tmp_path / "plan.json", split=len(graph))  # every layer on the edge, int8
    report = convert_plan(plan_path, path, tmp_path / "bundle", samples=4, verify=False)
    sol = load_plan(plan_path).solution
    predicted = edge_file_bytes(graph, sol.edge_layers, sol.weight_bits, sol.activation_bits,
                                [c.tensor for c in sol.crossing], load_target("cortex-a7").quant)
    assert report.edge_tflite_bytes > 20 * 1024  # large enough for the corpus to judge
    assert abs(report.edge_tflite_bytes / predicted - 1.0) <= 0.05, (report.edge_tflite_bytes, predicted)


def test_an_untrained_layers_zero_bias_is_not_priced(tmp_path: Path) -> None:
    # the converter stores identical constant buffers once: the zero biases of an untrained net cost next to
    # nothing, so the importer marks them and the size model leaves them out
    path = tmp_path / "m.keras"
    wide_net().save(path)
    graph = load_graph(path)
    assert graph.layer("expand").attrs.get("zero_bias") is True
    trained = tmp_path / "t.keras"
    bench.trained_like(wide_net()).save(trained)
    assert "zero_bias" not in load_graph(trained).layer("expand").attrs


def zero_bias_onnx(path: Path) -> Path:
    """An ONNX net of wide layers with all-zero biases (as an untrained exporter writes them): a 1x1 conv to 512
    channels, four 3x3 depthwise convs, GAP, Gemm; the biases are ~8% of the converted file unless shared."""
    import numpy as np
    from onnx import helper

    import onnx_zoo

    r = np.random.default_rng(2)
    inits = {"w0": r.normal(size=(512, 8, 1, 1)) * 0.3, "b0": np.zeros(512), "wf": r.normal(size=(512, 10)) * 0.1,
             "bf": np.zeros(10)}
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="expand"),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0")]
    for i in range(1, 5):
        inits[f"w{i}"], inits[f"b{i}"] = r.normal(size=(512, 1, 3, 3)) * 0.3, np.zeros(512)
        nodes += [helper.make_node("Conv", [f"r{i - 1}", f"w{i}", f"b{i}"], [f"c{i}"], name=f"dw{i}", group=512,
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
    nodes += [helper.make_node("GlobalAveragePool", ["r4"], ["pool"], name="gap"),
              helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc")]
    return onnx_zoo._save(nodes, inits, ("x", (8, 6, 6)), ("logits", (10,)), path, "zero_bias")  # noqa: SLF001


def test_an_onnx_models_zero_biases_are_marked_and_the_file_size_follows(tmp_path: Path) -> None:
    path = zero_bias_onnx(tmp_path / "m.onnx")
    graph = load_graph(path)
    assert all(graph.layer(n).attrs.get("zero_bias") is True for n in ("expand", "dw1", "dw4", "fc"))
    plan_path = forced_plan(path, tmp_path / "plan.json", split=len(graph))
    report = convert_plan(plan_path, path, tmp_path / "bundle", samples=4, verify=False)
    sol = load_plan(plan_path).solution
    quant = load_target("cortex-a7").quant

    def predicted(g: Any) -> int:
        return edge_file_bytes(g, sol.edge_layers, sol.weight_bits, sol.activation_bits,
                               [c.tensor for c in sol.crossing], quant)

    unmarked = load_graph(path)  # the same graph with the zero biases priced as any other bias
    for layer in unmarked.layers():
        layer.attrs = {k: v for k, v in layer.attrs.items() if k != "zero_bias"}
    assert report.edge_tflite_bytes > 20 * 1024
    assert abs(report.edge_tflite_bytes / predicted(graph) - 1.0) <= 0.05, (report.edge_tflite_bytes, predicted(graph))
    assert report.edge_tflite_bytes / predicted(unmarked) < 0.95  # priced as stored, the zeros would be over by >5%
