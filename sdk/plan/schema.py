"""plan.json: the planner's output, declared once as the frozen dataclasses below.

`splitsdk.codec` reads and writes them (strict: unknown keys, wrong types and out-of-range values are
refused) and derives the shipped JSON Schema (`splitsdk/schemas/plan.schema.json`) from them; the checks
that tie fields together (a solution's kind and its edge layers, latencies that add up, the memory limit)
are in `check_plan`. Every error is one line naming the file and the field
(`plan.json: solution.predicted.total_ms: expected a number, got a string`).
Output is deterministic: fields in declaration order, layers in topological order, no timestamps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

from splitsdk.codec import CodecError, bounds, decode, dumps_json
from splitsdk.codec import write_atomic as _write_atomic
from splitsdk.errors import PlanError
from splitsdk.target import FLOAT_BITS

SCHEMA_VERSION: Final = 3
READ_VERSIONS: Final = (2, 3)  # schema 2 lacks compression, JPEG and traffic: read with their defaults
Kind = Literal["CLOUD_ONLY", "EDGE_ONLY", "SPLIT"]
Criterion = Literal["error-proxy", "measured-accuracy", "latency-only"]
Codec = Literal["none", "zstd", "jpeg"]
Arrivals = Literal["periodic", "poisson"]
KINDS: tuple[str, ...] = get_args(Kind)
CRITERIA: tuple[str, ...] = get_args(Criterion)
CODECS: tuple[str, ...] = get_args(Codec)
MAX_LAYER_BITS = 16  # the widest integer a layer runs at (int16 activations); above it only FLOAT_BITS
MAX_WIRE_BITS = 8  # the wire packs each value into at most 8 bits

_NONNEG = bounds(ge=0)
_FRACTION = bounds(ge=0, le=1)
_LAYER_BITS = bounds(ge=1, le=FLOAT_BITS)  # 1..16 or 32: `check_plan` refuses 17..31


@dataclass(frozen=True)
class Predicted:
    """The planner's prediction for one assignment: latency split in three, bytes, error proxy."""

    edge_ms: float = field(metadata=_NONNEG)
    transmit_ms: float = field(metadata=_NONNEG)
    cloud_ms: float = field(metadata=_NONNEG)
    total_ms: float = field(metadata=_NONNEG)  # edge_ms + transmit_ms + cloud_ms
    transmit_bytes: int = field(metadata=_NONNEG)
    edge_weight_bytes: int = field(metadata=_NONNEG)
    peak_activation_bytes: int = field(metadata=_NONNEG)
    error: float = field(metadata=_NONNEG)
    accuracy_drop: float | None = None  # measured (percentage points; negative: better), with an evaluation set


@dataclass(frozen=True)
class PlannedCrossing:
    """A tensor the plan sends across the cut at the bits the planner chose (1..8: the wire's range).

    The graph's `CutTensor` is the same tensor before bits are chosen; the bundle's `ManifestCrossing` is
    what convert makes of it (the edge model's int8 quantisation, the wire grid, the LUT)."""

    tensor: str
    shape: tuple[int, ...] = field(metadata=bounds(ge=1))
    bits: int = field(metadata=bounds(ge=1, le=MAX_WIRE_BITS))
    producer: str | None = None  # None: a model input
    codec: Codec = "none"  # "zstd": the packed payload is sent as one zstd frame; "jpeg": the frame as a JPEG
    # compressed / packed bytes measured on the calibration frames (None: not measured); > 1: zstd does not pay
    compressed_ratio: float | None = field(default=None, metadata=bounds(gt=0))
    # codec "jpeg" (a CLOUD_ONLY solution's frame, CLOUD-ONLY+JPEG-Q<q>): the quality the camera encodes at
    jpeg_quality: int | None = field(default=None, metadata=bounds(ge=1, le=100))


@dataclass(frozen=True)
class Solution:
    """The chosen split: the edge layers (a prefix of `Plan.layers`), what crosses, the bits per layer."""

    kind: Kind
    split_index: int = field(metadata=_NONNEG)
    edge_layers: tuple[str, ...]
    crossing: tuple[PlannedCrossing, ...]
    weight_bits: dict[str, int] = field(metadata=_LAYER_BITS)
    activation_bits: dict[str, int] = field(metadata=_LAYER_BITS)
    predicted: Predicted
    reason: str = ""
    origin: str = ""


