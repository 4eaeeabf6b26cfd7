"""The Lagrangian allocator (Shoham & Gersho) against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from splitsdk.plan.lagrangian import allocate, allocate_budget, allocation, lambdas, lower_hull


def _random_items(seed: int, n_items: int, bits: list[int]) -> dict[str, dict[int, tuple[int, float]]]:
    rng = random.Random(seed)
    items = {}
    for i in range(n_items):
        size = rng.randint(1, 40)
        # not necessarily convex, sometimes dominated: the allocator must cope
        items[f"i{i}"] = {b: (size * b, rng.uniform(0.0, 10.0) * 4.0**-b + rng.uniform(0, 0.05)) for b in bits}
    return items


def _brute_force(items: dict[str, dict[int, tuple[int, float]]], budget: int) -> float:
    names = sorted(items)
    best = float("inf")
    for combo in itertools.product(*(sorted(items[n]) for n in names)):
        rate = sum(items[n][b][0] for n, b in zip(names, combo, strict=True))
        if rate <= budget:
            best = min(best, sum(items[n][b][1] for n, b in zip(names, combo, strict=True)))
    return best


def test_hull_drops_dominated_and_non_convex_points() -> None:
    hull = lower_hull({2: (2, 10.0), 4: (4, 9.9), 6: (6, 1.0), 8: (8, 1.0)})
    # 4 lies above the chord from 2 to 6; 8 costs more for no gain
    assert hull.bits == (2, 6)
    assert hull.slopes == pytest.approx(((10.0 - 1.0) / 4,))


def test_hull_slopes_decrease() -> None:
    hull = lower_hull({2: (2, 16.0), 4: (4, 4.0), 8: (8, 1.0)})
    assert hull.bits == (2, 4, 8)
    assert hull.slopes[0] > hull.slopes[1]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("bits", [[2, 4, 8], [2, 4, 6, 8]])
def test_lagrangian_equals_brute_force_on_every_hull_budget(seed: int, bits: list[int]) -> None:
    items = _random_items(seed, 4, bits)
    hulls = {n: lower_hull(p) for n, p in items.items()}
    for lam in lambdas(hulls):
        alloc = allocation(hulls, lam)
        budget = sum(items[n][b][0] for n, b in alloc.items())
        got = allocate_budget(items, budget)
        assert got is not None
        assert sum(items[n][b][0] for n, b in got.items()) <= budget
        assert sum(items[n][b][1] for n, b in got.items()) == pytest.approx(_brute_force(items, budget))


def test_lagrangian_off_hull_budget_is_feasible_and_no_better_than_brute_force() -> None:
    items = _random_items(99, 4, [2, 4, 8])
    for budget in range(0, 1000, 37):
        got = allocate_budget(items, budget)
        best = _brute_force(items, budget)
        if got is None:
            assert best == float("inf")
            continue
        assert sum(items[n][b][0] for n, b in got.items()) <= budget
        assert sum(items[n][b][1] for n, b in got.items()) >= best - 1e-12


def test_budget_below_the_lowest_rate_is_infeasible() -> None:
    items = {"a": {2: (10, 1.0), 8: (40, 0.1)}}
    assert allocate_budget(items, 9) is None
    assert allocate_budget(items, 10) == {"a": 2}
    assert allocate_budget(items, 40) == {"a": 8}


def test_empty_item_set_fits_any_budget() -> None:
    assert allocate_budget({}, 0) == {}


def test_monotone_predicate_is_bisected() -> None:
    # a peak-style constraint: the largest single item's rate
    items = _random_items(7, 5, [2, 4, 8])
    for cap in (40, 80, 160, 320):
        got = allocate(items, lambda alloc, cap=cap: max(items[n][b][0] for n, b in alloc.items()) <= cap)
        if got is not None:
            assert max(items[n][b][0] for n, b in got.items()) <= cap
