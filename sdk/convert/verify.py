"""Host verification of a bundle: full model vs edge.tflite -> LUT -> pack -> unpack -> dequantise -> cloud."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.convert.tflite import run_tflite
from splitsdk.graph import LayerGraph, build_keras
from splitsdk.quant import Dataset


@dataclass(frozen=True)
class Verification:
    samples: int
    output_mse: float  # mean over outputs of the MSE against the full float model
    output_max_abs: float
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
    cloud = keras.models.load_model(bundle.cloud_model, compile=False)
    out = cloud.predict(cloud_in if len(cloud_in) > 1 else cloud_in[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def simulate(edge: Any, cloud: Any, calib: np.ndarray, bits: list[int], x: np.ndarray) -> list[np.ndarray]:
    """The plan in float: the (fake-quantised) edge model, each sent tensor on its b-bit grid over the
    range seen on the calibration data, the float cloud model. What int8 execution adds is the rest."""
    from splitsdk.quant import quantize_range

    def run(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = model(inputs, training=False)
        return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]

    ranges = [(float(v.min()), float(v.max())) for v in run(edge, [calib])]
    sent = [quantize_range(v, lo, hi, b) for v, (lo, hi), b in zip(run(edge, [x]), ranges, bits, strict=True)]
    return run(cloud, sent)


def _mse(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean((u - v) ** 2) for u, v in zip(a, b, strict=True)]))


def verify_bundle(
    bundle_dir: Path, graph: LayerGraph, data: Dataset, predicted_error: float, simulated: Any, limit: int = 32
) -> Verification:
    """`simulated(x) -> outputs` is the plan's float simulation (see `simulate`)."""
    x = data.x[:limit]
    full: Any = build_keras(graph).predict(x, verbose=0)
    full = [np.asarray(o) for o in (full if isinstance(full, list | tuple) else [full])]
    split = split_pipeline(bundle_dir, x)
    mse = _mse(full, split)
    sim_mse = _mse(full, simulated(x))
    max_abs = float(max(np.max(np.abs(a - b)) for a, b in zip(full, split, strict=True)))
    f0, s0 = full[0].reshape(len(x), -1), split[0].reshape(len(x), -1)
    agreement = float(np.mean(np.argmax(f0, 1) == np.argmax(s0, 1)))
    acc_f = acc_s = None
    if data.y is not None:
        y = np.asarray(data.y[:limit]).reshape(len(x), -1)[:, 0] if np.ndim(data.y) > 1 else data.y[:limit]
        acc_f = float(np.mean(np.argmax(f0, 1) == y))
        acc_s = float(np.mean(np.argmax(s0, 1) == y))
    return Verification(len(x), mse, max_abs, predicted_error, sim_mse, agreement, acc_f, acc_s)
