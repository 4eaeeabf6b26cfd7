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

SCHEMA_VERSION: Final = 2
Kind = Literal["CLOUD_ONLY", "EDGE_ONLY", "SPLIT"]
Criterion = Literal["error-proxy", "measured-accuracy", "latency-only"]
KINDS: tuple[str, ...] = get_args(Kind)
CRITERIA: tuple[str, ...] = get_args(Criterion)
MAX_LAYER_BITS = 16  # the widest integer a layer runs at (int16 activations); above it only FLOAT_BITS
MAX_WIRE_BITS = 8  # the wire packs each value into at most 8 bits

_NONNEG = bounds(ge=0)
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


@dataclass(frozen=True)
class ExactRecord:
    """The exact optimum of the same problem and Algorithm 1's gap to it (relative latency)."""

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

    schema_version: Literal[2] = SCHEMA_VERSION
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
    return plan


# -- reading and writing ------------------------------------------------------------------------------
def validate(data: Any, src: str = "plan.json") -> Plan:
    """A decoded plan.json (JSON values) as a checked Plan; PlanError names the file and the first bad field."""
    if not isinstance(data, dict):
        raise PlanError(f"{src}: expected a JSON object")
    version = data.get("schema_version")
    if version == 1:
        raise PlanError(f"{src}: schema_version 1 is from an older splitsdk; re-run `splitsdk plan`")
    if "schema_version" in data and version != SCHEMA_VERSION:
        raise PlanError(f"{src}: schema_version: {version!r} is not supported (this splitsdk reads {SCHEMA_VERSION})")
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
    "CRITERIA", "KINDS", "SCHEMA_VERSION", "BaselineRecord", "CandidateRecord", "ConstraintsRecord", "ExactRecord",
    "LinkRecord", "ModelRecord", "Plan", "PlannedCrossing", "Predicted", "SelectionRecord", "Solution", "check_plan",
    "dumps", "load_plan", "plan_text", "save_plan", "validate", "write_atomic",
]
