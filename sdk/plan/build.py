"""The planner's entry point on a prepared problem: Algorithm 1, selection, baselines, exact gap -> Plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from splitsdk.errors import PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.plan import exact as exact_mod
from splitsdk.plan.autosplit import ORIGIN_CLOUD, Candidate, candidate_list, potential_splits, select
from splitsdk.plan.baselines import Baseline, baselines, kind_of
from splitsdk.plan.buildable import SplitBound
from splitsdk.plan.problem import Evaluation, PlanProblem
from splitsdk.plan.reason import explain
from splitsdk.plan.refine import refine_candidates
from splitsdk.plan.schema import (
    BaselineRecord,
    CandidateRecord,
    ConstraintsRecord,
    ExactRecord,
    LinkRecord,
    ModelRecord,
    Plan,
    PlannedCrossing,
    Predicted,
    SelectionRecord,
    Solution,
)
from splitsdk.profile.types import LatencyProfile

Progress = Callable[[str, int, int], None]  # (stage, done, total)
KEEP_ALL = 300  # candidate lists up to this size are stored whole in plan.json
KEEP_FASTEST = 50


def kept_candidates(cands: list[Candidate], chosen: Candidate, measured: set[int]) -> list[int]:
    """Positions of the candidates plan.json stores: all of a short list; of a long one the Pareto
    front (latency vs error proxy), the fastest few, those measured, CLOUD-ONLY and the chosen one."""
    if len(cands) <= KEEP_ALL:
        return list(range(len(cands)))
    keep = set(range(min(KEEP_FASTEST, len(cands)))) | measured
    best = float("inf")
    for i, c in enumerate(cands):  # sorted by latency: a new lowest error is on the front
        if c.evaluation.error < best:
            keep.add(i)
            best = c.evaluation.error
        if c is chosen or c.origin == ORIGIN_CLOUD:
            keep.add(i)
    return sorted(keep)


@dataclass(frozen=True)
class PlanMeta:
    """What the plan records about its inputs (identity, not used by the solver)."""

    model_name: str
    model_sha256: str = ""
    model_format: str = ""
    target: str = ""
    cloud: str = ""
    max_accuracy_drop: float | None = None


def predicted(ev: Evaluation, accuracy_drop: float | None = None) -> Predicted:
    return Predicted(
        edge_ms=float(ev.edge_ms),
        transmit_ms=float(ev.transmit_ms),
        cloud_ms=float(ev.cloud_ms),
        total_ms=float(ev.total_ms),
        transmit_bytes=int(ev.transmit_bytes),
        edge_weight_bytes=int(ev.edge_weight_bytes),
        peak_activation_bytes=int(ev.peak_activation_bytes),
        error=float(ev.error),
        accuracy_drop=accuracy_drop,
    )


def _ordered(problem: PlanProblem, bits: dict[str, int]) -> dict[str, int]:
    return {n: bits[n] for n in problem.order if n in bits}


def _candidate_record(problem: PlanProblem, c: Candidate, drop: float | None) -> CandidateRecord:
    a = c.assignment
    return CandidateRecord(
        kind=kind_of(a.split_index, len(problem.order)),
        split_index=a.split_index,
        origin=c.origin,
        weight_bits=_ordered(problem, a.wbits),
        activation_bits=_ordered(problem, a.abits),
        predicted=predicted(c.evaluation, drop),
        budget=c.budget,
    )


def _solution(problem: PlanProblem, c: Candidate, drop: float | None, reason: str) -> Solution:
    a = c.assignment
    k = a.split_index
    abits = a.abits
    crossing = tuple(
        PlannedCrossing(
            tensor=x.tensor,
            shape=tuple(x.shape),
            bits=problem.wire_bits(x.tensor, abits),
            producer=problem.graph.tensors[x.tensor].producer,
        )
        for x in problem.candidates[k].crossing
    )
    return Solution(
        kind=kind_of(k, len(problem.order)),
        split_index=k,
        edge_layers=tuple(problem.order[:k]),
        crossing=crossing,
        weight_bits=_ordered(problem, a.wbits),
        activation_bits=_ordered(problem, abits),
        predicted=predicted(c.evaluation, drop),
        reason=reason,
        origin=c.origin,
    )


def _baseline_record(b: Baseline) -> BaselineRecord:
    return BaselineRecord(
        name=b.name,
        kind=b.kind,
        split_index=b.split_index,
        edge_layers=b.edge_layers,
        weight_bits=b.weight_bits,
        activation_bits=b.activation_bits,
        predicted=predicted(b.evaluation),
        fits=b.fits,
        note=b.note,
        buildable=b.buildable,
    )


def make_plan(
    problem: PlanProblem,
    meta: PlanMeta,
    *,
    evaluate: Callable[[Candidate], float] | None = None,
    chain_graph: LayerGraph | None = None,
    chain_profile: LatencyProfile | None = None,
    exact: str | None = "auto",
    progress: Progress | None = None,
    notes: tuple[str, ...] = (),
    bound: SplitBound | None = None,
) -> Plan:
    """Run Algorithm 1, pick the solution, score the baselines and (optionally) the exact optimum.

    `bound`: the first layer the edge cannot run (`splitsdk.plan.buildable`, or `--cloud-ops`): the
    solution's split index is at most `bound.index`, the baselines are restricted or marked unbuildable;
    the exact solvers cannot see it, so the exact optimum is skipped with a note.

    `evaluate(candidate) -> accuracy drop` (same unit as `meta.max_accuracy_drop`) switches the
    selection to measured accuracy; otherwise the error proxy is compared with `problem.max_error`.
    `exact`: "auto" (exhaustive or MILP by size), "milp", "exhaustive", or None to skip; it is
    skipped with measured accuracy, whose constraint no solver can see.
    """
    cands = candidate_list(problem, None if progress is None else lambda i, n: progress("Algorithm 1", i, n))
    notes = tuple(notes)
    max_split = None if bound is None else bound.index
    if max_split is not None:
        cands = [c for c in cands if c.assignment.split_index <= max_split]
        if exact is not None:
            notes = (*notes, "no exact optimum: the exact solvers cannot restrict the split index")
            exact = None
    refined = refine_candidates(problem, cands, ladder=evaluate is not None, max_split=max_split)
    cands, notes = refined.candidates, (*notes, *refined.notes)
    sel = select(problem, cands, evaluate, meta.max_accuracy_drop if evaluate is not None else None)
    drops = {i: d for i, d in sel.measured}
    base = baselines(problem, chain_graph, chain_profile, bound)
    if progress is not None:
        progress("baselines", 1, 1)
    exact_rec = None
    if exact is not None and sel.criterion != "measured-accuracy":
        solvers = {"auto": exact_mod.solve, "milp": exact_mod.milp, "exhaustive": exact_mod.exhaustive}
        if exact not in solvers:
            raise PlanError(f"exact: unknown solver {exact!r} (known: {', '.join(solvers)})")
        try:
            opt = solvers[exact](problem)
        except PlanError as exc:  # the exact optimum is a report, not the plan: say why it is missing
            notes = (*notes, f"no exact optimum: {exc}")
        else:
            exact_rec = ExactRecord(
                solver=opt.solver,
                split_index=opt.assignment.split_index,
                total_ms=opt.evaluation.total_ms,
                gap=exact_mod.gap(sel.chosen.evaluation.total_ms, opt.evaluation.total_ms),
            )
        if progress is not None:
            progress("exact optimum", 1, 1)
    position = cands.index(sel.chosen)
    kept = kept_candidates(cands, sel.chosen, set(drops))
    reason = explain(problem, sel, cands, base, fits_somewhere=bool(potential_splits(problem)), bound=bound)
    selection = SelectionRecord(
        criterion=sel.criterion,
        threshold=sel.threshold,
        evaluated=len(sel.measured),
        position=position,
        candidates_total=len(cands),
        notes=notes,
        certified_gap=refined.certified_gap,
    )
    return Plan(
        model=ModelRecord(meta.model_name, meta.model_sha256, meta.model_format),
        target=meta.target,
        cloud=meta.cloud,
        bits=tuple(problem.bits),
        link=LinkRecord(problem.link.uplink_mbps, problem.link.rtt_ms),
        constraints=ConstraintsRecord(problem.memory_bytes, meta.max_accuracy_drop, problem.max_error),
        selection=selection,
        solution=_solution(problem, sel.chosen, drops.get(position), reason),
        candidates=tuple(_candidate_record(problem, cands[i], drops.get(i)) for i in kept),
        baselines={k: _baseline_record(b) for k, b in base.items()},
        exact=exact_rec,
        profile_source=problem.profile.source,
        layers=tuple(problem.order),
    )


__all__ = ["ORIGIN_CLOUD", "PlanMeta", "Progress", "make_plan", "predicted"]
