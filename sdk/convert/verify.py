"""Host verification of a bundle: full model vs edge.tflite -> LUT -> pack -> unpack -> dequantise -> cloud."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.graph import LayerGraph
from splitsdk.graph.keras_import import call_outputs
from splitsdk.quant import Dataset
from splitsdk.runtime import run_tflite


@dataclass(frozen=True)
class Verification:
    samples: int
    output_mse: float  # mean over outputs of the MSE against the full float model
    output_max_abs: float
    output_rel_mse: float  # output MSE over the mean square of the float outputs
    predicted_error: float  # the plan's error proxy (summed per-layer MSE)
    simulated_mse: float  # the plan simulated in float: b-bit weights, transmitted tensors at their bits
    agreement: float  # fraction of samples whose argmax (first output) agrees with the float model
    accuracy_float: float | None = None
    accuracy_split: float | None = None

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_float is None or self.accuracy_split is None:
            return None
        return (self.accuracy_float - self.accuracy_split) * 100.0


def split_pipeline(bundle_dir: Path, x: np.ndarray) -> list[np.ndarray]:
    """What camera + receiver compute: int8 edge model, wire quantisation and packing, float cloud model."""
    import keras

    from splitsdk.wire.bundle import load_bundle
    from splitsdk.wire.packing import pack, requantize_lut, unpack_dequantize

    bundle = load_bundle(bundle_dir)
    edge_out = run_tflite(bundle.edge_model.read_bytes(), [x.astype(np.float32)])
    cloud_in = []
    for c in bundle.crossing:
        q = edge_out[c.edge_output]
        rows = []
        for sample in q:
            wire = pack(requantize_lut(sample.astype(np.int8), c.lut), c.bits)
            rows.append(unpack_dequantize(wire, c.shape, c.bits, c.scale, c.zero_point))
        cloud_in.append(np.stack(rows))
    if bundle.cloud_model.suffix == ".tflite":  # ONNX-sourced bundles ship the cloud half as float TFLite
        return run_tflite(bundle.cloud_model.read_bytes(), cloud_in)
    cloud = keras.models.load_model(bundle.cloud_model, compile=False)
    out = cloud.predict(cloud_in if len(cloud_in) > 1 else cloud_in[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def full_model_outputs(graph: LayerGraph, x: np.ndarray) -> list[np.ndarray]:
    """The unsplit float model's outputs (Keras or onnxruntime), 4-D outputs in NHWC."""
    from splitsdk.quant.sensitivity import activation_runner

    outs = activation_runner(graph, list(graph.outputs))(x)
    if graph.source_format == "onnx":
        outs = [np.moveaxis(o, 1, -1) if o.ndim == 4 else o for o in outs]
    return outs


# TFLite's integer kernels give these activations a fixed output range whatever the data (int8 softmax and
# logistic: scale 1/256, zero point -128; tanh: scale 1/128, zero point 0)
FIXED_RANGES = {"softmax": (0.0, 255 / 256), "sigmoid": (0.0, 255 / 256), "tanh": (-1.0, 127 / 128)}


def _activation(graph: LayerGraph, name: str) -> str | None:
    """The activation a layer ends with: fused into it, or the layer itself (Activation, Softmax)."""
    layer = graph.layer(name)
    if layer.activation:
        return layer.activation
    if layer.op == "Softmax":
        return "softmax"
    act = layer.attrs.get("activation") if layer.op == "Activation" else None
    return str(act) if act else None


def simulated_edge(
    graph: LayerGraph,
    edge_layers: list[str],
    crossing: list[str],
    weight_bits: dict[str, int],
    widths: dict[str, int],
    calib: np.ndarray,
) -> Any:
    """The edge half in float with what its runtime rounds: weights on their b-bit grid (8 included), the input and each
    layer's output on the grid of the width it executes at (`widths`: 8 int8, asymmetric; 16 int16,
    symmetric; 32 float, as is), over the ranges the float model shows on the calibration data (the
    runtime's fixed ranges for softmax, sigmoid and tanh outputs)."""
    from splitsdk.convert.fake_quant import FakeQuant
    from splitsdk.convert.split import edge_model, edge_with_probe, fake_quantize_weights

    def value_range(v: np.ndarray) -> tuple[float, float]:
        return float(v.min()), float(v.max())

    ranges = {t: value_range(calib) for t in graph.inputs}
    width = dict.fromkeys(graph.inputs, 8)
    if edge_layers:
        edge, probe = edge_with_probe(graph, edge_layers, crossing)
        fake_quantize_weights(edge, weight_bits, graph)
        for n, v in zip(edge_layers, call_outputs(probe, [calib]), strict=True):
            ranges[graph.layer(n).outputs[0]] = FIXED_RANGES.get(_activation(graph, n) or "", value_range(v))
            width[graph.layer(n).outputs[0]] = widths[n]

    def transform(tensor: str, value: Any) -> Any:
        bits = width.get(tensor, 32)
        if bits >= 32:
            return value
        safe = "".join(c if c.isalnum() else "_" for c in tensor)
        return FakeQuant(*ranges[tensor], bits, symmetric=bits == 16, name=f"fq_{safe}")(value)

    sim = edge_model(graph, edge_layers, crossing, name="edge_sim", transform=transform)
    fake_quantize_weights(sim, weight_bits, graph, container=True)
    return sim


def simulate(edge: Any, cloud: Any, calib: np.ndarray, bits: list[int], x: np.ndarray) -> list[np.ndarray]:
    """The plan in float: the simulated edge (`simulated_edge`), each sent tensor on its b-bit grid over
    the range seen on the calibration data, the float cloud model. What integer kernels add is the rest."""
    from splitsdk.quant import quantize_range

    ranges = [(float(v.min()), float(v.max())) for v in call_outputs(edge, [calib])]
    sent = [quantize_range(v, lo, hi, b) for v, (lo, hi), b in zip(call_outputs(edge, [x]), ranges, bits, strict=True)]
    return call_outputs(cloud, sent)


def _mse(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean((u - v) ** 2) for u, v in zip(a, b, strict=True)]))


def verify_bundle(
    bundle_dir: Path, graph: LayerGraph, data: Dataset, predicted_error: float, simulated: Any, limit: int = 32
) -> Verification:
    """`simulated(x) -> outputs` is the plan's float simulation (see `simulate`), or None."""
    x = data.x[:limit]
    full = full_model_outputs(graph, x)
    split = split_pipeline(bundle_dir, x)
    mse = _mse(full, split)
    sim_mse = _mse(full, simulated(x)) if simulated is not None else float("nan")
    max_abs = float(max(np.max(np.abs(a - b)) for a, b in zip(full, split, strict=True)))
    f0, s0 = full[0].reshape(len(x), -1), split[0].reshape(len(x), -1)
    agreement = float(np.mean(np.argmax(f0, 1) == np.argmax(s0, 1)))
    acc_f = acc_s = None
    if data.y is not None:
        y = np.asarray(data.y[:limit]).reshape(len(x), -1)[:, 0] if np.ndim(data.y) > 1 else data.y[:limit]
        acc_f = float(np.mean(np.argmax(f0, 1) == y))
        acc_s = float(np.mean(np.argmax(s0, 1) == y))
    power = float(np.mean([np.mean(a**2) for a in full])) or 1.0
    return Verification(len(x), mse, max_abs, mse / power, predicted_error, sim_mse, agreement, acc_f, acc_s)
