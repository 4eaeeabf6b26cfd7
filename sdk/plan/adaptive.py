"""A split set that follows the uplink: the few splits that minimise the expected latency over a rate distribution.

The edge runs a chain of segment models, input -> cut 1 -> cut 2 -> ... -> the deepest cut, and sends, per frame,
the tensors of the cut that suits the current rate. Hence, for a set of splits k_1 < ... < k_m:

* one assignment (weight and activation bits) of the deepest prefix k_m serves every split: a shallower split k_j
  runs the first k_j layers of it. No layer's weights are stored twice;
* the memory is the chain's: the deepest prefix's weights (once) and model file, each further segment's file
  records, the peak activation bytes of every split's prefix (the largest), and the output buffer of every
  shallower cut (each segment's interpreter holds its outputs);
* a shallower cut's tensors are produced at the shared activation bits, which serve the deeper segments; on the
  wire they may go at fewer bits (a wire cap: the edge requantises with a lookup table when it sends them). The
  deepest cut sends its producers' own bits, as a single plan does. Every split's error proxy (with its cap)
  must be within the problem's `max_error`, as a single plan's;
* the latency of split k at rate r is the planner's cost model (edge + transmit at r + RTT + cloud); only the
  transmit term depends on the rate, so one PlanProblem's tables serve every rate (`at_rate`).

Candidates come from the single-rate plans: Algorithm 1's list, refined at each rate of the distribution
(`refine.refine`, a time budget per rate); at each rate the fastest `SPLITS_PER_RATE` splits are candidate
splits, and each one's fastest assignment at that rate is a candidate assignment of it. A split with at most
`exhaustive_limit` assignments takes every feasible one instead (small graphs: the search is then exact).
When a shallow member would want other weight bits than the deepest's assignment gives it, the deepest gets
a merged candidate too: the shallow member's own assignment on its prefix, the deepest's on the rest (a weight
set used on both sides at its users' widest), kept when it fits the memory and the error budget.
The search is exhaustive over subsets of at most `max_splits` candidate splits, the deepest one's
assignment among its candidates, and the wire caps of the shallower ones. Numbers are modelled.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from splitsdk.errors import PlanError
from splitsdk.plan.autosplit import Candidate, candidate_list
from splitsdk.plan.baselines import kind_of
from splitsdk.plan.problem import (
    WIRE_MAX_BITS,
    Assignment,
    Evaluation,
    PlanProblem,
    wire_bytes,
)
from splitsdk.plan.refine import refine
from splitsdk.plan.schema import RateChoice, SetMember, SplitSet
from splitsdk.plan.uplink import Uplink
from splitsdk.profile.types import Link

DEFAULT_MAX_SPLITS = 3
SPLITS_PER_RATE = 4  # the fastest splits at each rate are candidate splits
EXHAUSTIVE_LIMIT = 0  # a split with at most this many assignments takes all of them (0: never)
REFINE_BUDGET_S = 2.0  # the refinement's time budget at each rate
REL_TIE = 1e-9  # expected latencies this close are equal: the smaller set wins


def at_rate(problem: PlanProblem, mbps: float) -> PlanProblem:
    """The problem with the uplink at `mbps` (same RTT), sharing its tables and caches: none depends on the link."""
    problem.tables  # noqa: B018 - built once here, so the copies share it
    out = copy.copy(problem)
    out.link = Link(mbps, problem.link.rtt_ms)
    return out


def rate_latencies(ev: Evaluation, rates: Sequence[float], rtt_ms: float) -> np.ndarray:
    """An evaluation's total latency at each rate (its transmit term recomputed)."""
    return np.array([ev.edge_ms + ev.cloud_ms + Link(r, rtt_ms).transmit_ms(ev.transmit_bytes) for r in rates])


@dataclass(frozen=True)
class _Row:
    """A member option: split, wire cap, latencies, what it adds to the chain's memory, its figures."""

    k: int
    cap: int | None
    lat: np.ndarray
    peak: int
    extra: int  # segment records + output buffer (0 for the deepest: its own are in its evaluation)
    buffer: int
    ev: Evaluation
    crossing_bits: tuple[tuple[str, int], ...]


