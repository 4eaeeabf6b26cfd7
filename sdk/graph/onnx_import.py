"""ONNX models -> LayerGraph, analysed on the ONNX graph itself (channels-first maps reported channels-last).

Every op type is imported: the heavy ones (Conv, ConvTranspose, Gemm, MatMul, LSTM/GRU/RNN) with their
MACs, data movement (Reshape, Transpose, Concat, Split, Slice, Gather, Pad, ...) at no cost, anything
else at one operation per output element. Op types with a Keras twin get the Keras name used everywhere
else, so an ONNX model and the same network built in Keras give the same split table; the others keep
their ONNX name. Shapes come from ONNX shape inference (with data propagation), else from running the
graph once with onnxruntime. Nodes that compute only from constants, and shape arithmetic (Shape ->
Gather -> Unsqueeze -> Concat -> Reshape), are folded away as constants: they are not layers.

Dynamic input dims are fixed from `input_shape` (the per-sample shape as the graph reports it: the shape
of the calibration data), a dynamic batch dim to 1; anything else dynamic is refused. The input layout
is read from the graph: a Conv reading the input (directly or through element-wise ops) means
channels-first, a Transpose to channels-first before the first Conv means a channels-last input.
Every such decision is a line of `LayerGraph.notes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import DynamicShapeError, ModelError, first_line
from splitsdk.graph.model import Layer, LayerGraph, TensorInfo
from splitsdk.graph.onnx_weights import OnnxConstants

InputShape = Sequence[int] | Mapping[str, Sequence[int]]

# ONNX op types with a Keras twin (the name the rest of splitsdk knows them by)
_KERAS_NAMES = {
    "BatchNormalization": "BatchNormalization",
    "Relu": "ReLU",
    "Sigmoid": "Activation",
    "Tanh": "Activation",
    "Softmax": "Softmax",
    "LeakyRelu": "LeakyReLU",
    "Add": "Add",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Concat": "Concatenate",
    "GlobalAveragePool": "GlobalAveragePooling2D",
    "GlobalMaxPool": "GlobalMaxPooling2D",
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
    "LayerNormalization": "LayerNormalization",
}
# data movement: no arithmetic
_FREE = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Concat", "Transpose", "Pad", "Split",
    "Slice", "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Cast", "CastLike", "DepthToSpace",
    "SpaceToDepth", "ConstantOfShape", "ScatterND", "ScatterElements",
}
_POOLS = {"MaxPool": "MaxPooling", "AveragePool": "AveragePooling", "LpPool": "LpPooling"}
_REDUCE = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}  # and every Reduce* op
_RECURRENT = {"LSTM", "GRU", "RNN"}
_KERNEL_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# ops whose constant float inputs are weights (elsewhere constants are operands: scalars, shapes, axes)
_WEIGHTED = {*_KERNEL_OPS, *_RECURRENT, "BatchNormalization", "InstanceNormalization", "LayerNormalization",
             "PRelu"}
# ops that only exist on channels-first maps: the first one reading the input decides its layout
_CHANNELS_FIRST = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
                   "GlobalMaxPool", "BatchNormalization", "InstanceNormalization"}
_SHAPE_OPS = {"Shape", "Size"}  # constants once the input shapes are fixed


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


@dataclass(frozen=True)
class Layout:
    """How one input's feature maps are laid out, and the rank of the maps the convolutions see."""

    channels_last_input: bool  # the input itself is channels-last (a Transpose makes it channels-first)
    conv_rank: int  # full rank (batch included) of the convolutions' maps; 0: no convolution
    transpose: str | None = None  # the output of the Transpose turning the input channels-first
    reason: str = ""


