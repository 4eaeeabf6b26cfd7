"""Inference optimisations applied before any analysis (the paper's "optimised graph").

- inference no-ops (Dropout, GaussianNoise, ...) are removed;
- batch normalisation is folded into the preceding Conv/DepthwiseConv/Dense;
- an activation layer is fused into the preceding weighted layer.

For Keras-sourced graphs the merged layer gets a real replacement Keras layer with folded weights,
so `build_keras(optimized_graph)` computes the same function as the original model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from splitsdk.graph.keras_import import INFERENCE_NOOPS, KerasCall
from splitsdk.graph.model import Layer, LayerGraph, TensorInfo

FOLD_INTO = {"Conv1D", "Conv2D", "DepthwiseConv2D", "Dense"}
FUSE_INTO = FOLD_INTO | {"SeparableConv2D"}
# activation layer config -> Keras activation name it fuses to
_FUSABLE_ACTIVATIONS = {"relu", "relu6", "sigmoid", "tanh", "swish", "silu", "hard_sigmoid", "gelu", "elu"}


def fold_scale(gamma: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    return np.asarray(gamma / np.sqrt(var + eps))


def fold_batchnorm_weights(
    kernel: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
    depthwise: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold y = gamma (x - mean) / sqrt(var + eps) + beta into a kernel whose last axis is the output channel.

    Depthwise kernels (kh, kw, cin, mult) have output channel cin * mult + m.
    """
    s = fold_scale(gamma, var, eps)
    b = np.zeros_like(mean) if bias is None else bias
    if depthwise:
        cin, mult = kernel.shape[-2], kernel.shape[-1]
        k = kernel * s.reshape(cin, mult)
    else:
        k = kernel * s
    return k.astype(kernel.dtype), ((b - mean) * s + beta).astype(kernel.dtype)


def _activation_of(layer: Layer) -> str | None:
    """The Keras activation name an activation layer is equivalent to, if it can be fused."""
    call = layer.source
    op = call.op if isinstance(call, KerasCall) else None
    if layer.op == "ReLU":
        cfg = op.get_config() if op is not None else {"max_value": layer.attrs.get("max_value")}
        if cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
            return None
        mv = cfg.get("max_value")
        return "relu" if mv is None else ("relu6" if float(mv) == 6.0 else None)
    if layer.op == "Activation":
        name = layer.attrs.get("activation") if op is None else op.get_config().get("activation")
        return name if isinstance(name, str) and name in _FUSABLE_ACTIVATIONS else None
    return None


def _bn_axis_is_last(layer: Layer, rank: int) -> bool:
    call = layer.source
    if not isinstance(call, KerasCall):
        return bool(layer.attrs.get("channels_last", True))
    axis = call.op.axis
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    return isinstance(axis, int) and axis in (-1, rank)


def optimize(graph: LayerGraph) -> LayerGraph:
    """Return a new LayerGraph with no-ops removed, BN folded and activations fused."""
    layers = [dataclasses.replace(lay, folded=list(lay.folded), inputs=list(lay.inputs)) for lay in graph.layers()]
    for lay in layers:
        if isinstance(lay.source, KerasCall):
            lay.source = dataclasses.replace(lay.source, input_ids=dict(lay.source.input_ids))
    tensors = dict(graph.tensors)
    outputs = list(graph.outputs)

    def rename(old: str, new: str) -> None:
        for lay in layers:
            lay.inputs = [new if t == old else t for t in lay.inputs]
            if isinstance(lay.source, KerasCall):
                lay.source.input_ids = {k: (new if v == old else v) for k, v in lay.source.input_ids.items()}
        outputs[:] = [new if t == old else t for t in outputs]

    # 1. inference no-ops
    for lay in [x for x in layers if x.op in INFERENCE_NOOPS and len(x.inputs) == 1 and len(x.outputs) == 1]:
        layers.remove(lay)
        rename(lay.outputs[0], lay.inputs[0])
        tensors.pop(lay.outputs[0], None)

    key_uses: dict[str, int] = {}
    for lay in layers:
        key_uses[lay.weight_key] = key_uses.get(lay.weight_key, 0) + 1

    def sole_consumer(t: str) -> Layer | None:
        if t in outputs:
            return None
        readers = [x for x in layers if t in x.inputs]
        return readers[0] if len(readers) == 1 and readers[0].inputs == [t] else None

    def merge(into: Layer, gone: Layer) -> None:
        layers.remove(gone)
        tensors.pop(into.outputs[0], None)
        into.outputs = list(gone.outputs)
        for t in gone.outputs:
            info = tensors[t]
            tensors[t] = TensorInfo(info.name, info.shape, info.dtype, into.name)
        into.folded.append(gone.name)

    # 2. batch-norm folding, 3. activation fusion
    for lay in list(layers):
        if lay not in layers or len(lay.outputs) != 1 or key_uses[lay.weight_key] != 1:
            continue
        if lay.op in FOLD_INTO and lay.activation is None:
            bn = sole_consumer(lay.outputs[0])
            rank = len(tensors[lay.outputs[0]].shape)
            if bn is not None and bn.op == "BatchNormalization" and _bn_axis_is_last(bn, rank):
                lay.weights = _fold(lay, bn)
                merge(lay, bn)
        if lay.op in FUSE_INTO and lay.activation is None:
            act_layer = sole_consumer(lay.outputs[0])
            act = _activation_of(act_layer) if act_layer is not None else None
            if act_layer is not None and act is not None:
                _fuse_keras(lay, act)
                lay.activation = act
                lay.macs += act_layer.macs
                merge(lay, act_layer)
    # 4. a batch norm left after a separable conv: the TFLite converter folds it into that conv's 1x1 (its bias)
    ops = {x.name: x.op for x in layers}
    for lay in layers:
        producer = tensors[lay.inputs[0]].producer if lay.op == "BatchNormalization" and lay.inputs else None
        if producer is not None and ops.get(producer) == "SeparableConv2D" and sole_consumer(lay.inputs[0]) is lay:
            lay.attrs = {**lay.attrs, "folds_into": producer}
    return LayerGraph(
        graph.name,
        [graph.tensors[t] for t in graph.inputs],
        outputs,
        layers,
        tensors,
        source_format=graph.source_format,
        source=graph.source,
        notes=graph.notes,
    )


