"""One quantiser: the weight error the planner predicts is the error of the weights convert ships.

For every weighted layer kind, the int8 TFLite file convert writes is read back; its dequantised kernels
are compared with the float kernels and that error must be what the sensitivity pass measured, at every
candidate width (sub-8-bit widths fake-quantised then converted, as `splitsdk convert` does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitsdk.graph import LayerGraph, load_graph
from splitsdk.quant import (
    Channels,
    fake_quantize,
    keras_channels,
    load_dataset,
    measure_sensitivity,
    quantize_range,
    quantize_weights,
)

import model_zoo
import onnx_zoo

BITS = [2, 4, 6, 8]

# Keras kernel (by layer and weight name) -> the layout the TFLite file stores it in
TFLITE_LAYOUT: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("conv", "kernel"): lambda k: k.transpose(3, 0, 1, 2),  # (kh, kw, in, out) -> (out, kh, kw, in)
    ("dw", "kernel"): lambda k: k.reshape(1, *k.shape[:2], -1),  # (kh, kw, cin, m) -> (1, kh, kw, cin * m)
    ("sep", "depthwise_kernel"): lambda k: k.reshape(1, *k.shape[:2], -1),
    ("sep", "pointwise_kernel"): lambda k: k.transpose(3, 0, 1, 2),
    ("up", "kernel"): lambda k: k.transpose(2, 0, 1, 3),  # (kh, kw, out, in) -> (out, kh, kw, in)
    ("fc", "kernel"): lambda k: k.T,  # (in, out) -> (out, in)
}
# the output channels of each stored tensor: TFLite's quantized_dimension and how many scales it has
OUT_CHANNELS = {
    ("conv", "kernel"): (0, 6), ("dw", "kernel"): (3, 12), ("sep", "depthwise_kernel"): (3, 24),
    ("sep", "pointwise_kernel"): (0, 5), ("up", "kernel"): (0, 4), ("fc", "kernel"): (0, 3),
}


def _model() -> Any:
    """Conv2D (+BN, folded) -> DepthwiseConv2D x2 -> SeparableConv2D x2 -> Conv2DTranspose -> GAP -> Dense,
    with each channel's weights on its own scale, so per-channel and per-tensor grids differ a lot."""
    keras = model_zoo._keras()
    L = keras.layers
    x = inp = keras.Input((6, 6, 3), name="img")
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu", name="dw")(x)
    x = L.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", name="sep")(x)
    x = L.Conv2DTranspose(4, 2, strides=2, name="up")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, name="fc")(x)
    model = model_zoo.randomize_batchnorm(keras.Model(inp, x, name="kinds"))
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.weights and type(layer).__name__ != "BatchNormalization":
            layer.set_weights([
                w * rng.uniform(0.05, 3.0, w.shape[-2:]).astype(np.float32) if w.ndim >= 2 else w
                for w in layer.get_weights()
            ])
    return model


@pytest.fixture(scope="module")
def setup() -> tuple[LayerGraph, np.ndarray, dict[str, dict[int, float]]]:
    graph = load_graph(_model())
    data = load_dataset(None, (6, 6, 3), samples=4)
    sens = measure_sensitivity(graph, data, BITS, use_cache=False)
    return graph, data.x, sens.weights


def _kernels(graph: LayerGraph, name: str) -> dict[str, np.ndarray]:
    """The float kernels of a graph layer (BN folded), by weight name."""
    call = graph.layer(name).source
    op = call.replacement or call.op
    return {w.path.split("/")[-1]: np.asarray(w.numpy()) for w in op.weights if len(w.shape) >= 2}


def _shipped(graph: LayerGraph, calib: np.ndarray, bits: int) -> dict[tuple[str, str], tuple[np.ndarray, Any]]:
    """What convert ships with every layer at `bits`: each kernel's dequantised values in the int8 file
    (TFLite layout) and its quantisation parameters."""
    from splitsdk.convert.split import edge_model, fake_quantize_weights
    from splitsdk.convert.tflite import to_int8_tflite
    from splitsdk.runtime import interpreter

    layers = graph.topological_order()
    edge = edge_model(graph, layers, list(graph.outputs))
    fake_quantize_weights(edge, {n: bits for n in layers if graph.layer(n).quantizable}, graph)
    interp = interpreter(to_int8_tflite(edge, [calib]), all_tensors=True)
    out = {}
    for (layer, weight), layout in TFLITE_LAYOUT.items():
        shape = layout(_kernels(graph, layer)[weight]).shape
        found = [
            d for d in interp.get_tensor_details()
            if f"/{layer}" in d["name"] and tuple(d["shape"]) == shape and d["dtype"] == np.int8
        ]
        assert len(found) == 1, (layer, weight, [d["name"] for d in found])
        d = found[0]
        qp = d["quantization_parameters"]
        scales = qp["scales"].astype(np.float32).reshape([-1 if i == qp["quantized_dimension"] else 1
                                                          for i in range(len(shape))])
        out[layer, weight] = (interp.get_tensor(d["index"]).astype(np.float32) * scales, qp)
    return out


