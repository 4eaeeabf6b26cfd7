"""The uplink distribution (`--uplink LOW..HIGH`, a trace CSV) and the split set that follows it: never worse than
its members or the best static plan, the brute-force optimum on small DAGs, one weight copy in the chain."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from splitsdk.errors import PlanError
from splitsdk.plan.adaptive import SplitSet, plan_split_set, rate_latencies
from splitsdk.plan.problem import WIRE_MAX_BITS, Assignment, PlanProblem, wire_bytes
from splitsdk.plan.synthetic import chain, profile_for, random_problem_parts, sensitivity_for
from splitsdk.plan.uplink import RANGE_POINTS, Uplink, load_uplink_trace, parse_uplink
from splitsdk.profile.types import Link

BITS = [2, 4, 8]


# -- the distribution ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rates"),
    [("3", (3.0,)), ("500kbit", (0.5,)), ("1gbit", (1000.0,)), ("2.5mbit", (2.5,)), ("4mbit..4mbit", (4.0,))],
)
def test_a_single_rate_has_weight_one(text: str, rates: tuple[float, ...]) -> None:
    u = parse_uplink(text)
    assert u.rates == pytest.approx(rates) and u.weights == (1.0,) and u.single


def test_a_range_is_log_uniform_with_equal_weights() -> None:
    u = parse_uplink("1mbit..20mbit")
    assert len(u.rates) == RANGE_POINTS and u.weights == pytest.approx([1 / RANGE_POINTS] * RANGE_POINTS)
    assert 1.0 < u.rates[0] < u.rates[-1] < 20.0
    steps = np.diff(np.log(u.rates))
    assert steps == pytest.approx([math.log(20) / RANGE_POINTS] * (RANGE_POINTS - 1))
    assert math.exp(np.mean(np.log(u.rates))) == pytest.approx(math.sqrt(20))  # centred in log rate
    assert parse_uplink("500kbit..2").rates[0] > 0.5 and "log-uniform" in parse_uplink("1..20").source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "--uplink: bad link rate 'fast'"),
        ("0", "--uplink: bad link rate '0': must be a positive"),
        ("3MB", "--uplink: bad link rate '3MB'"),
        ("x..20mbit", "--uplink (low end of 'x..20mbit')"),
        ("1mbit..", "--uplink (high end of '1mbit..')"),
        ("20mbit..1mbit", "--uplink: range '20mbit..1mbit' runs from high to low"),
    ],
)
def test_bad_uplink_text_names_the_field(text: str, message: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_uplink(text)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "rates", "weights"),
    [
        ("time_s,mbit_s\n0,20\n10,1\n20,20\n", (1.0, 20.0), (1 / 3, 2 / 3)),  # the last row lasts the median gap
        ("0,20\n10,1\n20,20\n", (1.0, 20.0), (1 / 3, 2 / 3)),  # no header
        ("0,20\n10,1\n20,20\n25,\n", (1.0, 20.0), (0.4, 0.6)),  # an empty last rate marks the end
        ("0, 5\n\n3, 10\n4, 5\n", (5.0, 10.0), (5 / 6, 1 / 6)),  # gaps 3 and 1: the last lasts 2; a blank line
        ("7,3\n", (3.0,), (1.0,)),
    ],
)
def test_a_trace_weighs_each_rate_by_how_long_it_holds(
    tmp_path: Path, text: str, rates: tuple[float, ...], weights: tuple[float, ...]
) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    u = load_uplink_trace(path)
    assert u.rates == pytest.approx(rates) and u.weights == pytest.approx(weights)
    assert u.source.startswith("trace.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,20\n10,fast\n", "row 2: mbit_s: 'fast' is not a number"),
        ("0,20\nsoon,1\n", "row 2: time_s: 'soon' is not a number"),
        ("0,20\n10,1,3\n", "row 2: expected 2 fields (time_s,mbit_s), got 3"),
        ("time_s,mbit_s\n0,20\n10,0\n", "row 3: mbit_s: must be positive, got 0"),
        ("0,20\n10,1\n5,3\n", "row 3: time_s: 5 is not after the previous row's"),
        ("-1,20\n", "row 1: time_s: must be >= 0"),
        ("0,nan\n", "row 1: mbit_s: 'nan' is not finite"),
        ("0,\n", "row 1: mbit_s: '' is not a number"),
        ("time_s,mbit_s\n", "no time_s,mbit_s rows"),
        ("", "no time_s,mbit_s rows"),
    ],
)
def test_a_bad_trace_names_the_file_the_row_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PlanError) as err:
        load_uplink_trace(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)


def test_a_missing_trace_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"missing\.csv: cannot read the uplink trace"):
        load_uplink_trace(tmp_path / "missing.csv")


def test_an_uplink_checks_its_weights() -> None:
    with pytest.raises(PlanError, match="weights must be positive and sum to 1"):
        Uplink((1.0, 2.0), (0.5, 0.6), "x")


# -- the split set ------------------------------------------------------------------------------------------------
def _problem(seed: int, n: int = 7, bits: list[int] = BITS, memory: int = 10**6) -> PlanProblem:
    graph, prof, sens = random_problem_parts(seed, n, bits)
    return PlanProblem(graph, prof, sens, Link(5.0, 2.0), bits, memory, max_error=5.0)


def _check_consistent(s: SplitSet) -> None:
    """The set's expectation and per-rate choices follow from its members' latencies."""
    lat = np.array([m.latency_ms for m in s.members])
    assert s.expected_ms == pytest.approx(float(lat.min(axis=0) @ np.array(s.weights)))
    for i, r in enumerate(s.per_rate):
        assert r.set_ms == pytest.approx(lat[:, i].min()) and r.oracle_ms <= r.static_ms + 1e-9
    assert list(s.splits) == sorted(set(s.splits)) and s.memory_bytes <= s.memory_limit
    assert _plain(dataclasses.asdict(s))  # plain tuples, ints, floats, strs: ready for plan.json


def _plain(x: object) -> bool:
    """Only builtin values (no NumPy scalars), as a codec writes them."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, tuple | list):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (int, float, str, bool)


