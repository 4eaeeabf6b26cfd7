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

import numpy as np

from splitsdk.plan.lagrangian import HullTable, Points, first_fits, lower_hull
from splitsdk.plan.problem import Assignment, Evaluation, PlanProblem
from splitsdk.plan.schema import Criterion

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
    out = []
    for k in range(1, len(problem.order) + 1):
        f = problem.split_facts(k)  # column 0: b_min
        weights = int(problem.tables.key_bytes[: f.n_keys, 0].sum()) + f.fixed_bytes
        if weights + int(f.live.peaks(f.sizes[:, 0])) <= problem.memory_bytes and (
            int(f.cross_bytes[:, 0].sum()) <= problem.input_bytes
        ):
            out.append(k)
    return out


def weight_points(problem: PlanProblem, key: str, users: tuple[str, ...]) -> Points:
    """One item of problem (8): a weight set's (bytes, summed weight MSE of its users) at each width."""
    return {b: (problem.key_bytes(key, b), sum(problem.weight_mse(u, b) for u in users)) for b in problem.bits}


def activation_points(problem: PlanProblem, name: str) -> Points:
    """One item of problem (9): a layer's (bytes of its outputs, output activation MSE) at each width."""
    elements = problem.output_elements(name)
    return {b: (problem.stored_bytes(elements, b), problem.activation_mse(name, b)) for b in problem.bits}


def weight_items(problem: PlanProblem, k: int) -> dict[str, Points]:
    """Problem (8)'s items: one per weight set on the edge."""
    return {key: weight_points(problem, key, users) for key, (_, users) in problem.weight_keys(k).items()}


def activation_items(problem: PlanProblem, k: int) -> dict[str, Points]:
    """Problem (9)'s items: one per edge layer."""
    return {name: activation_points(problem, name) for name in problem.order[:k]}


class Hulls:
    """The items' hulls as HullTable rows, each built once for all splits: a layer's (problem 9) never
    changes, a weight set's (problem 8) only when another of its users joins the edge."""

    def __init__(self, problem: PlanProblem) -> None:
        self.problem = problem
        self.points = len(problem.bits)
        self._layers: HullTable | None = None
        self._keys: dict[tuple[str, int], tuple[list[float], list[int]]] = {}

    def activations(self, k: int) -> HullTable:
        """The hulls of the first k layers, in order."""
        if self._layers is None:
            hulls = [lower_hull(activation_points(self.problem, name)) for name in self.problem.order]
            self._layers = HullTable.of(hulls, self.points)
        return HullTable(self._layers.slopes[:k], self._layers.bits[:k])

    def weights(self, k: int) -> HullTable:
        """The hulls of split k's weight sets, in order of first use."""
        rows = []
        for key, (_, users) in self.problem.weight_keys(k).items():
            if (key, len(users)) not in self._keys:
                hull = lower_hull(weight_points(self.problem, key, users))
                self._keys[key, len(users)] = HullTable.row(hull, self.points)
            rows.append(self._keys[key, len(users)])
        return HullTable(
            np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), self.points),
            np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), self.points),
        )


def split_candidates(problem: PlanProblem, k: int, hulls: Hulls | None = None) -> list[Candidate]:
    """Algorithm 1's inner loops for one potential split: the budget grid and the uniform anchors, each
    distinct assignment once (the first grid point that finds it names it).

    Widths are handled as positions in `problem.bits`. Problem (8)'s rate and problem (9)'s peak are
    computed at every multiplier of their grids at once (allocations as arrays: `HullTable`), and the
    bisection of `allocate` reads them (`first_fit`): the same allocations as `allocate_budget` and
    `allocate` with a peak `fits`, without building one dict per probe.
    """
    hulls = hulls or Hulls(problem)
    f = problem.split_facts(k)
    keys = problem.tables.key_bytes[: f.n_keys]
    width = np.zeros(max(problem.bits) + 1, dtype=np.int64)  # bits -> position in problem.bits
    width[problem.bits] = np.arange(len(problem.bits))
    w_budgets = sorted(set(keys.sum(axis=0).tolist()))
    a_budgets = sorted(set(f.live.peaks(f.sizes.T).tolist()))

    wt, at = hulls.weights(k), hulls.activations(k)

    def key_w(grid: list[int]) -> np.ndarray:  # grid positions x weight sets: width positions
        return width[wt.bits_at(grid)]

    def act_w(grid: list[int]) -> np.ndarray:  # grid positions x layers: width positions
        return width[at.bits_at(grid)]

    def rates(grid: list[int]) -> list[int]:
        return keys[np.arange(f.n_keys), key_w(grid)].sum(axis=1).tolist()

    def peaks(grid: list[int]) -> list[int]:
        return f.live.peaks(f.sizes[np.arange(len(f.producer)), act_w(grid)[:, f.producer]]).tolist()

    w_at = dict(zip(w_budgets, first_fits(len(wt.grid), w_budgets, rates), strict=True))
    a_at = dict(zip(a_budgets, first_fits(len(at.grid), a_budgets, peaks), strict=True))
    w_grid = [w for w in w_at.values() if w is not None]
    a_grid = [a for a in a_at.values() if a is not None]
    nb = len(problem.bits)
    # every weight and activation allocation tried, each distinct one once (a Lagrangian one first)
    w_alloc = _Distinct([*key_w(w_grid), *np.repeat(np.arange(nb), f.n_keys).reshape(nb, f.n_keys)])
    a_alloc = _Distinct([*act_w(a_grid), *np.repeat(np.arange(nb), k).reshape(nb, k)])
    tried: dict[tuple[int, int], tuple[str, tuple[int, int] | None]] = {}
    for ma in a_budgets:
        for mw in w_budgets:
            w, a = w_at[mw], a_at[ma]
            if a is not None and w is not None:
                pair = (w_alloc.ids[w_grid.index(w)], a_alloc.ids[a_grid.index(a)])
                tried.setdefault(pair, (ORIGIN_LAGRANGIAN, (mw, ma)))
    for bw in range(nb):
        for ba in range(nb):
            tried.setdefault((w_alloc.ids[len(w_grid) + bw], a_alloc.ids[len(a_grid) + ba]), (ORIGIN_UNIFORM, None))
    pairs = list(tried)
    evs = problem.evaluate_positions(
        k, w_alloc.rows[[w for w, _ in pairs]], a_alloc.rows[[a for _, a in pairs]]
    )
    wbits = [problem.weight_bits_at(k, row) for row in w_alloc.rows]
    abits = [problem.activation_bits_at(k, row) for row in a_alloc.rows]
    return [
        Candidate(Assignment(k, wbits[w], abits[a]), ev, *tried[w, a])
        for (w, a), ev in zip(pairs, evs, strict=True)
        if ev.memory_bytes <= problem.memory_bytes
    ]


