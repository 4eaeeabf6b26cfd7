"""`plan_model`: from a model file and a target name to a Plan (graph -> profile -> quant -> plan).

Glue only: each stage is its own library function. The optimised graph (BN folded, activations
fused) is what AUTO-SPLIT, DADS/QDMP and the baselines plan on; Neurosurgeon gets the unoptimised
graph's chain, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitsdk.errors import DataError, PlanError, TargetError
from splitsdk.graph import LayerGraph
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.build import PlanMeta, Progress, make_plan
from splitsdk.plan.problem import PlanProblem
from splitsdk.plan.schema import Plan
from splitsdk.profile.types import FLOAT_BITS, Link

DEFAULT_CLOUD = "cloud-gpu"


@dataclass(frozen=True)
class Constraints:
    """The user's constraints. `memory_bytes` None: the target's memory for the edge app.

    `max_accuracy_drop` (percentage points of top-1 accuracy) applies with labelled evaluation
    data; without it the error proxy is compared with `max_error` (None: the proxy of the whole
    model uniformly at 8 bits, i.e. "no worse than 8-bit post-training quantisation").
    """

    memory_bytes: int | None = None
    max_accuracy_drop: float | None = None
    max_error: float | None = None
    cloud_ops: tuple[str, ...] = ()  # layer ops (e.g. "Bidirectional") that stay in the cloud, and all after them


def default_max_error(problem: PlanProblem) -> float:
    """The error proxy of every layer at 8 bits (or the widest candidate below float)."""
    b = 8 if 8 in problem.bits else max(problem.bits)
    n = len(problem.order)
    return problem.evaluate(problem.uniform(n, b)).error


def plan_model(
    model: str | Path | Any,
    target: str,
    link: Link,
    constraints: Constraints = Constraints(),
    cloud: str = DEFAULT_CLOUD,
    calib: str | Path | None = None,
    eval_data: str | Path | None = None,
    exact: str | None = "auto",
    progress: Progress | None = None,
    evaluator: Callable[[Candidate], float] | None = None,
    metric: str = "top1",
) -> Plan:
    """Plan a model for an edge target: load, profile, measure sensitivity, run the planner.

    `metric` names the accuracy measured on `eval_data` (`splitsdk.plan.accuracy.METRICS`).
    """
    from splitsdk.graph import load_graph, model_sha256
    from splitsdk.profile import build_profile
    from splitsdk.quant import load_dataset, measure_sensitivity
    from splitsdk.target import load_target

    if constraints.memory_bytes is not None and constraints.memory_bytes <= 0:
        raise PlanError(f"--memory: must be a positive number of bytes, got {constraints.memory_bytes}")
    if constraints.max_accuracy_drop is not None and constraints.max_accuracy_drop < 0:
        raise PlanError(f"--max-accuracy-drop: must be >= 0, got {constraints.max_accuracy_drop}")
    from splitsdk.plan.accuracy import get_metric

    get_metric(metric)  # an unknown name fails before any work
    edge_t, cloud_t = load_target(target), load_target(cloud)
    if edge_t.role not in ("edge", "any"):
        raise TargetError(f"target '{edge_t.name}' is a {edge_t.role} device, not an edge device")
    if cloud_t.role not in ("cloud", "any"):
        raise TargetError(f"cloud '{cloud_t.name}' is an {cloud_t.role} device, not a cloud device")

    def step(name: str) -> None:
        if progress is not None:
            progress(name, 0, 1)

    step("loading the model")
    graph = load_graph(model)
    max_split = _max_split(graph, constraints.cloud_ops)
    chain = load_graph(model, optimize_graph=False)
    sha = model_sha256(model)
    step("profiling")
    profile = build_profile(graph, edge_t, cloud_t)
    chain_profile = build_profile(chain, edge_t, cloud_t)
    bits = sorted(edge_t.quant.candidate_bits)
    step("measuring sensitivity")
    shape = graph.tensors[graph.inputs[0]].shape
    data = load_dataset(calib, shape)
    sens = measure_sensitivity(
        graph,
        data,
        bits,
        model_sha256=sha,
        progress=None if progress is None else lambda stage, i, n: progress(f"sensitivity: {stage}", i, n),
    )
    memory = constraints.memory_bytes or edge_t.device.app_memory_bytes
    storage = {b: edge_t.quant.storage_bits(b) for b in [*bits, FLOAT_BITS]}
    problem = PlanProblem(
        graph, profile, sens, link, bits, memory, storage_bits=storage, model_file=edge_t.quant.model_file
    )
    problem.max_error = constraints.max_error if constraints.max_error is not None else default_max_error(problem)

    notes = []
    emulated = [b for b in bits if b in edge_t.quant.emulated_bits]
    if emulated:
        notes.append(
            f"{'/'.join(map(str, emulated))}-bit values are emulated on the int8 grid by {edge_t.quant.runtime}: "
            "they run and are stored as int8 on the device and are packed to their width only on the wire"
        )
    if data.synthetic:
        notes.append("sensitivities were measured on random inputs (no --calib data): the error proxy is rough")
    if constraints.max_accuracy_drop is not None and eval_data is None and evaluator is None:
        notes.append(
            f"--max-accuracy-drop {constraints.max_accuracy_drop:g} needs labelled --eval data to be measured; "
            f"without it the error proxy was compared with {problem.max_error:.4g} instead"
        )
    if eval_data is not None and evaluator is None:
        from splitsdk.plan.accuracy import make_evaluator

        ev_set = load_dataset(eval_data, shape, samples=10**9)
        if ev_set.y is None:
            raise DataError(f"{eval_data}: evaluation data needs labels (an array 'y' in the .npz)")
        evaluator = make_evaluator(problem, ev_set, calib=data, metric=metric)
        if metric != "top1":
            notes.append(f"accuracy measured as {metric} on {len(ev_set.x)} labelled samples of {eval_data}")
    if evaluator is not None and constraints.max_accuracy_drop is None:
        raise PlanError("--eval needs --max-accuracy-drop (the largest acceptable drop in top-1 accuracy, in points)")
    if max_split is not None:
        notes.append(
            f"layers of op {'/'.join(constraints.cloud_ops)} stay in the cloud: the split is at most "
            f"{max_split} ('{problem.order[max_split - 1] if max_split else '(input)'}' the last edge layer)"
        )
    meta = PlanMeta(
        model_name=graph.name,
        model_sha256=sha,
        model_format=graph.source_format,
        target=_target_ref(target, edge_t.name),
        cloud=_target_ref(cloud, cloud_t.name),
        max_accuracy_drop=constraints.max_accuracy_drop,
    )
    return make_plan(
        problem,
        meta,
        evaluate=evaluator,
        chain_graph=chain,
        chain_profile=chain_profile,
        exact=exact,
        progress=progress,
        notes=tuple(notes),
        max_split=max_split,
    )


def _target_ref(given: str | Path, name: str) -> str:
    """How the plan names its target: a shipped target by name, a descriptor file by its absolute path
    (so `convert` finds the same file again)."""
    from splitsdk.target import list_targets

    return name if str(given) in list_targets() else str(Path(given).resolve())


def _max_split(graph: LayerGraph, cloud_ops: tuple[str, ...]) -> int | None:
    """The largest split index that keeps every layer of an op in `cloud_ops` in the cloud (None: no limit).

    Split index k puts the first k layers of the topological order (`PlanProblem.order`) on the edge.
    """
    if not cloud_ops:
        return None
    ops = [graph.layer(n).op for n in graph.topological_order()]
    unknown = [op for op in cloud_ops if op not in ops]
    if unknown:
        raise PlanError(
            f"--cloud-ops: no layer of op {', '.join(unknown)} in the model (its ops: {', '.join(sorted(set(ops)))})"
        )
    return min(i for i, op in enumerate(ops) if op in cloud_ops)