@pytest.mark.parametrize("seed", range(8))
def test_the_set_is_never_worse_than_its_members_or_the_best_static_plan(seed: int) -> None:
    p = _problem(seed, memory=[10**6, 6000][seed % 2])
    s = plan_split_set(p, parse_uplink("0.2mbit..50mbit"), refine_budget_s=0.2)
    _check_consistent(s)
    assert s.expected_ms <= min(m.expected_ms for m in s.members) + 1e-9
    assert s.expected_ms <= s.best_static_ms + 1e-9 and s.vs_static <= 1 + 1e-12
    assert s.oracle_ms <= s.best_static_ms + 1e-9
    assert len(s.members) <= 3
    # every member is used at some rate (an unused one would only cost memory)
    assert {r.split_index for r in s.per_rate} == set(s.splits)


@pytest.mark.parametrize("seed", range(6))
def test_max_splits_one_is_the_best_static_plan(seed: int) -> None:
    p = _problem(seed)
    u = parse_uplink("0.2mbit..50mbit")
    one = plan_split_set(p, u, max_splits=1, refine_budget_s=0.2)
    assert len(one.members) == 1 and one.members[0].wire_cap is None
    assert one.expected_ms == pytest.approx(one.best_static_ms) and one.splits == (one.best_static_split,)
    a = Assignment(one.splits[0], one.weight_bits, one.activation_bits)
    ev = p.evaluate(a)
    assert one.memory_bytes == ev.memory_bytes and p.feasible(ev)
    assert one.expected_ms == pytest.approx(float(rate_latencies(ev, u.rates, p.link.rtt_ms) @ np.array(u.weights)))
    assert plan_split_set(p, u, refine_budget_s=0.2).expected_ms <= one.expected_ms + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_one_rate_gives_one_split_the_best_plan_at_that_rate(seed: int) -> None:
    p = _problem(seed)
    s = plan_split_set(p, parse_uplink("3mbit"), refine_budget_s=0.5)
    assert len(s.members) == 1 and s.expected_ms == pytest.approx(s.oracle_ms)
    assert s.vs_oracle == pytest.approx(1.0)


def _every(p: PlanProblem, k: int) -> list[Assignment]:
    keys = list(p.weight_keys(k).values())
    out = []
    for kb in itertools.product(p.bits, repeat=len(keys)):
        wb = {u: b for b, (_, users) in zip(kb, keys, strict=True) for u in users}
        for ab in itertools.product(p.bits, repeat=k):
            out.append(Assignment.make(k, wb, dict(zip(p.order[:k], ab, strict=True))))
    return out or [Assignment(0)]


