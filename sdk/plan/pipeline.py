"""`plan_model`: from a model file and a target name to a Plan (graph -> profile -> quant -> plan).

Glue only: each stage is its own library function. The optimised graph (BN folded, activations
fused) is what AUTO-SPLIT, DADS/QDMP and the baselines plan on; Neurosurgeon gets the unoptimised
graph's chain, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from splitsdk.errors import DataError, PlanError, TargetError
from splitsdk.graph import LayerGraph
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.build import FeatureCompression, PlanMeta, Progress, TrafficOptions, make_plan
from splitsdk.plan.buildable import SplitBound, first_unbuildable
from splitsdk.plan.problem import PlanProblem
from splitsdk.plan.schema import Plan
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link
from splitsdk.target import Target

if TYPE_CHECKING:
    from splitsdk.plan.build import JpegLike
    from splitsdk.plan.uplink import Uplink
    from splitsdk.quant.calib import Dataset

DEFAULT_CLOUD = "cloud-gpu"
DEFAULT_JPEG_QUALITIES = (95, 75, 50)
COMPRESSION_FRAMES = 16  # calibration frames the zstd ratios are measured on (bounded work)
JPEG_FRAMES = 64  # frames the JPEG sizes and accuracies are measured on
Compress = Literal["none", "zstd", "auto"]


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
    edge_profile: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    traffic: TrafficOptions | None = None,
    compress: Compress = "none",
    jpeg: Sequence[int] = DEFAULT_JPEG_QUALITIES,
    uplink: Uplink | None = None,
    max_splits: int | None = None,
    jpeg_solution: bool = True,
) -> Plan:
    """Plan a model for an edge target: load, profile, measure sensitivity, run the planner.

    `metric` names the accuracy measured on `eval_data` (`splitsdk.plan.accuracy.METRICS`).
    `edge_profile`: a measured edge latency table (`splitsdk profile`), used for the layers and
    precisions it covers; the analytic model fills the rest. The plan's notes say which layers came
    from which, with the measured and the modelled time of each measured layer side by side.
    `traffic`: a frame rate and loss limit (`splitsdk.plan.traffic`). `compress`: feature compression of the
    crossing tensors ("zstd", or "auto": per crossing where it pays), ratios measured on the calibration data.
    `jpeg`: the qualities of the CLOUD-ONLY+JPEG baselines, measured on the evaluation data (or the calibration
    data without it); empty: none. With `max_accuracy_drop`, a JPEG option within it whose modelled latency beats
    the chosen candidate's becomes the solution (CLOUD_ONLY, codec jpeg at its quality) unless `jpeg_solution`
    is False (`splitsdk.plan.build.jpeg_solution`).
    `uplink`: a rate distribution (`splitsdk.plan.uplink`): `link` is then its representative rate
    (`splitsdk.plan.build.representative_rate`) and the plan also records the split set of at most `max_splits`
    splits over the distribution (`Plan.split_set`).
    """
    from splitsdk.graph import model_sha256
    from splitsdk.profile import build_profile
    from splitsdk.quant import load_dataset, load_graph_for_data, measure_sensitivity
    from splitsdk.target import load_target

    if constraints.memory_bytes is not None and constraints.memory_bytes <= 0:
        raise PlanError(f"--memory: must be a positive number of bytes, got {constraints.memory_bytes}")
    if constraints.max_accuracy_drop is not None and constraints.max_accuracy_drop < 0:
        raise PlanError(f"--max-accuracy-drop: must be >= 0, got {constraints.max_accuracy_drop}")
    if compress not in ("none", "zstd", "auto"):
        raise PlanError(f"--compress: {compress!r} is not one of none, zstd, auto")
    distribution = uplink is not None and not uplink.single
    if distribution and compress != "none":
        raise PlanError("--compress: not modelled for a split set (an --uplink range or --uplink-trace): plan "
                        "the set without it, or plan one --uplink rate with it")
    if max_splits is not None and not distribution:
        raise PlanError("--max-splits: needs a rate distribution (--uplink LOW..HIGH or --uplink-trace)")
    bad_q = [q for q in jpeg if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100]
    if bad_q:
        raise PlanError(f"--jpeg: qualities must be integers 1..100, got {bad_q[0]!r}")
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
    graph = load_graph_for_data(model, calib, input_shape)
    manual = _max_split(graph, constraints.cloud_ops)
    step("checking which layers the edge can build")
    check = first_unbuildable(graph, edge_t, upto=manual)
    bound = _tighter(check.bound, _cloud_ops_bound(graph, manual))
    chain = load_graph_for_data(model, calib, input_shape, optimize_graph=False)
    sha = model_sha256(model)
    step("profiling")
    profile = build_profile(graph, edge_t, cloud_t, measured_edge=edge_profile)
    chain_profile = build_profile(chain, edge_t, cloud_t, measured_edge=edge_profile)
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

    notes = list(graph.notes)  # how the import read the model: fixed dims, layouts
    if edge_profile is not None:
        notes += edge_profile_notes(graph, edge_t, cloud_t, profile, edge_profile)
    emulated = [b for b in bits if b in edge_t.quant.emulated_bits]
    if emulated:
        notes.append(
            f"{'/'.join(map(str, emulated))}-bit values are emulated on the int8 grid by {edge_t.quant.runtime}: "
            "they run and are stored as int8 on the device and are packed to their width only on the wire"
        )
    if data.synthetic:
        notes.append("sensitivities were measured on random inputs (no --calib data): the error proxy is rough")
    if constraints.max_accuracy_drop is not None and eval_data is None and evaluator is None:
        if graph.source_format in ("keras", "onnx"):  # no labels: the drop in agreement with the float model
            from splitsdk.plan.accuracy import make_label_free_evaluator

            evaluator = make_label_free_evaluator(problem, data, metric=metric)
            notes.append(f"accuracy drop measured without labels ({evaluator.measure})"
                         + ("; the calibration inputs are random, so it says little" if data.synthetic else ""))
        else:
            notes.append(
                f"--max-accuracy-drop {constraints.max_accuracy_drop:g} needs labelled --eval data or a Keras or ONNX "
                f"model to be measured; without them the error proxy was compared with {problem.max_error:.4g}"
            )
    ev_set = None
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
    notes.append(check.note(edge_t.name))
    if manual is not None:
        notes.append(
            f"layers of op {'/'.join(constraints.cloud_ops)} stay in the cloud: the split is at most "
            f"{manual} ('{problem.order[manual - 1] if manual else '(input)'}' the last edge layer)"
        )
    compression = None
    if compress != "none":
        step("measuring feature compression")
        compression = feature_compression(problem, data, edge_t, compress)
    options: list[JpegLike] = []
    if jpeg:
        step("measuring JPEG frames")
        options, why = jpeg_baselines(graph, ev_set if ev_set is not None else data, edge_t, jpeg, metric)
        notes += [why] if why else []
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
        bound=bound,
        compression=compression,
        traffic=traffic,
        jpeg=options,
        jpeg_as_solution=jpeg_solution,
        uplink=uplink,
        max_splits=max_splits,
    )


def feature_compression(problem: PlanProblem, data: Dataset, edge: Target, mode: Literal["zstd", "auto"],
                        frames: int = COMPRESSION_FRAMES) -> FeatureCompression:
    """The zstd ratio of every tensor that crosses a potential split (the model input included), at every wire
    width of the problem, measured on the first `frames` calibration frames; the edge cost from the target."""
    from splitsdk.plan.autosplit import potential_splits
    from splitsdk.plan.compression import DEFAULT_LEVEL, compress_ms, crossing_ratios, zstd_ns_per_byte
    from splitsdk.plan.problem import INPUT_BITS, WIRE_MAX_BITS
    from splitsdk.quant.sensitivity import activation_runner

    graph = problem.graph
    x = np.asarray(data.x[:frames], dtype=np.float32)
    tensors = sorted({c.tensor for k in [0, *potential_splits(problem)] for c in problem.candidates[k].crossing})
    produced = [t for t in tensors if graph.tensors[t].producer is not None]
    acts: dict[str, np.ndarray] = {t: x for t in tensors if graph.tensors[t].producer is None}
    if produced:
        run = activation_runner(graph, produced)
        values = [run(x[i : i + 4]) for i in range(0, len(x), 4)]
        for j, t in enumerate(produced):
            acts[t] = np.concatenate([np.asarray(v[j], dtype=np.float32) for v in values])
    widths = sorted({min(b, WIRE_MAX_BITS) for b in problem.bits} | {INPUT_BITS})
    ratios = crossing_ratios(acts, widths)
    ns, ns_from = zstd_ns_per_byte(edge)
    return FeatureCompression(mode, ratios, lambda n: compress_ms(edge, n), len(x),
                              f"zstd level {DEFAULT_LEVEL}; edge cost {ns:g} ns/byte ({ns_from}), modelled")


def jpeg_baselines(graph: LayerGraph, data: Dataset, edge: Target, qualities: Sequence[int],
                   metric: str) -> tuple[list[JpegLike], str]:
    """The CLOUD-ONLY+JPEG options measured on up to JPEG_FRAMES frames of `data` (with its labels if any), and
    a note when there are none."""
    from splitsdk.plan.jpeg import jpeg_options, jpeg_unavailable

    if data.synthetic:
        return [], "no CLOUD-ONLY+JPEG baselines: no --calib or --eval images to measure JPEG sizes on"
    frames = np.asarray(data.x[:JPEG_FRAMES])
    labels = None if data.y is None else np.asarray(data.y[:JPEG_FRAMES])
    why = jpeg_unavailable(graph, frames)
    if why is not None:
        return [], f"no CLOUD-ONLY+JPEG baselines: {why}"
    return list(jpeg_options(graph, frames, edge, tuple(qualities), labels=labels, metric=metric)), ""


def edge_profile_notes(graph: LayerGraph, edge: Target, cloud: Target, profile: LatencyProfile,
                       table_path: str | Path) -> list[str]:
    """Which layers' edge latency was measured and which modelled; per measured layer both numbers
    (at the table's own precision; the report reads them back); a runtime that differs from the one the
    target's model assumes."""
    from splitsdk.profile import build_profile, load_measured
    from splitsdk.profile.measured import LayerComparison

    table = load_measured(table_path)
    order = graph.topological_order()
    analytic = build_profile(graph, edge, cloud)
    measured = [n for n in order if n in table.layers()]
    modelled = [n for n in order if n not in table.layers()]
    src = table.source
    how = f" ({src.describe()})" if src is not None else ""
    notes = [
        f"edge latency of {len(measured)} of {len(order)} layers measured from {table.path}{how}: "
        f"{', '.join(measured) or 'none'}; analytic model of {edge.name} for "
        f"{', '.join(modelled) or 'no layer'} (and for precisions the table lacks)"
    ]
    for name in measured:
        pairs = sorted(table.by_bits.get(name, {(8, 8): 0.0}))
        for w, a in pairs:
            if (w, a) in profile.edge[name]:
                notes.append(LayerComparison(name, w, a, profile.edge_ms(name, w, a),
                                             analytic.edge_ms(name, w, a)).note())
    if src is not None and edge.runtime is not None:
        diff = edge.runtime.differs(src.runtime)
        if diff:
            notes.append(f"warning: the measured runtime is not the one {edge.name}'s analytic rates assume "
                         f"({diff}): measured and modelled layers are not comparable")
    return notes


def _target_ref(given: str | Path, name: str) -> str:
    """How the plan names its target: a shipped target by name, a descriptor file by its absolute path
    (so `convert` finds the same file again)."""
    from splitsdk.target import list_targets

    return name if str(given) in list_targets() else str(Path(given).resolve())


def _cloud_ops_bound(graph: LayerGraph, index: int | None) -> SplitBound | None:
    if index is None:
        return None
    name = graph.topological_order()[index]
    return SplitBound(index, name, graph.layer(name).op, "kept in the cloud by --cloud-ops")


def _tighter(a: SplitBound | None, b: SplitBound | None) -> SplitBound | None:
    """The bound with the smaller split index (the measured one on a tie)."""
    if a is None or b is None:
        return a or b
    return a if a.index <= b.index else b


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
