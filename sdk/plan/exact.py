"""Exact solvers of the joint problem, to measure Algorithm 1's optimality gap (beyond the paper).

Same objective and constraints as Algorithm 1's selection with the error proxy: minimise predicted
end-to-end latency (eq. 1) over every split of the topological order and every bit width in B for
each weight set and each edge layer's activations, subject to weight bytes + peak activation bytes
<= M and summed error proxy <= max_error. Two solvers:

* `exhaustive`: enumerates every assignment of every split (numpy, vectorised). The oracle for small
  graphs; refuses problems with more than `limit` assignments in one split.
* `milp`: one mixed-integer program per split, solved with HiGHS (highspy): one-hot choice per layer
  of (weight bits, activation bits), weight sets tied across their users, a row per live set for the
  peak activation memory, the memory and error rows. Exact up to HiGHS's MIP gap (set to 0).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from splitsdk.errors import PlanError
from splitsdk.plan.problem import INPUT_BITS, Assignment, Evaluation, PlanProblem, tensor_bytes, wire_bytes

if TYPE_CHECKING:
    import highspy


@dataclass(frozen=True)
class ExactResult:
    """The optimum found and how: solver name, the assignment and its figures (from `evaluate`)."""

    solver: str
    assignment: Assignment
    evaluation: Evaluation


def gap(found_ms: float, optimum_ms: float) -> float:
    """Relative optimality gap of a latency against the optimum (0.0 = optimal)."""
    return (found_ms - optimum_ms) / optimum_ms if optimum_ms > 0 else 0.0


def _best(problem: PlanProblem, solve_split: Callable[[int], Assignment | None], name: str) -> ExactResult:
    best: tuple[float, int, Assignment, Evaluation] | None = None
    for k in range(len(problem.order) + 1):
        a = Assignment(0) if k == 0 else solve_split(k)
        if a is None:
            continue
        ev = problem.evaluate(a)
        if not problem.feasible(ev):
            continue
        if best is None or ev.total_ms < best[0] - 1e-9:
            best = (ev.total_ms, k, a, ev)
    assert best is not None  # CLOUD-ONLY is always feasible
    return ExactResult(name, best[2], best[3])


# -- exhaustive ------------------------------------------------------------------------------------
def exhaustive(problem: PlanProblem, limit: int = 20_000_000) -> ExactResult:
    """The optimum by enumerating every assignment of every split (refused up front if a split has
    more than `limit` assignments)."""
    nb = len(problem.bits)
    for k in range(len(problem.order), 0, -1):
        nvars = len(problem.weight_keys(k)) + k
        if nb**nvars > limit:
            raise PlanError(f"exhaustive: split {k} has {nb}^{nvars} assignments, over the limit {limit}; use milp")
    return _best(problem, lambda k: _exhaustive_split(problem, k, limit), "exhaustive")


def _exhaustive_split(problem: PlanProblem, k: int, limit: int) -> Assignment | None:
    bits = list(problem.bits)
    nb = len(bits)
    keys = problem.weight_keys(k)
    key_names = sorted(keys)
    edge = problem.order[:k]
    nvars = len(key_names) + len(edge)
    if nb**nvars > limit:
        raise PlanError(f"exhaustive: split {k} has {nb}^{nvars} assignments, over the limit {limit}; use milp")
    # enumerate in chunks: the leading variables fixed per chunk, the rest as one numpy grid
    n_lead = max(0, nvars - 12)
    tail = np.array(list(itertools.product(range(nb), repeat=nvars - n_lead)), dtype=np.int64)
    tail = tail.reshape(-1, nvars - n_lead)
    best: tuple[float, np.ndarray] | None = None
    for lead in itertools.product(range(nb), repeat=n_lead):
        grid = np.hstack([np.tile(np.array(lead, dtype=np.int64), (len(tail), 1)), tail])
        scored = _score(problem, k, grid, key_names, limit)
        if scored is not None and (best is None or scored[0] < best[0]):
            best = scored
    if best is None:
        return None
    row = best[1]
    key_col = {key: i for i, key in enumerate(key_names)}
    wbits = {u: bits[row[key_col[key]]] for key, (_, users) in keys.items() for u in users}
    abits = {n: bits[row[len(key_names) + i]] for i, n in enumerate(edge)}
    return Assignment.make(k, wbits, abits)


def _score(
    problem: PlanProblem, k: int, grid: np.ndarray, key_names: list[str], limit: int
) -> tuple[float, np.ndarray] | None:
    """The fastest feasible row of a grid of bit indices (weight sets first, then edge layers)."""
    bits = list(problem.bits)
    keys = problem.weight_keys(k)
    edge = problem.order[:k]
    key_col = {key: i for i, key in enumerate(key_names)}
    act_col = {name: len(key_names) + i for i, name in enumerate(edge)}
    layer_key = {u: key for key, (_, users) in keys.items() for u in users}
    lat = np.zeros(len(grid))
    err = np.zeros(len(grid))
    for name in edge:
        ac = grid[:, act_col[name]]
        if name in layer_key:
            wc = grid[:, key_col[layer_key[name]]]
            table = np.array([[problem.edge_ms(name, w, a) for a in bits] for w in bits])
            lat += table[wc, ac]
            err += np.array([problem.weight_mse(name, w) for w in bits])[wc]
        else:
            lat += np.array([problem.edge_ms(name, a, a) for a in bits])[ac]
        err += np.array([problem.activation_mse(name, a) for a in bits])[ac]
    mem = np.full(len(grid), problem.fixed_bytes(k), dtype=np.int64)
    for key in key_names:
        mem += np.array([problem.key_bytes(key, b) for b in bits], dtype=np.int64)[grid[:, key_col[key]]]
    peak = np.zeros(len(grid), dtype=np.int64)
    for step in problem.live_steps(k):
        total = np.zeros(len(grid), dtype=np.int64)
        for t, e in step.items():
            total += _tensor_bytes_column(problem, grid, act_col, t, e, bits, stored=True)
        peak = np.maximum(peak, total)
    tx = np.zeros(len(grid), dtype=np.int64)
    for c in problem.candidates[k].crossing:
        tx += _tensor_bytes_column(problem, grid, act_col, c.tensor, c.elements, bits)
    tx_ms = problem.link.transmit_ms_array(tx)
    total_ms = lat + tx_ms
    ok = (mem + peak) <= problem.memory_bytes
    if problem.max_error is not None:
        ok &= err <= problem.error_limit
    if not ok.any():
        return None
    i = int(np.argmin(np.where(ok, total_ms, np.inf)))
    return float(total_ms[i]), grid[i]


def _tensor_bytes_column(
    problem: PlanProblem,
    grid: np.ndarray,
    act_col: dict[str, int],
    tensor: str,
    elements: int,
    bits: list[int],
    stored: bool = False,
) -> np.ndarray:
    """A tensor's bytes per grid row: in device memory (`stored`) or packed on the wire."""
    size = problem.stored_bytes if stored else wire_bytes
    producer = problem.graph.tensors[tensor].producer
    if producer is None:
        return np.full(len(grid), size(elements, INPUT_BITS), dtype=np.int64)
    per_bits = np.array([size(elements, b) for b in bits], dtype=np.int64)
    return per_bits[grid[:, act_col[producer]]]


