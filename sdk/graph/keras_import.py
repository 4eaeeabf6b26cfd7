"""Keras 3 functional/sequential models -> LayerGraph (nested sub-models flattened, shared layers kept)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splitsdk.errors import DynamicShapeError, ModelError, UnsupportedLayerError
from splitsdk.graph.model import Layer, LayerGraph, TensorInfo

# A model input's dynamic dims fixed: one per-sample shape (the first input), or one per input name.
InputShape = Sequence[int] | Mapping[str, Sequence[int]]

# Layers that move or reshape data but do no arithmetic (every rank: ZeroPadding1D/2D/3D, ...).
ZERO_COST = {
    "InputLayer", "Reshape", "Flatten", "Concatenate", "Permute", "RepeatVector", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity", "Embedding", "Masking",
}
ZERO_COST_PREFIXES = ("ZeroPadding", "Cropping", "UpSampling")
# Layers that are no-ops at inference and are removed by the optimiser.
INFERENCE_NOOPS = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Identity",
}
ACTIVATION_LAYERS = {"ReLU", "Activation", "LeakyReLU", "ELU", "Softmax", "PReLU"}
MERGE_LAYERS = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
POOLING_PREFIXES = ("MaxPooling", "AveragePooling")
GLOBAL_POOLING_PREFIXES = ("GlobalAveragePooling", "GlobalMaxPooling")
RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN"}
CONVOLUTIONS = {"Conv1D", "Conv2D", "Conv3D", "Dense"}
DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}


@dataclass
class KerasCall:
    """How to replay one layer call: the Keras operation, its recorded arguments and input mapping."""

    op: Any
    node: Any
    input_ids: dict[int, str] = field(default_factory=dict)  # id(KerasTensor in node args) -> tensor name
    # set by the optimiser: a replacement operation (e.g. a folded conv) used instead of `op`
    replacement: Any = None

    def __call__(self, values: dict[str, Any]) -> list[Any]:
        local = {kid: values[name] for kid, name in self.input_ids.items()}
        args, kwargs = self.node.arguments.fill_in(local)
        out = (self.replacement or self.op)(*args, **kwargs)
        return list(out) if isinstance(out, list | tuple) else [out]


def _shape(kt: Any) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else 1 for d in kt.shape[1:])


def _count(x: Any) -> int:
    return int(math.prod(x.shape))


def _macs(op: Any, op_type: str, in_shapes: list[tuple[int, ...]], out_shapes: list[tuple[int, ...]]) -> int:
    """Multiply-accumulates of one call: products where a rule exists, one operation per output element else."""
    out_el = sum(math.prod(s) for s in out_shapes)
    in_el = sum(math.prod(s) for s in in_shapes)
    if op_type in CONVOLUTIONS or op_type == "EinsumDense":
        k = op.kernel
        return out_el // int(k.shape[-1]) * _count(k)
    if op_type in DEPTHWISE:
        k = op.kernel
        return out_el // (int(k.shape[-2]) * int(k.shape[-1])) * _count(k)
    if op_type in SEPARABLE:
        spatial = out_el // int(op.pointwise_kernel.shape[-1])
        return spatial * (_count(op.depthwise_kernel) + _count(op.pointwise_kernel))
    if op_type in TRANSPOSED:
        return in_el // int(op.kernel.shape[-1]) * _count(op.kernel)
    if op_type.startswith("ConvLSTM"):
        cell = op.cell
        rank = len(cell.kernel.shape) - 2
        steps = in_shapes[0][0]
        return steps * math.prod(out_shapes[0][-1 - rank : -1]) * (_count(cell.kernel) + _count(cell.recurrent_kernel))
    if op_type in RECURRENT and hasattr(getattr(op, "cell", None), "kernel"):
        steps = in_shapes[0][0] if len(in_shapes[0]) > 1 else 1
        cell = op.cell
        return steps * (_count(cell.kernel) + _count(cell.recurrent_kernel))
    if op_type == "Bidirectional":
        return _macs(op.forward_layer, type(op.forward_layer).__name__, in_shapes, out_shapes) + _macs(
            op.backward_layer, type(op.backward_layer).__name__, in_shapes, out_shapes
        )
    if op_type == "TimeDistributed":
        steps = in_shapes[0][0]
        return steps * _macs(op.layer, type(op.layer).__name__, [s[1:] for s in in_shapes], [s[1:] for s in out_shapes])
    if op_type == "MultiHeadAttention":
        return _attention_macs(op, in_shapes)
    if op_type in ("Attention", "AdditiveAttention"):
        (tq, dim), (tv, dv) = in_shapes[0][-2:], in_shapes[1][-2:]
        return tq * tv * (dim + dv)
    if op_type.startswith(POOLING_PREFIXES):
        return out_el * math.prod(op.pool_size)
    if op_type.startswith(GLOBAL_POOLING_PREFIXES):
        return in_el
    if op_type in MERGE_LAYERS:
        return out_el * max(len(in_shapes) - 1, 1)
    if op_type in ZERO_COST or op_type.startswith(ZERO_COST_PREFIXES):
        return 0
    return out_el  # element-wise (activations, normalisation, rescaling, ...)


def _attention_macs(op: Any, in_shapes: list[tuple[int, ...]]) -> int:
    """Projections (positions x kernel) plus the score and context products of every head."""
    q_len = math.prod(in_shapes[0][:-1])
    v_len = math.prod(in_shapes[1][:-1]) if len(in_shapes) > 1 else q_len
    k_len = math.prod(in_shapes[2][:-1]) if len(in_shapes) > 2 else v_len

    def proj(name: str, positions: int) -> int:
        dense = getattr(op, name, None)
        return positions * _count(dense.kernel) if dense is not None else 0

    key_dim = int(op.key_dim)
    value_dim = int(op.value_dim or key_dim)
    heads = q_len * k_len * int(op.num_heads) * (key_dim + value_dim)
    return (proj("_query_dense", q_len) + proj("_key_dense", k_len) + proj("_value_dense", v_len)
            + proj("_output_dense", q_len) + heads)


def _attrs(op: Any, op_type: str, in_shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    if op_type in ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"):
        kernel = op.depthwise_kernel if op_type == "SeparableConv2D" else op.kernel
        cin = in_shapes[0][-1]
        separable: dict[str, Any] = {}
        if op_type == "DepthwiseConv2D":
            filters, groups = cin * int(kernel.shape[3]), cin
        elif op_type == "SeparableConv2D":  # TFLite: a depthwise conv of its own (cin x multiplier), then a 1x1
            filters, groups = int(op.pointwise_kernel.shape[-1]), 1
            separable = {"depthwise_channels": cin * int(kernel.shape[3])}
        else:
            filters, groups = int(op.filters), int(getattr(op, "groups", 1))
        return {
            "kernel": tuple(int(d) for d in kernel.shape[:-2]),
            "strides": tuple(int(s) for s in op.strides),
            "filters": filters,
            "groups": groups,
            "in_channels": cin,
            "kernel_elements": _count(kernel) + (_count(op.pointwise_kernel) if separable else 0),
            **separable,
            **_zero_bias(op),
        }
    if op_type == "Dense":
        return {"kernel": (1,), "strides": (1,), "filters": int(op.units), "groups": 1,
                "in_channels": int(op.kernel.shape[0]), "kernel_elements": _count(op.kernel), **_zero_bias(op)}
    if op_type == "Activation":  # e.g. MobileNet's final softmax: its int8 output has a fixed range on TFLite
        name = getattr(getattr(op, "activation", None), "__name__", None)
        return {"activation": name} if name else {}
    return {}


def _zero_bias(op: Any) -> dict[str, bool]:
    """{"zero_bias": True} for a bias of zeros (an untrained layer's): the TFLite converter stores identical
    constant buffers once, so such a bias costs the file next to nothing."""
    bias = getattr(op, "bias", None) if getattr(op, "use_bias", False) else None
    return {"zero_bias": True} if bias is not None and not np.any(np.asarray(bias.numpy())) else {}


class _Importer:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorInfo] = {}
        self.weight_keys: dict[int, str] = {}
        self.used_names: set[str] = set()
        self.dynamic = False  # some tensor has a dynamic (None) dim: shapes are replayed on fixed inputs

    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.used_names:
            name = f"{base}@{k}"
            k += 1
        self.used_names.add(name)
        return name

    def walk(self, model: Any, scope: str, mapping: dict[int, str]) -> list[str]:
        """Add the layers of `model` (a Functional) whose inputs are already named in `mapping`."""
        depth_keys = sorted(model._nodes_by_depth.keys(), reverse=True)
        for depth in depth_keys:
            for node in model._nodes_by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                self.add_node(node, scope, mapping)
        return [mapping[id(kt)] for kt in model.outputs]

    def add_node(self, node: Any, scope: str, mapping: dict[int, str]) -> None:
        op = node.operation
        op_type = type(op).__name__
        in_kts = list(node.arguments.keras_tensors)
        missing = [kt for kt in in_kts if id(kt) not in mapping]
        if missing:
            raise ModelError(f"{self.origin}: layer '{scope}{op.name}' reads a tensor that is not connected")
        inner = _functional_of(op)
        if inner is not None:
            sub_scope = self.unique(f"{scope}{op.name}") + "/"
            inner_map = {id(a): mapping[id(b)] for a, b in zip(inner.inputs, in_kts, strict=False)}
            out_names = self.walk(inner, sub_scope, inner_map)
            for kt, name in zip(node.outputs, out_names, strict=True):
                mapping[id(kt)] = name
            return
        _check_supported(op, op_type, f"{self.origin}: layer '{scope}{op.name}'")
        name = self.unique(f"{scope}{op.name}")
        if op_type == "Bidirectional" and getattr(op, "return_state", False):
            raise UnsupportedLayerError(f"{self.origin}: layer '{name}': Bidirectional with return_state")
        outputs = [name] if len(node.outputs) == 1 else [f"{name}:{i}" for i in range(len(node.outputs))]
        for kt, tname in zip(node.outputs, outputs, strict=True):
            mapping[id(kt)] = tname
            self.tensors[tname] = TensorInfo(tname, _shape(kt), str(kt.dtype), name)
            self.dynamic = self.dynamic or any(d is None for d in kt.shape[1:])
        layer = Layer(
            name=name,
            op=op_type,
            inputs=[mapping[id(kt)] for kt in in_kts],
            outputs=outputs,
            weights=_weight_count(op, op_type),
            weight_key=self.weight_keys.setdefault(id(op), name),
            activation=_activation_name(op, op_type),
            source=KerasCall(op, node, {id(kt): mapping[id(kt)] for kt in in_kts}),
        )
        _measure(layer, self.tensors)
        self.layers.append(layer)


def _weight_count(op: Any, op_type: str) -> int:
    """The values a layer ships: its weights, a batch norm's as the per-channel scale and offset TFLite
    applies (MUL + ADD; the moving mean and variance are folded into them, not counted)."""
    if op_type == "BatchNormalization":
        return 2 * _count(op.moving_mean)
    return sum(_count(w) for w in getattr(op, "weights", []))


def _measure(layer: Layer, tensors: Mapping[str, TensorInfo]) -> None:
    """Set a Keras layer's MACs and geometry from the shapes of its tensors."""
    op = layer.source.op
    in_shapes = [tensors[t].shape for t in layer.inputs]
    out_shapes = [tensors[t].shape for t in layer.outputs]
    act = sum(math.prod(s) for s in out_shapes) if layer.activation else 0
    layer.macs = _macs(op, layer.op, in_shapes, out_shapes) + act
    layer.attrs = _attrs(op, layer.op, in_shapes)


def _activation_name(op: Any, op_type: str) -> str | None:
    act = getattr(op, "activation", None)
    if act is None or op_type in ACTIVATION_LAYERS:
        return None
    name = getattr(act, "__name__", str(act))
    return None if name == "linear" else name


def _functional_of(op: Any) -> Any:
    """The functional graph inside a nested model, or None for an ordinary layer."""
    import keras

    if isinstance(op, keras.Sequential):
        inner = getattr(op, "_functional", None)
        if inner is None:
            raise ModelError(f"nested Sequential '{op.name}' is not built")
        return inner
    if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth"):
        return op
    if isinstance(op, keras.Model):
        raise UnsupportedLayerError(f"subclassed model '{op.name}' has no graph to analyse")
    return None


def _check_supported(op: Any, op_type: str, where: str) -> None:
    """Built-in layers and registered custom layers are analysed; a Lambda or an unregistered class is not."""
    import keras

    if op_type == "Lambda":
        raise UnsupportedLayerError(
            f"{where} is a Lambda: its Python code can be neither analysed nor shipped; replace it with built-in "
            "layers or a custom layer class registered with @keras.saving.register_keras_serializable()"
        )
    cls = type(op)
    if cls.__module__.startswith("keras."):
        return
    if keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is not cls:
        raise UnsupportedLayerError(
            f"{where} (class {cls.__name__} from {cls.__module__}) is a custom layer that is not registered: "
            "decorate the class with @keras.saving.register_keras_serializable() so that it can be saved and rebuilt"
        )


def import_keras(model: Any, origin: str = "<keras.Model>", input_shape: InputShape | None = None) -> LayerGraph:
    """Build a LayerGraph from an in-memory Keras 3 model.

    Dynamic (None) input dims are fixed from `input_shape` (see `load_graph`), else refused."""
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ModelError(f"{origin}: Sequential model is not built (give it an Input)")
    elif isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        functional = model
    else:
        raise ModelError(f"{origin}: only functional and sequential Keras models have a graph to split")
    imp = _Importer(origin)
    mapping: dict[int, str] = {}
    inputs: list[TensorInfo] = []
    dims: dict[str, tuple[int | None, ...]] = {}
    for kt in functional.inputs:
        name = imp.unique(kt.name)
        mapping[id(kt)] = name
        inputs.append(TensorInfo(name, _shape(kt), str(kt.dtype), None))
        imp.tensors[name] = inputs[-1]
        dims[name] = tuple(None if d is None else int(d) for d in kt.shape[1:])
    outputs = imp.walk(functional, "", mapping)
    graph = LayerGraph(model.name, inputs, outputs, imp.layers, imp.tensors, source_format="keras", source=model)
    fixed = _fixed_input_shapes(origin, dims, input_shape, graph.notes)
    if imp.dynamic or any(None in d for d in dims.values()):
        _reshape(origin, graph, fixed)
    return graph


def _fixed_input_shapes(
    origin: str, dims: dict[str, tuple[int | None, ...]], input_shape: InputShape | None, notes: list[str]
) -> dict[str, tuple[int, ...]]:
    """Each input's per-sample shape, dynamic dims fixed from `input_shape` (a note for each fixed input)."""
    names = list(dims)
    given = dict(input_shape) if isinstance(input_shape, Mapping) else (
        {names[0]: input_shape} if input_shape is not None and names else {})
    fixed: dict[str, tuple[int, ...]] = {}
    for name, shape in dims.items():
        labels = {3: "HWC", 4: "DHWC"}.get(len(shape), "")
        label = [labels[i] if labels else f"dim {i + 1}" for i in range(len(shape))]
        want = given.pop(name, None)
        if want is None:
            if None in shape:
                dyn_labels = ", ".join(label[i] for i, d in enumerate(shape) if d is None)
                raise DynamicShapeError(f"{origin}: input '{name}' has dynamic dims {dyn_labels}: give --input-shape "
                                 "or calibration data")
            fixed[name] = tuple(int(d) for d in shape if d is not None)
            continue
        fix = tuple(int(d) for d in want)
        if len(fix) != len(shape) or any(d is not None and d != w for d, w in zip(shape, fix, strict=False)):
            raise ModelError(f"{origin}: input '{name}': input shape {fix} does not fit the model's "
                             f"{tuple('?' if d is None else d for d in shape)}")
        dyn = [i for i, d in enumerate(shape) if d is None]
        if dyn:
            notes.append(f"input '{name}': dynamic dims {', '.join(label[i] for i in dyn)} fixed to "
                         f"{', '.join(str(fix[i]) for i in dyn)} from the given input shape")
        fixed[name] = fix
    if given:
        raise ModelError(f"{origin}: input_shape names no input {next(iter(given))!r} (inputs: {', '.join(names)})")
    return fixed


def _reshape(origin: str, graph: LayerGraph, fixed: dict[str, tuple[int, ...]]) -> None:
    """Replay the layers on inputs of the `fixed` shapes: every tensor's shape, MACs and geometry follow."""
    import keras

    feeds = {t: keras.Input(shape=shape, dtype=graph.tensors[t].dtype) for t, shape in fixed.items()}
    values = run_layers(graph, feeds)
    for t, v in values.items():
        shape = tuple(v.shape[1:])
        if any(d is None for d in shape):
            raise ModelError(f"{origin}: tensor '{t}' has a dynamic shape {shape} even with the inputs fixed")
        info = graph.tensors[t]
        graph.tensors[t] = TensorInfo(info.name, tuple(int(d) for d in shape), info.dtype, info.producer)
    for layer in graph.layers():
        _measure(layer, graph.tensors)


def call_outputs(model: Any, inputs: list[Any]) -> list[np.ndarray]:
    """Call a Keras model in inference mode; its outputs as a list of arrays, whatever their structure."""
    out = model(list(inputs), training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def run_layers(
    graph: LayerGraph,
    feeds: dict[str, Any],
    layers: Sequence[str] | None = None,
    on_output: Callable[[str, Any], None] | None = None,
    transform: Callable[[str, Any], Any] | None = None,
) -> dict[str, Any]:
    """Replay (part of) a Keras-sourced graph on tensors: symbolic KerasTensors or eager arrays.

    `feeds` maps tensor names to values; layers run in topological order. Returns every tensor value.
    `transform(tensor, value)`, where given, replaces each value a layer produces (what later layers read).
    """
    values = dict(feeds)
    order = list(layers) if layers is not None else graph.topological_order()
    for name in order:
        layer = graph.layer(name)
        call = layer.source
        if not isinstance(call, KerasCall):
            raise ModelError(f"layer '{name}' has no Keras source to run")
        outs = call(values)
        for tname, val in zip(layer.outputs, outs, strict=True):
            values[tname] = val if transform is None else transform(tname, val)
            if on_output is not None:
                on_output(tname, val)
    return values


def build_keras(
    graph: LayerGraph,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    name: str | None = None,
) -> Any:
    """A new keras.Model computing `outputs` from `inputs` with the graph's (possibly optimised) layers.

    Used to check optimisations numerically, to expose intermediate activations for sensitivity
    measurement, and to cut edge/cloud sub-models.
    """
    import keras

    inputs = list(inputs if inputs is not None else graph.inputs)
    outputs = list(outputs if outputs is not None else graph.outputs)
    feeds = {}
    for t in inputs:
        info = graph.tensors[t]
        feeds[t] = keras.Input(shape=info.shape, dtype=info.dtype, name=f"{_safe(t)}_in")
    if layers is None:
        needed = _ancestors(graph, outputs, set(inputs))
        layers = [n for n in graph.topological_order() if n in needed]
    values = run_layers(graph, feeds, layers)
    return keras.Model([feeds[t] for t in inputs], [values[t] for t in outputs], name=name or graph.name)


def _ancestors(graph: LayerGraph, outputs: Sequence[str], stop: set[str]) -> set[str]:
    producer = {t: lay.name for lay in graph.layers() for t in lay.outputs}
    needed: set[str] = set()
    todo = [t for t in outputs if t not in stop]
    while todo:
        t = todo.pop()
        p = producer.get(t)
        if p is None or p in needed:
            if p is None and t not in stop:
                raise ModelError(f"tensor '{t}' cannot be computed from the given inputs")
            continue
        needed.add(p)
        todo.extend(x for x in graph.layer(p).inputs if x not in stop)
    return needed


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
