"""Any model a user brings: keras.applications architectures, every common ONNX op, dynamic dims, layouts,
weights in Constant nodes, custom Keras layers, and unfoldable batch norms priced in the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitsdk.errors import ModelError, UnsupportedLayerError
from splitsdk.graph import LayerGraph, load_graph

import model_zoo


# -- keras.applications ----------------------------------------------------------------------------------
def _bn_statistics(model: Any) -> int:
    """The moving mean and variance of every batch norm: folded into the scale and offset TFLite ships."""
    return sum(2 * int(lay.moving_mean.shape[0]) for lay in model.layers if type(lay).__name__ == "BatchNormalization")


@pytest.mark.parametrize(
    ("arch", "size"),
    [("EfficientNetB0", 32), ("DenseNet121", 32), ("NASNetMobile", 32), ("MobileNetV3Small", 32),
     ("MobileNetV2", 32), ("ResNet50", 32)],
)
def test_keras_applications_import_with_every_weight(arch: str, size: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, arch)(weights=None, input_shape=(size, size, 3), classes=10)
    raw = load_graph(model, optimize_graph=False)
    # weights as the code counts them: every layer weight, but a batch norm as scale + offset (its
    # moving statistics are not shipped)
    assert raw.total_weights == model.count_params() - _bn_statistics(model)
    opt = load_graph(model)
    assert 0 < len(opt) <= len(raw) and opt.total_weights <= raw.total_weights
    assert opt.tensors[opt.outputs[0]].shape == (10,)
    assert all(lay.macs >= 0 for lay in opt.layers()) and opt.total_macs > 0
    assert not [lay.name for lay in opt.layers() if lay.quantizable and lay.op == "BatchNormalization"
                and arch in ("MobileNetV2", "ResNet50")]  # every BN there follows a conv: all folded


# -- ONNX graphs from other exporters -----------------------------------------------------------------------
def _onnx(path: Path, nodes: list[Any], inputs: list[tuple[str, list[Any]]], outputs: list[str],
          inits: dict[str, np.ndarray] | None = None, opset: int = 18) -> Path:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    ort.InferenceSession(str(path))  # a valid, runnable model
    return path


def _w(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _ops(graph: LayerGraph) -> dict[str, str]:
    return {lay.name: lay.op for lay in graph.layers()}


def test_onnx_split_div_pow(tmp_path: Path) -> None:
    from onnx import helper

    path = _onnx(tmp_path / "sdp.onnx", [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Split", ["c", "parts"], ["a", "b"], name="split", axis=1),
        helper.make_node("Div", ["a", "b"], ["d"], name="div"),
        helper.make_node("Pow", ["d", "two"], ["y"], name="pow"),
    ], [("x", [1, 3, 8, 8])], ["y"], {"w": _w(4, 3, 3, 3), "parts": _i64(2, 2), "two": np.float32([2.0])})
    graph = load_graph(path)
    assert _ops(graph) == {"conv": "Conv2D", "split": "Split", "div": "Div", "pow": "Pow"}
    assert graph.tensors["a"].shape == graph.tensors["b"].shape == (8, 8, 2)  # channels-last, as onnx2tf ships
    assert graph.layer("split").macs == 0 and graph.layer("div").macs == graph.layer("pow").macs == 128
    assert graph.layer("conv").macs == 8 * 8 * 4 * 27 and graph.layer("conv").weights == 108
    assert graph.notes == ["input 'x': NCHW layout (Conv 'conv' reads it)"]


def test_onnx_shape_subgraph_is_folded_away(tmp_path: Path) -> None:
    from onnx import helper

    path = _onnx(tmp_path / "flat.onnx", [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Shape", ["c"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["c", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "wf"], ["y"], name="fc"),
    ], [("x", ["N", 3, 4, 4])], ["y"],
        {"w": _w(2, 3, 1, 1), "zero": np.array(0, np.int64), "axes": _i64(0), "minus_one": _i64(-1),
         "wf": _w(32, 5)})
    graph = load_graph(path)
    assert _ops(graph) == {"conv": "Conv2D", "reshape": "Reshape", "fc": "Dense"}
    assert graph.tensors["flat"].shape == (32,) and graph.tensors["y"].shape == (5,)
    assert graph.layer("reshape").macs == 0 and graph.layer("fc").macs == 32 * 5
    assert "input 'x': dynamic batch dim batch ('N') analysed per sample (batch 1)" in graph.notes


def test_onnx_resize_and_hardswish(tmp_path: Path) -> None:
    from onnx import helper

    path = _onnx(tmp_path / "up.onnx", [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
        helper.make_node("Resize", ["h", "", "scales"], ["y"], name="resize", mode="nearest"),
    ], [("x", [1, 3, 4, 4])], ["y"], {"w": _w(2, 3, 1, 1), "scales": np.float32([1, 1, 2, 2])})
    graph = load_graph(path)
    assert _ops(graph) == {"conv": "Conv2D", "hswish": "HardSwish", "resize": "UpSampling2D"}
    assert graph.tensors["y"].shape == (8, 8, 2) and graph.layer("hswish").macs == 32


def test_onnx_matmul_attention(tmp_path: Path) -> None:
    from onnx import helper

    seq, dim = 6, 8
    path = _onnx(tmp_path / "attn.onnx", [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"], name="context"),
    ], [("x", [1, seq, dim])], ["y"], {n: _w(dim, dim, seed=i) for i, n in enumerate(["wq", "wk", "wv"])})
    graph = load_graph(path)
    ops = _ops(graph)
    assert ops["q"] == "Dense" and ops["scores"] == ops["context"] == "MatMul" and ops["softmax"] == "Softmax"
    assert graph.layer("q").macs == seq * dim * dim and graph.layer("q").weights == dim * dim
    assert graph.layer("scores").macs == seq * seq * dim and graph.layer("scores").weights == 0
    assert graph.layer("context").macs == seq * dim * seq
    assert graph.tensors["scores"].shape == (seq, seq)  # no convolution: shapes as in the graph
    assert graph.notes == ["input 'x': no convolution reads it: shapes as in the ONNX graph"]
    assert graph.total_weights == 3 * dim * dim


def test_onnx_lstm(tmp_path: Path) -> None:
    from onnx import helper

    steps, feat, hidden = 5, 3, 4
    path = _onnx(tmp_path / "lstm.onnx", [
        helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "h"], name="lstm", hidden_size=hidden),
        helper.make_node("Squeeze", ["h", "axes"], ["hs"], name="squeeze"),
        helper.make_node("Gemm", ["hs", "wf"], ["out"], name="fc"),
    ], [("x", [steps, 1, feat])], ["out"],
        {"W": _w(1, 4 * hidden, feat), "R": _w(1, 4 * hidden, hidden), "B": _w(1, 8 * hidden),
         "axes": _i64(0), "wf": _w(hidden, 2)})
    graph = load_graph(path)
    lstm = graph.layer("lstm")
    assert lstm.op == "LSTM" and lstm.weights == 4 * hidden * (feat + hidden + 2)
    assert lstm.macs == steps * 4 * hidden * (feat + hidden)
    assert graph.tensors["y"].elements == steps * hidden and graph.tensors["out"].shape == (2,)


def test_onnx_weights_in_constant_nodes(tmp_path: Path) -> None:
    """A Paddle-style export: the conv kernel is a Constant node (through Cast), the Gemm's through Identity;
    the importer, sensitivity and fake_quantize_onnx all find them."""
    from onnx import TensorProto, helper, numpy_helper

    from splitsdk.convert.onnx_split import fake_quantize_onnx
    from splitsdk.graph.onnx_weights import OnnxConstants
    from splitsdk.quant.sensitivity import weight_mse

    kernel, fc = _w(4, 3, 3, 3), _w(4, 2, seed=1)
    path = _onnx(tmp_path / "paddle.onnx", [
        helper.make_node("Constant", [], ["_v_939"], value=numpy_helper.from_array(kernel.astype(np.float16))),
        helper.make_node("Cast", ["_v_939"], ["k32"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["_v_940"], value=numpy_helper.from_array(fc)),
        helper.make_node("Identity", ["_v_940"], ["fc_w"]),
        helper.make_node("Conv", ["x", "k32"], ["c"], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w"], ["y"], name="fc"),
    ], [("x", [1, 3, 6, 6])], ["y"])
    graph = load_graph(path)
    assert graph.layer("conv").weights == kernel.size and graph.layer("fc").weights == fc.size
    assert [lay.name for lay in graph.layers()] == ["conv", "gap", "flatten", "fc"]
    errors = weight_mse(graph, graph.layer("conv"), [2, 8])
    assert errors[2] > errors[8] > 0
    fake = fake_quantize_onnx(path, graph, {"conv": 2, "fc": 4})
    consts = OnnxConstants(fake.graph)
    k2 = consts.get("k32")
    assert k2 is not None and k2.dtype == np.float32
    assert all(len(np.unique(k2[o])) <= 3 for o in range(4))  # 2 bits: -1, 0, +1 times a per-channel scale
    fq = consts.get("fc_w")
    assert fq is not None and not np.allclose(fq, fc) and all(len(np.unique(fq[:, o])) <= 15 for o in range(2))


def test_onnx_dynamic_spatial_dims_need_a_shape(tmp_path: Path) -> None:
    from onnx import helper

    path = _onnx(tmp_path / "det.onnx", [
        helper.make_node("Conv", ["images", "w"], ["c"], name="conv", strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ], [("images", ["batch", 3, "H", "W"])], ["y"], {"w": _w(8, 3, 2, 2)})
    with pytest.raises(ModelError, match=r"input 'images' has dynamic dims H, W: give --input-shape or calib"):
        load_graph(path)
    graph = load_graph(path, input_shape=(32, 48, 3))  # per sample, channels-last like the calibration data
    assert graph.tensors["images"].shape == (32, 48, 3) and graph.tensors["y"].shape == (16, 24, 8)
    assert graph.layer("conv").macs == 16 * 24 * 8 * 12 + 16 * 24 * 8  # the ReLU fused
    assert "input 'images': dynamic dims H, W fixed to 32, 48 from the given input shape" in graph.notes
    with pytest.raises(ModelError, match="input_shape"):
        load_graph(path, input_shape=(32, 48))


def test_onnx_nhwc_input_with_transpose(tmp_path: Path) -> None:
    from onnx import helper

    path = _onnx(tmp_path / "tf2onnx.onnx", [
        helper.make_node("Sub", ["input", "mean"], ["centred"], name="sub"),
        helper.make_node("Transpose", ["centred"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["y"], name="conv"),
    ], [("input", [1, 224, 224, 3])], ["y"], {"mean": np.float32([0.5, 0.4, 0.3]), "w": _w(6, 3, 1, 1)})
    graph = load_graph(path)
    assert graph.tensors["input"].shape == (224, 224, 3)  # not (224, 3, 224)
    assert graph.tensors["centred"].shape == (224, 224, 3)
    assert graph.tensors["nchw"].shape == (224, 224, 3) and graph.tensors["y"].shape == (224, 224, 6)
    assert graph.notes == ["input 'input': NHWC layout (Transpose perm=(0, 3, 1, 2) before the first Conv)"]
    forced = load_graph(path, input_layout="NCHW")
    assert forced.tensors["input"].shape == (224, 3, 224) and forced.notes == ["input 'input': NCHW layout (given)"]


# -- Keras: any built-in layer, registered custom layers, refusals -----------------------------------------
def test_keras_builtin_layers_of_every_kind() -> None:
    import keras

    L = keras.layers
    keras.utils.set_random_seed(0)
    img = keras.Input((8, 8, 3), name="img")
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0], name="norm")(img)
    x = L.Rescaling(0.5, name="rescale")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Cropping2D(1, name="crop")(x)
    x = L.Conv2D(4, 3, padding="same", name="conv")(x)
    x = L.UpSampling2D(2, name="up")(x)
    x = L.AveragePooling2D(2, name="avg")(x)
    seq = L.Reshape((16, 16), name="seq")(x)
    seq = L.LayerNormalization(name="ln")(seq)
    att = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(seq, seq)
    dot = L.Attention(name="dot")([seq, seq])
    seq = L.Add(name="add")([att, dot])
    seq = L.Conv1D(8, 3, padding="same", name="conv1d")(seq)
    seq = L.MaxPooling1D(2, name="pool1d")(seq)
    seq = L.GRU(6, return_sequences=True, name="gru")(seq)
    seq = L.Permute((2, 1), name="perm")(seq)
    vol = L.Reshape((2, 2, 2, 6), name="vol")(seq)
    vol = L.Conv3D(2, 1, name="conv3d")(L.ZeroPadding3D(0, name="pad3d")(vol))
    vol = L.GlobalAveragePooling3D(name="gap3d")(vol)
    out = L.Dense(3, name="fc")(L.RepeatVector(2, name="rep")(vol))
    model = keras.Model(img, out)
    graph = load_graph(model, optimize_graph=False)
    assert graph.total_weights == model.count_params()
    mha = graph.layer("mha")
    assert mha.weights == sum(int(np.prod(w.shape)) for w in model.get_layer("mha").weights)
    # projections (16 positions x each kernel) + scores and context of 2 heads over 16 x 16 positions
    proj = sum(16 * int(np.prod(d.kernel.shape)) for d in (model.get_layer("mha")._query_dense,
               model.get_layer("mha")._key_dense, model.get_layer("mha")._value_dense,
               model.get_layer("mha")._output_dense))
    assert mha.macs == proj + 16 * 16 * 2 * (4 + 4)
    assert graph.layer("dot").macs == 16 * 16 * 32 and graph.layer("conv3d").macs == 8 * 2 * 6
    assert graph.layer("norm").macs == graph.layer("rescale").macs == 8 * 8 * 3  # element-wise
    assert graph.layer("pad").macs == graph.layer("pad3d").macs == graph.layer("crop").macs == 0
    assert graph.layer("gru").macs == 8 * (8 * 18 + 6 * 18) + 8 * 6  # products + its tanh output


def test_keras_dynamic_dims_are_fixed_or_refused() -> None:
    import keras

    x = keras.Input((None, None, 3), name="frame")
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(x)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D(name="gap")(y))
    with pytest.raises(ModelError, match="input 'frame' has dynamic dims H, W: give --input-shape"):
        load_graph(model)
    graph = load_graph(model, input_shape=(16, 12, 3))
    assert graph.tensors["conv"].shape == (8, 6, 4) and graph.layer("conv").macs == 8 * 6 * 4 * 27
    assert graph.notes == ["input 'frame': dynamic dims H, W fixed to 16, 12 from the given input shape"]


def test_registered_custom_layer_is_imported() -> None:
    import keras

    @keras.saving.register_keras_serializable(package="splitsdk_tests")
    class ChannelScale(keras.layers.Layer):
        def build(self, shape: Any) -> None:
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x: Any) -> Any:
            return x * self.scale

    x = keras.Input((4, 4, 2))
    y = ChannelScale(name="scale")(keras.layers.Conv2D(3, 1, name="conv")(x))
    graph = load_graph(keras.Model(x, y))
    assert graph.layer("scale").op == "ChannelScale" and graph.layer("scale").weights == 3
    assert graph.layer("scale").macs == 4 * 4 * 3


def test_unregistered_custom_layer_is_refused_with_its_class() -> None:
    import keras

    class Unlisted(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x * 2.0

    x = keras.Input((4,))
    model = keras.Model(x, Unlisted(name="doubler_with_a_rather_long_layer_name_" + "x" * 150)(x))
    with pytest.raises(UnsupportedLayerError) as err:
        load_graph(model)
    msg = str(err.value)
    assert "\n" not in msg and "doubler_with_a_rather_long_layer_name_" + "x" * 150 in msg
    assert "class Unlisted" in msg and "register_keras_serializable" in msg


def test_lambda_is_refused_with_the_layer_named(tmp_path: Path) -> None:
    import keras

    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Lambda(lambda t: t + 1.0, name="plus_one")(x))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'plus_one' is a Lambda"):
        load_graph(model)
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match=r"lambda.keras: layer 'plus_one' is a Lambda: its Python code is not loaded"):
        load_graph(tmp_path / "lambda.keras")


def test_custom_layer_unknown_when_loading_a_file_is_named(tmp_path: Path) -> None:
    import keras

    @keras.saving.register_keras_serializable(package="splitsdk_tests_gone")
    class Vanishing(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x * 2.0

    x = keras.Input((4,))
    keras.Model(x, Vanishing(name="vanishing_layer")(x)).save(tmp_path / "custom.keras")
    del keras.saving.get_custom_objects()["splitsdk_tests_gone>Vanishing"]  # as in a fresh process
    with pytest.raises(ModelError) as err:
        load_graph(tmp_path / "custom.keras")
    msg = str(err.value)
    assert "layer 'vanishing_layer' (class Vanishing, registered as 'splitsdk_tests_gone>Vanishing')" in msg
    assert "register_keras_serializable" in msg and "\n" not in msg


# -- an unfoldable batch norm is a priced affine layer -------------------------------------------------------
def _dense_block() -> Any:
    """DenseNet-like: concat -> BN -> ReLU -> conv (a pre-activation BN no conv precedes directly)."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inp = keras.Input((8, 8, 3), name="img")
    a = L.Conv2D(4, 3, padding="same", name="stem")(x)
    b = L.Conv2D(4, 1, name="branch")(a)
    c = L.Concatenate(name="cat")([a, b])
    c = L.BatchNormalization(name="pre_bn")(c)
    c = L.ReLU(name="pre_relu")(c)
    c = L.Conv2D(8, 3, padding="same", name="conv")(c)
    y = L.Dense(5, name="fc")(L.GlobalAveragePooling2D(name="gap")(c))
    return model_zoo.randomize_batchnorm(keras.Model(inp, y, name="dense_block"))


def test_unfoldable_batchnorm_is_priced_as_tflite_ships_it(tmp_path: Path) -> None:
    from splitsdk.plan import Constraints, plan_model
    from splitsdk.profile.types import Link
    from splitsdk.quant import quantize_range
    from splitsdk.quant.sensitivity import weight_mse

    model = _dense_block()
    graph = load_graph(model)
    bn = graph.layer("pre_bn")
    assert bn.quantizable and bn.weights == 2 * 8  # MUL scale + ADD offset
    layer = model.get_layer("pre_bn")
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    scale = gamma / np.sqrt(var + layer.epsilon)
    offset = beta - mean * scale
    want = sum(float(np.sum((v - quantize_range(v, float(v.min()), float(v.max()), 8)) ** 2))
               for v in (scale, offset)) / 16
    errors = weight_mse(graph, bn, [2, 4, 8, 16])
    assert want > 0 and errors[2] == errors[4] == errors[8] == pytest.approx(want, rel=1e-5) and errors[16] == 0.0
    model.save(tmp_path / "dense_block.keras")
    plan = plan_model(str(tmp_path / "dense_block.keras"), "cortex-a7", Link(3.0, 10.0), Constraints(), exact=None)
    assert plan is not None

