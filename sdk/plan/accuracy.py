"""Measured accuracy drop of a candidate: the edge part fake-quantised in TensorFlow/Keras.

The hook Algorithm 1's selection calls with a labelled evaluation set (`evaluate(candidate) ->
drop in accuracy, percentage points`). The accuracy is a metric chosen by name from `METRICS`
(default top-1; e.g. "lpr_exact", exact plate match through CTC decoding, for the licence-plate reader).
Edge layers get their kernels quantised symmetric
per output channel at the candidate's weight bits and their outputs quantised asymmetrically over
the range calibrated on the calibration data at its activation bits (the same quantisers the
sensitivity measurement uses); cloud layers run in float. Keras-sourced graphs only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from splitsdk.errors import DataError, PlanError
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.problem import PlanProblem
from splitsdk.profile.types import FLOAT_BITS

BATCH = 32


def _replay(problem: PlanProblem, x: np.ndarray, hook: Callable[[str, str, np.ndarray], np.ndarray]) -> np.ndarray:
    """Run the graph eagerly layer by layer; `hook(layer, tensor, value)` may replace each output."""
    from splitsdk.graph.keras_import import KerasCall

    g = problem.graph
    outs = []
    for i in range(0, len(x), BATCH):
        values: dict[str, Any] = {g.inputs[0]: x[i : i + BATCH]}
        for name in problem.order:
            call = g.layer(name).source
            if not isinstance(call, KerasCall):
                raise PlanError(f"measured accuracy needs a Keras model; layer {name!r} is not from Keras")
            for t, v in zip(g.layer(name).outputs, call(values), strict=True):
                values[t] = hook(name, t, np.asarray(v))
        outs.append(np.asarray(values[g.outputs[0]]))
    return np.concatenate(outs)


def _quantize_kernel(arr: np.ndarray, bits: int, depthwise: bool) -> np.ndarray:
    from splitsdk.quant import quantize_symmetric

    if arr.ndim < 2:
        return arr  # biases stay in higher precision
    cols = arr.shape[-2] * arr.shape[-1] if depthwise else arr.shape[-1]
    return quantize_symmetric(arr.reshape(-1, cols), bits).reshape(arr.shape)


@contextmanager
def _quantised_weights(problem: PlanProblem, wbits: dict[str, int]) -> Iterator[None]:
    """Temporarily replace the edge layers' kernels by their quantised values."""
    saved: list[tuple[Any, list[np.ndarray]]] = []
    done: set[int] = set()
    try:
        for name, bits in wbits.items():
            call = problem.graph.layer(name).source
            op = call.replacement or call.op
            if id(op) in done or bits >= FLOAT_BITS:
                continue
            done.add(id(op))
            old = [np.asarray(w) for w in op.get_weights()]
            saved.append((op, old))
            dw = problem.graph.layer(name).op == "DepthwiseConv2D"
            op.set_weights([_quantize_kernel(w, bits, dw) for w in old])
        yield
    finally:
        for op, old in saved:
            op.set_weights(old)


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


def calibrated_ranges(problem: Any, x: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Per tensor, the (min, max) its float values take on `x`: the activation quantisers' ranges."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}

    def record(_: str, t: str, v: np.ndarray) -> np.ndarray:
        lo[t] = min(lo.get(t, np.inf), float(v.min()))
        hi[t] = max(hi.get(t, -np.inf), float(v.max()))
        return v

    _replay(problem, x, record)
    return lo, hi


def make_evaluator(
    problem: PlanProblem, eval_set: Any, calib: Any, metric: str = "top1"
) -> Callable[[Candidate], float]:
    """An `evaluate(candidate) -> accuracy drop (points)` closure over the evaluation set, in `metric`."""
    from splitsdk.quant import quantize_range

    score = get_metric(metric)

    if eval_set.y is None:
        raise DataError(f"{eval_set.origin}: evaluation data has no labels")
    lo, hi = calibrated_ranges(problem, calib.x)
    base = score(_replay(problem, eval_set.x, lambda _n, _t, v: v), eval_set.y)

    def evaluate(c: Candidate) -> float:
        abits = c.assignment.abits

        def quant(name: str, t: str, v: np.ndarray) -> np.ndarray:
            b = abits.get(name)
            if b is None or b >= FLOAT_BITS:
                return v
            return np.asarray(quantize_range(v, lo[t], hi[t], b))

        with _quantised_weights(problem, c.assignment.wbits):
            acc = score(_replay(problem, eval_set.x, quant), eval_set.y)
        return base - acc

    return evaluate