@dataclass(frozen=True)
class CandidateRecord:
    """One of Algorithm 1's candidates (the plan keeps all of a short list, the interesting ones of a long one)."""

    kind: Kind
    split_index: int = field(metadata=_NONNEG)
    origin: str
    weight_bits: dict[str, int] = field(metadata=_LAYER_BITS)
    activation_bits: dict[str, int] = field(metadata=_LAYER_BITS)
    predicted: Predicted
    budget: tuple[int, int] | None = field(default=None, metadata=_NONNEG)  # (weight, activation) budget


@dataclass(frozen=True)
class BaselineRecord:
    """A baseline method's solution of the same problem, for comparison."""

    name: str
    kind: Kind
    split_index: int | None = field(metadata=_NONNEG)
    edge_layers: tuple[str, ...]
    weight_bits: int = field(metadata=_LAYER_BITS)
    activation_bits: int = field(metadata=_LAYER_BITS)
    predicted: Predicted
    fits: bool
    note: str = ""
    buildable: bool = True  # False: an edge layer does not convert for the target (`note` names it)
    jpeg_quality: int | None = field(default=None, metadata=bounds(ge=1, le=100))  # CLOUD-ONLY+JPEG-Q<q>
    # measured on the plan's data, percent: top-1 accuracy with labels, else agreement with the float model
    # on the raw frames (the metric's fidelity); `note` says which. None: not measured
    measured_accuracy: float | None = field(default=None, metadata=bounds(ge=0, le=100))


@dataclass(frozen=True)
class QueueRecord:
    """One solution under the frame rate (`splitsdk.plan.traffic`, modelled): its pipeline stages and what the
    bounded queue does to them."""

    stages: dict[str, float] = field(metadata=_NONNEG)  # service time per pipeline stage, ms
    throughput_fps: float = field(metadata=_NONNEG)
    loss_ratio: float = field(metadata=_FRACTION)
    latency_mean_ms: float = field(metadata=_NONNEG)  # capture to RESULT, queueing included
    latency_p95_ms: float = field(metadata=_NONNEG)
    utilisation: float = field(metadata=_FRACTION)  # busy fraction of the bottleneck stage
    bottleneck: str
    feasible: bool = True  # loss_ratio <= TrafficRecord.max_loss


@dataclass(frozen=True)
class TrafficRecord:
    """The camera's frame rate and what the plan predicts under it (`splitsdk plan --fps`)."""

    fps: float = field(metadata=bounds(gt=0))
    arrivals: Arrivals
    max_loss: float | None = field(metadata=_FRACTION)
    queue_depth: int = field(metadata=bounds(ge=1))  # the edge app's --queue-depth
    queue_frames: int = field(metadata=bounds(ge=1))  # frames the app holds: traffic.EDGE_QUEUE_CAPACITY
    solution: QueueRecord
    candidates: tuple[QueueRecord, ...]  # one per Plan.candidates entry, same order
    baselines: dict[str, QueueRecord]  # one per Plan.baselines entry, same keys
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetMember:
    """One split of a split set (`splitsdk.plan.adaptive`): its wire (crossing tensor -> bits sent; `wire_cap`: the
    cap on its producers' bits, None: their own), its figures under the set's shared assignment, its latency at
    each rate of the distribution and the expectation over it (this split alone)."""

    split_index: int = field(metadata=_NONNEG)
    kind: str  # one of KINDS
    wire_cap: int | None = field(metadata=bounds(ge=1, le=MAX_WIRE_BITS))
    crossing_bits: tuple[tuple[str, int], ...] = field(metadata=bounds(ge=1, le=MAX_WIRE_BITS))
    edge_ms: float = field(metadata=_NONNEG)
    cloud_ms: float = field(metadata=_NONNEG)
    transmit_bytes: int = field(metadata=_NONNEG)
    error: float = field(metadata=_NONNEG)
    latency_ms: tuple[float, ...] = field(metadata=_NONNEG)  # at each rate of the distribution
    expected_ms: float = field(metadata=_NONNEG)