def detect_layout(graph: Any, input_name: str, override: str | None = None) -> Layout:
    """The layout of `input_name` from the first channels-first op or Transpose its data reaches."""
    reached = {input_name}
    found: tuple[Any, Any] | None = None
    for node in graph.node:
        if node.op_type in _SHAPE_OPS or not any(t in reached for t in node.input):
            continue
        if node.op_type in _CHANNELS_FIRST or node.op_type == "Transpose":
            found = (node, node.input[0])
            break
        reached.update(t for t in node.output if t)
    rank = _rank(graph, input_name)
    if override is not None:
        mode = override.upper()
        if mode not in ("NCHW", "NHWC"):
            raise ModelError(f"input_layout: expected NCHW or NHWC, got {override!r}")
        transpose = found[0].output[0] if found and found[0].op_type == "Transpose" else None
        return Layout(mode == "NHWC", rank if rank >= 3 else 4, transpose, f"{mode} layout (given)")
    if found is None or not any(n.op_type in _CHANNELS_FIRST for n in graph.node):
        return Layout(False, 0, None, "no convolution reads it: shapes as in the ONNX graph")
    node, _ = found
    if node.op_type == "Transpose":
        perm = tuple(int(p) for p in _attr(node, "perm", []))
        r = len(perm)
        if r >= 3 and perm == (0, r - 1, *range(1, r - 1)):
            return Layout(True, r, node.output[0],
                          f"NHWC layout (Transpose perm={perm} before the first Conv)")
        return Layout(False, 0, None, f"Transpose perm={perm} before any Conv: shapes as in the ONNX graph")
    return Layout(False, rank if rank >= 3 else 4, None, f"NCHW layout ({node.op_type} '{node.name}' reads it)")


def _rank(graph: Any, name: str) -> int:
    for vi in graph.input:
        if vi.name == name:
            return len(vi.type.tensor_type.shape.dim)
    return 0


def _dim_names(rank: int, layout: Layout) -> list[str]:
    letters = {3: "NCL", 4: "NCHW", 5: "NCDHW"}.get(rank)
    if letters is None or layout.conv_rank == 0:
        return ["batch", *(f"dim {i}" for i in range(1, rank))]
    if layout.channels_last_input:
        letters = letters[0] + letters[2:] + "C"
    return ["batch" if c == "N" else c for c in letters]


def _fix_inputs(
    path: Path, inputs: list[Any], layouts: dict[str, Layout], input_shape: InputShape | None,
    notes: list[str],
) -> dict[str, list[int]]:
    """The full (batch-1) shape of each input, its dynamic dims fixed; a note for each fixed dim."""
    given: dict[str, Sequence[int]] = {}
    if isinstance(input_shape, Mapping):
        given = dict(input_shape)
        unknown = sorted(set(given) - {i.name for i in inputs})
        if unknown:
            raise ModelError(f"{path}: input_shape names no input {unknown[0]!r} (inputs: "
                             f"{', '.join(i.name for i in inputs)})")
    elif input_shape is not None and inputs:
        given = {inputs[0].name: input_shape}
    fixed: dict[str, list[int]] = {}
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        full: list[int | None] = [int(d.dim_value) if d.dim_value > 0 else None for d in dims]
        names = _dim_names(len(full), layouts[vi.name])
        labels = [n + (f" ('{d.dim_param}')" if d.dim_param and d.dim_param != n else "")
                  for n, d in zip(names, dims, strict=True)]
        want = given.get(vi.name)
        if want is not None:
            want = [int(d) for d in want]
            if len(want) != len(full) - 1:
                raise ModelError(f"{path}: input '{vi.name}': input_shape {tuple(want)} has {len(want)} dims, the "
                                 f"input has {len(full) - 1} per sample")
            if _permuted(layouts[vi.name], len(full), input_tensor=True):
                want = [want[-1], *want[:-1]]  # given channels-last, as the graph reports it
            clash = [i for i in range(1, len(full)) if full[i] is not None and full[i] != want[i - 1]]
            if clash:
                raise ModelError(f"{path}: input '{vi.name}': input_shape {tuple(want)} (in the model's layout) "
                                 f"does not match its fixed dims {tuple(d or '?' for d in full[1:])}")
            dyn = [i for i in range(1, len(full)) if full[i] is None]
            if dyn:
                notes.append(f"input '{vi.name}': dynamic dims {', '.join(labels[i] for i in dyn)} fixed to "
                             f"{', '.join(str(want[i - 1]) for i in dyn)} from the given input shape")
            full = [full[0], *want]
        missing = [labels[i] for i in range(1, len(full)) if full[i] is None]
        if missing:
            raise DynamicShapeError(
                f"{path}: input '{vi.name}' has dynamic dims {', '.join(missing)}: "
                "give --input-shape or calibration data"
            )
        if full and full[0] is None:
            notes.append(f"input '{vi.name}': dynamic batch dim {labels[0]} analysed per sample (batch 1)")
            full[0] = 1
        fixed[vi.name] = [int(d) for d in full if d is not None]
    return fixed


