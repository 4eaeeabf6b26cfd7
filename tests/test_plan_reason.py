"""The reason in words names the facts that made the solution win (the paper's appendix-A guidance)."""

from __future__ import annotations

from test_plan_autosplit import _fig3_problem

from splitsdk.plan import PlanMeta, make_plan
from splitsdk.profile.types import Link


def _reason(link: Link, memory: int = 10**9) -> tuple[str, str]:
    p = _fig3_problem(memory)
    p.link = link
    plan = make_plan(p, PlanMeta("fig3"), exact=None)
    return plan.solution.kind, plan.solution.reason


def test_split_reason_names_the_layer_and_the_size_ratio() -> None:
    kind, reason = _reason(Link(10.0, 5.0))
    assert kind == "SPLIT"
    assert reason.startswith("SPLIT after layer 'c3' (3 of 5 layers on the device)")
    assert "smaller than the raw frame" in reason and "faster than CLOUD-ONLY" in reason
    assert "Neurosurgeon" in reason and "error proxy" in reason


def test_edge_only_reason_says_the_model_fits() -> None:
    kind, reason = _reason(Link(0.2, 5.0))
    assert kind == "EDGE_ONLY" and "the whole model fits on the device" in reason


def test_cloud_only_reason_on_a_fast_uplink() -> None:
    kind, reason = _reason(Link(10_000.0, 0.0))
    assert kind == "CLOUD_ONLY" and reason.startswith("CLOUD-ONLY: sending the raw frame")
    assert "fallback" not in reason


def test_cloud_only_fallback_reason_when_nothing_fits() -> None:
    kind, reason = _reason(Link(10.0, 5.0), memory=10)
    assert kind == "CLOUD_ONLY" and reason.startswith("CLOUD-ONLY fallback: no edge part fits")