@dataclass(frozen=True)
class RateChoice:
    """At one rate: the set's split and latency, the best single static plan's, and the per-rate oracle's."""

    mbps: float = field(metadata=bounds(gt=0))
    weight: float = field(metadata=_FRACTION)
    split_index: int = field(metadata=_NONNEG)  # the member the set uses
    set_ms: float = field(metadata=_NONNEG)
    static_ms: float = field(metadata=_NONNEG)
    oracle_ms: float = field(metadata=_NONNEG)
    oracle_split: int = field(metadata=_NONNEG)


@dataclass(frozen=True)
class SplitSet:
    """The split set that follows the uplink (`splitsdk plan --uplink LOW..HIGH` or `--uplink-trace`): the few
    splits whose edge chain minimises the expected latency over the rate distribution, and how it compares with
    the best single static plan and the per-rate oracle. Made by `splitsdk.plan.adaptive.plan_split_set`; every
    latency modelled (the planner's cost model at each rate)."""

    uplink: str  # the distribution's source, one line
    rates: tuple[float, ...] = field(metadata=bounds(gt=0))  # Mbit/s, ascending
    weights: tuple[float, ...] = field(metadata=_FRACTION)  # same length, summing to 1
    members: tuple[SetMember, ...]  # ascending split index; the last is the deepest
    weight_bits: tuple[tuple[str, int], ...] = field(metadata=_LAYER_BITS)  # shared: the deepest prefix's
    activation_bits: tuple[tuple[str, int], ...] = field(metadata=_LAYER_BITS)
    weight_bytes: int = field(metadata=_NONNEG)  # weights once + every segment's model file records
    peak_activation_bytes: int = field(metadata=_NONNEG)
    buffer_bytes: int = field(metadata=_NONNEG)  # the shallower cuts' output buffers
    memory_limit: int = field(metadata=bounds(ge=1))
    expected_ms: float = field(metadata=_NONNEG)
    best_static_ms: float = field(metadata=_NONNEG)  # the best single static plan over the distribution
    best_static_split: int = field(metadata=_NONNEG)
    oracle_ms: float = field(metadata=_NONNEG)  # the expectation of the best single plan at each rate on its own
    per_rate: tuple[RateChoice, ...]
    notes: tuple[str, ...] = ()
    latencies: Literal["modelled"] = "modelled"  # where every latency above comes from

    @property
    def memory_bytes(self) -> int:
        return self.weight_bytes + self.peak_activation_bytes + self.buffer_bytes

    @property
    def splits(self) -> tuple[int, ...]:
        return tuple(m.split_index for m in self.members)

    @property
    def vs_static(self) -> float:
        return self.expected_ms / self.best_static_ms if self.best_static_ms else 1.0

    @property
    def vs_oracle(self) -> float:
        return self.expected_ms / self.oracle_ms if self.oracle_ms else 1.0


@dataclass(frozen=True)
class ExactRecord:
    """The exact optimum of the same problem and the chosen solution's gap to it (relative latency)."""

    solver: str
    split_index: int = field(metadata=_NONNEG)
    total_ms: float = field(metadata=_NONNEG)
    gap: float


@dataclass(frozen=True)
class ModelRecord:
    """The model the plan was made for: convert refuses a model file with another SHA-256."""

    name: str
    sha256: str  # 64 lowercase hex digits, or "" when unknown
    format: str = ""  # "keras", "onnx", or "" when unknown


@dataclass(frozen=True)
class LinkRecord:
    uplink_mbps: float = field(metadata=bounds(gt=0))
    rtt_ms: float = field(metadata=_NONNEG)


@dataclass(frozen=True)
class ConstraintsRecord:
    memory_bytes: int = field(metadata=bounds(ge=1))
    max_accuracy_drop: float | None = field(metadata=_NONNEG)
    max_error: float | None = field(default=None, metadata=_NONNEG)