class _Search:
    def __init__(self, problem: PlanProblem, uplink: Uplink) -> None:
        self.p = problem
        self.rates = list(uplink.rates)
        self.w = np.array(uplink.weights)
        self.n = len(problem.order)
        self._evals: dict[Assignment, Evaluation] = {}

    def evaluate(self, a: Assignment) -> Evaluation:
        if a not in self._evals:
            self._evals[a] = self.p.evaluate(a)
        return self._evals[a]

    def lat(self, ev: Evaluation) -> np.ndarray:
        return rate_latencies(ev, self.rates, self.p.link.rtt_ms)

    def restrict(self, a: Assignment, k: int) -> Assignment:
        pos = self.p.tables.position
        return Assignment(
            k,
            tuple(x for x in a.weight_bits if pos[x[0]] < k),
            tuple(x for x in a.activation_bits if pos[x[0]] < k),
        )

    def merge(self, deep: Assignment, shallow: Assignment) -> Assignment:
        """`shallow`'s bits on its prefix, `deep`'s on the rest; a weight set on both sides at the widest."""
        k = shallow.split_index
        pos = self.p.tables.position
        wb = {n: b for n, b in deep.weight_bits if pos[n] >= k} | dict(shallow.weight_bits)
        ab = {n: b for n, b in deep.activation_bits if pos[n] >= k} | dict(shallow.activation_bits)
        widest: dict[str, int] = {}
        for n, b in wb.items():
            key = self.p.graph.layer(n).weight_key
            widest[key] = max(widest.get(key, b), b)
        wb = {n: widest[self.p.graph.layer(n).weight_key] for n in wb}
        return Assignment.make(deep.split_index, wb, ab)

    def deep_row(self, a: Assignment) -> _Row:
        ev = self.evaluate(a)
        bits = tuple(
            (c.tensor, self.p.wire_bits(c.tensor, a.abits)) for c in self.p.candidates[a.split_index].crossing
        )
        return _Row(a.split_index, None, self.lat(ev), ev.peak_activation_bytes, 0, 0, ev, bits)

    def shallow_rows(self, deep: Assignment, k: int) -> list[_Row]:
        """Split k < the deepest under `deep`'s bits, at each wire cap that changes what it sends."""
        p = self.p
        if k == 0:
            return [self.deep_row(Assignment(0))]
        base = self.evaluate(self.restrict(deep, k))
        abits = deep.abits
        crossing = p.candidates[k].crossing
        own = {c.tensor: p.wire_bits(c.tensor, abits) for c in crossing}
        produced = [c for c in crossing if p.graph.tensors[c.tensor].producer is not None]
        top = max((own[c.tensor] for c in produced), default=0)
        mf = p.model_file
        fixed = 0 if mf is None else math.ceil(mf.base_bytes + len(crossing) * mf.per_output_bytes)
        buffer = sum(p.stored_bytes(c.elements, p.tensor_bits(c.tensor, abits)) for c in crossing)
        rows = []
        capped = {c.tensor for c in produced}
        for cap in [None, *(b for b in p.bits if b < min(top, WIRE_MAX_BITS))]:
            sent = {t: min(b, cap) if cap is not None and t in capped else b for t, b in own.items()}
            tx = sum(wire_bytes(c.elements, sent[c.tensor]) for c in crossing)
            error = base.error
            if cap is not None:  # a capped producer's error is its activations' at the cap
                for producer in {p.graph.tensors[t].producer for t in capped if sent[t] < own[t]}:
                    assert producer is not None
                    error += p.activation_mse(producer, cap) - p.activation_mse(producer, abits[producer])
            if p.max_error is not None and error > p.error_limit:
                continue
            ev = replace(base, transmit_bytes=tx, transmit_ms=p.link.transmit_ms(tx), error=error)
            rows.append(_Row(k, cap, self.lat(ev), base.peak_activation_bytes, fixed + buffer, buffer, ev,
                             tuple(sent.items())))
        return rows

    def expected(self, lat: np.ndarray) -> float:
        return float(lat @ self.w)


def _fastest_by_split(cands: Sequence[Candidate], problem: PlanProblem) -> dict[int, Candidate]:
    out: dict[int, Candidate] = {}
    for c in sorted(cands, key=Candidate.sort_key):
        if problem.feasible(c.evaluation):
            out.setdefault(c.assignment.split_index, c)
    return out


def _at(c: Candidate, problem: PlanProblem) -> Candidate:
    ev = c.evaluation
    return replace(c, evaluation=replace(ev, transmit_ms=problem.link.transmit_ms(ev.transmit_bytes)))


