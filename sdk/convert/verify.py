"""Host verification of a bundle: full model vs edge.tflite -> LUT -> pack -> unpack -> dequantise -> cloud."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from splitsdk.errors import ConvertError
from splitsdk.graph import LayerGraph
from splitsdk.graph.keras_import import call_outputs
from splitsdk.quant import Dataset
from splitsdk.runtime import run_tflite

if TYPE_CHECKING:
    from splitsdk.wire.bundle import Bundle


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
    held_out: bool = True  # measured on samples the converter did not calibrate on
    in_sample_mse: float | None = None  # the output MSE on the calibration samples, for comparison

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_float is None or self.accuracy_split is None:
            return None
        return (self.accuracy_float - self.accuracy_split) * 100.0


def split_pipeline(bundle_dir: Path, x: np.ndarray) -> list[np.ndarray]:
    """What camera + receiver compute: int8 edge model, wire quantisation and packing, float cloud model (a
    CLOUD-ONLY+JPEG bundle: the frame's pixels JPEG-encoded at its quality and decoded, as camera and receiver do).
    A TFLite cloud model's outputs come in the order the receiver returns them (the manifest's `outputs`)."""
    import keras

    from splitsdk.wire.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    cloud_in = _cloud_inputs(bundle, x)
    if bundle.cloud_model.suffix == ".tflite":  # ONNX-sourced bundles ship the cloud half as float TFLite
        from splitsdk.cloud.model import load_cloud_runner

        return load_cloud_runner(bundle)(cloud_in)  # as the receiver runs it: outputs in the manifest's order
    cloud = keras.models.load_model(bundle.cloud_model, compile=False)
    out = cloud.predict(cloud_in if len(cloud_in) > 1 else cloud_in[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def _cloud_inputs(bundle: Bundle, x: np.ndarray) -> list[np.ndarray]:
    """What the receiver hands the cloud model for frames `x`: each crossing tensor through the int8 edge model,
    the wire's LUT, packing and dequantisation; for a CLOUD-ONLY+JPEG bundle the frame's pixels through the JPEG
    encoder at its quality and the receiver's decoder."""
    from splitsdk.wire.compression import decode_jpeg, encode_jpeg, from_pixels, to_pixels
    from splitsdk.wire.edge import jpeg_quality
    from splitsdk.wire.packing import pack, requantize_lut, unpack_dequantize

    quality = jpeg_quality(bundle)
    if quality is not None:
        spec = bundle.input
        pixels = to_pixels(x.astype(np.float32), spec.scale, spec.offset)
        decoded = [decode_jpeg(encode_jpeg(p, quality), p.shape) for p in pixels]
        return [np.stack([from_pixels(d, spec.scale, spec.offset) for d in decoded])]
    edge_out = run_tflite(bundle.edge_model.read_bytes(), [x.astype(np.float32)])
    cloud_in = []
    for c in bundle.crossing:
        rows = [
            unpack_dequantize(pack(requantize_lut(sample.astype(np.int8), c.lut_table), c.bits), c.shape, c.bits,
                              c.scale, c.zero_point)
            for sample in edge_out[c.edge_output]
        ]
        cloud_in.append(np.stack(rows))
    return cloud_in


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


def simulated_onnx(
    graph: LayerGraph,
    edge_layers: list[str],
    crossing: list[str],
    weight_bits: dict[str, int],
    widths: dict[str, int],
    crossing_bits: list[int],
    calib: np.ndarray,
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """`simulated_edge` + `simulate` for an ONNX model, in onnxruntime: every edge kernel on its b-bit grid (8
    included), the input and each edge layer's output on the grid of its width over the range the float model
    shows on `calib` (the runtime's fixed ranges for softmax, sigmoid, tanh), then each sent tensor on its
    b-bit grid; the cloud half in float. Returns x -> the model's outputs (channels-last)."""
    from splitsdk.plan.onnx_accuracy import Grid, fake_quant_model, run_fake_quant
    from splitsdk.quant.grid import fake_quantize
    from splitsdk.quant.sensitivity import activation_runner

    produced = {graph.layer(n).outputs[0]: n for n in edge_layers}
    watched = list(dict.fromkeys([*graph.inputs, *produced, *crossing]))
    ranges = {t: (float(v.min()), float(v.max())) for t, v in zip(watched, activation_runner(graph, watched)(calib),
                                                                 strict=True)}
    grids: dict[str, list[Grid]] = {t: [Grid(*ranges[t], 8)] for t in graph.inputs}
    for t, n in produced.items():
        if widths[n] < 32:
            lo, hi = FIXED_RANGES.get(_activation(graph, n) or "", ranges[t])
            grids[t] = [Grid(lo, hi, widths[n], symmetric=widths[n] == 16)]
    for t, b in zip(crossing, crossing_bits, strict=True):  # over the range of its values as the edge rounds them
        lo, hi = ranges[t]
        if grids.get(t):  # e.g. a softmax's 1/256 steps: a range from the float values would undo them
            g = grids[t][-1]
            lo, hi = (float(fake_quantize(v, g.lo, g.hi, g.bits, g.symmetric)) for v in (lo, hi))
        grids[t] = [*grids.get(t, []), Grid(lo, hi, b)]
    proto = fake_quant_model(graph, {n: weight_bits.get(n, 8) for n in edge_layers if graph.layer(n).quantizable},
                             grids, container=True)
    return lambda x: run_fake_quant(graph, proto, x, list(graph.outputs))


def _mse(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The mean over outputs of each output's MSE (`a`: the model's, `b`: the split pipeline's, in the same order)."""
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if u.shape != v.shape:
            raise ConvertError(f"the split pipeline's output {i} is shaped {v.shape[1:]}, the model's {u.shape[1:]}")
    return float(np.mean([np.mean((u - v) ** 2) for u, v in zip(a, b, strict=True)]))


def held_out_split(data: Dataset, calib_samples: int, limit: int = 32) -> tuple[Dataset, Dataset | None]:
    """(calibration, held-out verification) samples of `data`: the first `calib_samples` calibrate and up to
    `limit` of the rest verify; when `data` holds no more than that, its last quarter is held out (None: a
    single sample, verified in-sample)."""
    import dataclasses

    n = len(data.x)
    cut = calib_samples if n > calib_samples else n - n // 4
    if cut >= n:
        return data, None
    ys = (None, None) if data.y is None else (data.y[:cut], data.y[cut : cut + limit])
    return (dataclasses.replace(data, x=data.x[:cut], y=ys[0]),
            dataclasses.replace(data, x=data.x[cut : cut + limit], y=ys[1]))


def verify_bundle(
    bundle_dir: Path, graph: LayerGraph, data: Dataset, predicted_error: float, simulated: Any, limit: int = 32,
    calibration: Dataset | None = None,
) -> Verification:
    """`simulated(x) -> outputs` is the plan's float simulation (see `simulate`), or None. `data` should be held
    out from the `calibration` samples the bundle was calibrated on (whose output MSE is reported beside)."""
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
    in_sample = None
    if calibration is not None:
        c = calibration.x[:limit]
        ref = full_model_outputs(graph, c)
        in_sample = _mse(ref, split_pipeline(bundle_dir, c))
    return Verification(len(x), mse, max_abs, mse / power, predicted_error, sim_mse, agreement, acc_f, acc_s,
                        held_out=calibration is not None, in_sample_mse=in_sample)