@dataclass(frozen=True)
class SelectionRecord:
    """How the solution was chosen among the candidates."""

    criterion: Criterion
    threshold: float | None
    evaluated: int = field(metadata=_NONNEG)  # candidates measured on the evaluation set
    position: int = field(metadata=_NONNEG)  # the solution's place in the latency-sorted candidate list
    candidates_total: int = field(metadata=_NONNEG)
    notes: tuple[str, ...] = ()
    # the solution is certified at most this fraction slower than the exact optimum under the same memory and
    # error budget (the refinement's bound); None: not certified (selected on measured accuracy)
    certified_gap: float | None = field(default=None, metadata=_NONNEG)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """plan.json: what `splitsdk plan` chose and why; read by convert, report and the benchmarks."""

    schema_version: Literal[3] = SCHEMA_VERSION
    model: ModelRecord
    target: str
    cloud: str
    bits: tuple[int, ...] = field(metadata=bounds(ge=1, le=MAX_LAYER_BITS))  # the candidate bit widths
    link: LinkRecord
    constraints: ConstraintsRecord
    selection: SelectionRecord
    profile_source: str = ""
    layers: tuple[str, ...] = ()  # the optimised graph's topological order
    solution: Solution
    candidates: tuple[CandidateRecord, ...]
    baselines: dict[str, BaselineRecord]
    exact: ExactRecord | None = None
    traffic: TrafficRecord | None = None
    # with a rate distribution (`--uplink LOW..HIGH`, `--uplink-trace`): the split set over it; `link` is then the
    # distribution's representative rate, at which the solution and the baselines are planned
    split_set: SplitSet | None = None


# -- checks across fields ----------------------------------------------------------------------------
def _check_predicted(p: Predicted, path: str) -> None:
    parts = p.edge_ms + p.transmit_ms + p.cloud_ms
    if abs(parts - p.total_ms) > 1e-6 * max(1.0, p.total_ms):
        raise CodecError(f"{path}.total_ms", f"{p.total_ms} is not edge_ms + transmit_ms + cloud_ms = {parts}")


def _check_bits(bits: dict[str, int], path: str) -> None:
    for name, b in bits.items():
        if MAX_LAYER_BITS < b < FLOAT_BITS:
            raise CodecError(f"{path}.{name}", f"must be 1..{MAX_LAYER_BITS} or {FLOAT_BITS} (float), got {b}")


def _check_kind(path: str, kind: str, split_index: int, n_edge: int, n_layers: int) -> None:
    want = "CLOUD_ONLY" if n_edge == 0 else "EDGE_ONLY" if n_edge == n_layers else "SPLIT"
    if n_layers and kind != want:
        raise CodecError(f"{path}.kind", f"{kind} does not match {n_edge} of {n_layers} layers on the edge ({want})")
    if split_index != n_edge:
        raise CodecError(f"{path}.split_index", f"{split_index} but {n_edge} edge layers")


def _check_solution(s: Solution, layers: tuple[str, ...], memory_bytes: int) -> None:
    if layers and s.edge_layers != layers[: len(s.edge_layers)]:
        raise CodecError("solution.edge_layers", "not a prefix of the plan's layer order")
    _check_kind("solution", s.kind, s.split_index, len(s.edge_layers), len(layers))
    _check_bits(s.weight_bits, "solution.weight_bits")
    _check_bits(s.activation_bits, "solution.activation_bits")
    missing = [n for n in s.edge_layers if n not in s.activation_bits]
    if missing:
        raise CodecError("solution.activation_bits", f"no bits for edge layer {missing[0]!r}")
    stray = sorted((set(s.weight_bits) | set(s.activation_bits)) - set(s.edge_layers))
    if stray:
        where = "weight_bits" if stray[0] in s.weight_bits else "activation_bits"
        raise CodecError(f"solution.{where}", f"layer {stray[0]!r} is not on the edge")
    for i, c in enumerate(s.crossing):
        if c.codec != "none" and c.compressed_ratio is None:
            raise CodecError(f"solution.crossing[{i}].compressed_ratio", f"codec {c.codec} needs the measured ratio")
        if (c.codec == "jpeg") != (c.jpeg_quality is not None):
            raise CodecError(f"solution.crossing[{i}].jpeg_quality", "is given exactly when codec is \"jpeg\"")
        if c.codec == "jpeg" and (s.kind != "CLOUD_ONLY" or c.producer is not None or c.bits != 8):
            raise CodecError(f"solution.crossing[{i}].codec", "jpeg sends a CLOUD_ONLY solution's frame (the model "
                             "input, 8 bits)")
    if s.kind != "EDGE_ONLY" and not s.crossing:
        raise CodecError("solution.crossing", f"a {s.kind} solution must send at least one tensor")
    _check_predicted(s.predicted, "solution.predicted")
    if s.predicted.edge_weight_bytes + s.predicted.peak_activation_bytes > memory_bytes:
        raise CodecError("solution.predicted", f"needs more memory than constraints.memory_bytes = {memory_bytes}")


