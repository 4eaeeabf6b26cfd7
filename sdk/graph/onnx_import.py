"""ONNX models -> LayerGraph, analysed on the ONNX graph itself (NCHW feature maps reported as NHWC).

Op types are mapped to the Keras names used everywhere else, so an ONNX model and the same network
built in Keras give the same split table. Nodes that compute only from constants (shape arithmetic)
are folded away as constants.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import ModelError, UnsupportedLayerError, first_line
from splitsdk.graph.model import Layer, LayerGraph, TensorInfo

_OP_MAP = {
    "Conv": "Conv2D",
    "ConvTranspose": "Conv2DTranspose",
    "Gemm": "Dense",
    "MatMul": "Dense",
    "BatchNormalization": "BatchNormalization",
    "Relu": "ReLU",
    "Clip": "ReLU",
    "Sigmoid": "Activation",
    "Tanh": "Activation",
    "Softmax": "Softmax",
    "LeakyRelu": "LeakyReLU",
    "Add": "Add",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Concat": "Concatenate",
    "MaxPool": "MaxPooling2D",
    "AveragePool": "AveragePooling2D",
    "GlobalAveragePool": "GlobalAveragePooling2D",
    "GlobalMaxPool": "GlobalMaxPooling2D",
    "ReduceMean": "GlobalAveragePooling2D",
    "Flatten": "Flatten",
    "Reshape": "Reshape",
    "Transpose": "Permute",
    "Dropout": "Dropout",
    "Identity": "Identity",
    "Pad": "ZeroPadding2D",
    "Resize": "UpSampling2D",
    "Upsample": "UpSampling2D",
    "Squeeze": "Reshape",
    "Unsqueeze": "Reshape",
}
_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"}


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def import_onnx(path: Path) -> LayerGraph:
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = onnx.load(str(path))
        model = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read ONNX model: {first_line(exc)}") from exc
    g = model.graph
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(int(d.dim_value) if d.dim_value > 0 else 1 for d in dims)[1:]
    inputs = [TensorInfo(i.name, _nhwc(shapes[i.name]), "float32") for i in g.input if i.name not in consts]
    dynamic = {t.name for t in inputs}
    tensors: dict[str, TensorInfo] = {}
    layers: list[Layer] = []
    used: set[str] = set()
    for idx, node in enumerate(g.node):
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attr(node, "value"))
            continue
        dyn_in = [t for t in node.input if t in dynamic]
        if not dyn_in:
            continue  # shape arithmetic on constants: not a layer
        name = node.name or f"{node.op_type.lower()}_{idx}"
        while name in used:
            name += "_"
        used.add(name)
        op = _OP_MAP.get(node.op_type)
        if op is None:
            raise UnsupportedLayerError(f"{path}: node '{name}': unsupported ONNX op type {node.op_type}")
        for t in node.output:
            if t not in shapes:
                raise ModelError(f"{path}: node '{name}': output '{t}' has no inferred shape")
            dynamic.add(t)
            tensors[t] = TensorInfo(t, _nhwc(shapes[t]), "float32", name)
        params = [consts[t] for t in node.input if t in consts and consts[t].dtype.kind == "f"]
        weights = sum(int(p.size) for p in params) if node.op_type in _WEIGHTED else 0
        attrs: dict[str, Any] = {}
        if node.op_type == "Clip":
            lo = consts.get(node.input[1]) if len(node.input) > 1 else _attr(node, "min")
            hi = consts.get(node.input[2]) if len(node.input) > 2 else _attr(node, "max")
            if lo is None or float(np.asarray(lo)) != 0.0 or hi is None:
                raise UnsupportedLayerError(f"{path}: node '{name}': Clip other than ReLU/ReLU6")
            attrs["max_value"] = float(np.asarray(hi))
        if node.op_type in ("Sigmoid", "Tanh"):
            attrs["activation"] = node.op_type.lower()
        if node.op_type == "BatchNormalization":
            s, b, m, v = (consts[t] for t in node.input[1:5])
            attrs["bn"] = (s, b, m, v, float(_attr(node, "epsilon", 1e-5)))
        macs = _macs(node, op, params, [tensors[t].shape for t in node.output],
                     [_nhwc(shapes.get(t, ())) for t in dyn_in])
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            kernel = params[0] if params else None
            if kernel is None:
                raise UnsupportedLayerError(f"{path}: node '{name}': {node.op_type} without constant weights")
            attrs.update(_geometry(node, kernel, shapes.get(dyn_in[0], ())))
            if attrs.get("depthwise"):
                op = "DepthwiseConv2D"
        layers.append(
            Layer(name=name, op=op, inputs=dyn_in, outputs=list(node.output), weights=weights, macs=macs,
                  attrs=attrs, source=node)
        )
    outputs = [o.name for o in g.output]
    return LayerGraph(path.stem, inputs, outputs, layers, tensors, source_format="onnx", source=model)


def _geometry(node: Any, kernel: np.ndarray, in_shape: tuple[int, ...]) -> dict[str, Any]:
    if node.op_type in ("Gemm", "MatMul"):
        transposed = bool(_attr(node, "transB", 0)) if node.op_type == "Gemm" else False
        cin, cout = (kernel.shape[1], kernel.shape[0]) if transposed else kernel.shape
        return {"kernel": (1,), "strides": (1,), "filters": int(cout), "groups": 1, "in_channels": int(cin),
                "kernel_elements": int(kernel.size)}
    group = int(_attr(node, "group", 1))
    cout = int(kernel.shape[0])
    cin = int(in_shape[0]) if in_shape else int(kernel.shape[1]) * group
    return {
        "kernel": tuple(int(d) for d in kernel.shape[2:]),
        "strides": tuple(int(s) for s in _attr(node, "strides", [1] * (kernel.ndim - 2))),
        "filters": cout,
        "groups": group,
        "in_channels": cin,
        "depthwise": group > 1 and group == cin,
        "kernel_elements": int(kernel.size),
    }


def _macs(
    node: Any, op: str, params: list[np.ndarray], out_shapes: list[tuple[int, ...]], in_shapes: list[tuple[int, ...]]
) -> int:
    out_el = sum(math.prod(s) for s in out_shapes)
    in_el = sum(math.prod(s) for s in in_shapes)
    t = node.op_type
    if t == "Conv":
        return out_el // int(params[0].shape[0]) * int(params[0].size)
    if t == "ConvTranspose":
        return in_el // int(params[0].shape[0]) * int(params[0].size)
    if t in ("Gemm", "MatMul"):
        k = params[0]
        cout = k.shape[0] if t == "Gemm" and _attr(node, "transB", 0) else k.shape[-1]
        return out_el // int(cout) * int(k.size)
    if t in ("MaxPool", "AveragePool"):
        return out_el * math.prod(_attr(node, "kernel_shape", [1]))
    if t in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
        return in_el
    if op in ("Add", "Subtract", "Multiply"):
        return out_el
    if op in ("Flatten", "Reshape", "Concatenate", "Permute", "Dropout", "Identity", "ZeroPadding2D"):
        return 0
    return out_el
