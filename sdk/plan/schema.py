"""plan.json: the planner's output as frozen dataclasses, saved with a schema version, loaded with checks.

Other stages (convert, codegen, serve, report) read this file, so loading validates every field
and names the one that is wrong (`plan.json: solution.predicted.total_ms: expected a number`).
Output is deterministic: fields in a fixed order, layers in topological order, no timestamps.
Crossing tensors carry `scale` and `zero_point` as null until the converter calibrates them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitsdk.errors import PlanError

SCHEMA_VERSION = 1
KINDS = ("CLOUD_ONLY", "EDGE_ONLY", "SPLIT")
CRITERIA = ("error-proxy", "measured-accuracy", "latency-only")


@dataclass(frozen=True)
class Predicted:
    edge_ms: float
    transmit_ms: float
    cloud_ms: float
    total_ms: float
    transmit_bytes: int
    edge_weight_bytes: int
    peak_activation_bytes: int
    error: float
    accuracy_drop: float | None = None  # measured, when an evaluation set was given


@dataclass(frozen=True)
class CrossingTensor:
    tensor: str
    shape: tuple[int, ...]
    bits: int
    producer: str | None = None  # None: a model input
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class Solution:
    kind: str
    split_index: int
    edge_layers: tuple[str, ...]
    crossing: tuple[CrossingTensor, ...]
    weight_bits: dict[str, int]
    activation_bits: dict[str, int]
    predicted: Predicted
    reason: str = ""
    origin: str = ""


@dataclass(frozen=True)
class CandidateRecord:
    kind: str
    split_index: int
    origin: str
    weight_bits: dict[str, int]
    activation_bits: dict[str, int]
    predicted: Predicted
    budget: tuple[int, int] | None = None


@dataclass(frozen=True)
class BaselineRecord:
    name: str
    kind: str
    split_index: int | None
    edge_layers: tuple[str, ...]
    weight_bits: int
    activation_bits: int
    predicted: Predicted
    fits: bool
    note: str = ""


@dataclass(frozen=True)
class ExactRecord:
    """The exact optimum of the same problem and Algorithm 1's gap to it (relative latency)."""

    solver: str
    split_index: int
    total_ms: float
    gap: float


@dataclass(frozen=True)
class Plan:
    model: dict[str, str]  # name, sha256 (and format)
    target: str
    cloud: str
    bits: tuple[int, ...]
    link: dict[str, float]  # uplink_mbps, rtt_ms
    constraints: dict[str, float | int | None]  # memory_bytes, max_accuracy_drop, max_error
    selection: dict[str, Any]  # criterion, threshold, notes
    solution: Solution
    candidates: tuple[CandidateRecord, ...]
    baselines: dict[str, BaselineRecord]
    exact: ExactRecord | None = None
    profile_source: str = ""
    layers: tuple[str, ...] = ()  # the optimised graph's topological order
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