def check_plan(plan: Plan) -> Plan:
    """`plan`, after the rules that tie fields together (types and ranges are the codec's); CodecError names
    the field."""
    if plan.model.sha256 and (len(plan.model.sha256) != 64 or set(plan.model.sha256) - set("0123456789abcdef")):
        raise CodecError("model.sha256", "must be 64 lowercase hex digits (or empty)")
    _check_solution(plan.solution, plan.layers, plan.constraints.memory_bytes)
    for i, c in enumerate(plan.candidates):
        at = f"candidates[{i}]"
        if plan.layers and c.split_index > len(plan.layers):
            raise CodecError(f"{at}.split_index", f"{c.split_index} but the plan has {len(plan.layers)} layers")
        _check_kind(at, c.kind, c.split_index, c.split_index, len(plan.layers))
        _check_bits(c.weight_bits, f"{at}.weight_bits")
        _check_bits(c.activation_bits, f"{at}.activation_bits")
        _check_predicted(c.predicted, f"{at}.predicted")
    for key, b in plan.baselines.items():
        _check_bits({"weight_bits": b.weight_bits, "activation_bits": b.activation_bits}, f"baselines.{key}")
        _check_predicted(b.predicted, f"baselines.{key}.predicted")
        if b.jpeg_quality is not None and b.kind != "CLOUD_ONLY":
            raise CodecError(f"baselines.{key}.jpeg_quality", f"JPEG frames are a CLOUD_ONLY option, not {b.kind}")
    if plan.traffic is not None:
        _check_traffic(plan)
    if plan.split_set is not None:
        _check_split_set(plan.split_set, plan)
    return plan


def _check_split_set(s: SplitSet, plan: Plan) -> None:
    n = len(s.rates)
    if n == 0 or len(s.weights) != n or abs(sum(s.weights) - 1.0) > 1e-6:
        raise CodecError("split_set.weights", f"needs one weight per rate ({n}), summing to 1")
    if list(s.rates) != sorted(set(s.rates)):
        raise CodecError("split_set.rates", "must ascend, each rate once")
    if not s.members:
        raise CodecError("split_set.members", "is empty")
    ks = [m.split_index for m in s.members]
    if ks != sorted(set(ks)):
        raise CodecError("split_set.members", "split indices must ascend, each split once")
    for i, m in enumerate(s.members):
        at = f"split_set.members[{i}]"
        if m.kind not in KINDS:
            raise CodecError(f"{at}.kind", f"must be one of {', '.join(KINDS)}, got {m.kind!r}")
        if plan.layers:
            if m.split_index > len(plan.layers):
                raise CodecError(f"{at}.split_index", f"{m.split_index} but the plan has {len(plan.layers)} layers")
            _check_kind(at, m.kind, m.split_index, m.split_index, len(plan.layers))
        if len(m.latency_ms) != n:
            raise CodecError(f"{at}.latency_ms", f"{len(m.latency_ms)} entries for {n} rates")
    deep = s.members[-1].split_index
    for name, bits in (("weight_bits", s.weight_bits), ("activation_bits", s.activation_bits)):
        _check_bits(dict(bits), f"split_set.{name}")
        if plan.layers:
            stray = [b[0] for b in bits if b[0] not in plan.layers[:deep]]
            if stray:
                raise CodecError(f"split_set.{name}", f"layer {stray[0]!r} is not on the edge of split {deep}")
    if len(s.per_rate) != n:
        raise CodecError("split_set.per_rate", f"{len(s.per_rate)} entries for {n} rates")
    for i, (r, rate) in enumerate(zip(s.per_rate, s.rates, strict=True)):
        if r.mbps != rate or r.split_index not in ks:
            what = "mbps" if r.mbps != rate else "split_index"
            raise CodecError(f"split_set.per_rate[{i}].{what}", "does not match the set's rates and members")
    if s.memory_bytes > s.memory_limit:
        raise CodecError("split_set", f"the chain needs {s.memory_bytes} bytes, over memory_limit {s.memory_limit}")