# -- MILP ------------------------------------------------------------------------------------------
def milp(problem: PlanProblem, time_limit_s: float = 60.0) -> ExactResult:
    """The optimum by one HiGHS mixed-integer program per split."""
    return _best(problem, lambda k: _milp_split(problem, k, time_limit_s), "milp")


def _milp_split(problem: PlanProblem, k: int, time_limit_s: float) -> Assignment | None:
    """Split k's optimum (PlanError if HiGHS stops short of proving it); see `milp_split`."""
    out = milp_split(problem, k, time_limit_s)
    if not out.optimal:
        raise PlanError(f"milp: split {k}: HiGHS stopped with {out.status}")
    return out.assignment


@dataclass(frozen=True)
class SplitSolve:
    """One split's MILP: the best feasible assignment found (None: none, or none below the cutoff), a
    certified lower bound on the split's total latency (ms; inf: infeasible, or nothing below the
    cutoff), whether the search finished (within `rel_gap`) and HiGHS's status."""

    assignment: Assignment | None
    bound_ms: float
    optimal: bool
    status: str


def milp_split(
    problem: PlanProblem,
    k: int,
    time_limit_s: float = 60.0,
    *,
    rel_gap: float = 0.0,
    cutoff_ms: float | None = None,
    start: Assignment | None = None,
) -> SplitSolve:
    """Split k's optimum, anytime: HiGHS stops at `time_limit_s` with the best found so far and its
    dual bound; `rel_gap` lets it stop once the incumbent is proven within that fraction (of the
    objective without the split's constant terms: stricter than the same fraction of total latency);
    `cutoff_ms` prunes everything not faster than it (a solution of another split already is);
    `start` warm-starts the search with a solution of this split.

    Memory and error rows are scaled to O(1) and solved with tolerances of 1e-9 (the error limit has
    a relative tolerance of 1e-7, `PlanProblem.error_limit`); if the answer still breaks a limit by a
    hair (rounded binaries, error excesses too small for HiGHS), it is solved again with the memory
    limit tightened (at most 1e-5 of M) and the small excesses reserved from the error slack;
    infeasible beyond that. The bound is the first (untightened) model's, the relaxation of the real
    one (a precision mix's extra bytes are not in it), so it stays valid."""
    offset = _constant_ms(problem, k)
    cutoff = None if cutoff_ms is None else cutoff_ms - offset
    first: _Outcome | None = None
    for margin in (0.0, 1e-9, 1e-7, 1e-5):
        out = _milp_solve(problem, k, time_limit_s, margin, rel_gap=rel_gap, cutoff=cutoff, start=start)
        first = first or out
        a = out.assignment
        if a is None or problem.feasible(problem.evaluate(a)):
            bound = first.bound + offset if first.bound > -math.inf else -math.inf
            return SplitSolve(a, bound, first.optimal, first.status)
        if not out.optimal:
            break
    assert first is not None
    return SplitSolve(None, first.bound + offset, False, first.status)


