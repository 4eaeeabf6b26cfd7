"""The default plan against the exhaustive optimum (within 1%, never worse than Algorithm 1), the certified
bound, the anytime budget, and the MILP's per-split bound and cutoff."""

from __future__ import annotations

import math

import pytest

from splitsdk.plan import exact
from splitsdk.plan.autosplit import candidate_list, select
from splitsdk.plan.build import PlanMeta, make_plan
from splitsdk.plan.problem import Assignment, PlanProblem
from splitsdk.plan.refine import ORIGIN_DP, ORIGIN_MILP, error_ladder, refine, refine_candidates
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.profile.types import Link
from splitsdk.target import ModelFile

BITS = [2, 4, 8]
MODEL_FILE = ModelFile(per_channel_bytes=25.0, per_weighted_layer_bytes=40.0, per_layer_bytes=20.0,
                       per_output_bytes=30.0, base_bytes=100.0)
# (memory as a fraction of the weights, error budget, uplink Mbit/s): binding memory, binding error, neither
SETTINGS = ((0.6, 5.0, 5.0), (0.3, 2.0, 1.0), (1.0, None, 20.0), (0.5, 0.5, 3.0))


def _problem(seed: int) -> PlanProblem:
    frac, max_error, mbps = SETTINGS[seed % len(SETTINGS)]
    graph, prof, sens = random_problem_parts(seed, 5 + seed % 3, BITS)
    memory = int(graph.total_weights * frac + graph.input_elements * 1.5)
    model_file = MODEL_FILE if seed % 5 == 0 else None
    return PlanProblem(graph, prof, sens, Link(mbps, 10.0), BITS, memory, max_error=max_error, model_file=model_file)


@pytest.mark.parametrize("seed", range(44))
def test_default_plan_is_within_one_percent_of_the_exhaustive_optimum(seed: int) -> None:
    p = _problem(seed)
    plan = make_plan(p, PlanMeta(f"random{seed}"), exact=None)
    best = exact.exhaustive(p)
    got = plan.solution.predicted.total_ms
    assert got <= best.evaluation.total_ms * 1.01
    # never worse than Algorithm 1's own choice, feasible, and the certificate holds
    assert got <= select(p, candidate_list(p)).chosen.evaluation.total_ms + 1e-9
    chosen = Assignment.make(plan.solution.split_index, plan.solution.weight_bits, plan.solution.activation_bits)
    assert p.feasible(p.evaluate(chosen))
    assert plan.selection.certified_gap is not None and plan.selection.certified_gap <= 0.01
    assert exact.gap(got, best.evaluation.total_ms) <= plan.selection.certified_gap + 1e-9
    assert any("certified within" in n for n in plan.selection.notes)


def test_the_bound_is_below_the_optimum_and_refined_solutions_say_where_they_came_from() -> None:
    origins = set()
    for seed in range(12):
        p = _problem(seed)
        r = refine(p, candidate_list(p))
        opt = exact.exhaustive(p).evaluation.total_ms
        assert r.bound_ms <= opt * (1 + 1e-9) <= r.best.evaluation.total_ms * (1 + 1e-9)
        assert r.unfinished == 0 and r.gap <= r.tol + 1e-12
        assert r.solved + r.closed == len(p.order)
        origins.add(r.best.origin)
    assert origins & {ORIGIN_DP, ORIGIN_MILP}  # the refinement improves on Algorithm 1 somewhere


def test_anytime_a_spent_budget_keeps_the_best_found_and_says_so() -> None:
    for seed in range(8):
        p = _problem(seed)
        cands = candidate_list(p)
        r = refine(p, cands, budget_s=0.0)
        a1 = select(p, cands).chosen
        assert r.best.evaluation.total_ms <= a1.evaluation.total_ms
        opt = exact.exhaustive(p).evaluation.total_ms
        assert exact.gap(r.best.evaluation.total_ms, opt) <= r.gap + 1e-9  # the certificate stays honest
        if r.unfinished:
            assert "budget ended" in r.note()


def test_milp_split_bound_matches_the_objective_and_the_cutoff_prunes() -> None:
    p = _problem(1)
    opt = exact.milp(p).evaluation.total_ms
    for k in range(1, len(p.order) + 1):
        s = exact.milp_split(p, k)
        if s.assignment is not None:
            assert s.optimal and s.bound_ms == pytest.approx(p.evaluate(s.assignment).total_ms, rel=1e-7)
        cut = exact.milp_split(p, k, cutoff_ms=opt)
        assert cut.bound_ms >= opt * (1 - 1e-9)
        if cut.assignment is not None:
            assert p.evaluate(cut.assignment).total_ms <= opt * (1 + 1e-9)
        warm = exact.milp_split(p, k, start=s.assignment)
        assert (warm.assignment is None) == (s.assignment is None)


def test_error_ladder_and_the_accuracy_candidate_list() -> None:
    p = _problem(3)
    ladder = error_ladder(p)
    assert ladder[0] == p.max_error
    values = [e for e in ladder if e is not None]
    assert values == sorted(values)
    top = p.evaluate(p.uniform(len(p.order), BITS[0])).error
    assert values[-1] >= top or len(values) == 10
    cands = candidate_list(p)
    r = refine_candidates(p, cands, ladder=True)
    assert p.max_error == ladder[0]  # restored
    assert r.certified_gap is None and len(r.candidates) >= len(cands)
    totals = [c.evaluation.total_ms for c in r.candidates]
    assert totals == sorted(totals)
    # each budget's optimum is in the list: at the loosest budget, the fastest candidate overall
    p.max_error = values[-1]
    assert r.candidates[0].evaluation.total_ms <= exact.exhaustive(p).evaluation.total_ms * 1.01
    assert not math.isnan(totals[0])