def _every_assignment(problem: PlanProblem, k: int) -> list[Assignment]:
    bits = list(problem.bits)
    keys = problem.weight_keys(k)
    names = problem.order[:k]
    out = []
    for kb in itertools.product(bits, repeat=len(keys)):
        wb = {u: b for b, (_, users) in zip(kb, keys.values(), strict=True) for u in users}
        for ab in itertools.product(bits, repeat=k):
            out.append(Assignment.make(k, wb, dict(zip(names, ab, strict=True))))
    return out


def plan_split_set(
    problem: PlanProblem,
    uplink: Uplink,
    max_splits: int = DEFAULT_MAX_SPLITS,
    candidates: Sequence[Candidate] | None = None,
    refine_budget_s: float = REFINE_BUDGET_S,
    max_split: int | None = None,
    exhaustive_limit: int = EXHAUSTIVE_LIMIT,
    splits_per_rate: int = SPLITS_PER_RATE,
) -> SplitSet:
    """The split set of at most `max_splits` splits with the least expected latency over `uplink` (see the module).

    `candidates`: Algorithm 1's list (computed when None; its assignments do not depend on the rate).
    `refine_budget_s`: the exact refinement's budget at each rate (0: Algorithm 1's candidates only).
    `max_split`: splits above it are not used (e.g. layers kept in the cloud). The problem's `max_error` is
    the error budget of every split of the set (the error proxy; measured accuracy is not evaluated here).
    """
    if max_splits < 1:
        raise PlanError(f"max_splits: must be at least 1, got {max_splits}")
    s = _Search(problem, uplink)
    last = s.n if max_split is None else min(max_split, s.n)
    base = [c for c in (candidate_list(problem) if candidates is None else candidates)
            if c.assignment.split_index <= last]
    notes = [f"uplink {uplink.source}: {len(uplink.rates)} rate(s), {min(uplink.rates):g}..{max(uplink.rates):g} "
             "Mbit/s; latencies modelled (the planner's cost model at each rate)"]
    pool = _pool(s, base, refine_budget_s, last, splits_per_rate)
    exhaustive = _exhaustive_pools(s, pool, last, exhaustive_limit)
    if exhaustive:
        notes.append(f"every assignment searched for {len(exhaustive)} small split(s)")
    deep = _deep_candidates(s, pool, exhaustive)
    deep_rows = [s.deep_row(a) for a in deep]
    lat_all = np.array([r.lat for r in deep_rows])
    oracle_at = lat_all.min(axis=0)
    static_scores = lat_all @ s.w
    static_row = deep_rows[int(np.argmin(static_scores))]
    score, chosen, rows = _best_set(s, list(deep), deep_rows, sorted(pool), max_splits)

    lat = np.array([r.lat for r in rows])
    use = lat.argmin(axis=0)
    members = tuple(
        SetMember(r.k, kind_of(r.k, s.n), r.cap, r.crossing_bits, r.ev.edge_ms, r.ev.cloud_ms, r.ev.transmit_bytes,
                  r.ev.error, tuple(float(x) for x in r.lat), s.expected(r.lat))
        for r in rows
    )
    per_rate = tuple(
        RateChoice(float(rate), float(w), rows[int(use[i])].k, float(lat[use[i], i]), float(static_row.lat[i]),
                   float(oracle_at[i]), deep_rows[int(np.argmin(lat_all[:, i]))].k)
        for i, (rate, w) in enumerate(zip(uplink.rates, uplink.weights, strict=True))
    )
    if deep[chosen] is not None:
        notes.append(f"the shared assignment takes split {deep[chosen]}'s own bits on its prefix and split "
                     f"{chosen.split_index}'s on the rest (a weight set used on both sides at the wider)")
    notes.append(f"candidates: {len(deep)} single plans over {len(pool)} split(s) (the fastest {splits_per_rate} "
                 f"splits at each rate, {'refined' if refine_budget_s > 0 else 'Algorithm 1'}), merges included")
    return SplitSet(
        uplink=uplink.source,
        rates=uplink.rates,
        weights=uplink.weights,
        members=members,
        weight_bits=chosen.weight_bits,
        activation_bits=chosen.activation_bits,
        weight_bytes=rows[-1].ev.edge_weight_bytes + sum(r.extra - r.buffer for r in rows[:-1]),
        peak_activation_bytes=max(r.peak for r in rows),
        buffer_bytes=sum(r.buffer for r in rows[:-1]),
        memory_limit=problem.memory_bytes,
        expected_ms=score,
        best_static_ms=float(static_scores.min()),
        best_static_split=static_row.k,
        oracle_ms=s.expected(oracle_at),
        per_rate=per_rate,
        notes=tuple(notes),
    )


