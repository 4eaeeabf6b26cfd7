"""Algorithm 1 against the exhaustive optimum, Remark 5, the Fig. 3 effect, memory-forced splits."""

from __future__ import annotations

import math

import pytest

from splitsdk.errors import PlanError
from splitsdk.plan import exact
from splitsdk.plan.autosplit import ORIGIN_CLOUD, candidate_list, potential_splits, select
from splitsdk.plan.problem import Assignment, PlanProblem
from splitsdk.plan.synthetic import chain, profile_for, random_problem_parts, sensitivity_for
from splitsdk.profile.types import Link
from splitsdk.target import ModelFile

BITS = [2, 4, 8]


# a runtime whose model file adds per-channel, per-layer, per-output and header bytes (like TFLite's)
MODEL_FILE = ModelFile(per_channel_bytes=25.0, per_weighted_layer_bytes=40.0, per_layer_bytes=20.0,
                       per_output_bytes=30.0, base_bytes=100.0)


def _problem(
    seed: int, n_layers: int, memory_frac: float, max_error: float | None, model_file: ModelFile | None = None
) -> PlanProblem:
    graph, prof, sens = random_problem_parts(seed, n_layers, BITS)
    memory = int(graph.total_weights * memory_frac + graph.input_elements * 1.5)
    return PlanProblem(graph, prof, sens, Link(5.0, 10.0), BITS, memory, max_error=max_error, model_file=model_file)


def _recompute_ms(p: PlanProblem, a: Assignment) -> float:
    """eq. 1 from the raw profile tables, written independently of PlanProblem.evaluate."""
    k, wb, ab = a.split_index, a.wbits, a.abits
    edge = p.order[:k]
    total = 0.0
    for n in edge:
        w = wb[n] if p.graph.layer(n).quantizable else ab[n]
        total += p.profile.edge[n][(w, ab[n])]
    total += sum(p.profile.cloud[n] for n in p.order[k:])
    nbytes = 0
    for c in p.graph.split_candidates()[k].crossing:
        producer = p.graph.tensors[c.tensor].producer
        nbytes += math.ceil(c.elements * (8 if producer is None else ab[producer]) / 8)
    if nbytes:
        total += nbytes * 8 / (p.link.uplink_mbps * 1e6) * 1e3 + p.link.rtt_ms
    return total


CASES = (
    [(s, 6, 0.6, 5.0) for s in range(8)]
    + [(s, 7, 0.3, 2.0) for s in range(4)]
    + [(s, 8, 1.0, None) for s in range(2)]
    + [(s, 8, 0.5, 3.0) for s in range(2, 4)]
)


@pytest.mark.parametrize(("seed", "n_layers", "memory_frac", "max_error", "model_file"),
                         [(*c, None) for c in CASES] + [(*c, MODEL_FILE) for c in CASES[::3]])
def test_algorithm1_against_exhaustive(
    seed: int, n_layers: int, memory_frac: float, max_error: float | None, model_file: ModelFile | None
) -> None:
    p = _problem(seed, n_layers, memory_frac, max_error, model_file)
    cands = candidate_list(p)
    chosen = select(p, cands).chosen
    ev = p.evaluate(chosen.assignment)
    # feasible, and the reported latency is the objective recomputed from the tables
    assert ev.memory_bytes <= p.memory_bytes
    if max_error is not None:
        assert ev.error <= max_error
    assert chosen.evaluation.total_ms == pytest.approx(_recompute_ms(p, chosen.assignment))
    assert ev == chosen.evaluation
    # Remark 5: never worse than CLOUD-ONLY nor a feasible uniform EDGE-ONLY
    assert chosen.evaluation.total_ms <= p.evaluate(Assignment(0)).total_ms + 1e-9
    n = len(p.order)
    for b in BITS:
        edge_only = p.evaluate(p.uniform(n, b))
        if p.feasible(edge_only):
            assert chosen.evaluation.total_ms <= edge_only.total_ms + 1e-9
    # the exhaustive optimum bounds it from below, and the MILP finds the same optimum
    best = exact.exhaustive(p)
    assert p.feasible(best.evaluation)
    assert best.evaluation.total_ms <= chosen.evaluation.total_ms + 1e-9
    assert best.evaluation.total_ms == pytest.approx(_recompute_ms(p, best.assignment))
    assert exact.milp(p).evaluation.total_ms == pytest.approx(best.evaluation.total_ms, rel=1e-9)


