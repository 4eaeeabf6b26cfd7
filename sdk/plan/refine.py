"""Beyond the paper: Algorithm 1's answer refined to a certified near-optimum of the same problem, anytime.

The problem is the exact solvers' (`exact.py`): least predicted latency (eq. 1) over every split and every
width per weight set and edge layer, under the memory limit and the error budget `max_error`. Algorithm 1's
fastest feasible candidate is the first incumbent. Then, per split k:

* a lower bound from a Lagrangian relaxation of the error budget (memory dropped, shared weight sets
  untied): for a multiplier mu >= 0 every edge layer independently takes the (weight, activation) widths
  minimising its edge ms + mu * its error + the transmission of the tensors it sends, so
  L_k(mu) = sum + the split's constant terms - mu * max_error is below split k's optimum (weak duality);
  the best over a grid of multipliers is kept. This dynamic programme over splits costs a few array
  operations per split;
* the relaxation's minimisers, made consistent (a shared weight set at its users' widest), are candidates
  too (origin "lagrangian-dp") wherever they fit the memory and the error budget;
* a split whose bound is within `tol` of the incumbent cannot improve it by more than `tol`: it is closed.
  The others, lowest bound first, get the exact MILP (`exact.milp_split`, warm-started with the incumbent
  where it is on that split, otherwise cut off at it) until the time budget ends.

The certified gap is incumbent / (the least bound over all splits) - 1: at most `tol` when every split was
solved or closed, larger, and said so, when the budget ended first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from splitsdk.plan import exact
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.problem import Assignment, PlanProblem, wire_bytes

ORIGIN_DP = "lagrangian-dp"
ORIGIN_MILP = "milp"
DEFAULT_BUDGET_S = 30.0  # wall-clock seconds for the MILPs of one refinement
DEFAULT_TOL = 0.002  # a split is closed when its bound is within this fraction of the incumbent
MULTIPLIERS = 48  # the Lagrangian's multiplier grid (geometric, plus 0)


@dataclass(frozen=True)
class Refinement:
    """The candidate list with the refined solutions added (sorted by latency), the best feasible one,
    the certified lower bound on the optimum and how each split ended."""

    candidates: list[Candidate]
    best: Candidate
    bound_ms: float
    solved: int  # splits whose MILP finished
    closed: int  # splits closed by their Lagrangian bound (or infeasible)
    unfinished: int  # splits the budget ended on, or never reached
    budget_s: float
    tol: float

    @property
    def gap(self) -> float:
        """Certified: the best is at most this fraction slower than the optimum."""
        return exact.gap(self.best.evaluation.total_ms, self.bound_ms) if self.bound_ms > 0 else 0.0

    def note(self) -> str:
        how = (
            f"{self.solved} split(s) solved by MILP, {self.closed} closed by their Lagrangian bound"
            if not self.unfinished
            else f"the {self.budget_s:g} s budget ended with {self.unfinished} split(s) open "
            f"({self.solved} solved by MILP, {self.closed} closed by their bound): the best found so far"
        )
        return (
            f"refined beyond Algorithm 1 (exact solver, anytime): {how}; the solution ({self.best.origin}) is "
            f"certified within {self.gap * 100:.2f}% of the exact optimum under the same memory and error budget"
        )


@dataclass(frozen=True)
class _Options:
    """Every layer's (weight width, activation width) options as arrays: ms, error, widths as positions."""

    ms: np.ndarray  # layer x option (inf: not available)
    err: np.ndarray  # layer x option
    w: np.ndarray  # option -> weight width position
    a: np.ndarray  # option -> activation width position


def _options(problem: PlanProblem) -> _Options:
    tab = problem.tables
    nb = len(problem.bits)
    w, a = (x.reshape(-1) for x in np.meshgrid(np.arange(nb), np.arange(nb), indexing="ij"))
    ms = np.where(np.isnan(tab.edge_ms), np.inf, tab.edge_ms).reshape(len(problem.order), -1)
    weightless = tab.key_of < 0
    ms[weightless[:, None] & (w != a)[None, :]] = np.inf  # a layer without weights: one option per width
    err = tab.weight_mse[:, w] + tab.activation_mse[:, a]
    return _Options(ms, err, w, a)


def _multipliers(problem: PlanProblem, opts: _Options) -> np.ndarray:
    if problem.max_error is None:
        return np.zeros(1)
    finite = np.where(np.isfinite(opts.ms), opts.ms, np.nan)
    span = float(np.nansum(np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)))
    span += problem.link.ms_per_byte * problem.input_bytes
    scale = max(span, 1e-12) / max(problem.max_error, 1e-300)
    return np.concatenate([[0.0], scale * np.geomspace(1e-6, 1e6, MULTIPLIERS)])


