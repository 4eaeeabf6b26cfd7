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
from splitsdk.quant.calib import Dataset
from splitsdk.quant.grid import RangeCalibration, keras_kernels, onnx_channels, weight_errors
from splitsdk.quant.types import Sensitivity

CACHE_VERSION = 2  # 2: weights as shipped (output channels per op; sub-8-bit grids re-rounded onto int8)


def cache_dir() -> Path:
    return Path(os.environ.get("SPLITSDK_CACHE", Path.home() / ".cache" / "splitsdk"))


def kernel_matrices(graph: LayerGraph, layer: Layer) -> list[np.ndarray]:
    """The layer's kernels as (rows, output channels) matrices, BN folding applied."""
    src = layer.source
    if isinstance(src, KerasCall):
        return [channels.matrix(arr) for arr, channels in keras_kernels(src.replacement or src.op)]
    return _onnx_kernels(graph, layer)


def _onnx_kernels(graph: LayerGraph, layer: Layer) -> list[np.ndarray]:
    from onnx import numpy_helper

    node = layer.source
    inits = {i.name: i for i in graph.source.graph.initializer}
    arr = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    if arr.ndim < 2:
        return []  # a batch normalisation's vectors stay in higher precision
    mat = onnx_channels(node).matrix(arr)
    bn = layer.attrs.get("bn")
    if bn is not None:  # folded into the output channels
        gamma, _beta, _mean, var, eps = bn
        mat = mat * (gamma / np.sqrt(var + eps)).astype(np.float32)
    return [mat]


def weight_mse(graph: LayerGraph, layer: Layer, bits: Sequence[int]) -> dict[int, float]:
    return weight_errors(kernel_matrices(graph, layer), bits)


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

        def run_onnx(x: np.ndarray) -> list[np.ndarray]:
            nchw = np.moveaxis(x, -1, 1) if x.ndim == 4 else x
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
