"""The chain and residual networks of model_zoo, written directly in ONNX (NCHW), for import tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(nodes: list, inits: dict, inp: tuple, out: tuple, path: Path, name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(inp[0], TensorProto.FLOAT, [1, *inp[1]])],
        [helper.make_tensor_value_info(out[0], TensorProto.FLOAT, [1, *out[1]])],
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
