"""Measured accuracy drop of a candidate: the edge part fake-quantised in TensorFlow/Keras.

The hook Algorithm 1's selection calls (`evaluate(candidate) -> drop in accuracy, percentage points`),
with a labelled evaluation set (`make_evaluator`: the metric against the labels) or without labels
(`make_label_free_evaluator`: the quantised pipeline's agreement with the float model on the calibration
data, in the task's own terms where `AGREEMENTS` has them: top-1 agreement for a classifier, the decoded
plate for the licence-plate reader; otherwise a task-neutral fidelity, 100 x (1 - relative L2 error) per
sample, averaged; judged on `selection_sample`'s frames of the calibration data: up to `SELECTION_SAMPLES`, since
a threshold of a point cannot be told on a few dozen frames). The accuracy is a metric chosen by name from `METRICS`
(default top-1; e.g. "lpr_exact", exact plate match through CTC decoding, for the licence-plate reader).
Edge layers get their kernels on the grid convert ships them on at the candidate's weight bits and
their outputs quantised asymmetrically over the range calibrated on the calibration data at its
activation bits (`splitsdk.quant.grid`, the quantisers the sensitivity measurement uses); cloud layers
run in float. ONNX-sourced graphs run in onnxruntime (`splitsdk.plan.onnx_accuracy`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import DataError, PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.problem import PlanProblem
from splitsdk.quant import Dataset, RangeCalibration, fake_quantize_keras, load_dataset
from splitsdk.target import FLOAT_BITS

BATCH = 32
SELECTION_SAMPLES = 256
"""Calibration frames the label-free selection judges candidates on (all of them when there are fewer): at 32 a
disagreement is 3 points, so a threshold of 1 point admitted only candidates with no disagreement seen there, and
one that agreed on all 32 calibration frames of the licence-plate reader lost 4 points on held-out data."""


def replay(graph: LayerGraph, x: np.ndarray, hook: Callable[[str, str, np.ndarray], np.ndarray]) -> np.ndarray:
    """Run a Keras-sourced graph eagerly layer by layer on `x`; `hook(layer, tensor, value)` may replace each
    output. Returns the first model output."""
    from splitsdk.graph.keras_import import KerasCall

    if graph.source_format == "onnx":  # onnxruntime, the hook an observer
        from splitsdk.plan.onnx_accuracy import replay as replay_onnx

        return replay_onnx(graph, x, hook)

    outs = []
    order = graph.topological_order()
    for i in range(0, len(x), BATCH):
        values: dict[str, Any] = {graph.inputs[0]: x[i : i + BATCH]}
        for name in order:
            call = graph.layer(name).source
            if not isinstance(call, KerasCall):
                raise PlanError(f"measured accuracy needs a Keras model; layer {name!r} is not from Keras")
            for t, v in zip(graph.layer(name).outputs, call(values), strict=True):
                values[t] = hook(name, t, np.asarray(v))
        outs.append(np.asarray(values[graph.outputs[0]]))
    return np.concatenate(outs)


@contextmanager
def quantised_weights(graph: LayerGraph, wbits: Mapping[str, int]) -> Iterator[None]:
    """Temporarily put the kernels of the layers in `wbits` on the grid they ship on at their width."""
    saved: list[tuple[Any, list[np.ndarray]]] = []
    done: set[int] = set()
    try:
        for name, bits in wbits.items():
            call = graph.layer(name).source
            op = call.replacement or call.op
            if id(op) in done or bits >= FLOAT_BITS:
                continue
            done.add(id(op))
            saved.append((op, [np.asarray(w) for w in op.get_weights()]))
            op.set_weights(fake_quantize_keras(op, bits))
        yield
    finally:
        for op, old in saved:
            op.set_weights(old)


def calibrate(graph: LayerGraph, x: np.ndarray) -> RangeCalibration:
    """Per tensor, the range its float values take on `x`: the activation grids' ranges."""
    ranges = RangeCalibration()
    replay(graph, x, lambda _n, t, v: ranges.observe(t, v))
    return ranges


def run_quantised(
    graph: LayerGraph,
    x: np.ndarray,
    ranges: RangeCalibration,
    wbits: Mapping[str, int],
    abits: Callable[[str, str], int],
) -> np.ndarray:
    """The first model output with the kernels of `wbits`' layers at their widths and each output tensor
    on the grid of `abits(layer, tensor)` bits over its calibrated range (32: float)."""

    if graph.source_format == "onnx":  # the grids as ops in a copy of the ONNX model
        from splitsdk.plan.onnx_accuracy import run_quantised as run_quantised_onnx

        return run_quantised_onnx(graph, x, ranges, wbits, abits)

    def quant(name: str, t: str, v: np.ndarray) -> np.ndarray:
        return ranges.quantize(t, v, abits(name, t))

    with quantised_weights(graph, wbits):
        return replay(graph, x, quant)


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent; labels as class indices or one-hot rows."""
    y = labels.argmax(axis=-1) if labels.ndim == outputs.ndim else labels.reshape(-1)
    pred = outputs.reshape(len(outputs), -1).argmax(axis=-1)
    return float(np.mean(pred == y) * 100.0)


Metric = Callable[[np.ndarray, np.ndarray], float]
"""`metric(outputs of the model's first output, labels) -> accuracy in percent`."""

METRICS: dict[str, Metric] = {"top1": top1}
METRICS["lpr_exact"] = lambda o, y: importlib.import_module("splitsdk.examples.lpr.metric").lpr_exact(o, y)


def get_metric(name: str) -> Metric:
    """The accuracy metric registered under `name` (PlanError naming the known ones otherwise)."""
    if name not in METRICS:
        raise PlanError(f"--metric: unknown accuracy metric {name!r} (known: {', '.join(sorted(METRICS))})")
    return METRICS[name]


def fidelity(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Task-neutral agreement in percent: 100 x (1 - relative L2 error against `reference`), clipped at 0, per
    sample, averaged (100: identical outputs)."""
    q = outputs.reshape(len(outputs), -1).astype(np.float64)
    f = reference.reshape(len(reference), -1).astype(np.float64)
    rel = np.linalg.norm(q - f, axis=1) / np.maximum(np.linalg.norm(f, axis=1), 1e-12)
    return float(np.mean(np.clip(1.0 - rel, 0.0, 1.0)) * 100.0)