# -- writing -----------------------------------------------------------------------------------
def _predicted(p: Predicted) -> dict[str, Any]:
    return {
        "edge_ms": p.edge_ms,
        "transmit_ms": p.transmit_ms,
        "cloud_ms": p.cloud_ms,
        "total_ms": p.total_ms,
        "transmit_bytes": p.transmit_bytes,
        "edge_weight_bytes": p.edge_weight_bytes,
        "peak_activation_bytes": p.peak_activation_bytes,
        "error": p.error,
        "accuracy_drop": p.accuracy_drop,
    }


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    s = plan.solution
    return {
        "schema_version": plan.schema_version,
        "model": dict(plan.model),
        "target": plan.target,
        "cloud": plan.cloud,
        "bits": list(plan.bits),
        "link": dict(plan.link),
        "constraints": dict(plan.constraints),
        "selection": dict(plan.selection),
        "profile_source": plan.profile_source,
        "layers": list(plan.layers),
        "solution": {
            "kind": s.kind,
            "split_index": s.split_index,
            "edge_layers": list(s.edge_layers),
            "crossing": [
                {
                    "tensor": c.tensor,
                    "shape": list(c.shape),
                    "bits": c.bits,
                    "producer": c.producer,
                    "scale": c.scale,
                    "zero_point": c.zero_point,
                }
                for c in s.crossing
            ],
            "weight_bits": dict(s.weight_bits),
            "activation_bits": dict(s.activation_bits),
            "predicted": _predicted(s.predicted),
            "reason": s.reason,
            "origin": s.origin,
        },
        "candidates": [
            {
                "kind": c.kind,
                "split_index": c.split_index,
                "origin": c.origin,
                "budget": None if c.budget is None else list(c.budget),
                "weight_bits": dict(c.weight_bits),
                "activation_bits": dict(c.activation_bits),
                "predicted": _predicted(c.predicted),
            }
            for c in plan.candidates
        ],
        "baselines": {
            key: {
                "name": b.name,
                "kind": b.kind,
                "split_index": b.split_index,
                "edge_layers": list(b.edge_layers),
                "weight_bits": b.weight_bits,
                "activation_bits": b.activation_bits,
                "predicted": _predicted(b.predicted),
                "fits": b.fits,
                "note": b.note,
            }
            for key, b in plan.baselines.items()
        },
        "exact": None
        if plan.exact is None
        else {
            "solver": plan.exact.solver,
            "split_index": plan.exact.split_index,
            "total_ms": plan.exact.total_ms,
            "gap": plan.exact.gap,
        },
        **({"extra": plan.extra} if plan.extra else {}),
    }