def test_model_file_bytes_are_counted_once_per_weight_set_and_layer() -> None:
    p = _problem(1, 6, 1.0, None, MODEL_FILE)
    k = len(p.order)
    plain = _problem(1, 6, 1.0, None)
    a = p.uniform(k, 8)
    edge = [p.graph.layer(n) for n in p.order]
    keys = {lay.weight_key: lay for lay in edge if lay.quantizable}
    want = sum(
        math.ceil(lay.weights - ch) + math.ceil(ch * 25.0 + 40.0)
        for lay in keys.values()
        for ch in [int(lay.attrs.get("filters", 0)) if 0 < int(lay.attrs.get("filters", 0)) < lay.weights else 0]
    ) + math.ceil(100.0 + 20.0 * sum(1 for lay in edge if not lay.quantizable) + 30.0 * len(p.graph.outputs))
    assert p.evaluate(a).edge_weight_bytes == want
    assert want > plain.evaluate(plain.uniform(k, 8)).edge_weight_bytes


def test_candidate_list_is_sorted_feasible_and_starts_from_cloud_only() -> None:
    p = _problem(3, 7, 0.6, None)
    cands = candidate_list(p)
    assert any(c.origin == ORIGIN_CLOUD for c in cands)
    totals = [c.evaluation.total_ms for c in cands]
    assert totals == sorted(totals)
    assert all(c.evaluation.memory_bytes <= p.memory_bytes for c in cands)
    assert {c.assignment.split_index for c in cands} - {0} <= set(potential_splits(p))
    keys = [(c.assignment.split_index, c.assignment.weight_bits, c.assignment.activation_bits) for c in cands]
    assert len(keys) == len(set(keys))


def _fig3_problem(memory: int = 10**9) -> PlanProblem:
    """A chain whose early feature maps are larger than the input: in float no split pays off,
    at 4 bits the split after `c3` sends 8x less than in float and less than the raw frame."""
    graph = chain(
        "fig3",
        (64, 64, 3),
        [
            ("c1", (64, 64, 32), 900),
            ("c2", (32, 32, 32), 9000),
            ("c3", (16, 16, 16), 4600),
            ("c4", (8, 8, 64), 9000),
            ("fc", (1, 1, 10), 40000),
        ],
    )
    order = graph.topological_order()
    edge = {"c1": 2.0, "c2": 4.0, "c3": 2.0, "c4": 20.0, "fc": 30.0}
    cloud = {n: 0.1 for n in order}
    prof = profile_for(graph, edge, cloud, BITS, float_factor=4.0)
    sens = sensitivity_for(graph, {n: 1.0 for n in order}, {n: 1.0 for n in order}, BITS)
    return PlanProblem(graph, prof, sens, Link(10.0, 5.0), BITS, memory, max_error=1.0)


def _best_float_split(p: PlanProblem) -> tuple[int, float]:
    options = [(p.evaluate(p.uniform(k, 32)).total_ms, k) for k in range(len(p.order) + 1)]
    ms, k = min(options)
    return k, ms


def test_four_bit_split_beats_the_float_optimal_split() -> None:
    p = _fig3_problem()
    float_k, float_ms = _best_float_split(p)
    assert float_k == 0  # in float, every split sends more than the frame or computes too long
    chosen = select(p, candidate_list(p)).chosen
    assert chosen.assignment.split_index == 3
    assert chosen.evaluation.total_ms < float_ms
    assert max(chosen.assignment.abits.values()) <= 4