@pytest.mark.parametrize("bits", BITS)
def test_planner_weight_error_is_the_shipped_files_error(
    setup: tuple[LayerGraph, np.ndarray, dict[str, dict[int, float]]], bits: int
) -> None:
    graph, calib, predicted = setup
    shipped = _shipped(graph, calib, bits)
    for layer in ("conv", "dw", "sep", "up", "fc"):
        sq, count = 0.0, 0
        for weight, w in _kernels(graph, layer).items():
            values, qp = shipped[layer, weight]
            axis, channels = OUT_CHANNELS[layer, weight]
            assert (qp["quantized_dimension"], len(qp["scales"])) == (axis, channels), (layer, weight)
            sq += float(np.sum((TFLITE_LAYOUT[layer, weight](w) - values) ** 2, dtype=np.float64))
            count += w.size
        assert predicted[layer][bits] == pytest.approx(sq / count, rel=1e-5, abs=1e-12), (layer, bits)


def test_separable_depthwise_kernel_is_quantised_per_channel_everywhere(
    setup: tuple[LayerGraph, np.ndarray, dict[str, dict[int, float]]],
) -> None:
    """Sensitivity, the accuracy check and convert put SeparableConv2D's depthwise kernel on one grid per
    (cin x multiplier) channel, as the int8 file does; one scale per multiplier is a much larger error."""
    from splitsdk.convert.split import edge_model, fake_quantize_weights
    from splitsdk.plan.accuracy import quantised_weights

    graph, _calib, predicted = setup
    float_k = _kernels(graph, "sep")
    edge = edge_model(graph, graph.topological_order(), list(graph.outputs))
    fake_quantize_weights(edge, {"sep": 4}, graph)
    converted = {w.path.split("/")[-1]: np.asarray(w.numpy()) for w in edge.get_layer("sep").weights}
    with quantised_weights(graph, {"sep": 4}):
        checked = _kernels(graph, "sep")

    def mse(ks: dict[str, np.ndarray]) -> float:
        return sum(float(np.sum((float_k[n] - ks[n]) ** 2)) for n in float_k) / sum(k.size for k in float_k.values())

    assert mse(converted) == pytest.approx(predicted["sep"][4], rel=1e-6)
    assert mse(checked) == pytest.approx(predicted["sep"][4], rel=1e-6)
    assert _kernels(graph, "sep")["depthwise_kernel"] == pytest.approx(float_k["depthwise_kernel"])  # restored
    dw = float_k["depthwise_kernel"]  # (3, 3, cin, multiplier)
    one_scale = quantize_weights(dw.reshape(-1, dw.shape[-1]), 4).reshape(dw.shape)  # the old convert's grid
    assert np.mean((dw - one_scale) ** 2) > 2 * np.mean((dw - converted["depthwise_kernel"]) ** 2)


def test_sub_8_bit_grid_survives_the_int8_container(
    setup: tuple[LayerGraph, np.ndarray, dict[str, dict[int, float]]],
) -> None:
    """Converting the fake-quantised weights again changes nothing: the shipped values are the fake-quantised
    model's values, and (below 8 bits) still at most 2^b - 1 levels per channel."""
    from splitsdk.convert.split import edge_model, fake_quantize_weights

    graph, calib, _ = setup
    edge = edge_model(graph, graph.topological_order(), list(graph.outputs))
    fake_quantize_weights(edge, {"conv": 4}, graph)
    fake = edge.get_layer("conv").kernel.numpy()
    shipped, _qp = _shipped(graph, calib, 4)["conv", "kernel"]
    np.testing.assert_allclose(TFLITE_LAYOUT["conv", "kernel"](fake), shipped, rtol=1e-6, atol=1e-7)
    for c in range(fake.shape[-1]):
        assert len(np.unique(fake[..., c])) <= 15


