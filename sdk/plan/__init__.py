"""The planner: AUTO-SPLIT's joint split and bit-width search, exact solvers and baselines, plan.json.

Entry points: `plan_model` (model file + target -> Plan), `make_plan` (a prepared PlanProblem ->
Plan), `save_plan` / `load_plan` (plan.json, validated), `write_report` (Markdown + PNGs).
"""

from __future__ import annotations

from splitsdk.plan.autosplit import Candidate, Selection, candidate_list, potential_splits, select
from splitsdk.plan.baselines import Baseline, baselines
from splitsdk.plan.build import PlanMeta, make_plan
from splitsdk.plan.exact import ExactResult
from splitsdk.plan.pipeline import Constraints, plan_model
from splitsdk.plan.problem import Assignment, Evaluation, PlanProblem
from splitsdk.plan.report import write_report
from splitsdk.plan.schema import SCHEMA_VERSION, Plan, load_plan, save_plan

__all__ = [
    "SCHEMA_VERSION",
    "Assignment",
    "Baseline",
    "Candidate",
    "Constraints",
    "Evaluation",
    "ExactResult",
    "Plan",
    "PlanMeta",
    "PlanProblem",
    "Selection",
    "baselines",
    "candidate_list",
    "load_plan",
    "make_plan",
    "plan_model",
    "potential_splits",
    "save_plan",
    "select",
    "write_report",
]