def test_memory_limit_forces_an_earlier_split() -> None:
    # on a slow uplink EDGE-ONLY wins when the device holds the whole model ...
    roomy = _fig3_problem()
    roomy.link = Link(0.2, 5.0)
    assert select(roomy, candidate_list(roomy)).chosen.assignment.split_index == len(roomy.order)
    # ... but 50 kB holds c1..c3 at 2 bits (48.7 kB) and not c4 or fc at any width
    tight = _fig3_problem(memory=50_000)
    tight.link = Link(0.2, 5.0)
    chosen = select(tight, candidate_list(tight)).chosen
    assert chosen.assignment.split_index == 3
    assert chosen.evaluation.memory_bytes <= 50_000
    assert exact.exhaustive(tight).assignment.split_index == 3


def test_infeasible_memory_falls_back_to_cloud_only() -> None:
    p = _fig3_problem(memory=10)
    assert potential_splits(p) == []
    sel = select(p, candidate_list(p))
    assert sel.chosen.origin == ORIGIN_CLOUD


def test_threshold_no_split_meets_falls_back_to_cloud_only() -> None:
    p = _fig3_problem()
    p.max_error = 0.0
    assert select(p, candidate_list(p)).chosen.origin == ORIGIN_CLOUD


def test_measured_accuracy_callback_walks_candidates_fastest_first() -> None:
    p = _fig3_problem()
    cands = candidate_list(p)
    seen: list[int] = []

    def drop(c: object) -> float:
        seen.append(id(c))
        return 5.0 if len(seen) < 3 else 0.5  # the two fastest lose too much accuracy

    sel = select(p, cands, evaluate=drop, max_accuracy_drop=1.0)
    assert sel.criterion == "measured-accuracy"
    assert len(sel.measured) >= 3
    assert sel.measured[-1][1] <= 1.0
    assert sel.chosen is cands[sel.measured[-1][0]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"memory_bytes": 0}, "memory_bytes"),
        ({"memory_bytes": -5}, "memory_bytes"),
        ({"bits": []}, "bits"),
        ({"bits": [0, 4]}, "bits"),
        ({"max_error": -1.0}, "max_error"),
    ],
)
def test_bad_constraints_name_the_field(change: dict[str, object], message: str) -> None:
    graph, prof, sens = random_problem_parts(1, 4, BITS)
    args: dict[str, object] = {"bits": BITS, "memory_bytes": 10**6, "max_error": None} | change
    with pytest.raises(PlanError, match=message):
        PlanProblem(graph, prof, sens, Link(5.0), **args)  # type: ignore[arg-type]


def test_missing_sensitivity_and_profile_name_the_layer() -> None:
    graph, prof, sens = random_problem_parts(1, 4, BITS)
    del sens.activations["l2"]
    with pytest.raises(PlanError, match="l2"):
        PlanProblem(graph, prof, sens, Link(5.0), BITS, 10**6)
    graph, prof, sens = random_problem_parts(1, 4, BITS)
    del prof.cloud["l1"]
    with pytest.raises(PlanError, match="l1"):
        PlanProblem(graph, prof, sens, Link(5.0), BITS, 10**6)
    graph, prof, sens = random_problem_parts(1, 4, BITS)
    with pytest.raises(PlanError, match="uplink"):
        PlanProblem(graph, prof, sens, Link(0.0), BITS, 10**6)