def _constant_ms(problem: PlanProblem, k: int) -> float:
    """The part of split k's total latency no bit choice moves: the cloud suffix, sending the crossing
    model inputs, and the RTT when anything is sent (`objective + this` = `evaluate(...).total_ms`)."""
    crossing = problem.candidates[k].crossing
    inputs = sum(
        tensor_bytes(c.elements, INPUT_BITS) for c in crossing if problem.graph.tensors[c.tensor].producer is None
    )
    return problem.cloud_suffix_ms[k] + problem.link.ms_per_byte * inputs + (problem.link.rtt_ms if crossing else 0.0)


@dataclass(frozen=True)
class _Outcome:
    assignment: Assignment | None
    bound: float  # HiGHS's dual bound on the objective (inf: infeasible, or nothing below the cutoff)
    optimal: bool
    status: str


def _milp_solve(
    problem: PlanProblem,
    k: int,
    time_limit_s: float,
    margin: float,
    *,
    rel_gap: float = 0.0,
    cutoff: float | None = None,
    start: Assignment | None = None,
) -> _Outcome:
    import highspy

    bits = list(problem.bits)
    edge = problem.order[:k]
    keys = problem.weight_keys(k)
    layer_key = {u: key for key, (_, users) in keys.items() for u in users}
    inf = highspy.kHighsInf
    cost: list[float] = []
    names: list[tuple[str, int, int]] = []  # (layer, wbits, abits) of each x column
    for name in edge:
        wopts = bits if name in layer_key else [None]
        for w in wopts:
            for a in bits:
                cost.append(problem.edge_ms(name, a if w is None else w, a))
                names.append((name, -1 if w is None else w, a))
    col = {n: i for i, n in enumerate(names)}
    nx_ = len(names)
    ykeys = sorted(keys)
    ycol = {(key, w): nx_ + i * len(bits) + j for i, key in enumerate(ykeys) for j, w in enumerate(bits)}
    ma_col = nx_ + len(ycol)  # peak activation memory, as a fraction of the memory limit
    ncols = ma_col + 1
    ms_per_byte = problem.link.ms_per_byte
    obj = np.zeros(ncols)
    obj[:nx_] = cost
    # transmission: bytes of each crossing tensor at its producer's activation bits (the constant
    # part, model inputs and the RTT, does not move the argmin; `evaluate` adds it back)
    for c in problem.candidates[k].crossing:
        for coef, j in _tensor_terms(problem, names, c.tensor, c.elements):
            if j >= 0:
                obj[j] += coef * ms_per_byte

    mem_scale = 1.0 / problem.memory_bytes
    rows: list[tuple[dict[int, float], float, float]] = []
    for name in edge:  # one choice per layer
        rows.append(({col[n]: 1.0 for n in names if n[0] == name}, 1.0, 1.0))
    for key in ykeys:  # the weight set's choice, and its users follow it
        rows.append(({ycol[(key, w)]: 1.0 for w in bits}, 1.0, 1.0))
        for u in keys[key][1]:
            for w in bits:
                tie = {col[(u, w, a)]: 1.0 for a in bits}
                tie[ycol[(key, w)]] = -1.0
                rows.append((tie, 0.0, 0.0))
    for step in problem.live_steps(k):  # peak activation memory >= every live set
        r: dict[int, float] = {ma_col: -1.0}
        const = 0.0
        for t, e in step.items():
            for coef, j in _tensor_terms(problem, names, t, e, stored=True):
                if j < 0:
                    const += coef * mem_scale
                else:
                    r[j] = r.get(j, 0.0) + coef * mem_scale
        rows.append((r, -inf, -const))
    mem: dict[int, float] = {ma_col: 1.0}
    for key in ykeys:
        for w in bits:
            mem[ycol[(key, w)]] = problem.key_bytes(key, w) * mem_scale
    rows.append((mem, -inf, 1.0 - margin - problem.fixed_bytes(k) * mem_scale))
    upper = np.ones(ncols)
    upper[ma_col] = inf
    if problem.max_error is not None:
        # error row over each layer's excess above its least error, scaled by the threshold; an
        # option whose excess alone exceeds the slack is fixed to 0. HiGHS drops coefficients
        # below 1e-9 (and fails on some models when told not to keep them), so excesses that small
        # are left out; that errs by at most 1e-9 of the threshold per layer, inside ERROR_RTOL on
        # most models. If the answer still breaks the limit, the retry (margin > 0) reserves their
        # largest value per layer from the slack: conservative, never optimistic.
        err = {
            j: (problem.weight_mse(n, w) if w > 0 else 0.0) + problem.activation_mse(n, a)
            for (n, w, a), j in col.items()
        }
        least = {name: min(err[col[c]] for c in names if c[0] == name) for name in edge}
        slack = problem.error_limit - sum(least.values())
        if slack < 0:
            return _Outcome(None, math.inf, True, "Infeasible")
        scale = problem.max_error if problem.max_error > 0 else 1.0
        tiny = 1e-9 * scale
        excess: dict[int, float] = {}
        reserve: dict[str, float] = {}
        for (name, _, _), j in col.items():
            d = err[j] - least[name]
            if d > slack:
                upper[j] = 0.0
            elif d >= tiny:
                excess[j] = d / scale
            elif d > 0:
                reserve[name] = max(reserve.get(name, 0.0), d)
        if excess:
            held = sum(reserve.values()) if margin > 0 else 0.0
            rows.append((excess, -inf, max(0.0, slack - held) / scale))

    # HiGHS now and then ends a model with "Solve error" and solves it on a second try; retry
    # with presolve off and another seed before giving up
    status, h = highspy.HighsModelStatus.kNotset, None
    retries: tuple[dict[str, float | str], ...] = ({}, {"presolve": "off"}, {"presolve": "off", "random_seed": 7})
    done = (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kOptimal,
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kObjectiveBound,
    )
    for extra in retries:
        h = highspy.Highs()
        h.silent()
        options: dict[str, float | str] = {
            "mip_rel_gap": float(rel_gap),
            "mip_abs_gap": 0.0,
            "time_limit": float(max(time_limit_s, 1e-3)),
            "mip_feasibility_tolerance": 1e-9,
            "primal_feasibility_tolerance": 1e-9,
            # a warm start bounds the search itself; a cutoff prunes for another split's solution
            **({} if cutoff is None or start is not None else {"objective_bound": float(cutoff)}),
            **extra,
        }
        for option, value in options.items():
            h.setOptionValue(option, value)
        h.addVars(ncols, np.zeros(ncols), upper)
        h.changeColsCost(ncols, np.arange(ncols, dtype=np.int32), obj)
        h.changeColsIntegrality(
            ma_col, np.arange(ma_col, dtype=np.int32), np.full(ma_col, highspy.HighsVarType.kInteger)
        )
        for r, lo, hi in rows:
            idx = np.array(sorted(r), dtype=np.int32)
            h.addRow(lo, hi, len(idx), idx, np.array([r[i] for i in idx]))
        if start is not None and start.split_index == k:
            h.setSolution(_start_solution(problem, start, col, ycol, ma_col, ncols))
        h.run()
        status = h.getModelStatus()
        if status in done:
            break
    assert h is not None
    name = h.modelStatusToString(status)
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kObjectiveBound):
        # nothing at all, or nothing below the cutoff: the split's optimum is at least the cutoff
        return _Outcome(None, math.inf if cutoff is None else cutoff, True, name)
    info = h.getInfo()
    optimal = status == highspy.HighsModelStatus.kOptimal
    bound = float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else -math.inf
    if optimal and info.primal_solution_status == 2:  # proven within rel_gap of the solution found
        value = float(info.objective_function_value)
        bound = max(bound, value - rel_gap * abs(value))
    if info.primal_solution_status != 2:  # kSolutionStatusFeasible: no solution found in the time
        return _Outcome(None, math.inf if optimal else bound, optimal, name)
    x = np.array(h.getSolution().col_value)
    wbits: dict[str, int] = {}
    abits: dict[str, int] = {}
    for (layer, w, a), j in col.items():
        if x[j] > 0.5:
            abits[layer] = a
            if w > 0:
                wbits[layer] = w
    return _Outcome(Assignment.make(k, wbits, abits), bound, optimal, name)


