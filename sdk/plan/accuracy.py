"""Measured accuracy drop of a candidate: the edge part fake-quantised in TensorFlow/Keras.

The hook Algorithm 1's selection calls with a labelled evaluation set (`evaluate(candidate) ->
drop in accuracy, percentage points`). The accuracy is a metric chosen by name from `METRICS`
(default top-1; e.g. "lpr_exact", exact plate match through CTC decoding, for the licence-plate reader).
Edge layers get their kernels on the grid convert ships them on at the candidate's weight bits and
their outputs quantised asymmetrically over the range calibrated on the calibration data at its
activation bits (`splitsdk.quant.grid`, the quantisers the sensitivity measurement uses); cloud layers
run in float. Keras-sourced graphs only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from splitsdk.errors import DataError, PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.problem import PlanProblem
from splitsdk.quant import RangeCalibration, fake_quantize_keras
from splitsdk.target import FLOAT_BITS

BATCH = 32


def replay(graph: LayerGraph, x: np.ndarray, hook: Callable[[str, str, np.ndarray], np.ndarray]) -> np.ndarray:
    """Run a Keras-sourced graph eagerly layer by layer on `x`; `hook(layer, tensor, value)` may replace each
    output. Returns the first model output."""
    from splitsdk.graph.keras_import import KerasCall

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


def make_evaluator(
    problem: PlanProblem, eval_set: Any, calib: Any, metric: str = "top1"
) -> Callable[[Candidate], float]:
    """An `evaluate(candidate) -> accuracy drop (points)` closure over the evaluation set, in `metric`."""
    score = get_metric(metric)

    if eval_set.y is None:
        raise DataError(f"{eval_set.origin}: evaluation data has no labels")
    graph = problem.graph
    ranges = calibrate(graph, calib.x)
    base = score(replay(graph, eval_set.x, lambda _n, _t, v: v), eval_set.y)

    def evaluate(c: Candidate) -> float:
        abits = c.assignment.abits
        out = run_quantised(graph, eval_set.x, ranges, c.assignment.wbits, lambda n, _t: abits.get(n, FLOAT_BITS))
        return base - score(out, eval_set.y)

    return evaluate
