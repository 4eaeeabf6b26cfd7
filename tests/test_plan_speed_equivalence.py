"""The array implementation of Algorithm 1 against the plain definitions it replaces, on random DAGs.

Oracles: `LayerGraph.live_sets` (live sets step by step), `PlanProblem.peak_activation_bytes` (the
peak of the bit-weighted live sets), `PlanProblem.evaluate`, `Hull.choose`, `lagrangian.allocate`'s
bisection, and the previous Algorithm 1 (`reference_candidate_list` in benchmarks/bench_planner_speed.py).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from benchmark_module import load_benchmark

from splitsdk.plan.autosplit import candidate_list, potential_splits
from splitsdk.plan.lagrangian import HullTable, first_fit, first_fits, lower_hull
from splitsdk.plan.problem import PlanProblem
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.profile.types import FLOAT_BITS, Link
from splitsdk.target import ModelFile

BITS = [2, 4, 8]
WIDE = [4, 8, 16]
MODEL_FILE = ModelFile(per_channel_bytes=25.0, per_weighted_layer_bytes=40.0, per_layer_bytes=20.0,
                       per_output_bytes=30.0, base_bytes=100.0, per_conversion_bytes=64.0, wide_bias_bytes=4.0)
SEEDS = range(16)


def _problem(seed: int, model_file: ModelFile | None = None, packed: bool = True) -> PlanProblem:
    bits = BITS if seed % 2 else WIDE  # 16 bits: precision mixes in the model file
    graph, prof, sens = random_problem_parts(seed, 6 + seed % 11, bits, branchy=seed % 4 != 3)
    memory = int(graph.total_weights * (0.3 + 0.1 * (seed % 5)) + graph.input_elements * 1.5)
    storage = {} if packed else {2: 8, 4: 8}
    return PlanProblem(graph, prof, sens, Link(1.0 + seed, 10.0), bits, memory, max_error=5.0,
                       storage_bits=storage, model_file=model_file)


@pytest.mark.parametrize("seed", SEEDS)
def test_live_intervals_are_the_live_sets(seed: int) -> None:
    graph = _problem(seed).graph
    for k in range(len(graph) + 1):
        live = graph.live_intervals(k)
        steps = graph.live_sets(k)
        assert live.steps == len(steps)
        for s, step in enumerate(steps):
            assert {t for t, a, b in zip(live.tensors, live.first, live.last, strict=True) if a <= s <= b} == set(step)
        elements = np.array([graph.tensors[t].elements for t in live.tensors])
        assert int(live.peaks(elements)) == max((sum(step.values()) for step in steps), default=0)
        assert graph.split_candidates()[k].peak_activation_elements == int(live.peaks(elements))


@pytest.mark.parametrize("seed", SEEDS)
def test_vectorised_peak_equals_the_step_by_step_peak(seed: int) -> None:
    rng = random.Random(seed)
    for packed in (True, False):
        p = _problem(seed, packed=packed)
        for k in range(len(p.order) + 1):
            for _ in range(4):
                abits = {n: rng.choice([*p.bits, FLOAT_BITS]) for n in p.order[:k]}
                assert p.peak_bytes(k, abits) == p.peak_activation_bytes(p.live_steps(k), abits)


@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_positions_equals_evaluate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for model_file in (None, MODEL_FILE):
        p = _problem(seed, model_file, packed=seed % 2 == 0)
        for k in range(1, len(p.order) + 1):
            n_keys = len(p.weight_keys(k))
            key_pos = rng.integers(0, len(p.bits), (5, n_keys))
            act_pos = rng.integers(0, len(p.bits), (5, k))
            got = p.evaluate_positions(k, key_pos, act_pos)
            for row in range(5):
                a = p.assignment_at(k, key_pos[row], act_pos[row])
                assert got[row] == p.evaluate(a)
                assert [b for _, b in a.activation_bits] == [p.bits[i] for i in act_pos[row][
                    np.argsort(np.array(p.order[:k]))]]


@pytest.mark.parametrize("seed", SEEDS)
def test_candidate_list_equals_the_previous_implementation(seed: int) -> None:
    ref = load_benchmark("bench_planner_speed")
    for model_file in (None, MODEL_FILE):
        new_p, old_p = _problem(seed, model_file, seed % 3 != 0), _problem(seed, model_file, seed % 3 != 0)
        assert potential_splits(new_p) == ref.reference_potential_splits(old_p)
        new, old = candidate_list(new_p), ref.reference_candidate_list(old_p)
        assert [(c.assignment, c.evaluation, c.origin, c.budget) for c in new] == [
            (c.assignment, c.evaluation, c.origin, c.budget) for c in old
        ]


def test_hull_table_chooses_as_hull_choose() -> None:
    rng = random.Random(7)
    for _ in range(50):
        hulls = [
            lower_hull({b: (rng.randint(1, 40) * b, rng.uniform(0.0, 10.0) / b) for b in (2, 4, 6, 8)})
            for _ in range(rng.randint(0, 6))
        ]
        table = HullTable.of(hulls, 4)
        grid = table.grid.tolist()
        assert grid == sorted({0.0} | {s for h in hulls for s in h.slopes})
        probes = [*range(len(grid))]
        got = table.bits_at(probes)
        for i, lam in enumerate(grid):
            assert got[i].tolist() == [h.choose(lam) for h in hulls]


def test_first_fits_probes_as_the_bisection() -> None:
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 40)
        values = [rng.randint(0, 30) for _ in range(n)]
        if rng.random() < 0.5:
            values.sort(reverse=True)  # monotone: the first position that fits
        limits = [rng.randint(-1, 31) for _ in range(rng.randint(1, 5))]
        _check_first_fits(values, limits)


def _check_first_fits(values: list[int], limits: list[int]) -> None:
    n = len(values)
    probed: list[int] = []

    def batch(at: list[int]) -> list[int]:
        probed.extend(at)
        return [values[i] for i in at]

    got = first_fits(n, limits, batch)
    assert len(probed) == len(set(probed))  # no position valued twice
    assert got == [first_fit(n, lambda i, lim=lim: values[i] <= lim) for lim in limits]
    assert got == [_bisect(values, lim) for lim in limits]


def _bisect(values: list[int], limit: int) -> int | None:
    """lagrangian.allocate's bisection as it was written, over precomputed values."""
    if not values[-1] <= limit:
        return None
    if values[0] <= limit:
        return 0
    lo, hi = 0, len(values) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if values[mid] <= limit:
            hi = mid
        else:
            lo = mid
    return hi