class _SplitBounds:
    """The Lagrangian bound and minimisers of every split, the layers' minima shared across splits."""

    def __init__(self, problem: PlanProblem) -> None:
        self.problem = problem
        self.opts = _options(problem)
        self.mu = _multipliers(problem, self.opts)
        # per multiplier x layer: the least ms + mu * error, and its prefix sums over the order
        scored = self.opts.ms[None, :, :] + self.mu[:, None, None] * self.opts.err[None, :, :]
        self.least = scored.min(axis=2)
        self.prefix = np.concatenate([np.zeros((len(self.mu), 1)), np.cumsum(self.least, axis=1)], axis=1)
        self.least_err = self.opts.err.min(axis=1)

    def sends(self, k: int) -> dict[int, np.ndarray]:
        """Split k's crossing tensors by producer position: ms spent sending them at each activation width."""
        p = self.problem
        out: dict[int, np.ndarray] = {}
        for c in p.candidates[k].crossing:
            producer = p.graph.tensors[c.tensor].producer
            if producer is None:  # a model input: a constant (`exact._constant_ms`)
                continue
            i = p.tables.position[producer]
            ms = np.array([wire_bytes(c.elements, b) for b in p.bits], dtype=np.float64) * p.link.ms_per_byte
            out[i] = out.get(i, 0.0) + ms
        return out

    def scored(self, i: int, send: np.ndarray | None) -> np.ndarray:
        """multiplier x option: layer i's ms + mu * error (+ what it sends)."""
        o = self.opts
        ms = o.ms[i] if send is None else o.ms[i] + send[o.a]
        return ms[None, :] + self.mu[:, None] * o.err[i][None, :]

    def bound(self, k: int) -> float:
        """A lower bound on split k's total latency (inf: the error budget cannot be met)."""
        p = self.problem
        if p.max_error is not None and float(self.least_err[:k].sum()) > p.error_limit:
            return math.inf
        values = self.prefix[:, k].copy()
        for i, send in self.sends(k).items():
            values += self.scored(i, send).min(axis=1) - self.least[:, i]
        if p.max_error is not None:
            values -= self.mu * p.max_error
        return float(values.max()) + exact._constant_ms(p, k)

    def minimisers(self, k: int) -> list[Candidate]:
        """The relaxation's minimiser at each multiplier, as feasible candidates of split k."""
        p = self.problem
        sends = self.sends(k)
        choice = np.stack(
            [self.scored(i, sends.get(i)).argmin(axis=1) for i in range(k)], axis=1
        )  # multiplier x layer: option
        act = self.opts.a[choice]
        wid = self.opts.w[choice]
        f = p.split_facts(k)
        keys = np.zeros((len(self.mu), f.n_keys), dtype=np.int64)
        key_of = p.tables.key_of[:k]
        for i in np.flatnonzero(key_of >= 0):
            keys[:, key_of[i]] = np.maximum(keys[:, key_of[i]], wid[:, i])
        rows = np.unique(np.concatenate([keys, act], axis=1), axis=0)
        evs = p.evaluate_positions(k, rows[:, : f.n_keys], rows[:, f.n_keys :])
        return [
            Candidate(p.assignment_at(k, r[: f.n_keys], r[f.n_keys :]), ev, ORIGIN_DP)
            for r, ev in zip(rows, evs, strict=True)
            if p.feasible(ev)
        ]


def _fits_somewhere(problem: PlanProblem, k: int) -> bool:
    """Split k's edge part fits the memory at the narrowest width (the least memory any assignment takes)."""
    f = problem.split_facts(k)
    weights = int(problem.tables.key_bytes[: f.n_keys, 0].sum()) + f.fixed_bytes
    return weights + int(f.live.peaks(f.sizes[:, 0])) <= problem.memory_bytes


def _key(c: Candidate) -> tuple[object, ...]:
    a = c.assignment
    return (a.split_index, a.weight_bits, a.activation_bits)


