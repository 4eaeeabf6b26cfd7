"""The planner's entry point on a prepared problem: Algorithm 1, selection, baselines, exact gap -> Plan.

Two options change the figures after Algorithm 1 (its bit allocation does not see them; the selection does):
feature compression (`FeatureCompression`: each crossing's transmit bytes become the measured zstd ratio x its
packed bytes, its edge time grows by the modelled compression cost) and a frame rate (`TrafficOptions`: every
candidate and baseline gets its queue prediction, `splitsdk.plan.traffic`; a candidate over the loss limit is
not chosen, and the choice minimises latency including queueing). The exact solvers model neither, so with
either option the exact optimum and the refinement's certificate are left out, with a note.

With a rate distribution (`uplink`: `--uplink LOW..HIGH`, `--uplink-trace`) the problem's link is the distribution's
representative rate (`representative_rate`: the weighted median), at which the solution and the baselines are
planned, and the plan also records the split set over the whole distribution (`splitsdk.plan.adaptive`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from splitsdk.errors import PlanError
from splitsdk.graph.model import LayerGraph
from splitsdk.plan import exact as exact_mod
from splitsdk.plan.autosplit import ORIGIN_CLOUD, Candidate, Selection, candidate_list, potential_splits, select
from splitsdk.plan.baselines import KIND_CLOUD, Baseline, baselines, kind_of
from splitsdk.plan.buildable import SplitBound
from splitsdk.plan.problem import Evaluation, PlanProblem, wire_bytes
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
    QueueRecord,
    SelectionRecord,
    Solution,
    SplitSet,
    TrafficRecord,
)
from splitsdk.plan.traffic import EDGE_QUEUE_CAPACITY, Arrivals, loss_and_latency, predict_queue
from splitsdk.plan.uplink import Uplink
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile

Progress = Callable[[str, int, int], None]  # (stage, done, total)
KEEP_ALL = 300  # candidate lists up to this size are stored whole in plan.json
KEEP_FASTEST = 50
DEFAULT_QUEUE_DEPTH = 4  # the edge app's default --queue-depth (codegen's AppView.queue_depth)


@dataclass(frozen=True)
class TrafficOptions:
    """`splitsdk plan --fps`: the camera's frame rate and arrivals, the loss limit, the edge app's queue depth.
    `capture_ms`: the per-frame capture time (0: not modelled; the edge app measures it as `capture`)."""

    arrivals: Arrivals
    max_loss: float | None = None
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    capture_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.max_loss is not None and not 0.0 <= self.max_loss <= 1.0:
            raise PlanError(f"--max-loss: must be a fraction in 0..1, got {self.max_loss}")
        if self.capture_ms < 0 or not math.isfinite(self.capture_ms):
            raise PlanError(f"capture_ms: must be >= 0, got {self.capture_ms}")
        EDGE_QUEUE_CAPACITY(self.queue_depth)  # refuses a depth below 1
        predict_queue(self.arrivals, {"capture": 0.0}, 1)  # refuses a bad rate or arrival kind now


@dataclass(frozen=True)
class FeatureCompression:
    """`splitsdk plan --compress zstd|auto`: per crossing tensor and wire width, compressed / packed bytes
    measured on `frames` calibration frames (`splitsdk.plan.compression.crossing_ratios`), and the modelled
    edge time to compress n packed bytes. "zstd" compresses every crossing; "auto" those where the bytes saved
    on the link take longer to send than the compression takes on the edge."""

    mode: Literal["zstd", "auto"]
    ratios: Mapping[str, Mapping[int, float]]
    cost_ms: Callable[[float], float]
    frames: int
    how: str = ""  # one line: the codec, its level, where the edge cost comes from


@dataclass(frozen=True)
class CrossingCodec:
    codec: Literal["none", "zstd"]
    ratio: float | None  # measured; None: not measured for this tensor and width
    packed_bytes: int


def crossing_codecs(problem: PlanProblem, comp: FeatureCompression, k: int,
                    abits: Mapping[str, int]) -> list[CrossingCodec]:
    """The codec of each crossing tensor of split k at `abits` (the order of `problem.candidates[k].crossing`)."""
    out = []
    for x in problem.candidates[k].crossing:
        b = problem.wire_bits(x.tensor, abits)
        packed = wire_bytes(x.elements, b)
        ratio = comp.ratios.get(x.tensor, {}).get(b)
        if ratio is None:
            out.append(CrossingCodec("none", None, packed))
            continue
        pays = packed * (1.0 - ratio) * problem.link.ms_per_byte > comp.cost_ms(packed)
        out.append(CrossingCodec("zstd" if comp.mode == "zstd" or pays else "none", ratio, packed))
    return out


def compressed(problem: PlanProblem, comp: FeatureCompression, c: Candidate) -> Candidate:
    """`c` with its crossings compressed as `crossing_codecs` says: fewer bytes sent, more edge time."""
    choice = crossing_codecs(problem, comp, c.assignment.split_index, c.assignment.abits)
    if all(x.codec == "none" for x in choice):
        return c
    tx = sum(math.ceil(x.ratio * x.packed_bytes) if x.codec == "zstd" and x.ratio is not None else x.packed_bytes
             for x in choice)
    extra = sum(comp.cost_ms(x.packed_bytes) for x in choice if x.codec == "zstd")
    ev = replace(c.evaluation, edge_ms=c.evaluation.edge_ms + extra, transmit_bytes=tx,
                 transmit_ms=problem.link.transmit_ms(tx))
    return replace(c, evaluation=ev)


def pipeline_stages(p: Evaluation | Predicted, capture_ms: float) -> dict[str, float]:
    """The edge app's stages for one solution (ms): capture, infer (+ pack, compress, or JPEG encoding: the
    same thread) and send (transmit + RTT + cloud: one frame in flight until its RESULT)."""
    return {"capture": float(capture_ms), "infer": float(p.edge_ms), "send": float(p.transmit_ms + p.cloud_ms)}


def queue_record(opts: TrafficOptions, p: Evaluation | Predicted) -> QueueRecord:
    stages = pipeline_stages(p, opts.capture_ms)
    q = predict_queue(opts.arrivals, stages, EDGE_QUEUE_CAPACITY(opts.queue_depth))
    loss = min(1.0, max(0.0, q.loss_ratio))
    return QueueRecord(
        stages=stages,
        throughput_fps=q.throughput_fps,
        loss_ratio=loss,
        latency_mean_ms=q.latency_mean_ms,
        latency_p95_ms=q.latency_p95_ms,
        utilisation=min(1.0, max(0.0, q.utilisation)),
        bottleneck=q.bottleneck,
        feasible=opts.max_loss is None or loss <= opts.max_loss,
    )


class JpegLike(Protocol):
    """What the planner reads of `splitsdk.plan.jpeg.JpegOption` (a protocol: the planner imports no Pillow)."""

    @property
    def quality(self) -> int: ...
    @property
    def mean_bytes(self) -> float: ...
    @property
    def encode_ms(self) -> float: ...
    @property
    def agreement(self) -> float | None: ...
    @property
    def accuracy(self) -> float | None: ...
    @property
    def source(self) -> str: ...


def jpeg_baseline(problem: PlanProblem, option: JpegLike) -> Baseline:
    """CLOUD-ONLY+JPEG-Q<q>: the frame sent as a JPEG of the measured mean size, encoded on the edge (modelled)."""
    nbytes = round(option.mean_bytes)
    ev = Evaluation(edge_ms=option.encode_ms, transmit_ms=problem.link.transmit_ms(nbytes),
                    cloud_ms=problem.cloud_suffix_ms[0], transmit_bytes=nbytes, edge_weight_bytes=0,
                    peak_activation_bytes=0, error=0.0)
    return Baseline(name=f"CLOUD-ONLY+JPEG-Q{option.quality}", kind=KIND_CLOUD, split_index=0, edge_layers=(),
                    weight_bits=FLOAT_BITS, activation_bits=FLOAT_BITS, evaluation=ev, fits=True,
                    note=f"the frame as a JPEG at quality {option.quality}, all layers in the cloud in float; "
                         + option.source)


ORIGIN_JPEG = "cloud-only+jpeg"


def jpeg_drop(option: JpegLike) -> float | None:
    """A JPEG option's accuracy drop in points, as its baseline record states it: 100 - the label-free agreement
    of the model on decoded vs raw frames (None: not measured). For top-1 it bounds the labelled drop."""
    return None if option.agreement is None else 100.0 - option.agreement


def jpeg_solution(problem: PlanProblem, options: Sequence[JpegLike], chosen: Candidate, max_drop: float | None,
                  traffic: TrafficOptions | None) -> tuple[JpegLike, Baseline] | None:
    """The CLOUD-ONLY+JPEG option that replaces `chosen` as the solution, if any: within `max_drop` (its
    `jpeg_drop`; without an accuracy limit no lossy frame is chosen) and of lower modelled latency (with a frame
    rate: within the loss limit and of lower mean latency including queueing); the fastest such option."""
    if max_drop is None:
        return None

    def cost(ev: Evaluation) -> tuple[bool, float]:
        if traffic is None:
            return False, float(ev.total_ms)
        loss, mean = loss_and_latency(traffic.arrivals, pipeline_stages(ev, traffic.capture_ms),
                                      EDGE_QUEUE_CAPACITY(traffic.queue_depth))
        return traffic.max_loss is not None and loss > traffic.max_loss, mean

    best: tuple[JpegLike, Baseline] | None = None
    best_cost = cost(chosen.evaluation)
    for option in options:
        drop = jpeg_drop(option)
        if drop is None or drop > max_drop:
            continue
        b = jpeg_baseline(problem, option)
        c = cost(b.evaluation)
        if not c[0] and c < best_cost:
            best, best_cost = (option, b), c
    return best


def _jpeg_solution_record(problem: PlanProblem, option: JpegLike, b: Baseline, chosen: Candidate,
                          max_drop: float) -> Solution:
    """The plan's solution for a CLOUD-ONLY+JPEG option: the model input crosses as the frame's JPEG."""
    drop = jpeg_drop(option)
    assert drop is not None
    crossing = []
    for x in problem.candidates[0].crossing:
        raw = math.prod(x.shape)
        crossing.append(PlannedCrossing(tensor=x.tensor, shape=tuple(x.shape), bits=8, producer=None, codec="jpeg",
                                        compressed_ratio=option.mean_bytes / raw, jpeg_quality=option.quality))
    reason = (f"{b.name}: the frame as a JPEG at quality {option.quality} ({option.mean_bytes:.0f} B, measured) is "
              f"the fastest option within the accuracy limit: {b.evaluation.total_ms:.4g} ms modelled vs "
              f"{chosen.evaluation.total_ms:.4g} ms for the best candidate (split {chosen.assignment.split_index}); "
              f"accuracy drop {drop:.3g} points (label-free agreement on decoded frames) <= {max_drop:g}; "
              f"{option.source}")
    return Solution(kind=KIND_CLOUD, split_index=0, edge_layers=(), crossing=tuple(crossing), weight_bits={},
                    activation_bits={}, predicted=predicted(b.evaluation, drop), reason=reason, origin=ORIGIN_JPEG)


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


def _solution(problem: PlanProblem, c: Candidate, drop: float | None, reason: str,
              comp: FeatureCompression | None = None) -> Solution:
    a = c.assignment
    k = a.split_index
    abits = a.abits
    codecs = crossing_codecs(problem, comp, k, abits) if comp is not None else None
    crossing = tuple(
        PlannedCrossing(
            tensor=x.tensor,
            shape=tuple(x.shape),
            bits=problem.wire_bits(x.tensor, abits),
            producer=problem.graph.tensors[x.tensor].producer,
            codec="none" if codecs is None else codecs[i].codec,
            compressed_ratio=None if codecs is None else codecs[i].ratio,
        )
        for i, x in enumerate(problem.candidates[k].crossing)
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


def _baseline_record(b: Baseline, jpeg: JpegLike | None = None) -> BaselineRecord:
    drop = None if jpeg is None or jpeg.agreement is None else 100.0 - jpeg.agreement
    measured = None if jpeg is None else jpeg.accuracy if jpeg.accuracy is not None else jpeg.agreement
    return BaselineRecord(
        name=b.name,
        kind=b.kind,
        split_index=b.split_index,
        edge_layers=b.edge_layers,
        weight_bits=b.weight_bits,
        activation_bits=b.activation_bits,
        predicted=predicted(b.evaluation, drop),
        fits=b.fits,
        note=b.note,
        buildable=b.buildable,
        jpeg_quality=None if jpeg is None else jpeg.quality,
        measured_accuracy=measured,
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
    compression: FeatureCompression | None = None,
    traffic: TrafficOptions | None = None,
    jpeg: Sequence[JpegLike] = (),
    jpeg_as_solution: bool = True,
    uplink: Uplink | None = None,
    max_splits: int | None = None,
) -> Plan:
    """Run Algorithm 1, pick the solution, score the baselines and (optionally) the exact optimum.

    `bound`: the first layer the edge cannot run (`splitsdk.plan.buildable`, or `--cloud-ops`): the
    solution's split index is at most `bound.index`, the baselines are restricted or marked unbuildable;
    the exact solvers cannot see it, so the exact optimum is skipped with a note.

    `evaluate(candidate) -> accuracy drop` (same unit as `meta.max_accuracy_drop`) switches the
    selection to measured accuracy; otherwise the error proxy is compared with `problem.max_error`.
    `exact`: "auto" (exhaustive or MILP by size), "milp", "exhaustive", or None to skip; it is
    skipped with measured accuracy, whose constraint no solver can see.
    `compression`, `traffic`: see the module's docstring. `jpeg`: measured JPEG options
    (`splitsdk.plan.jpeg.jpeg_options`), each a CLOUD-ONLY+JPEG-Q<q> baseline and, unless `jpeg_as_solution`
    is False, a solution option too: with an accuracy limit (`meta.max_accuracy_drop`), the fastest option within
    it replaces the chosen candidate when its modelled latency is lower (`jpeg_solution`; not with `uplink`).
    `uplink`: a rate distribution (`splitsdk.plan.uplink`; `problem.link` is its representative rate, e.g.
    `representative_rate`): the plan also records the split set of at most `max_splits` splits over it
    (`splitsdk.plan.adaptive.plan_split_set`, on Algorithm 1's candidates, within `bound`). A single rate: none.
    """
    cands = candidate_list(problem, None if progress is None else lambda i, n: progress("Algorithm 1", i, n))
    notes = tuple(notes)
    max_split = None if bound is None else bound.index
    if max_split is not None:
        cands = [c for c in cands if c.assignment.split_index <= max_split]
    split_set = None
    if uplink is not None and not uplink.single:
        split_set, set_notes = _split_set(problem, uplink, max_splits, cands, max_split, evaluate is not None)
        notes = (*notes, *set_notes)
        if progress is not None:
            progress("split set", 1, 1)
        if exact is not None:
            notes = (*notes, "no exact optimum: the exact solvers cannot restrict the split index")
            exact = None
    refined = refine_candidates(problem, cands, ladder=evaluate is not None, max_split=max_split)
    cands, notes = refined.candidates, (*notes, *refined.notes)
    certified = refined.certified_gap
    if compression is not None or traffic is not None:
        what = " and ".join(w for w, on in (("feature compression", compression is not None),
                                            ("the frame rate", traffic is not None)) if on)
        certified = None
        if exact is not None:
            notes = (*notes, f"no exact optimum: the exact solvers do not model {what}")
            exact = None
    if compression is not None:
        cands = sorted((compressed(problem, compression, c) for c in cands), key=Candidate.sort_key)
        notes = (*notes, f"feature compression {compression.mode}: ratios measured on {compression.frames} "
                         f"calibration frames ({compression.how})")
    feasible: dict[int, bool] = {}
    if traffic is not None:
        cands, feasible = _by_queueing(traffic, cands)
    sel = _select(problem, cands, evaluate, meta.max_accuracy_drop if evaluate is not None else None, traffic,
                  feasible)
    drops = {i: d for i, d in sel.measured}
    base = baselines(problem, chain_graph, chain_profile, bound)
    jpeg_of: dict[str, JpegLike] = {}
    for option in jpeg:
        key = f"cloud_only_jpeg_q{option.quality}"
        base[key], jpeg_of[key] = jpeg_baseline(problem, option), option
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
    solution = _solution(problem, sel.chosen, drops.get(position), reason, compression)
    use_jpeg = None
    if jpeg and jpeg_as_solution and split_set is None:
        use_jpeg = jpeg_solution(problem, jpeg, sel.chosen, meta.max_accuracy_drop, traffic)
    if use_jpeg is not None:
        assert meta.max_accuracy_drop is not None
        solution = _jpeg_solution_record(problem, *use_jpeg, sel.chosen, meta.max_accuracy_drop)
        notes = (*notes, f"the solution is {use_jpeg[1].name} (a JPEG option beat the chosen candidate, position "
                         f"{position}); --no-jpeg-solution keeps JPEG among the baselines only")
    selection = SelectionRecord(
        criterion=sel.criterion,
        threshold=sel.threshold,
        evaluated=len(sel.measured),
        position=position,
        candidates_total=len(cands),
        notes=notes,
        certified_gap=certified,
    )
    kept_recs = [_candidate_record(problem, cands[i], drops.get(i)) for i in kept]
    traffic_rec = None
    if traffic is not None:
        queues = _Queues(traffic, cands)
        traffic_rec = TrafficRecord(
            fps=traffic.arrivals.fps,
            arrivals=traffic.arrivals.kind,
            max_loss=traffic.max_loss,
            queue_depth=traffic.queue_depth,
            queue_frames=EDGE_QUEUE_CAPACITY(traffic.queue_depth),
            solution=queues[id(sel.chosen)] if use_jpeg is None else queue_record(traffic, use_jpeg[1].evaluation),
            candidates=tuple(queues[id(cands[i])] for i in kept),
            baselines={k: queue_record(traffic, b.evaluation) for k, b in base.items()},
            notes=_traffic_notes(traffic, queues[id(sel.chosen)] if use_jpeg is None else
                                 queue_record(traffic, use_jpeg[1].evaluation)),
        )
    return Plan(
        model=ModelRecord(meta.model_name, meta.model_sha256, meta.model_format),
        target=meta.target,
        cloud=meta.cloud,
        bits=tuple(problem.bits),
        link=LinkRecord(problem.link.uplink_mbps, problem.link.rtt_ms),
        constraints=ConstraintsRecord(problem.memory_bytes, meta.max_accuracy_drop, problem.max_error),
        selection=selection,
        solution=solution,
        candidates=tuple(kept_recs),
        baselines={k: _baseline_record(b, jpeg_of.get(k)) for k, b in base.items()},
        exact=exact_rec,
        profile_source=problem.profile.source,
        layers=tuple(problem.order),
        traffic=traffic_rec,
        split_set=split_set,
    )


def representative_rate(uplink: Uplink) -> float:
    """The rate a distribution's single plan (solution and baselines) is made at: its weighted median (the
    lowest rate with at least half the weight at or below it)."""
    total = 0.0
    for rate, weight in zip(uplink.rates, uplink.weights, strict=True):
        total += weight
        if total >= 0.5 - 1e-12:
            return rate
    return uplink.rates[-1]


def _split_set(problem: PlanProblem, uplink: Uplink, max_splits: int | None, cands: Sequence[Candidate],
               max_split: int | None, measured: bool) -> tuple[SplitSet, tuple[str, ...]]:
    """The split set over `uplink` and the selection's notes about it."""
    from splitsdk.plan.adaptive import DEFAULT_MAX_SPLITS, plan_split_set

    n = DEFAULT_MAX_SPLITS if max_splits is None else max_splits
    if n < 1:
        raise PlanError(f"--max-splits: must be at least 1, got {n}")
    s = plan_split_set(problem, uplink, max_splits=n, candidates=cands, max_split=max_split)
    notes = [f"the uplink is a distribution ({uplink.source}): the solution and the baselines are planned at its "
             f"weighted median {problem.link.uplink_mbps:.4g} Mbit/s; split_set covers the whole distribution: "
             f"splits {', '.join(map(str, s.splits))}, expected {s.expected_ms:.4g} ms vs best static "
             f"{s.best_static_ms:.4g} ms vs oracle {s.oracle_ms:.4g} ms (modelled)"]
    if measured and problem.max_error is not None:
        notes.append("the split set's members are held to the error proxy's budget "
                     f"({problem.max_error:.4g}); their accuracy was not measured")
    return s, tuple(notes)


