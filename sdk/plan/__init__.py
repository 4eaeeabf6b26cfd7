"""The planner: AUTO-SPLIT's joint split and bit-width search, exact solvers and baselines, plan.json."""

from __future__ import annotations

from splitsdk.plan.autosplit import Candidate, Selection, candidate_list, potential_splits, select
from splitsdk.plan.problem import Assignment, Evaluation, PlanProblem

__all__ = [
    "Assignment",
    "Candidate",
    "Evaluation",
    "PlanProblem",
    "Selection",
    "candidate_list",
    "potential_splits",
    "select",
]