def refine(
    problem: PlanProblem,
    candidates: Sequence[Candidate],
    budget_s: float = DEFAULT_BUDGET_S,
    tol: float = DEFAULT_TOL,
    max_split: int | None = None,
) -> Refinement:
    """Algorithm 1's `candidates` (CLOUD-ONLY among them) with the refined solutions of problem's memory and
    error budget added, the best feasible one and its certified gap; splits above `max_split` are not used."""
    deadline = time.monotonic() + budget_s
    found: dict[tuple[object, ...], Candidate] = {}
    for c in candidates:
        found.setdefault(_key(c), c)
    feasible = [c for c in candidates if problem.feasible(c.evaluation)]
    best = min(feasible, key=Candidate.sort_key)  # CLOUD-ONLY always is
    last = len(problem.order) if max_split is None else min(max_split, len(problem.order))
    sb = _SplitBounds(problem)
    bounds = {0: problem.evaluate(Assignment(0)).total_ms}
    for k in range(1, last + 1):
        bounds[k] = sb.bound(k) if _fits_somewhere(problem, k) else math.inf

    def improve(c: Candidate) -> None:
        nonlocal best
        found.setdefault(_key(c), c)
        if c.sort_key() < best.sort_key():
            best = c

    def closes(k: int) -> bool:
        return bounds[k] * (1 + tol) >= best.evaluation.total_ms

    for k in sorted(bounds, key=bounds.__getitem__):  # the relaxation's own solutions first: cheap
        if k and not closes(k):
            for c in sb.minimisers(k):
                improve(c)
    solved = 0
    pending = sorted((k for k in bounds if k and not closes(k)), key=bounds.__getitem__)
    done: set[int] = set()
    for k in pending:
        left = deadline - time.monotonic()
        if closes(k) or left <= 0:
            continue
        start = best.assignment if best.assignment.split_index == k else None
        r = exact.milp_split(
            problem, k, left, rel_gap=tol, cutoff_ms=best.evaluation.total_ms, start=start
        )
        bounds[k] = max(bounds[k], r.bound_ms)
        if r.assignment is not None:
            ev = problem.evaluate(r.assignment)
            if problem.feasible(ev):
                improve(Candidate(r.assignment, ev, ORIGIN_MILP))
        if r.optimal:
            solved += 1
            done.add(k)
    unfinished = sum(1 for k in bounds if k and k not in done and not closes(k))
    closed = len(bounds) - 1 - solved - unfinished
    bound = min(min(bounds.values()), best.evaluation.total_ms)
    return Refinement(
        candidates=sorted(found.values(), key=Candidate.sort_key),
        best=best,
        bound_ms=bound,
        solved=solved,
        closed=closed,
        unfinished=unfinished,
        budget_s=budget_s,
        tol=tol,
    )


LADDER_STEP = 4.0  # one bit less on one layer multiplies its MSE by about 4
LADDER_STEPS = 10


def error_ladder(problem: PlanProblem) -> list[float | None]:
    """Error budgets from `max_error` up by factors of LADDER_STEP until the whole model at the narrowest
    width fits under one (None: no budget at all, when `max_error` is None)."""
    if problem.max_error is None:
        return [None]
    top = problem.evaluate(problem.uniform(len(problem.order), problem.bits[0])).error
    out: list[float | None] = [problem.max_error]
    while len(out) < LADDER_STEPS and (out[-1] or 0.0) < top:
        out.append((out[-1] or 0.0) * LADDER_STEP or top)
    return out


@dataclass(frozen=True)
class Refined:
    """What the planner selects from: the candidates, the notes saying how they were refined, and the
    certified gap of the best one under the error budget (None: selected on accuracy, not on that budget)."""

    candidates: list[Candidate]
    notes: tuple[str, ...]
    certified_gap: float | None


def refine_candidates(
    problem: PlanProblem,
    candidates: Sequence[Candidate],
    *,
    ladder: bool = False,
    max_split: int | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
) -> Refined:
    """Algorithm 1's candidates refined for the selection. With the error proxy (`ladder` False) the budget is
    `max_error`: the best candidate is then within the certified gap of the exact optimum. With measured
    accuracy (`ladder`) the error budget is not the constraint, so the refined optima at each budget of
    `error_ladder` join the list (each a fastest solution for its error), the time budget shared."""
    if not ladder:
        r = refine(problem, candidates, budget_s, max_split=max_split)
        return Refined(r.candidates, (r.note(),), r.gap)
    saved = problem.max_error
    budgets = error_ladder(problem)
    found = list(candidates)
    gaps: list[float] = []
    try:
        for e in budgets:
            problem.max_error = e
            r = refine(problem, found, budget_s / len(budgets), max_split=max_split)
            found, gaps = r.candidates, [*gaps, r.gap]
    finally:
        problem.max_error = saved
    scale = "" if saved is None else f" (error proxy {saved:.3g} x {LADDER_STEP:g}^0..{len(budgets) - 1})"
    note = (
        f"candidates: Algorithm 1's and the exact solver's refined optima at {len(budgets)} error budget(s){scale}, "
        f"each certified within {max(gaps) * 100:.2f}% of its budget's optimum; selected on accuracy"
    )
    return Refined(found, (note,), None)