def _check_queue(q: QueueRecord, max_loss: float | None, path: str) -> None:
    if q.bottleneck not in q.stages:
        raise CodecError(f"{path}.bottleneck", f"{q.bottleneck!r} is not one of its stages")
    if q.feasible != (max_loss is None or q.loss_ratio <= max_loss):
        raise CodecError(f"{path}.feasible", f"{q.feasible} contradicts loss_ratio {q.loss_ratio:g} and "
                                             f"traffic.max_loss {max_loss}")


def _check_traffic(plan: Plan) -> None:
    from splitsdk.plan.traffic import EDGE_QUEUE_CAPACITY

    t = plan.traffic
    assert t is not None
    if t.queue_frames != EDGE_QUEUE_CAPACITY(t.queue_depth):
        raise CodecError("traffic.queue_frames", f"{t.queue_frames} but queue_depth {t.queue_depth} holds "
                                                 f"{EDGE_QUEUE_CAPACITY(t.queue_depth)} frames")
    if len(t.candidates) != len(plan.candidates):
        raise CodecError("traffic.candidates", f"{len(t.candidates)} entries for {len(plan.candidates)} candidates")
    if set(t.baselines) != set(plan.baselines):
        odd = sorted(set(t.baselines) ^ set(plan.baselines))
        raise CodecError("traffic.baselines", f"entries and plan baselines differ in {odd[0]!r}")
    _check_queue(t.solution, t.max_loss, "traffic.solution")
    for i, q in enumerate(t.candidates):
        _check_queue(q, t.max_loss, f"traffic.candidates[{i}]")
    for key, q in t.baselines.items():
        _check_queue(q, t.max_loss, f"traffic.baselines.{key}")


# -- reading and writing ------------------------------------------------------------------------------
def validate(data: Any, src: str = "plan.json") -> Plan:
    """A decoded plan.json (JSON values) as a checked Plan; PlanError names the file and the first bad field."""
    if not isinstance(data, dict):
        raise PlanError(f"{src}: expected a JSON object")
    version = data.get("schema_version")
    if version == 1:
        raise PlanError(f"{src}: schema_version 1 is from an older splitsdk; re-run `splitsdk plan`")
    if "schema_version" in data and version not in READ_VERSIONS:
        readable = " and ".join(map(str, READ_VERSIONS))
        raise PlanError(f"{src}: schema_version: {version!r} is not supported (this splitsdk reads {readable})")
    if version == 2:  # the same fields, none of schema 3's: they take their defaults
        data = {**data, "schema_version": SCHEMA_VERSION}
    try:
        return check_plan(decode(Plan, data))
    except CodecError as exc:
        raise PlanError(f"{src}: {exc}") from None


def dumps(plan: Plan) -> str:
    """plan.json's text: deterministic (declaration order, 2-space indent)."""
    return dumps_json(plan)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder (created if needed) and rename: never half-written."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlanError(f"{target.parent}: cannot create the folder: {exc.strerror}") from None
    _write_atomic(target, data)


def plan_text(plan: Plan, src: str = "plan.json") -> str:
    """plan.json's text for `plan`, after the checks load_plan makes (PlanError naming `src` and the field)."""
    text = dumps(plan)
    validate(json.loads(text), src)
    return text


def save_plan(plan: Plan, path: str | Path) -> None:
    """Write plan.json atomically; a plan that would not load again is refused (PlanError), nothing written."""
    write_atomic(path, plan_text(plan, str(path)))


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan.json."""
    src = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{src}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{src}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{src}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return validate(data, src)  # NaN and Infinity parse, and the codec refuses them by field


__all__ = [
    "CODECS", "CRITERIA", "KINDS", "READ_VERSIONS", "SCHEMA_VERSION", "BaselineRecord", "CandidateRecord",
    "ConstraintsRecord", "ExactRecord", "LinkRecord", "ModelRecord", "Plan", "PlannedCrossing", "Predicted",
    "QueueRecord", "RateChoice", "SelectionRecord", "SetMember", "Solution", "SplitSet", "TrafficRecord",
    "check_plan", "dumps", "load_plan", "plan_text", "save_plan", "validate", "write_atomic",
]