def _plate_agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    decode = importlib.import_module("splitsdk.examples.lpr.decode").decode
    a, b = decode(outputs), decode(reference)
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]) * 100.0)


Agreement = Callable[[np.ndarray, np.ndarray], float]
"""`agreement(outputs, the float model's outputs on the same inputs) -> percent (100: the same answers)`."""

AGREEMENTS: dict[str, tuple[Agreement, str]] = {
    "top1": (top1, "top-1 agreement with the float model"),
    "lpr_exact": (_plate_agreement, "decoded-plate agreement with the float model"),
}
FIDELITY = (fidelity, "output fidelity to the float model (100 x (1 - relative L2 error))")


class AccuracyDrop:
    """`evaluate(candidate) -> accuracy drop in points` over a data set; `measure` says what was measured
    (the plan's selection notes repeat it)."""

    def __init__(self, graph: LayerGraph, x: np.ndarray, ranges: RangeCalibration,
                 score: Callable[[np.ndarray], float], measure: str, base: float | None = None) -> None:
        self.graph, self.x, self.ranges, self.score, self.measure = graph, x, ranges, score, measure
        self.base = score(replay(self.graph, x, lambda _n, _t, v: v)) if base is None else base

    def quantised_output(self, c: Candidate) -> np.ndarray:
        abits = c.assignment.abits
        return run_quantised(self.graph, self.x, self.ranges, c.assignment.wbits,
                             lambda n, _t: abits.get(n, FLOAT_BITS))

    def __call__(self, c: Candidate) -> float:
        return self.base - self.score(self.quantised_output(c))


def make_evaluator(problem: PlanProblem, eval_set: Any, calib: Any, metric: str = "top1") -> AccuracyDrop:
    """The accuracy drop (points) of a candidate on the labelled evaluation set, in `metric`."""
    score = get_metric(metric)
    if eval_set.y is None:
        raise DataError(f"{eval_set.origin}: evaluation data has no labels")
    return AccuracyDrop(
        problem.graph, eval_set.x, calibrate(problem.graph, calib.x), lambda out: score(out, eval_set.y),
        f"{metric} accuracy on {len(eval_set.x)} labelled samples of {eval_set.origin}",
    )


def label_free_agreement(graph: LayerGraph, metric: str, reference: np.ndarray) -> tuple[Agreement, str]:
    """The agreement `make_label_free_evaluator` uses: the metric's own (top-1 only for a class-score output,
    (N, classes)), else the task-neutral fidelity."""
    if metric == "top1" and not (reference.ndim == 2 and reference.shape[1] > 1):
        return FIDELITY
    return AGREEMENTS.get(metric, FIDELITY)


def selection_sample(graph: LayerGraph, calib: Dataset, samples: int = SELECTION_SAMPLES) -> Dataset:
    """The calibration inputs the label-free selection judges on: up to `samples` frames (all when there are
    fewer), evenly spread over the data set. A folder of images is read again for them (the calibration for the
    sensitivities reads `load_dataset`'s default few); random inputs stay as they are."""
    if samples < 1:
        raise PlanError(f"label-free selection needs at least one sample, got {samples}")
    if not calib.synthetic and Path(calib.origin).is_dir():
        calib = load_dataset(calib.origin, graph.tensors[graph.inputs[0]].shape, samples=samples)
    n = len(calib.x)
    if n <= samples:
        return calib
    pick = np.linspace(0, n - 1, samples).round().astype(np.int64)
    return Dataset(calib.x[pick], None if calib.y is None else calib.y[pick],
                   f"{calib.origin} ({samples} of {n}, evenly spread)", calib.synthetic)


def make_label_free_evaluator(problem: PlanProblem, calib: Any, metric: str = "top1",
                              samples: int = SELECTION_SAMPLES) -> AccuracyDrop:
    """The accuracy drop (points) without labels: 100 - the quantised pipeline's agreement with the float
    model on `selection_sample`'s calibration inputs (ranges calibrated on the same inputs)."""
    get_metric(metric)
    graph = problem.graph
    calib = selection_sample(graph, calib, samples)
    ranges = calibrate(graph, calib.x)
    reference = replay(graph, calib.x, lambda _n, _t, v: v)
    agree, what = label_free_agreement(graph, metric, reference)
    return AccuracyDrop(graph, calib.x, ranges, lambda out: agree(out, reference),
                        f"label-free: {what} on {len(calib.x)} calibration samples of {calib.origin}",
                        base=100.0)  # the float model agrees with itself