def test_container_storage_counts_sub_byte_values_as_int8() -> None:
    """A TFLite-like device holds 2- and 4-bit values in int8: memory does not shrink below 8 bits."""
    graph, prof, sens = random_problem_parts(5, 6, BITS)
    memory = int(graph.total_weights * 0.9 + graph.input_elements * 3)
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), BITS, memory, max_error=5.0, storage_bits={2: 8, 4: 8})
    n = len(p.order)
    assert p.evaluate(p.uniform(n, 2)).memory_bytes == p.evaluate(p.uniform(n, 8)).memory_bytes
    assert p.evaluate(p.uniform(n, 2)).transmit_bytes == 0
    k = next(k for k in range(1, n) if p.candidates[k].crossing)
    assert p.evaluate(p.uniform(k, 2)).transmit_bytes < p.evaluate(p.uniform(k, 8)).transmit_bytes
    chosen = select(p, candidate_list(p)).chosen
    assert chosen.evaluation.memory_bytes <= memory
    best = exact.exhaustive(p)
    assert best.evaluation.total_ms <= chosen.evaluation.total_ms + 1e-9
    assert exact.milp(p).evaluation.total_ms == pytest.approx(best.evaluation.total_ms)


@pytest.mark.parametrize("scale", [1e-7, 1e6])
def test_milp_with_tiny_or_huge_error_scale_matches_exhaustive(scale: float) -> None:
    """Bug: unscaled error/memory rows let HiGHS return solutions that broke the limits by its
    feasibility tolerance; they were then discarded and the 'optimum' was worse than Algorithm 1."""
    graph, prof, sens = random_problem_parts(6, 7, BITS)
    for table in (sens.weights, sens.activations):
        for layer in table:
            table[layer] = {b: v * scale for b, v in table[layer].items()}
    memory = int(graph.total_weights * 0.5 + graph.input_elements * 1.5)
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), BITS, memory, max_error=3.0 * scale)
    _milp_is_exact_and_nothing_beats_it(p)


@pytest.mark.parametrize("seed", [0, 3])
def test_milp_finds_solutions_exactly_at_the_error_threshold(seed: int) -> None:
    """With the default threshold (the whole model at 8 bits) EDGE-ONLY U8 sits exactly on the limit;
    the MILP must keep it (tightening the error row against HiGHS's tolerance once cut such points
    off on YOLOv3, giving a negative gap)."""
    graph, prof, sens = random_problem_parts(seed, 6, BITS)
    p = PlanProblem(graph, prof, sens, Link(0.05, 10.0), BITS, 10**7)
    n = len(p.order)
    p.max_error = p.evaluate(p.uniform(n, 8)).error
    _milp_is_exact_and_nothing_beats_it(p)


@pytest.mark.parametrize("seed", [1, 5])
def test_milp_with_mse_spanning_many_decades_matches_exhaustive(seed: int) -> None:
    """Bug (YOLOv3, negative gap): HiGHS drops matrix entries below 1e-9, so layers whose MSE was
    1e-12 of the threshold looked free; the MILP's answer then broke the limit and was discarded."""
    graph, prof, sens = random_problem_parts(seed, 6, BITS)
    for i, layer in enumerate(sorted(sens.activations)):
        if i % 2:
            sens.activations[layer] = {b: v * 1e-12 for b, v in sens.activations[layer].items()}
    for i, layer in enumerate(sorted(sens.weights)):
        if i % 2 == 0:
            sens.weights[layer] = {b: v * 1e-12 for b, v in sens.weights[layer].items()}
    p = PlanProblem(graph, prof, sens, Link(0.5, 10.0), BITS, 10**8)
    p.max_error = p.evaluate(p.uniform(len(p.order), 8)).error
    best = exact.exhaustive(p)
    assert exact.milp(p).evaluation.total_ms == pytest.approx(best.evaluation.total_ms)


def _milp_is_exact_and_nothing_beats_it(p: PlanProblem) -> None:
    """The MILP finds the exhaustive optimum, and the default plan is no faster than it (it is feasible)."""
    best = exact.exhaustive(p)
    assert exact.milp(p).evaluation.total_ms == pytest.approx(best.evaluation.total_ms)
    chosen = select(p, candidate_list(p)).chosen
    assert best.evaluation.total_ms <= chosen.evaluation.total_ms + 1e-9