def dumps(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, allow_nan=False) + "\n"


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: never a half-written file."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlanError(f"{target.parent}: cannot create the folder: {exc.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_plan(plan: Plan, path: str | Path) -> None:
    validate(plan_to_dict(plan), str(path))  # never write a plan we would refuse to load
    write_atomic(path, dumps(plan))


# -- reading -----------------------------------------------------------------------------------
class _At:
    """A JSON value and its path, with typed getters that name the field on error."""

    def __init__(self, src: str, path: str, value: Any) -> None:
        self.src, self.path, self.value = src, path, value

    def fail(self, what: str) -> PlanError:
        return PlanError(f"{self.src}: {self.path or '(top level)'}: {what}")

    def key(self, name: str, optional: bool = False) -> _At:
        if not isinstance(self.value, dict):
            raise self.fail("expected an object")
        path = f"{self.path}.{name}" if self.path else name
        if name not in self.value:
            if optional:
                return _At(self.src, path, None)
            raise PlanError(f"{self.src}: {path}: missing")
        return _At(self.src, path, self.value[name])

    def items(self) -> list[tuple[str, _At]]:
        if not isinstance(self.value, dict):
            raise self.fail("expected an object")
        return [(k, _At(self.src, f"{self.path}.{k}", v)) for k, v in self.value.items()]

    def elements(self) -> list[_At]:
        if not isinstance(self.value, list):
            raise self.fail("expected a list")
        return [_At(self.src, f"{self.path}[{i}]", v) for i, v in enumerate(self.value)]

    def str_(self, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(self.value, str):
            raise self.fail(f"expected a string, got {self.value!r}")
        if choices is not None and self.value not in choices:
            raise self.fail(f"expected one of {', '.join(choices)}, got {self.value!r}")
        return self.value

    def int_(self, lo: int | None = None, hi: int | None = None, none: bool = False) -> Any:
        if none and self.value is None:
            return None
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {self.value!r}")
        if (lo is not None and self.value < lo) or (hi is not None and self.value > hi):
            raise self.fail(f"{self.value} outside {lo}..{hi}")
        return self.value

    def num(self, lo: float | None = 0.0, none: bool = False) -> Any:
        if none and self.value is None:
            return None
        ok = isinstance(self.value, int | float) and not isinstance(self.value, bool)
        if not ok or not math.isfinite(self.value):
            raise self.fail(f"expected a number, got {self.value!r}")
        if lo is not None and self.value < lo:
            raise self.fail(f"must be >= {lo}, got {self.value}")
        return float(self.value)

    def bool_(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {self.value!r}")
        return self.value

    def bits_map(self) -> dict[str, int]:
        return {k: v.int_(1, 32) for k, v in self.items()}


def _read_predicted(at: _At) -> Predicted:
    total = at.key("total_ms").num()
    parts = [at.key(k).num() for k in ("edge_ms", "transmit_ms", "cloud_ms")]
    if abs(sum(parts) - total) > 1e-6 * max(1.0, total):
        raise at.key("total_ms").fail(f"{total} is not edge_ms + transmit_ms + cloud_ms = {sum(parts)}")
    return Predicted(
        edge_ms=parts[0],
        transmit_ms=parts[1],
        cloud_ms=parts[2],
        total_ms=total,
        transmit_bytes=at.key("transmit_bytes").int_(0),
        edge_weight_bytes=at.key("edge_weight_bytes").int_(0),
        peak_activation_bytes=at.key("peak_activation_bytes").int_(0),
        error=at.key("error").num(),
        accuracy_drop=at.key("accuracy_drop", optional=True).num(lo=None, none=True),
    )


def _pair(at: _At) -> tuple[int, int]:
    values = [b.int_(0) for b in at.elements()]
    if len(values) != 2:
        raise at.fail(f"expected [weight budget, activation budget], got {at.value!r}")
    return values[0], values[1]


def _check_kind(at: _At, kind: str, split_index: int | None, n_edge: int, n_layers: int) -> None:
    want = "CLOUD_ONLY" if n_edge == 0 else "EDGE_ONLY" if n_edge == n_layers else "SPLIT"
    if n_layers and kind != want:
        raise at.key("kind").fail(f"{kind} does not match {n_edge} of {n_layers} layers on the edge ({want})")
    if split_index is not None and split_index != n_edge:
        raise at.key("split_index").fail(f"{split_index} but {n_edge} edge layers")


def _read_solution(at: _At, layers: tuple[str, ...]) -> Solution:
    kind = at.key("kind").str_(KINDS)
    k = at.key("split_index").int_(0)
    edge = tuple(e.str_() for e in at.key("edge_layers").elements())
    if layers and edge != layers[: len(edge)]:
        raise at.key("edge_layers").fail("not a prefix of the plan's layer order")
    _check_kind(at, kind, k, len(edge), len(layers))
    wbits = at.key("weight_bits").bits_map()
    abits = at.key("activation_bits").bits_map()
    missing = [n for n in edge if n not in abits]
    if missing:
        raise at.key("activation_bits").fail(f"no bits for edge layer {missing[0]!r}")
    stray = sorted((set(wbits) | set(abits)) - set(edge))
    if stray:
        raise at.key("weight_bits" if stray[0] in wbits else "activation_bits").fail(
            f"layer {stray[0]!r} is not on the edge"
        )
    crossing = []
    for c in at.key("crossing").elements():
        crossing.append(
            CrossingTensor(
                tensor=c.key("tensor").str_(),
                shape=tuple(d.int_(0) for d in c.key("shape").elements()),
                bits=c.key("bits").int_(1, 32),
                producer=None if c.key("producer", optional=True).value is None else c.key("producer").str_(),
                scale=c.key("scale", optional=True).num(lo=None, none=True),
                zero_point=c.key("zero_point", optional=True).int_(none=True),
            )
        )
    if kind != "EDGE_ONLY" and not crossing:
        raise at.key("crossing").fail(f"a {kind} solution must send at least one tensor")
    return Solution(
        kind=kind,
        split_index=k,
        edge_layers=edge,
        crossing=tuple(crossing),
        weight_bits=wbits,
        activation_bits=abits,
        predicted=_read_predicted(at.key("predicted")),
        reason=at.key("reason").str_(),
        origin=at.key("origin", optional=True).value or "",
    )


def validate(data: Any, src: str = "plan.json") -> Plan:
    """Check a decoded plan.json and build the Plan; PlanError names the first bad field."""
    top = _At(src, "", data)
    if not isinstance(data, dict):
        raise top.fail("expected a JSON object")
    version = top.key("schema_version").int_()
    if version != SCHEMA_VERSION:
        raise top.key("schema_version").fail(f"unsupported version {version} (this splitsdk reads {SCHEMA_VERSION})")
    model = top.key("model")
    model_d = {"name": model.key("name").str_(), "sha256": model.key("sha256").str_()}
    if model.key("format", optional=True).value is not None:
        model_d["format"] = model.key("format").str_()
    layers = tuple(e.str_() for e in top.key("layers").elements())
    link = top.key("link")
    cons = top.key("constraints")
    memory = cons.key("memory_bytes").int_(1)
    sel = top.key("selection")
    sel.key("criterion").str_(CRITERIA)
    candidates = []
    for c in top.key("candidates").elements():
        budget = c.key("budget", optional=True)
        kind, k = c.key("kind").str_(KINDS), c.key("split_index").int_(0, len(layers) if layers else None)
        abits = c.key("activation_bits").bits_map()
        _check_kind(c, kind, None, k, len(layers))
        candidates.append(
            CandidateRecord(
                kind=kind,
                split_index=k,
                origin=c.key("origin").str_(),
                weight_bits=c.key("weight_bits").bits_map(),
                activation_bits=abits,
                predicted=_read_predicted(c.key("predicted")),
                budget=None if budget.value is None else _pair(budget),
            )
        )
    baselines = {}
    for key, b in top.key("baselines").items():
        baselines[key] = BaselineRecord(
            name=b.key("name").str_(),
            kind=b.key("kind").str_(KINDS),
            split_index=b.key("split_index").int_(0, none=True),
            edge_layers=tuple(e.str_() for e in b.key("edge_layers").elements()),
            weight_bits=b.key("weight_bits").int_(1, 32),
            activation_bits=b.key("activation_bits").int_(1, 32),
            predicted=_read_predicted(b.key("predicted")),
            fits=b.key("fits").bool_(),
            note=b.key("note").str_(),
        )
    exact_at = top.key("exact", optional=True)
    exact = None
    if exact_at.value is not None:
        exact = ExactRecord(
            solver=exact_at.key("solver").str_(),
            split_index=exact_at.key("split_index").int_(0),
            total_ms=exact_at.key("total_ms").num(),
            gap=exact_at.key("gap").num(lo=None),
        )
    solution = _read_solution(top.key("solution"), layers)
    if solution.predicted.edge_weight_bytes + solution.predicted.peak_activation_bytes > memory:
        raise (top.key("solution").key("predicted").fail(f"needs more memory than constraints.memory_bytes = {memory}"))
    extra = top.key("extra", optional=True).value
    return Plan(
        model=model_d,
        target=top.key("target").str_(),
        cloud=top.key("cloud").str_(),
        bits=tuple(b.int_(1, 16) for b in top.key("bits").elements()),
        link={"uplink_mbps": link.key("uplink_mbps").num(lo=0.0), "rtt_ms": link.key("rtt_ms").num()},
        constraints={
            "memory_bytes": memory,
            "max_accuracy_drop": cons.key("max_accuracy_drop").num(none=True),
            "max_error": cons.key("max_error", optional=True).num(none=True),
        },
        selection=dict(sel.value),
        solution=solution,
        candidates=tuple(candidates),
        baselines=baselines,
        exact=exact,
        profile_source=top.key("profile_source", optional=True).value or "",
        layers=layers,
        extra=dict(extra) if isinstance(extra, dict) else {},
    )


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan.json."""
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
    return validate(data, src)
