"""Why a solution was chosen, in words, after the paper's appendix-A guidance.

The guidance, roughly: EDGE-ONLY when the (quantised) model fits the device and the device is fast
enough; CLOUD-ONLY when the uplink is fast, the device slow, or every edge part sends more than the
raw frame; a SPLIT when some layer's output, at low bits, is much smaller than the frame and the
layers before it are cheap on the device. The sentences below state which of these facts held.
"""

from __future__ import annotations

from splitsdk.plan.autosplit import ORIGIN_CLOUD, Candidate, Selection
from splitsdk.plan.baselines import Baseline
from splitsdk.plan.buildable import SplitBound
from splitsdk.plan.problem import PlanProblem


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.1f} kB"


def ms(value: float) -> str:
    """Milliseconds with enough digits for tiny models: 0.0123, 1.23, 123.4."""
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def _pct(a: float, b: float) -> str:
    return f"{(1 - a / b) * 100:.0f}%" if b > 0 else "n/a"


def _criterion(sel: Selection, problem: PlanProblem) -> str:
    if sel.criterion == "measured-accuracy":
        label_free = sel.measure.startswith("label-free")
        what = f" ({sel.measure})" if sel.measure else ""
        return (
            f"Selected on {'label-free' if label_free else 'measured'} accuracy{what}: the fastest of "
            f"{len(sel.measured)} evaluated candidates whose accuracy drop is within {sel.threshold:g}."
        )
    if sel.criterion == "error-proxy":
        return (
            f"Selected on the error proxy (summed weight and activation MSE, no labelled evaluation data): "
            f"the fastest candidate with proxy <= {problem.max_error:.4g}."
        )
    return "No accuracy constraint was given: the fastest candidate was selected."


def _bounded(bound: SplitBound, k: int) -> str:
    where = "it bounds the split" if k == bound.index else f"the split could go up to index {bound.index}"
    return (
        f"The edge cannot run layer {bound.layer!r} (op {bound.op}: {bound.reason}): it and every later layer "
        f"stay in the cloud; {where}."
    )


def explain(
    problem: PlanProblem,
    sel: Selection,
    cands: list[Candidate],
    base: dict[str, Baseline],
    fits_somewhere: bool,
    bound: SplitBound | None = None,
) -> str:
    """A few sentences: what was chosen, the facts that made it win, the layer that bounds the split
    (`bound`: the first one the edge cannot run) and how it was selected."""
    c = sel.chosen
    ev = c.evaluation
    cloud = base["cloud_only"].evaluation.total_ms
    frame = problem.input_bytes
    n = len(problem.order)
    k = c.assignment.split_index
    out: list[str] = []
    if c.origin == ORIGIN_CLOUD:
        faster = [x for x in cands if x.evaluation.total_ms < ev.total_ms]
        if not fits_somewhere:
            out.append(
                f"CLOUD-ONLY fallback: no edge part fits in {mb(problem.memory_bytes)} even at "
                f"{problem.bits[0]} bits, so the raw frame ({mb(frame)}) is sent."
            )
        elif faster:
            out.append(
                f"CLOUD-ONLY fallback: {len(faster)} faster candidate(s) exceed the accuracy threshold "
                f"(the fastest would take {ms(faster[0].evaluation.total_ms)} ms)."
            )
        else:
            out.append(
                f"CLOUD-ONLY: sending the raw frame ({mb(frame)}, {ms(ev.transmit_ms)} ms at "
                f"{problem.link.uplink_mbps:g} Mbit/s) and running in the cloud ({ms(ev.cloud_ms)} ms) beats every "
                "edge part: the uplink is fast relative to the device, or no layer's output is much smaller than "
                "the frame."
            )
    elif k == n:
        out.append(
            f"EDGE-ONLY: the whole model fits on the device ({mb(ev.edge_weight_bytes)} weights + "
            f"{mb(ev.peak_activation_bytes)} activations <= {mb(problem.memory_bytes)}) and running it there "
            f"({ms(ev.edge_ms)} ms) beats sending the frame (CLOUD-ONLY {ms(cloud)} ms, {_pct(ev.total_ms, cloud)} "
            "faster): a small model on a capable device."
        )
    else:
        last = problem.order[k - 1]
        bits = sorted({problem.tensor_bits(x.tensor, c.assignment.abits) for x in problem.candidates[k].crossing})
        ratio = frame / ev.transmit_bytes if ev.transmit_bytes else float("inf")
        out.append(
            f"SPLIT after layer {last!r} ({k} of {n} layers on the device): its output at "
            f"{'/'.join(map(str, bits))} bits is {mb(ev.transmit_bytes)}, {ratio:.1f}x smaller than the raw frame, "
            f"so sending it takes {ms(ev.transmit_ms)} ms; the edge part runs in {ms(ev.edge_ms)} ms within "
            f"{mb(problem.memory_bytes)}. {_pct(ev.total_ms, cloud)} faster than CLOUD-ONLY."
        )
    if bound is not None:
        out.append(_bounded(bound, k))
    ns = base.get("neurosurgeon")
    if ns is not None and c.origin != ORIGIN_CLOUD and ns.evaluation.total_ms > ev.total_ms:
        out.append(
            f"The best float split (Neurosurgeon) takes {ms(ns.evaluation.total_ms)} ms; quantising the edge part "
            f"saves {_pct(ev.total_ms, ns.evaluation.total_ms)}."
        )
    out.append(_criterion(sel, problem))
    return " ".join(out)