class _Queues(dict[int, QueueRecord]):
    """Queue records by candidate id, made on first use (the p95 needs a simulation: only the kept ones)."""

    def __init__(self, traffic: TrafficOptions, cands: Sequence[Candidate]) -> None:
        super().__init__()
        self.traffic = traffic
        self.by_id = {id(c): c for c in cands}

    def __missing__(self, key: int) -> QueueRecord:
        rec = queue_record(self.traffic, self.by_id[key].evaluation)
        self[key] = rec
        return rec


def _by_queueing(traffic: TrafficOptions, cands: list[Candidate]) -> tuple[list[Candidate], dict[int, bool]]:
    """The candidates by mean latency including queueing, those over the loss limit last; whether each (by id)
    is within the loss limit."""
    capacity = EDGE_QUEUE_CAPACITY(traffic.queue_depth)
    ranked = {}
    for c in cands:
        loss, mean = loss_and_latency(traffic.arrivals, pipeline_stages(c.evaluation, traffic.capture_ms), capacity)
        ranked[id(c)] = (traffic.max_loss is not None and loss > traffic.max_loss, mean)
    order = sorted(cands, key=lambda c: (*ranked[id(c)], c.sort_key()))
    return order, {key: not bad for key, (bad, _) in ranked.items()}


def _select(problem: PlanProblem, cands: list[Candidate], evaluate: Callable[[Candidate], float] | None,
            max_drop: float | None, traffic: TrafficOptions | None, feasible: Mapping[int, bool]) -> Selection:
    """`select` among the candidates within the loss limit (all of them without a frame rate)."""
    if traffic is None:
        return select(problem, cands, evaluate, max_drop)
    ok = [c for c in cands if feasible[id(c)]]
    if ok:
        try:
            return select(problem, ok, evaluate, max_drop)
        except AssertionError:  # CLOUD-ONLY is over the loss limit, and nothing else is accurate enough
            pass
    capacity = EDGE_QUEUE_CAPACITY(traffic.queue_depth)
    stages = [pipeline_stages(c.evaluation, traffic.capture_ms) for c in cands]
    best = predict_queue(traffic.arrivals, min(stages, key=lambda st: loss_and_latency(traffic.arrivals, st,
                                                                                          capacity)[0]), capacity)
    raise PlanError(
        f"--max-loss {traffic.max_loss:g}: no candidate within the accuracy limit loses at most that share of "
        f"frames at {traffic.arrivals.fps:g} fps ({traffic.arrivals.kind}); the lowest predicted loss is "
        f"{best.loss_ratio:.3g} (bottleneck {best.bottleneck}): lower --fps, raise --queue-depth or --max-loss"
    )


