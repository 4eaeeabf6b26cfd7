"""Per-layer sensitivity: MSE of weights and output activations at each candidate bit width.

Weights: the layer's (BN-folded) kernels quantised as convert ships them (`splitsdk.quant.grid`:
symmetric per output channel, sub-8-bit grids re-rounded onto the int8 container).
Activations: asymmetric quantisation over the range calibrated on the data. Both are measured in
two streamed passes over the calibration data (ranges, then errors), so memory stays bounded by
one batch of activations; results are cached on disk keyed by model, data and bits.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.graph.keras_import import KerasCall, build_keras, call_outputs
from splitsdk.graph.model import Layer, LayerGraph
from splitsdk.graph.onnx_weights import OnnxConstants
from splitsdk.quant.calib import Dataset
from splitsdk.quant.grid import (
    CONTAINER_BITS,
    RangeCalibration,
    keras_kernels,
    onnx_channels,
    quantize_range,
    value_range,
    weight_errors,
)
from splitsdk.quant.types import Sensitivity

CACHE_VERSION = 3  # 3: vector-only layers (unfolded batch norm, ...) priced as TFLite ships their constants


def cache_dir() -> Path:
    return Path(os.environ.get("SPLITSDK_CACHE", Path.home() / ".cache" / "splitsdk"))


def kernel_matrices(graph: LayerGraph, layer: Layer) -> list[np.ndarray]:
    """The layer's kernels as (rows, output channels) matrices, BN folding applied."""
    src = layer.source
    if isinstance(src, KerasCall):
        return [channels.matrix(arr) for arr, channels in keras_kernels(src.replacement or src.op)]
    return _onnx_kernels(graph, layer)


def _onnx_kernels(graph: LayerGraph, layer: Layer) -> list[np.ndarray]:
    """The kernel (input 1, an initialiser or a Constant node) of an ONNX node, as fake_quantize_onnx ships it."""
    node = layer.source
    arr = OnnxConstants(graph.source.graph).get(node.input[1]) if len(node.input) > 1 else None
    if arr is None or arr.ndim < 2 or arr.dtype.kind != "f":
        return []  # no kernel: vectors are priced by `affine_vectors`
    mat = onnx_channels(node).matrix(arr.astype(np.float32))
    bn = layer.attrs.get("bn")
    if bn is not None:  # folded into the output channels
        gamma, _beta, _mean, var, eps = bn
        mat = mat * (gamma / np.sqrt(var + eps)).astype(np.float32)
    return [mat]


def affine_vectors(graph: LayerGraph, layer: Layer) -> list[np.ndarray]:
    """The constant vectors a layer without kernels ships. An unfolded batch norm becomes TFLite's MUL by a
    per-channel scale and ADD of a per-channel offset; other layers (normalisation, PReLU) ship their weights."""
    src = layer.source
    bn = _batchnorm(layer)
    if bn is not None:
        gamma, beta, mean, var, eps = bn
        scale = gamma / np.sqrt(var + eps)
        return [scale.astype(np.float32), (beta - mean * scale).astype(np.float32)]
    if isinstance(src, KerasCall):
        values = [np.asarray(w.numpy()) for w in (src.replacement or src.op).weights]
    else:
        consts = OnnxConstants(graph.source.graph)
        values = [v for v in (consts.get(t) for t in src.input[1:] if t) if v is not None]
    return [v.astype(np.float32) for v in values if v.dtype.kind == "f"]


def _batchnorm(layer: Layer) -> tuple[Any, ...] | None:
    """(gamma, beta, mean, variance, epsilon) of an unfolded batch norm, None for any other layer."""
    if layer.op != "BatchNormalization":
        return None
    src = layer.source
    if not isinstance(src, KerasCall):
        bn: tuple[Any, ...] | None = layer.attrs.get("bn")
        return bn
    op = src.op
    mean, var = np.asarray(op.moving_mean.numpy()), np.asarray(op.moving_variance.numpy())
    gamma = np.asarray(op.gamma.numpy()) if op.gamma is not None else np.ones_like(mean)
    beta = np.asarray(op.beta.numpy()) if op.beta is not None else np.zeros_like(mean)
    return gamma, beta, mean, var, float(op.epsilon)


def vector_errors(vectors: list[np.ndarray], bits: Sequence[int]) -> dict[int, float]:
    """Mean squared error of constant vectors as TFLite's int8 converter stores them: each tensor on one
    asymmetric min-max int8 grid (0 included), whatever width below 8 the plan names (they are not re-rounded
    below int8); above 8 bits the layer runs in float."""
    total = sum(v.size for v in vectors)
    sq = sum(float(np.sum((v - quantize_range(v, *value_range(v), CONTAINER_BITS)) ** 2, dtype=np.float64))
             for v in vectors if v.size)
    return {b: sq / total if total and b <= CONTAINER_BITS else 0.0 for b in bits}