def _brute_force(p: PlanProblem, u: Uplink, max_splits: int) -> float:
    """The least expected latency over every set of <= max_splits splits, every assignment of the deepest, every
    wire cap of the others: written out plainly with `evaluate`, the oracle of the search."""
    w = np.array(u.weights)

    def lat(tx: int, edge: float, cloud: float) -> np.ndarray:
        return np.array([edge + cloud + Link(r, p.link.rtt_ms).transmit_ms(tx) for r in u.rates])

    def shallow(a: Assignment, k: int) -> list[tuple[np.ndarray, int, int]]:  # (latencies, peak, buffer)
        if k == 0:
            return [(lat(p.input_bytes, 0.0, p.cloud_suffix_ms[0]), 0, 0)]
        pos = p.tables.position
        own = Assignment(k, tuple(x for x in a.weight_bits if pos[x[0]] < k),
                         tuple(x for x in a.activation_bits if pos[x[0]] < k))
        ev = p.evaluate(own)
        crossing = p.candidates[k].crossing
        producers = {p.graph.tensors[c.tensor].producer for c in crossing} - {None}
        buffer = sum(p.stored_bytes(c.elements, p.tensor_bits(c.tensor, own.abits)) for c in crossing)
        out = []
        for cap in [None, *p.bits]:
            ab = {n: (min(b, cap) if cap is not None and n in producers else b) for n, b in own.abits.items()}
            capped = p.evaluate(Assignment.make(k, own.wbits, ab))  # what it sends and its error at the cap
            if p.max_error is not None and capped.error > p.error_limit:
                continue
            out.append((lat(capped.transmit_bytes, ev.edge_ms, ev.cloud_ms), ev.peak_activation_bytes, buffer))
        return out

    best = math.inf
    for km in range(len(p.order) + 1):
        for a in _every(p, km):
            ev = p.evaluate(a)
            if not p.feasible(ev):
                continue
            options = {k: shallow(a, k) for k in range(km)}
            for size in range(max_splits):
                for ks in itertools.combinations(range(km), size):
                    for rows in itertools.product(*(options[k] for k in ks)):
                        memory = ev.memory_bytes + sum(b for _, _, b in rows) + max(
                            0, max((pk for _, pk, _ in rows), default=0) - ev.peak_activation_bytes)
                        if memory <= p.memory_bytes:
                            m = np.min([lat(ev.transmit_bytes, ev.edge_ms, ev.cloud_ms), *[x for x, _, _ in rows]],
                                       axis=0)
                            best = min(best, float(m @ w))
    return best


# (seed, memory, error budget): roomy, binding memory, binding error (seed 3: a capped shallow cut wins)
SMALL = [(0, 10**6, 5.0), (5, 4000, 0.3), (3, 10**6, 0.3), (2, 10**6, 0.3), (0, 4000, 0.1), (4, 4000, 0.03)]


def _small(seed: int, memory: int, max_error: float) -> tuple[PlanProblem, Uplink]:
    p = _problem(seed, n=4, bits=[4, 8], memory=memory)
    p.max_error = max_error
    return p, parse_uplink("0.1mbit..30mbit", points=5)


@pytest.mark.parametrize(("seed", "memory", "max_error"), SMALL)
def test_the_set_is_the_brute_force_optimum_on_small_dags(seed: int, memory: int, max_error: float) -> None:
    p, u = _small(seed, memory, max_error)
    s = plan_split_set(p, u, exhaustive_limit=10**4, refine_budget_s=0.0)
    _check_consistent(s)
    assert s.expected_ms == pytest.approx(_brute_force(p, u, 3), rel=1e-9)
    one = plan_split_set(p, u, max_splits=1, exhaustive_limit=10**4, refine_budget_s=0.0)
    assert one.expected_ms == pytest.approx(_brute_force(p, u, 1), rel=1e-9)
    assert s.expected_ms <= one.expected_ms + 1e-9


def test_a_shallow_cut_may_send_fewer_bits_than_the_shared_activations() -> None:
    p, u = _small(3, 10**6, 0.3)
    s = plan_split_set(p, u, exhaustive_limit=10**4, refine_budget_s=0.0)
    shallow = [m for m in s.members[:-1] if m.split_index > 0]
    assert shallow and shallow[0].wire_cap == 4
    abits = dict(s.activation_bits)
    for t, b in shallow[0].crossing_bits:
        producer = p.graph.tensors[t].producer
        assert producer is not None and b == 4 < abits[producer]
    assert shallow[0].error <= p.error_limit