def _traffic_notes(traffic: TrafficOptions, chosen: QueueRecord) -> tuple[str, ...]:
    a = traffic.arrivals
    return (
        f"modelled: {a.kind} arrivals at {a.fps:g} fps into the edge app with --queue-depth {traffic.queue_depth} "
        f"({EDGE_QUEUE_CAPACITY(traffic.queue_depth)} frames held); M/G/1/K at the bottleneck stage "
        "(splitsdk.plan.traffic)",
        "stages from the plan's modelled times: infer = edge inference (+ compression or JPEG encoding), "
        "send = transmit + RTT + cloud (one frame in flight); "
        + ("capture and pack are not modelled (0 ms; the edge app measures them)" if traffic.capture_ms == 0
           else f"capture {traffic.capture_ms:g} ms per frame; pack not modelled (0 ms)"),
        f"the solution: {chosen.throughput_fps:.3g} frames/s answered, loss {chosen.loss_ratio:.3g}, latency "
        f"{chosen.latency_mean_ms:.3g} ms mean / {chosen.latency_p95_ms:.3g} ms p95, bottleneck {chosen.bottleneck}",
    )


__all__ = [
    "DEFAULT_QUEUE_DEPTH", "ORIGIN_CLOUD", "ORIGIN_JPEG", "FeatureCompression", "PlanMeta", "Progress",
    "TrafficOptions", "crossing_codecs", "jpeg_drop", "jpeg_solution", "make_plan", "pipeline_stages", "predicted",
    "queue_record", "representative_rate",
]
