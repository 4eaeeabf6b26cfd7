"""Baselines: cut scoring matches the objective; min-cut and Neurosurgeon are optimal for their own models."""

from __future__ import annotations

import itertools

import pytest

from splitsdk.plan.baselines import (
    KIND_CLOUD,
    KIND_EDGE,
    baselines,
    evaluate_cut,
    min_cut_edge_layers,
    neurosurgeon_split,
)
from splitsdk.plan.problem import INPUT_BITS, WIRE_MAX_BITS, PlanProblem, edge_latency, tensor_bytes
from splitsdk.plan.synthetic import chain, profile_for, random_problem_parts, sensitivity_for
from splitsdk.profile.types import FLOAT_BITS, Link

BITS = [2, 4, 8]


def _problem(seed: int, n: int = 7, branchy: bool = True) -> PlanProblem:
    graph, prof, sens = random_problem_parts(seed, n, BITS, branchy=branchy)
    return PlanProblem(graph, prof, sens, Link(8.0, 3.0), BITS, 10**6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bits", [4, FLOAT_BITS])
def test_cut_evaluation_matches_the_objective_on_prefixes(seed: int, bits: int) -> None:
    """The baselines' cut evaluation is the planner's objective; only the wire differs above 8 bits: a float
    baseline sends float tensors, while what convert ships sends its crossing tensors as int8 (WIRE_MAX_BITS)."""
    p = _problem(seed)
    for k in range(len(p.order) + 1):
        got = evaluate_cut(p.graph, p.profile, p.link, p.order[:k], bits, p)
        want = p.evaluate(p.uniform(k, bits))
        assert got.edge_weight_bytes == want.edge_weight_bytes
        assert got.peak_activation_bytes == want.peak_activation_bytes
        assert got.error == pytest.approx(want.error)
        assert got.edge_ms == pytest.approx(want.edge_ms) and got.cloud_ms == pytest.approx(want.cloud_ms)
        sent = [c.tensor for c in p.candidates[k].crossing] if k < len(p.order) else []
        raw = sum(p.graph.tensors[t].elements for t in sent if p.graph.tensors[t].producer is not None)
        extra = raw * (min(bits, 32) - min(bits, WIRE_MAX_BITS)) // 8
        assert got.transmit_bytes == want.transmit_bytes + extra
        if bits <= WIRE_MAX_BITS:
            assert got.total_ms == pytest.approx(want.total_ms)


def _closed_sets(p: PlanProblem) -> list[set[str]]:
    preds = {n: set(p.graph.g.predecessors(n)) for n in p.order}
    out = []
    for mask in itertools.product([False, True], repeat=len(p.order)):
        s = {n for n, m in zip(p.order, mask, strict=True) if m}
        if all(preds[n] <= s for n in s):
            out.append(s)
    return out


def _linear_cost(p: PlanProblem, edge: set[str]) -> float:
    """DADS's additive model: layer times plus each tensor sent once, no RTT, outputs free."""
    ms_per_byte = 8.0 / (p.link.uplink_mbps * 1e6) * 1e3
    cost = sum(edge_latency(p.graph, p.profile, n, 32, 32) if n in edge else p.profile.cloud_ms(n) for n in p.order)
    for t, info in p.graph.tensors.items():
        made_on_edge = info.producer is None or info.producer in edge
        if made_on_edge and any(t in p.graph.layer(r).inputs and r not in edge for r in p.order):
            cost += tensor_bytes(info.elements, INPUT_BITS if info.producer is None else 32) * ms_per_byte
    return cost


@pytest.mark.parametrize("seed", range(8))
def test_min_cut_is_the_best_closed_set(seed: int) -> None:
    p = _problem(seed)
    p.link = Link([0.5, 5.0, 50.0][seed % 3], 0.0)
    cut = set(min_cut_edge_layers(p.graph, p.profile, p.link))
    best = min(_linear_cost(p, s) for s in _closed_sets(p))
    assert cut in _closed_sets(p)
    assert _linear_cost(p, cut) == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_neurosurgeon_on_a_chain_is_the_best_float_prefix(seed: int) -> None:
    p = _problem(seed, branchy=False)
    k = neurosurgeon_split(p.graph, p.profile, p.link)
    totals = [p.evaluate(p.uniform(j, FLOAT_BITS)).total_ms for j in range(len(p.order) + 1)]
    assert totals[k] == pytest.approx(min(totals))


def test_baselines_are_complete_and_consistent() -> None:
    graph = chain(
        "c",
        (32, 32, 3),
        [("a", (32, 32, 8), 200), ("b", (16, 16, 8), 600), ("r", (16, 16, 8), 0), ("fc", (1, 1, 10), 20480)],
    )
    order = graph.topological_order()
    prof = profile_for(graph, {n: 1.0 for n in order}, {n: 0.05 for n in order}, BITS)
    sens = sensitivity_for(graph, {n: 1.0 for n in order}, {n: 1.0 for n in order}, BITS)
    p = PlanProblem(graph, prof, sens, Link(2.0, 5.0), BITS, 30_000)
    base = baselines(p)
    assert {
        "cloud_only",
        "edge_only",
        "u2",
        "u4",
        "u8",
        "neurosurgeon",
        "qdmp",
        "qdmp_e",
        "qdmp_e_u4",
    } <= set(base)
    assert "u6" not in base  # 6 bits is not a candidate width here
    assert base["cloud_only"].kind == KIND_CLOUD and base["cloud_only"].evaluation.transmit_bytes == 32 * 32 * 3
    assert base["u8"].kind == KIND_EDGE and base["u8"].evaluation.transmit_ms == 0.0
    assert not base["edge_only"].fits  # 21k float weights = 84 kB > 30 kB
    q, qe, q4 = base["qdmp"], base["qdmp_e"], base["qdmp_e_u4"]
    assert q.edge_layers == qe.edge_layers == q4.edge_layers
    assert q.evaluation.edge_weight_bytes == tensor_bytes(graph.total_weights, 32)
    assert qe.evaluation.edge_weight_bytes <= q.evaluation.edge_weight_bytes
    assert q4.evaluation.edge_weight_bytes * 8 == qe.evaluation.edge_weight_bytes or not q4.edge_layers


def test_a_16_bit_crossing_is_sent_and_recorded_at_8_bits() -> None:
    """The edge model's outputs are int8: a crossing produced at 16 bits costs and records 8 bits (convert used to
    clamp it silently while the plan costed 16)."""
    graph, prof, sens = random_problem_parts(3, 7, [8, 16], branchy=True)
    p = PlanProblem(graph, prof, sens, Link(8.0, 3.0), [8, 16], 10**6)
    for k in range(1, len(p.order)):
        sent = [c for c in p.candidates[k].crossing if graph.tensors[c.tensor].producer is not None]
        at16, at8 = p.evaluate(p.uniform(k, 16)), p.evaluate(p.uniform(k, 8))
        assert at16.transmit_bytes == at8.transmit_bytes
        assert all(p.wire_bits(c.tensor, p.uniform(k, 16).abits) == WIRE_MAX_BITS for c in sent)