def _start_solution(
    problem: PlanProblem,
    a: Assignment,
    col: dict[tuple[str, int, int], int],
    ycol: dict[tuple[str, int], int],
    ma_col: int,
    ncols: int,
) -> highspy.HighsSolution:
    """A HiGHS solution of `a` (one split's assignment) in the columns of `_milp_solve`'s model."""
    import highspy

    x = np.zeros(ncols)
    wbits, abits = a.wbits, a.abits
    for layer, ab in abits.items():
        x[col[(layer, wbits.get(layer, -1), ab)]] = 1.0
    for key, (_, users) in problem.weight_keys(a.split_index).items():
        x[ycol[(key, wbits[users[0]])]] = 1.0
    x[ma_col] = problem.peak_bytes(a.split_index, abits) / problem.memory_bytes
    sol = highspy.HighsSolution()
    sol.col_value = x.tolist()
    return sol


def _tensor_terms(
    problem: PlanProblem, names: list[tuple[str, int, int]], tensor: str, elements: int, stored: bool = False
) -> list[tuple[float, int]]:
    """A tensor's bytes (in device memory if `stored`, else on the wire) as (coefficient, column)
    terms; column -1 is a constant."""
    size = problem.stored_bytes if stored else wire_bytes
    producer = problem.graph.tensors[tensor].producer
    if producer is None:
        return [(float(size(elements, INPUT_BITS)), -1)]
    return [(float(size(elements, a)), j) for j, (name, _, a) in enumerate(names) if name == producer]


def solve(problem: PlanProblem, exhaustive_limit: int = 200_000) -> ExactResult:
    """Exhaustive when every split is small enough, MILP otherwise."""
    nb = len(problem.bits)
    worst = max((len(problem.weight_keys(k)) + k for k in range(len(problem.order) + 1)), default=0)
    if math.log(max(nb, 1)) * worst <= math.log(exhaustive_limit):
        return exhaustive(problem, exhaustive_limit)
    return milp(problem)