def _permuted(layout: Layout, full_rank: int, input_tensor: bool = False) -> bool:
    """Whether a tensor of `full_rank` is reported with its channel axis moved last."""
    if layout.conv_rank == 0 or full_rank != layout.conv_rank:
        return False
    return not (input_tensor and layout.channels_last_input)


def _static_model(model: Any, fixed: dict[str, list[int]], batch_too: bool) -> Any:
    """A copy of `model` with the inputs' dims fixed (the batch dim too with `batch_too`)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        if vi.name not in fixed:
            continue
        for i, (d, v) in enumerate(zip(vi.type.tensor_type.shape.dim, fixed[vi.name], strict=True)):
            if d.dim_value <= 0 and (i > 0 or batch_too):
                d.Clear()
                d.dim_value = v
    return out


def _inferred_shapes(path: Path, model: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Static shapes (batch 1) and dtypes of every tensor ONNX shape inference can tell."""
    from onnx import helper, shape_inference

    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise ModelError(f"{path}: ONNX shape inference failed: {first_line(exc)}") from exc
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if tt.elem_type:
            dtypes[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    return shapes, dtypes


def _run_shapes(path: Path, model: Any, fixed: dict[str, list[int]], names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of `names` from one onnxruntime run on zeros (where shape inference could not tell)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in names if t not in have)
    feeds = {}
    for vi in probe.graph.input:
        if vi.name in fixed:
            dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            feeds[vi.name] = np.zeros(fixed[vi.name], dtype=dtype)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        values = sess.run(names, feeds)
    except Exception as exc:
        raise ModelError(f"{path}: cannot tell the shape of tensor '{names[0]}' (shape inference and a run with "
                         f"onnxruntime failed: {first_line(exc)})") from exc
    return {t: tuple(int(d) for d in np.shape(v)) for t, v in zip(names, values, strict=True)}


def _per_sample(full: tuple[int, ...], permute: bool) -> tuple[int, ...]:
    """The per-sample shape of a batch-1 tensor: the leading batch dim (else the first 1) dropped."""
    if not full:
        return ()
    if full[0] == 1:
        shape = full[1:]
    elif 1 in full:
        i = full.index(1)
        shape = (*full[:i], *full[i + 1 :])
    else:
        shape = full
    return (*shape[1:], shape[0]) if permute and len(shape) >= 2 else shape


def import_onnx(path: Path, input_shape: InputShape | None = None, input_layout: str | None = None) -> LayerGraph:
    """Import an ONNX model file; see the module docstring for shapes, layout and dynamic dims."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read ONNX model: {first_line(exc)}") from exc
    g = model.graph
    consts = OnnxConstants(g)
    inputs = [i for i in g.input if i.name not in consts]
    notes: list[str] = []
    layouts = {i.name: detect_layout(g, i.name, input_layout) for i in inputs}
    for i in inputs:
        if _rank(g, i.name) >= 3:
            notes.append(f"input '{i.name}': {layouts[i.name].reason}")
    fixed = _fix_inputs(path, inputs, layouts, input_shape, notes)
    static = _static_model(model, fixed, batch_too=True)
    shapes, dtypes = _inferred_shapes(path, static)
    for name, full in fixed.items():
        shapes[name] = tuple(full)

    # the tensors computed from the inputs (the rest is constant: weights and shape arithmetic)
    dynamic = {i.name for i in inputs}
    nodes: list[tuple[int, Any]] = []
    for idx, node in enumerate(g.node):
        if node.op_type == "Constant" or node.op_type in _SHAPE_OPS:
            continue
        if any(t in dynamic for t in node.input):
            nodes.append((idx, node))
            dynamic.update(t for t in node.output if t)
    unknown = [t for _, n in nodes for t in n.output if t and t not in shapes]
    if unknown:
        shapes.update(_run_shapes(path, static, fixed, unknown))

    # which tensors are channels-first maps: all of the conv rank but those still in a channels-last input
    channels_last = {i.name for i in inputs if layouts[i.name].channels_last_input}
    for _, node in nodes:
        if node.output[0] != _transpose_of(layouts) and all(t in channels_last for t in node.input if t in dynamic):
            channels_last.update(t for t in node.output if t)
    layout = next((lay for lay in layouts.values() if lay.conv_rank), Layout(False, 0))

    def info(t: str, producer: str | None) -> TensorInfo:
        full = shapes[t]
        permute = _permuted(layout, len(full)) and t not in channels_last
        return TensorInfo(t, _per_sample(full, permute), dtypes.get(t, "float32"), producer)

    tensors: dict[str, TensorInfo] = {}
    layers: list[Layer] = []
    used: set[str] = set()
    for idx, node in nodes:
        name = node.name or f"{node.op_type.lower()}_{idx}"
        while name in used:
            name += "_"
        used.add(name)
        outs = [t for t in node.output if t]
        for t in outs:
            tensors[t] = info(t, name)
        layers.append(_layer(node, name, [t for t in node.input if t in dynamic], outs, consts, shapes))
    graph_inputs = [info(i.name, None) for i in inputs]
    return LayerGraph(path.stem, graph_inputs, [o.name for o in g.output], layers, tensors, source_format="onnx",
                      source=_static_model(model, fixed, batch_too=False), notes=notes)


def _transpose_of(layouts: dict[str, Layout]) -> str | None:
    return next((lay.transpose for lay in layouts.values() if lay.transpose), None)


def _layer(
    node: Any, name: str, inputs: list[str], outputs: list[str], consts: OnnxConstants,
    shapes: dict[str, tuple[int, ...]],
) -> Layer:
    t = node.op_type
    const_in = {i: consts.get(x) for i, x in enumerate(node.input) if x and x in consts}
    params = [v for v in const_in.values() if v is not None and v.dtype.kind == "f"]
    in_full = [shapes.get(x, ()) for x in inputs]
    out_el = sum(math.prod(shapes[x]) for x in outputs)
    in_el = sum(math.prod(s) for s in in_full)
    op = _KERAS_NAMES.get(t, t)
    attrs: dict[str, Any] = {}
    weights = sum(int(p.size) for p in params) if t in _WEIGHTED else 0
    macs = out_el
    kernel = const_in.get(1)
    if t in _KERNEL_OPS and kernel is not None and kernel.ndim >= 2:
        attrs.update(_geometry(node, kernel, in_full[0] if in_full else ()))
        bias = const_in.get(2) if t != "MatMul" else None
        if bias is not None and not np.any(bias):  # zeros (an untrained layer's): one shared buffer in the file
            attrs["zero_bias"] = True
        rank = kernel.ndim - 2
        if t == "Conv":
            op = f"{'Depthwise' if attrs['depthwise'] and rank <= 2 else ''}Conv{max(rank, 1)}D"
            macs = out_el // int(kernel.shape[0]) * int(kernel.size)
        elif t == "ConvTranspose":
            op = f"Conv{max(rank, 1)}DTranspose"
            macs = in_el // int(kernel.shape[0]) * int(kernel.size)
        else:
            op = "Dense"
            macs = out_el * int(attrs["in_channels"])
    elif t in ("MatMul", "Gemm"):  # a product of two computed tensors (attention)
        a = const_in.get(0)
        a_shape = a.shape if a is not None else shapes.get(node.input[0], ())
        macs = out_el * int(a_shape[-1] if a_shape else 1)
        op = "MatMul"
    elif t in _RECURRENT:
        x_full = in_full[0] if in_full else (1,)
        steps = x_full[1] if _attr(node, "layout", 0) else x_full[0]
        w, r = const_in.get(1), const_in.get(2)
        macs = int(steps) * sum(int(v.size) for v in (w, r) if v is not None)
    elif t in _POOLS:
        kernel_shape = _attr(node, "kernel_shape", [1])
        op = f"{_POOLS[t]}{len(kernel_shape)}D"
        macs = out_el * math.prod(kernel_shape)
    elif t in _REDUCE or t.startswith("Reduce"):
        macs = in_el
        if t == "ReduceMean" and _spatial_mean(node, const_in, in_full):
            op = "GlobalAveragePooling2D"
    elif t in _FREE:
        macs = 0
    if t == "Clip":
        lo = const_in.get(1) if len(node.input) > 1 and node.input[1] else _attr(node, "min")
        hi = const_in.get(2) if len(node.input) > 2 and node.input[2] else _attr(node, "max")
        if lo is not None and float(np.asarray(lo)) == 0.0:
            op = "ReLU"
            if hi is not None:
                attrs["max_value"] = float(np.asarray(hi))
    if t in ("Sigmoid", "Tanh"):
        attrs["activation"] = t.lower()
    if t == "BatchNormalization":
        vectors = [const_in.get(i) for i in range(1, 5)]
        if all(v is not None for v in vectors):
            s, b, m, v = (np.asarray(x, np.float32) for x in vectors if x is not None)
            attrs["bn"] = (s, b, m, v, float(_attr(node, "epsilon", 1e-5)))
            weights = 2 * int(s.size)  # ships as a per-channel scale and offset (MUL + ADD)
    return Layer(name=name, op=op, inputs=inputs, outputs=outputs, weights=weights, macs=macs, attrs=attrs,
                 source=node)


def _spatial_mean(node: Any, const_in: dict[int, np.ndarray | None], in_full: list[tuple[int, ...]]) -> bool:
    """A ReduceMean over the two spatial axes of a 4-D map (a global average pool)."""
    axes = _attr(node, "axes")
    if axes is None and const_in.get(1) is not None:
        axes = const_in[1]
    rank = len(in_full[0]) if in_full else 0
    return axes is not None and rank == 4 and sorted(int(a) % 4 for a in np.ravel(axes)) == [2, 3]


def _geometry(node: Any, kernel: np.ndarray, in_full: tuple[int, ...]) -> dict[str, Any]:
    if node.op_type in ("Gemm", "MatMul"):
        transposed = bool(_attr(node, "transB", 0)) if node.op_type == "Gemm" else False
        cin, cout = (kernel.shape[-1], kernel.shape[-2]) if transposed else kernel.shape[-2:]
        return {"kernel": (1,), "strides": (1,), "filters": int(cout), "groups": 1, "in_channels": int(cin),
                "kernel_elements": int(kernel.size)}
    group = int(_attr(node, "group", 1))
    cout = int(kernel.shape[0]) if node.op_type == "Conv" else int(kernel.shape[1]) * group
    cin = int(in_full[1]) if len(in_full) > 1 else int(kernel.shape[1]) * group
    return {
        "kernel": tuple(int(d) for d in kernel.shape[2:]),
        "strides": tuple(int(s) for s in _attr(node, "strides", [1] * (kernel.ndim - 2))),
        "filters": cout,
        "groups": group,
        "in_channels": cin,
        "depthwise": group > 1 and group == cin,
        "kernel_elements": int(kernel.size),
    }