def test_kernel_matrix_rule() -> None:
    k = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    for layer, weight, cols in [
        ("Conv2D", "kernel", 5), ("Dense", "kernel", 5), ("DepthwiseConv2D", "kernel", 20),
        ("SeparableConv2D", "depthwise_kernel", 20), ("SeparableConv2D", "pointwise_kernel", 5),
        ("Conv2DTranspose", "kernel", 4), ("Conv3D", "kernel", 5), ("Conv1D", "kernel", 5),
    ]:
        ch = keras_channels(layer, weight)
        mat = ch.matrix(k)
        assert mat.shape == (k.size // cols, cols), layer
        np.testing.assert_array_equal(ch.restore(mat, k.shape), k)
    # a transposed conv's output channel is its kernel's axis -2
    np.testing.assert_array_equal(Channels(-2).matrix(k)[:, 1], k[:, :, 1, :].reshape(-1))


def _onnx_model(path: Path) -> Path:
    """Conv (+BN) -> ConvTranspose -> GAP -> Gemm (transB): every ONNX kernel layout the importer accepts."""
    from onnx import helper

    r = np.random.default_rng(0)
    inits = {
        "w1": r.normal(size=(6, 3, 3, 3)) * r.uniform(0.1, 3, (6, 1, 1, 1)), "g": r.uniform(0.5, 1.5, 6),
        "b": r.normal(size=6), "m": r.normal(size=6), "v": r.uniform(0.5, 2, 6),
        "wt": r.normal(size=(6, 4, 2, 2)) * r.uniform(0.1, 3, (1, 4, 1, 1)),
        "wf": r.normal(size=(5, 4)) * r.uniform(0.1, 3, (5, 1)), "axes": np.array([2, 3], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("ConvTranspose", ["bn", "wt"], ["up"], name="up", strides=[2, 2]),
        helper.make_node("ReduceMean", ["up", "axes"], ["gap"], name="gap", keepdims=0),
        helper.make_node("Gemm", ["gap", "wf"], ["fc"], name="fc", transB=1),
    ]
    return onnx_zoo._save(nodes, inits, ("x", (3, 6, 6)), ("fc", (5,)), path, "kinds")


def test_onnx_kernels_predicted_as_fake_quantised(tmp_path: Path) -> None:
    """ONNX: the planner's weight error is the error of the kernels convert fake-quantises, per output channel
    (a ConvTranspose's is its weight's axis 1); BN folding scales channels, which per-channel grids follow."""
    from onnx import numpy_helper

    from splitsdk.convert.onnx_split import fake_quantize_onnx

    path = _onnx_model(tmp_path / "kinds.onnx")
    graph = load_graph(path)
    sens = measure_sensitivity(graph, load_dataset(None, (6, 6, 3), samples=2), [4], use_cache=False)
    fake = fake_quantize_onnx(path, graph, {"c1": 4, "up": 4, "fc": 4})
    before = {i.name: numpy_helper.to_array(i) for i in graph.source.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in fake.graph.initializer}
    fold = (before["g"] / np.sqrt(before["v"] + 1e-5)).reshape(-1, 1, 1, 1)
    for layer, init, scale, out_axes in [("c1", "w1", fold, (1, 2, 3)), ("up", "wt", 1.0, (0, 2, 3)),
                                         ("fc", "wf", 1.0, (1,))]:
        w, q = before[init] * scale, after[init] * scale
        assert sens.weights[layer][4] == pytest.approx(float(np.mean((w - q) ** 2)), rel=1e-4), layer
        # each output channel's largest weight is a grid level, exactly
        np.testing.assert_allclose(np.abs(q).max(axis=out_axes), np.abs(w).max(axis=out_axes), rtol=1e-6)


def test_fake_quant_layer_is_the_activation_grid() -> None:
    import keras

    from splitsdk.convert.fake_quant import FakeQuant

    x = np.linspace(-3, 5, 101, dtype=np.float32).reshape(1, -1)
    np.testing.assert_allclose(np.asarray(FakeQuant(-2.0, 4.0, 4)(x)), quantize_range(x, -2.0, 4.0, 4), atol=1e-6)
    sym = np.asarray(FakeQuant(-2.0, 4.0, 16, symmetric=True)(x))
    np.testing.assert_allclose(sym, fake_quantize(x, -2.0, 4.0, 16, symmetric=True), atol=1e-6)
    np.testing.assert_allclose(np.asarray(fake_quantize(keras.ops.convert_to_tensor(x), -2.0, 4.0, 3, ops=keras.ops)),
                               quantize_range(x, -2.0, 4.0, 3), atol=1e-6)