def _fold(layer: Layer, bn: Layer) -> int:
    """Fold `bn` into `layer`; returns the layer's new weight count (kernel + one bias per channel)."""
    call = layer.source
    if not isinstance(call, KerasCall):
        # ONNX: the importer keeps the BN parameters; sensitivity folds them numerically
        params = bn.attrs.get("bn")
        own_zero = layer.attrs.get("zero_bias") or layer.weights == int(layer.attrs["kernel_elements"])  # or none
        attrs = {key: v for key, v in layer.attrs.items() if key != "zero_bias"}
        if params is not None and own_zero:
            gamma, beta, mean, var, eps = params
            if not np.any(beta - mean * fold_scale(gamma, var, eps)):  # the folded bias: zeros, as untrained
                attrs["zero_bias"] = True
        layer.attrs = {**attrs, "bn": params}
        return int(layer.attrs["kernel_elements"]) + int(layer.attrs["filters"])
    op, bn_op = call.op, bn.source.op
    gamma = np.asarray(bn_op.gamma.numpy()) if bn_op.gamma is not None else None
    beta = np.asarray(bn_op.beta.numpy()) if bn_op.beta is not None else None
    mean, var = np.asarray(bn_op.moving_mean.numpy()), np.asarray(bn_op.moving_variance.numpy())
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    base = call.replacement or op
    kernel = np.asarray(base.kernel.numpy())
    bias = np.asarray(base.bias.numpy()) if getattr(base, "use_bias", False) else None
    k, b = fold_batchnorm_weights(
        kernel, bias, gamma, beta, mean, var, float(bn_op.epsilon), depthwise=layer.op == "DepthwiseConv2D"
    )
    cfg = base.get_config()
    cfg["use_bias"] = True
    _replace(layer, cfg, {"kernel": k, "bias": b})
    attrs = {key: v for key, v in layer.attrs.items() if key != "zero_bias"}  # a copy: the unoptimised graph's
    layer.attrs = {**attrs, "zero_bias": True} if not np.any(b) else attrs  # an untrained net's: shared in the file
    return int(k.size + b.size)


def _fuse_keras(layer: Layer, activation: str) -> None:
    call = layer.source
    if not isinstance(call, KerasCall):
        return
    base = call.replacement or call.op
    cfg = base.get_config()
    cfg["activation"] = activation
    _replace(layer, cfg, {w.name: np.asarray(w.numpy()) for w in base.weights}, keep_order=base)


def _replace(layer: Layer, cfg: dict[str, Any], weights: dict[str, np.ndarray], keep_order: Any = None) -> None:
    call = layer.source
    assert isinstance(call, KerasCall)
    cls = type(call.op)
    new = cls.from_config(cfg)
    in_shape = call.node.arguments.keras_tensors[0].shape
    new.build(in_shape)
    if keep_order is not None:
        new.set_weights([weights[w.name] for w in keep_order.weights])
    else:
        new.set_weights([weights[w.name] for w in new.weights])
    call.replacement = new
