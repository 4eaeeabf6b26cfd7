"""AUTO-SPLIT's Algorithm 1: potential splits, bit allocation over a memory-budget grid, candidate list.

For every potential split n (eq. 6) the weight budgets M_w and the activation budgets M_a are the
memories of the uniform assignments (every layer at b, for each b in B). For each budget pair,
problem (8) (least weight MSE with weight bytes <= M_w) and problem (9) (least activation MSE with
peak activation bytes <= M_a) are solved with the Lagrangian method; the pair of allocations is kept
when the real memory M_w + M_a fits the device. The transmitted tensors carry their producers'
activation bits. The candidate list always holds CLOUD-ONLY, and the uniform assignments of each
potential split when they fit (the grid's anchor points), so the chosen solution is never slower
than CLOUD-ONLY or a feasible uniform EDGE-ONLY (Remark 5).

Problem (8) has one sum constraint, and the Lagrangian answer is optimal on the hull. Problem (9)
constrains the *peak* of bit-weighted live sets (a max of sums on a DAG), so the Lagrangian (on each
layer's output bytes, bisected until the peak fits) is a heuristic there; `exact.py` measures the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from splitsdk.plan.lagrangian import Points, allocate, allocate_budget
from splitsdk.plan.problem import Assignment, Evaluation, PlanProblem

ORIGIN_CLOUD = "cloud-only"
ORIGIN_UNIFORM = "uniform"
ORIGIN_LAGRANGIAN = "lagrangian"


@dataclass(frozen=True)
class Candidate:
    """One entry of the candidate list S: a solution, its figures, and where it came from."""

    assignment: Assignment
    evaluation: Evaluation
    origin: str
    budget: tuple[int, int] | None = None  # (M_w, M_a) of the grid point, bytes

    def sort_key(self) -> tuple[float, float, int, tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
        a = self.assignment
        return (
            self.evaluation.total_ms,
            self.evaluation.error,
            a.split_index,
            a.weight_bits,
            a.activation_bits,
        )


def potential_splits(problem: PlanProblem) -> list[int]:
    """Eq. 6: splits (k >= 1) whose edge part fits at b_min and that send no more than the raw input."""
    bmin = problem.bits[0]
    out = []
    for k in range(1, len(problem.order) + 1):
        uni = problem.uniform(k, bmin)
        ev_mem = problem.weight_bytes(k, uni.wbits) + problem.peak_activation_bytes(problem.live_steps(k), uni.abits)
        if ev_mem <= problem.memory_bytes and problem.transmit_bytes(k, uni.abits) <= problem.input_bytes:
            out.append(k)
    return out


def weight_items(problem: PlanProblem, k: int) -> dict[str, Points]:
    """Problem (8)'s items: one per weight set on the edge, (bytes, summed weight MSE of its users)."""
    return {
        key: {b: (problem.key_bytes(key, b), sum(problem.weight_mse(u, b) for u in users)) for b in problem.bits}
        for key, (_, users) in problem.weight_keys(k).items()
    }


def activation_items(problem: PlanProblem, k: int) -> dict[str, Points]:
    """Problem (9)'s items: one per edge layer, (bytes of its outputs, output activation MSE)."""
    return {
        name: {
            b: (problem.stored_bytes(problem.output_elements(name), b), problem.activation_mse(name, b))
            for b in problem.bits
        }
        for name in problem.order[:k]
    }


def _expand(problem: PlanProblem, k: int, key_bits: dict[str, int]) -> dict[str, int]:
    """Weight bits per weight set -> per layer."""
    return {u: key_bits[key] for key, (_, users) in problem.weight_keys(k).items() for u in users}