class _Distinct:
    """Rows (width positions) numbered by their first occurrence: `ids[i]` is row i's number in `rows`."""

    def __init__(self, rows: list[np.ndarray]) -> None:
        first: dict[bytes, int] = {}
        self.ids = [first.setdefault(r.astype(np.int64).tobytes(), len(first)) for r in rows]
        width = rows[0].shape[0] if rows else 0
        distinct = [rows[self.ids.index(i)] for i in range(len(first))]
        self.rows = np.array(distinct, dtype=np.int64).reshape(len(distinct), width)


def cloud_only(problem: PlanProblem) -> Candidate:
    a = Assignment(0)
    return Candidate(a, problem.evaluate(a), ORIGIN_CLOUD)


def candidate_list(problem: PlanProblem, progress: Callable[[int, int], None] | None = None) -> list[Candidate]:
    """The candidate list S of Algorithm 1, deduplicated and sorted by predicted latency (eq. 1)."""
    splits = potential_splits(problem)
    hulls = Hulls(problem)
    found = [cloud_only(problem)]
    for i, k in enumerate(splits):  # each split's list is free of duplicates, and splits differ
        found.extend(split_candidates(problem, k, hulls))
        if progress is not None:
            progress(i + 1, len(splits))
    return sorted(found, key=Candidate.sort_key)


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and how it was chosen."""

    chosen: Candidate
    criterion: Criterion
    threshold: float | None
    measured: tuple[tuple[int, float], ...] = ()  # (candidate position, accuracy drop) evaluated
    measure: str = ""  # what the accuracy drop was measured as (the evaluator's `measure`), if measured


def select(
    problem: PlanProblem,
    candidates: list[Candidate],
    evaluate: Callable[[Candidate], float] | None = None,
    max_accuracy_drop: float | None = None,
) -> Selection:
    """Pick the fastest candidate within the accuracy threshold.

    With `evaluate` (a measured accuracy drop, e.g. the edge part fake-quantised and run on labelled
    data) and `max_accuracy_drop`, candidates are evaluated fastest first until one is within the
    threshold (without labels, a label-free drop: `accuracy.make_label_free_evaluator`; its `measure`
    attribute says which); otherwise the summed error proxy is compared with `problem.max_error`.
    CLOUD-ONLY has no quantisation error, so a candidate is always found (the fallback).
    """
    if evaluate is not None and max_accuracy_drop is not None:
        measured: list[tuple[int, float]] = []
        measure = str(getattr(evaluate, "measure", ""))
        for i, c in enumerate(candidates):
            drop = 0.0 if c.origin == ORIGIN_CLOUD else float(evaluate(c))
            measured.append((i, drop))
            if drop <= max_accuracy_drop:
                return Selection(c, "measured-accuracy", max_accuracy_drop, tuple(measured), measure)
        raise AssertionError("unreachable: CLOUD-ONLY is always in the candidate list")
    if problem.max_error is None:
        return Selection(candidates[0], "latency-only", None)
    for c in candidates:
        if problem.feasible(c.evaluation):
            return Selection(c, "error-proxy", problem.max_error)
    raise AssertionError("unreachable: CLOUD-ONLY is always in the candidate list")