# -- the chain's memory -------------------------------------------------------------------------------------------
def _chain_problem(memory: int = 10**6) -> PlanProblem:
    """A chain whose cloud-only, middle and deep splits each win somewhere between 0.05 and 50 Mbit/s."""
    rows = [("l0", (16, 16, 8), 3000), ("l1", (8, 8, 8), 3000), ("l2", (4, 4, 8), 3000), ("l3", (1, 1, 10), 3000)]
    graph = chain("chain", (16, 16, 3), rows)
    names = [r[0] for r in rows]
    prof = profile_for(graph, dict(zip(names, [2.0, 2.0, 6.0, 6.0], strict=True)), dict.fromkeys(names, 0.1), BITS)
    sens = sensitivity_for(graph, dict.fromkeys(names, 1.0), dict.fromkeys(names, 1.0), BITS)
    return PlanProblem(graph, prof, sens, Link(5.0, 0.0), BITS, memory, max_error=0.05)


def test_the_chain_stores_each_weight_once() -> None:
    p = _chain_problem()
    u = parse_uplink("0.05mbit..50mbit")
    s = plan_split_set(p, u, refine_budget_s=0.2)
    edge = [k for k in s.splits if k > 0]
    assert len(edge) >= 2, s.splits  # the case under test: two segments on the edge
    deep = Assignment(s.splits[-1], s.weight_bits, s.activation_bits)
    assert s.weight_bytes == p.weight_bytes(deep.split_index, deep.wbits)
    pos = p.tables.position
    separate = sum(p.weight_bytes(k, {n: b for n, b in s.weight_bits if pos[n] < k}) for k in edge)
    assert s.weight_bytes < separate  # each split's own model would store the shallow layers again
    peaks = [p.peak_bytes(k, deep.abits) for k in edge]
    buffers = sum(p.stored_bytes(c.elements, p.tensor_bits(c.tensor, deep.abits))
                  for k in edge[:-1] for c in p.candidates[k].crossing)
    assert s.buffer_bytes == buffers and s.peak_activation_bytes == max(peaks)
    assert s.memory_bytes == s.weight_bytes + max(peaks) + buffers
    # the same set fits a memory that counts each weight once, not one that would count them per split
    tight = plan_split_set(_chain_problem(s.memory_bytes), u, refine_budget_s=0.2)
    assert tight.expected_ms == pytest.approx(s.expected_ms) and tight.memory_bytes <= s.memory_bytes
    assert s.memory_bytes < separate + sum(peaks) + buffers
    # a shallow member's wire bits never exceed what its producers hold
    for m in s.members[:-1]:
        for t, b in m.crossing_bits:
            assert b <= min(p.tensor_bits(t, deep.abits), WIRE_MAX_BITS)
        assert m.transmit_bytes == sum(wire_bytes(c.elements, dict(m.crossing_bits)[c.tensor])
                                       for c in p.candidates[m.split_index].crossing)


def test_a_memory_too_small_for_two_segments_gives_a_smaller_set() -> None:
    p = _chain_problem()
    u = parse_uplink("0.05mbit..50mbit")
    s = plan_split_set(p, u, refine_budget_s=0.2)
    small = plan_split_set(_chain_problem(s.memory_bytes - 1), u, refine_budget_s=0.2)
    assert small.memory_bytes < s.memory_bytes and small.expected_ms >= s.expected_ms - 1e-9


def test_max_splits_must_be_positive() -> None:
    with pytest.raises(PlanError, match="max_splits: must be at least 1"):
        plan_split_set(_problem(0), parse_uplink("3"), max_splits=0)


def test_a_shallow_split_may_bring_its_own_bits_into_the_shared_assignment() -> None:
    p = _problem(8)  # here the shallow member's own plan beats the deep plan's bits on its prefix
    s = plan_split_set(p, parse_uplink("0.2mbit..50mbit"), refine_budget_s=0.1)
    merged = [n for n in s.notes if "shared assignment" in n]
    assert s.splits == (0, 2, 7) and merged and "split 2's own bits" in merged[0]
    deep = Assignment(s.splits[-1], s.weight_bits, s.activation_bits)
    assert p.feasible(p.evaluate(deep))  # one consistent assignment: shared weight sets at one width
    _check_consistent(s)