def split_candidates(problem: PlanProblem, k: int) -> list[Candidate]:
    """Algorithm 1's inner loops for one potential split: the budget grid and the uniform anchors."""
    steps = problem.live_steps(k)
    keys = problem.weight_keys(k)
    w_budgets = sorted({sum(problem.key_bytes(key, b) for key in keys) for b in problem.bits})
    a_budgets = sorted({problem.peak_activation_bytes(steps, problem.uniform(k, b).abits) for b in problem.bits})
    w_items, a_items = weight_items(problem, k), activation_items(problem, k)
    found: list[Candidate] = []
    w_allocs = {mw: allocate_budget(w_items, mw) for mw in w_budgets}
    for ma in a_budgets:

        def fits(alloc: dict[str, int], ma: int = ma) -> bool:
            return problem.peak_activation_bytes(steps, alloc) <= ma

        abits = allocate(a_items, fits)
        for mw in w_budgets:
            kbits = w_allocs[mw]
            if abits is None or kbits is None:
                continue
            a = Assignment.make(k, _expand(problem, k, kbits), abits)
            ev = problem.evaluate(a)
            if ev.memory_bytes <= problem.memory_bytes:
                found.append(Candidate(a, ev, ORIGIN_LAGRANGIAN, (mw, ma)))
    for bw in problem.bits:
        for ba in problem.bits:
            a = problem.uniform(k, bw, ba)
            ev = problem.evaluate(a)
            if ev.memory_bytes <= problem.memory_bytes:
                found.append(Candidate(a, ev, ORIGIN_UNIFORM))
    return found


def cloud_only(problem: PlanProblem) -> Candidate:
    a = Assignment(0)
    return Candidate(a, problem.evaluate(a), ORIGIN_CLOUD)


def candidate_list(problem: PlanProblem, progress: Callable[[int, int], None] | None = None) -> list[Candidate]:
    """The candidate list S of Algorithm 1, deduplicated and sorted by predicted latency (eq. 1)."""
    splits = potential_splits(problem)
    found = [cloud_only(problem)]
    for i, k in enumerate(splits):
        found.extend(split_candidates(problem, k))
        if progress is not None:
            progress(i + 1, len(splits))
    unique: dict[tuple[int, tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]], Candidate] = {}
    for c in found:  # a Lagrangian hit that equals a uniform anchor keeps the Lagrangian origin
        a = c.assignment
        unique.setdefault((a.split_index, a.weight_bits, a.activation_bits), c)
    return sorted(unique.values(), key=Candidate.sort_key)


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and how it was chosen."""

    chosen: Candidate
    criterion: str  # "error-proxy" | "measured-accuracy" | "latency-only"
    threshold: float | None
    measured: tuple[tuple[int, float], ...] = ()  # (candidate position, accuracy drop) evaluated


def select(
    problem: PlanProblem,
    candidates: list[Candidate],
    evaluate: Callable[[Candidate], float] | None = None,
    max_accuracy_drop: float | None = None,
) -> Selection:
    """Pick the fastest candidate within the accuracy threshold.

    With `evaluate` (a measured accuracy drop, e.g. the edge part fake-quantised and run on labelled
    data) and `max_accuracy_drop`, candidates are evaluated fastest first until one is within the
    threshold; otherwise the summed error proxy is compared with `problem.max_error`. CLOUD-ONLY has
    no quantisation error, so a candidate is always found (the fallback).
    """
    if evaluate is not None and max_accuracy_drop is not None:
        measured: list[tuple[int, float]] = []
        for i, c in enumerate(candidates):
            drop = 0.0 if c.origin == ORIGIN_CLOUD else float(evaluate(c))
            measured.append((i, drop))
            if drop <= max_accuracy_drop:
                return Selection(c, "measured-accuracy", max_accuracy_drop, tuple(measured))
        raise AssertionError("unreachable: CLOUD-ONLY is always in the candidate list")
    if problem.max_error is None:
        return Selection(candidates[0], "latency-only", None)
    for c in candidates:
        if problem.feasible(c.evaluation):
            return Selection(c, "error-proxy", problem.max_error)
    raise AssertionError("unreachable: CLOUD-ONLY is always in the candidate list")
