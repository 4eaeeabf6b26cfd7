"""ONNX test models written with onnx.helper: the chain and residual networks of model_zoo (NCHW), and the
any-model corpus (`CORPUS`): what other exporters produce (a dynamic batch dim, a tf2onnx NHWC export with
its `:0`/`/` names, a Paddle export with Constant-node weights, two outputs and a two-input cloud half)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(nodes: list, inits: dict, inp: tuple, out: tuple, path: Path, name: str, batch: int | str = 1,
          extra_outputs: tuple = ()) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(inp[0], TensorProto.FLOAT, [batch, *inp[1]])],
        [helper.make_tensor_value_info(o[0], TensorProto.FLOAT, [batch, *o[1]]) for o in (out, *extra_outputs)],
        [numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def chain(path: Path) -> Path:
    from onnx import helper

    r = np.random.default_rng(0)
    inits = {
        "w1": r.normal(size=(4, 3, 3, 3)), "g": r.uniform(0.5, 1.5, 4), "b": r.normal(size=4),
        "m": r.normal(size=4), "v": r.uniform(0.5, 2, 4), "w2": r.normal(size=(8, 4, 3, 3)), "b2": r.normal(size=8),
        "wf": r.normal(size=(8, 10)), "bf": r.normal(size=10), "axes": np.array([2, 3], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["img", "w1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "g", "b", "m", "v"], ["bn1"], name="bn1"),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool", "w2", "b2"], ["conv2_pre"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv2_pre"], ["conv2"], name="conv2_relu"),
        helper.make_node("ReduceMean", ["conv2", "axes"], ["gap"], name="gap", keepdims=0),
        helper.make_node("Gemm", ["gap", "wf", "bf"], ["fc"], name="fc"),
    ]
    return _save(nodes, inits, ("img", (3, 8, 8)), ("fc", (10,)), path, "chain")


def residual(path: Path) -> Path:
    from onnx import helper

    r = np.random.default_rng(0)
    inits = {
        "w1": r.normal(size=(2, 2, 1, 1)), "b1": r.normal(size=2), "w2": r.normal(size=(2, 2, 1, 1)),
        "b2": r.normal(size=2), "wf": r.normal(size=(2, 3)), "bf": r.normal(size=3),
        "axes": np.array([2, 3], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1_pre"], name="c1"),
        helper.make_node("Relu", ["c1_pre"], ["c1"], name="c1_relu"),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], name="c2"),
        helper.make_node("Add", ["c2", "x"], ["add"], name="add"),
        helper.make_node("ReduceMean", ["add", "axes"], ["gap"], name="gap", keepdims=0),
        helper.make_node("Gemm", ["gap", "wf", "bf"], ["fc"], name="fc"),
    ]
    return _save(nodes, inits, ("x", (2, 4, 4)), ("fc", (3,)), path, "residual")


def dynamic_batch(path: Path) -> Path:
    """Input 'images' with a symbolic batch dim ('N'), as torch.onnx.export(dynamic_axes=...) writes it."""
    from onnx import helper

    r = np.random.default_rng(1)
    inits = {"w": r.normal(size=(6, 3, 3, 3)) * 0.3, "b": r.normal(size=6) * 0.1, "wf": r.normal(size=(6, 10)),
             "bf": r.normal(size=10) * 0.1}
    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["/conv/Conv_output_0"], name="/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["/conv/Conv_output_0"], ["/relu/Relu_output_0"], name="/relu/Relu"),
        helper.make_node("GlobalAveragePool", ["/relu/Relu_output_0"], ["/pool/out"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["/pool/out"], ["/flat/out"], name="/flat/Flatten"),
        helper.make_node("Gemm", ["/flat/out", "wf", "bf"], ["logits"], name="/fc/Gemm"),
    ]
    return _save(nodes, inits, ("images", (3, 8, 8)), ("logits", (10,)), path, "dynamic", batch="N")


def tf2onnx_nhwc(path: Path) -> Path:
    """A tf2onnx export: NHWC input 'input_1:0', a Transpose to NCHW before the first Conv, TF scope names
    (`model/conv2d/Conv2D`), weights named like Keras variables (`Conv@7/kernel`)."""
    from onnx import helper

    r = np.random.default_rng(2)
    inits = {"Conv@7/kernel": r.normal(size=(4, 3, 3, 3)) * 0.3, "model/conv2d/bias:0": r.normal(size=4) * 0.1,
             "model/conv2d_1/kernel:0": r.normal(size=(8, 4, 3, 3)) * 0.3, "axes:0": np.array([2, 3], np.int64),
             "model/dense/kernel:0": r.normal(size=(8, 5)), "model/dense/bias:0": r.normal(size=5) * 0.1}
    nodes = [
        helper.make_node("Transpose", ["input_1:0"], ["model/conv2d/Conv2D__6:0"], name="model/conv2d/Conv2D__6",
                         perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["model/conv2d/Conv2D__6:0", "Conv@7/kernel", "model/conv2d/bias:0"],
                         ["model/conv2d/BiasAdd:0"], name="Conv@7", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["model/conv2d/BiasAdd:0"], ["model/conv2d/Relu:0"], name="model/conv2d/Relu"),
        helper.make_node("Conv", ["model/conv2d/Relu:0", "model/conv2d_1/kernel:0"], ["model/conv2d_1/Conv2D:0"],
                         name="model/conv2d_1/Conv2D", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["model/conv2d_1/Conv2D:0"], ["model/conv2d_1/Relu:0"], name="model/conv2d_1/Relu"),
        helper.make_node("ReduceMean", ["model/conv2d_1/Relu:0", "axes:0"], ["model/gap/Mean:0"], name="model/gap/Mean",
                         keepdims=0),
        helper.make_node("Gemm", ["model/gap/Mean:0", "model/dense/kernel:0", "model/dense/bias:0"],
                         ["Identity:0"], name="model/dense/MatMul"),
    ]
    return _save(nodes, inits, ("input_1:0", (8, 8, 3)), ("Identity:0", (5,)), path, "tf2onnx")


def paddle_constants(path: Path) -> Path:
    """A Paddle2ONNX export: every weight in a Constant node (no initialisers), Paddle's dotted names."""
    from onnx import helper, numpy_helper

    r = np.random.default_rng(3)
    weights = {"conv2d_0.w_0": r.normal(size=(4, 3, 3, 3)) * 0.3, "conv2d_0.b_0": r.normal(size=4) * 0.1,
               "linear_0.w_0": r.normal(size=(4, 6)), "linear_0.b_0": r.normal(size=6) * 0.1}
    consts = [helper.make_node("Constant", [], [k], name=f"{k}.const",
                               value=numpy_helper.from_array(v.astype(np.float32), k)) for k, v in weights.items()]
    nodes = [*consts,
             helper.make_node("Conv", ["x", "conv2d_0.w_0", "conv2d_0.b_0"], ["conv2d_0.tmp_1"], name="conv2d_0",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv2d_0.tmp_1"], ["relu_0.tmp_0"], name="relu_0"),
             helper.make_node("GlobalAveragePool", ["relu_0.tmp_0"], ["pool2d_0.tmp_0"], name="pool2d_0"),
             helper.make_node("Flatten", ["pool2d_0.tmp_0"], ["flatten_0.tmp_0"], name="flatten_0"),
             helper.make_node("Gemm", ["flatten_0.tmp_0", "linear_0.w_0", "linear_0.b_0"], ["linear_0.tmp_1"],
                              name="linear_0")]
    return _save(nodes, {}, ("x", (3, 8, 8)), ("linear_0.tmp_1", (6,)), path, "paddle")


def two_branch(path: Path) -> Path:
    """Two outputs, 'z_out' (40) and 'a_vec' (10), and a split whose cloud half takes 'z_act' (8x8x4) and 'a_vec':
    names whose alphabetical order (the TFLite converter's) is not the wire order."""
    from onnx import helper

    r = np.random.default_rng(4)
    inits = {"w1": r.normal(size=(4, 3, 3, 3)) * 0.3, "wa": r.normal(size=(4, 10)), "ba": r.normal(size=10) * 0.1,
             "w2": r.normal(size=(8, 4, 3, 3)) * 0.3, "wz": r.normal(size=(18, 40)) * 0.3, "bz": r.normal(size=40)}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["z_map"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["z_map"], ["z_act"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["z_act"], ["a_pool"], name="a_gap"),
        helper.make_node("Flatten", ["a_pool"], ["a_flat"], name="a_flatten"),
        helper.make_node("Gemm", ["a_flat", "wa", "ba"], ["a_vec"], name="a_fc"),
        helper.make_node("Conv", ["z_act", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["c2_act"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["c2_act"], ["z_pool"], name="z_gap"),
        helper.make_node("Flatten", ["z_pool"], ["feat"], name="z_flatten"),
        helper.make_node("Concat", ["feat", "a_vec"], ["both"], name="concat", axis=1),
        helper.make_node("Gemm", ["both", "wz", "bz"], ["z_out"], name="z_fc"),
    ]
    return _save(nodes, inits, ("x", (3, 8, 8)), ("z_out", (40,)), path, "two_branch",
                 extra_outputs=(("a_vec", (10,)),))


def softmax_head(path: Path) -> Path:
    """conv -> GAP -> a small-weight Gemm -> Softmax over 10 classes: outputs all near 0.1 (an untrained classifier),
    a range far narrower than the int8 softmax's 1/256 steps."""
    from onnx import helper

    r = np.random.default_rng(5)
    inits = {"w1": r.normal(size=(4, 3, 3, 3)) * 0.3, "wf": r.normal(size=(4, 10)) * 0.01, "bf": np.zeros(10)}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["pool"], name="gap"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return _save(nodes, inits, ("x", (3, 8, 8)), ("probs", (10,)), path, "softmax_head")


CORPUS = {"dynamic_batch": dynamic_batch, "tf2onnx_nhwc": tf2onnx_nhwc, "paddle_constants": paddle_constants,
          "two_branch": two_branch, "softmax_head": softmax_head}