def _pool(s: _Search, base: Sequence[Candidate], budget_s: float, last: int, per_rate: int
          ) -> dict[int, dict[Assignment, None]]:
    """Candidate splits and their assignments: at each rate, the fastest `per_rate` splits' fastest plans
    (CLOUD-ONLY always)."""
    pool: dict[int, dict[Assignment, None]] = {0: {Assignment(0): None}}
    for r in s.rates:
        pr = at_rate(s.p, r)
        cands = [_at(c, pr) for c in base]
        if budget_s > 0:
            cands = refine(pr, cands, budget_s, max_split=last).candidates
        fastest = _fastest_by_split(cands, pr)
        for k in sorted(fastest, key=lambda k: fastest[k].sort_key())[:per_rate]:
            pool.setdefault(k, {})[fastest[k].assignment] = None
    return pool


def _exhaustive_pools(s: _Search, pool: dict[int, dict[Assignment, None]], last: int, limit: int) -> set[int]:
    """Every feasible assignment of each split with at most `limit` of them joins the pool; those splits."""
    out = set()
    nb = len(s.p.bits)
    for k in range(1, last + 1):
        if limit and nb ** (len(s.p.weight_keys(k)) + k) <= limit:
            every = [a for a in _every_assignment(s.p, k) if s.p.feasible(s.evaluate(a))]
            if every:
                pool[k] = dict.fromkeys(every)
            out.add(k)
    return out


def _deep_candidates(s: _Search, pool: dict[int, dict[Assignment, None]], exhaustive: set[int]
                     ) -> dict[Assignment, int | None]:
    """The deepest member's assignments: the pool's, and merges with a shallower split's own assignment
    (-> that split; None: no merge). A split searched exhaustively needs no merges: they are in its pool."""
    splits = sorted(pool)
    deep: dict[Assignment, int | None] = {}
    for km in splits:
        for a in pool[km]:
            deep.setdefault(a, None)
            if km in exhaustive:
                continue
            for kj in (k for k in splits if 0 < k < km):
                for b in pool[kj]:
                    m = s.merge(a, b)
                    if m not in deep and m not in pool[km] and s.p.feasible(s.evaluate(m)):
                        deep[m] = kj
    return deep


def _best_set(s: _Search, deep: list[Assignment], deep_rows: list[_Row], splits: list[int], max_splits: int
              ) -> tuple[float, Assignment, tuple[_Row, ...]]:
    """Every subset of shallower candidate splits (with every wire cap) under every deepest assignment: the
    least expected latency within the memory (the chain's), its deepest assignment and its rows."""
    best: tuple[tuple[float, int, tuple[int, ...]], Assignment, tuple[_Row, ...]] | None = None
    for a, drow in zip(deep, deep_rows, strict=True):
        by_split = {k: s.shallow_rows(a, k) for k in splits if k < a.split_index} if max_splits > 1 else {}
        for size in range(max_splits):
            for ks in itertools.combinations(sorted(by_split), size):
                for opts in itertools.product(*(by_split[k] for k in ks)):
                    rows = (*opts, drow)
                    memory = drow.ev.memory_bytes + sum(r.extra for r in opts) + max(
                        0, max((r.peak for r in opts), default=0) - drow.peak
                    )
                    if memory > s.p.memory_bytes:
                        continue
                    score = s.expected(np.min([r.lat for r in rows], axis=0))
                    key = (score, len(rows), tuple(r.k for r in rows))
                    if best is None or _better(key, best[0]):
                        best = (key, a, rows)
    assert best is not None  # CLOUD-ONLY alone always is a set
    return best[0][0], best[1], best[2]


def _better(a: tuple[float, int, tuple[int, ...]], b: tuple[float, int, tuple[int, ...]]) -> bool:
    """Lower expected latency; within REL_TIE, fewer splits, then the lower split indices."""
    if a[0] < b[0] * (1 - REL_TIE):
        return True
    if a[0] > b[0] * (1 + REL_TIE):
        return False
    return (a[1], a[2]) < (b[1], b[2])
