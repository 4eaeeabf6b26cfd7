"""Keras 3 functional/sequential models -> LayerGraph (nested sub-models flattened, shared layers kept)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splitsdk.errors import ModelError, UnsupportedLayerError
from splitsdk.graph.model import Layer, LayerGraph, TensorInfo

# Layers that move or reshape data but do no arithmetic.
ZERO_COST = {
    "InputLayer", "Reshape", "Flatten", "Concatenate", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
    "Cropping2D", "Permute", "RepeatVector", "UpSampling1D", "UpSampling2D", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Identity", "Embedding", "Masking",
}
# Layers that are no-ops at inference and are removed by the optimiser.
INFERENCE_NOOPS = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity",
}
ACTIVATION_LAYERS = {"ReLU", "Activation", "LeakyReLU", "ELU", "Softmax", "PReLU"}
MERGE_LAYERS = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
POOLING = {"MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"}
GLOBAL_POOLING = {
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
}
RECURRENT = {"LSTM", "GRU", "SimpleRNN"}
WEIGHTED = {
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
    "BatchNormalization", "LayerNormalization", "Bidirectional", "PReLU", *RECURRENT,
}


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
    out_el = sum(math.prod(s) for s in out_shapes)
    in_el = sum(math.prod(s) for s in in_shapes)
    if op_type in ("Conv1D", "Conv2D", "Conv3D", "Dense"):
        k = op.kernel
        return out_el // int(k.shape[-1]) * _count(k)
    if op_type == "DepthwiseConv2D":
        k = op.kernel
        return out_el // (int(k.shape[2]) * int(k.shape[3])) * _count(k)
    if op_type == "SeparableConv2D":
        spatial = out_el // int(op.pointwise_kernel.shape[-1])
        return spatial * (_count(op.depthwise_kernel) + _count(op.pointwise_kernel))
    if op_type == "Conv2DTranspose":
        return in_el // int(op.kernel.shape[-1]) * _count(op.kernel)
    if op_type in RECURRENT:
        steps = in_shapes[0][0] if len(in_shapes[0]) > 1 else 1
        cell = op.cell
        return steps * (_count(cell.kernel) + _count(cell.recurrent_kernel))
    if op_type == "Bidirectional":
        return _macs(op.forward_layer, type(op.forward_layer).__name__, in_shapes, out_shapes) + _macs(
            op.backward_layer, type(op.backward_layer).__name__, in_shapes, out_shapes
        )
    if op_type in POOLING:
        return out_el * math.prod(op.pool_size)
    if op_type in GLOBAL_POOLING:
        return in_el
    if op_type in MERGE_LAYERS:
        return out_el * max(len(in_shapes) - 1, 1)
    if op_type in ZERO_COST:
        return 0
    return out_el  # element-wise (activations, normalisation, resizing...)


def _attrs(op: Any, op_type: str, in_shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    if op_type in ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"):
        kernel = op.depthwise_kernel if op_type == "SeparableConv2D" else op.kernel
        cin = in_shapes[0][-1]
        if op_type == "DepthwiseConv2D":
            filters, groups = cin * int(kernel.shape[3]), cin
        elif op_type == "SeparableConv2D":
            filters, groups = int(op.pointwise_kernel.shape[-1]), 1
        else:
            filters, groups = int(op.filters), int(getattr(op, "groups", 1))
        return {
            "kernel": tuple(int(d) for d in kernel.shape[:-2]),
            "strides": tuple(int(s) for s in op.strides),
            "filters": filters,
            "groups": groups,
            "in_channels": cin,
        }
    if op_type == "Dense":
        return {"kernel": (1,), "strides": (1,), "filters": int(op.units), "groups": 1,
                "in_channels": int(op.kernel.shape[0])}
    return {}


class _Importer:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.layers: list[Layer] = []
        self.tensors: dict[str, TensorInfo] = {}
        self.weight_keys: dict[int, str] = {}
        self.used_names: set[str] = set()

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
        in_shapes = [_shape(kt) for kt in in_kts]
        key = self.weight_keys.setdefault(id(op), name)
        weights = sum(_count(w) for w in getattr(op, "weights", []))
        self.layers.append(
            Layer(
                name=name,
                op=op_type,
                inputs=[mapping[id(kt)] for kt in in_kts],
                outputs=outputs,
                weights=weights,
                macs=_macs(op, op_type, in_shapes, [self.tensors[t].shape for t in outputs])
                + (sum(self.tensors[t].elements for t in outputs) if _activation_name(op, op_type) else 0),
                weight_key=key,
                activation=_activation_name(op, op_type),
                attrs=_attrs(op, op_type, in_shapes),
                source=KerasCall(op, node, {id(kt): mapping[id(kt)] for kt in in_kts}),
            )
        )


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
    module = type(op).__module__
    builtin = module.startswith("keras.")
    if not builtin:
        raise UnsupportedLayerError(f"{where}: unsupported layer type {op_type} (custom class from {module})")
    if op_type == "Lambda":
        raise UnsupportedLayerError(f"{where}: unsupported layer type Lambda (arbitrary Python code)")
    has_weights = bool(getattr(op, "weights", []))
    if has_weights and op_type not in WEIGHTED:
        raise UnsupportedLayerError(f"{where}: unsupported layer type {op_type}")


def import_keras(model: Any, origin: str = "<keras.Model>") -> LayerGraph:
    """Build a LayerGraph from an in-memory Keras 3 model."""
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
    for kt in functional.inputs:
        name = imp.unique(kt.name)
        mapping[id(kt)] = name
        inputs.append(TensorInfo(name, _shape(kt), str(kt.dtype), None))
    outputs = imp.walk(functional, "", mapping)
    return LayerGraph(model.name, inputs, outputs, imp.layers, imp.tensors, source_format="keras", source=model)


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