def weight_mse(graph: LayerGraph, layer: Layer, bits: Sequence[int]) -> dict[int, float]:
    mats = kernel_matrices(graph, layer)
    if mats:
        return weight_errors(mats, bits)
    return vector_errors(affine_vectors(graph, layer), bits)


def activation_runner(graph: LayerGraph, tensors: list[str]) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function batch -> the values of `tensors`, for Keras- or ONNX-sourced graphs."""
    if graph.source_format == "onnx":
        import onnx
        import onnxruntime as ort

        model = onnx.ModelProto()
        model.CopyFrom(graph.source)
        existing = {o.name for o in model.graph.output}
        for t in tensors:
            if t not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=t))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), opts)
        in_name = sess.get_inputs()[0].name

        fixed_batch = sess.get_inputs()[0].shape[0] == 1

        model_shape = list(sess.get_inputs()[0].shape[1:])

        def run_onnx(x: np.ndarray) -> list[np.ndarray]:  # channels-last data; an NHWC model takes it as is
            nchw = np.moveaxis(x, -1, 1) if x.ndim == 4 and list(x.shape[1:]) != model_shape else x
            if not fixed_batch:
                return list(sess.run(tensors, {in_name: nchw}))
            per_sample = [sess.run(tensors, {in_name: nchw[i : i + 1]}) for i in range(len(nchw))]
            return [np.concatenate(parts) for parts in zip(*per_sample, strict=True)]

        return run_onnx
    model = build_keras(graph, outputs=tensors)

    def run_keras(x: np.ndarray) -> list[np.ndarray]:
        return call_outputs(model, [x])

    return run_keras


def _stream(
    run: Callable[[np.ndarray], list[np.ndarray]], data: Dataset, batch: int, progress: Any
) -> Iterator[list[np.ndarray]]:
    for x in data.batches(batch):
        yield run(x)
        if progress is not None:
            progress(len(x))


def measure_sensitivity(
    graph: LayerGraph,
    data: Dataset,
    bits: Sequence[int],
    model_sha256: str = "",
    batch_size: int = 4,
    use_cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> Sensitivity:
    """Measure weight and activation MSE of every layer at every bit width in `bits`."""
    bits = sorted(set(bits))
    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, model_sha256, data.sha256, bits, graph.topological_order()]).encode()
    ).hexdigest()[:32]
    path = cache_dir() / "sensitivity" / f"{key}.json"
    if use_cache and model_sha256 and path.exists():
        return sensitivity_from_json(json.loads(path.read_text()))

    layers = list(graph.layers())
    result = Sensitivity(bits=list(bits), model_sha256=model_sha256, data_sha256=data.sha256,
                         samples=len(data.x), synthetic_data=data.synthetic)
    for lay in layers:
        if lay.quantizable:
            result.weights[lay.name] = weight_mse(graph, lay, bits)

    tensors = [t for lay in layers for t in lay.outputs]
    run = activation_runner(graph, tensors)
    n = len(data.x)
    ranges = RangeCalibration()
    done = 0

    def tick(stage: str) -> Callable[[int], None]:
        def f(k: int) -> None:
            nonlocal done
            done += k
            if progress is not None:
                progress(stage, done, 2 * n)
        return f

    for outs in _stream(run, data, batch_size, tick("ranges")):
        for t, v in zip(tensors, outs, strict=True):
            ranges.observe(t, v)
    sq = {t: dict.fromkeys(bits, 0.0) for t in tensors}
    count = dict.fromkeys(tensors, 0)
    for outs in _stream(run, data, batch_size, tick("errors")):
        for t, v in zip(tensors, outs, strict=True):
            count[t] += v.size
            for b in bits:
                sq[t][b] += float(np.sum((v - ranges.quantize(t, v, b)) ** 2, dtype=np.float64))
    for lay in layers:
        el = sum(count[t] for t in lay.outputs)
        result.activations[lay.name] = {b: sum(sq[t][b] for t in lay.outputs) / max(el, 1) for b in bits}
    if use_cache and model_sha256:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sensitivity_to_json(result)))
        tmp.replace(path)
    return result


def sensitivity_to_json(s: Sensitivity) -> dict[str, Any]:
    return {
        "bits": s.bits,
        "weights": {k: {str(b): v for b, v in d.items()} for k, d in s.weights.items()},
        "activations": {k: {str(b): v for b, v in d.items()} for k, d in s.activations.items()},
        "model_sha256": s.model_sha256,
        "data_sha256": s.data_sha256,
        "samples": s.samples,
        "synthetic_data": s.synthetic_data,
    }


def sensitivity_from_json(d: dict[str, Any]) -> Sensitivity:
    return Sensitivity(
        bits=[int(b) for b in d["bits"]],
        weights={k: {int(b): float(v) for b, v in m.items()} for k, m in d["weights"].items()},
        activations={k: {int(b): float(v) for b, v in m.items()} for k, m in d["activations"].items()},
        model_sha256=d["model_sha256"],
        data_sha256=d["data_sha256"],
        samples=int(d["samples"]),
        synthetic_data=bool(d["synthetic_data"]),
    )
