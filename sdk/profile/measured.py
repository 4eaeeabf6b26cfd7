"""Measured per-layer latency tables (from the device or QEMU) that replace the analytic numbers.

Accepted files:
- CSV with a header `layer,ms` (one number per layer, whatever the precision) or
  `layer,wbits,abits,ms` (one row per layer and precision);
- JSON: a list of records `{"layer", "ms"[, "wbits", "abits"]}`, or an object mapping a layer to
  ms or to `{"<wbits>,<abits>": ms}`, optionally under a top-level `"layers"` key.
Rows for layers the model does not have are ignored (a table may come from the unoptimised model).
An edge table may cover only some layers (`splitsdk profile` measures the edge part of a bundle): the
profile takes the measured value where the table has one and the analytic model elsewhere, and says
which is which. A cloud table must cover every layer.

Where the numbers came from (`MeasuredSource`: host, qemu-user emulated wall time, camera
instruction-count time, the TFLite build that ran) is one comment line at the top of a CSV,
`# splitsdk-profile: {json}`, or the `"source"` object of a JSON table; tables without it are accepted.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from splitsdk.codec import CodecError, bounds, decode, encode, write_atomic
from splitsdk.errors import ProfileError
from splitsdk.target import RuntimeBuild

Pair = tuple[int, int]
SOURCE_PREFIX = "# splitsdk-profile: "
Clock = Literal["host", "qemu-user", "camera", "camera-icount"]
CLOCK_MEANING: dict[str, str] = {
    "host": "wall time of this machine (native run)",
    "qemu-user": "emulated wall time under qemu-arm user mode: host speed, not the device's",
    "camera": "wall time inside the emulated camera (qemu-system-arm, no -icount): host speed, not the device's",
    "camera-icount": "instruction-count time inside the emulated camera (qemu-system-arm -icount): "
    "deterministic, not Cortex-A7 milliseconds",
}


@dataclass(frozen=True)
class MeasuredSource:
    """Where a measured table's numbers came from (`splitsdk profile` writes it)."""

    clock: Clock
    target: str
    firmware: str
    runs: int = field(metadata=bounds(ge=1))
    warmup: int = field(metadata=bounds(ge=0))
    runtime: RuntimeBuild
    icount_shift: int | None = field(default=None, metadata=bounds(ge=0, le=10))
    invoke_ms: float = field(default=0.0, metadata=bounds(ge=0))  # median of whole invocations, same clock
    note: str = ""
    modes: tuple[str, ...] = ()  # runtime modes measured besides the shipped model (the edge converted at each)

    def describe(self) -> str:
        shift = f", shift={self.icount_shift}: 1 instruction = {2 ** self.icount_shift} ns" \
            if self.icount_shift is not None else ""
        stat = "minimum over the runs" if self.clock == "camera-icount" else "medians"
        return (f"{CLOCK_MEANING[self.clock]}{shift}; {self.runs} runs after {self.warmup} warm-up, {stat}; "
                f"TFLite {self.runtime.tflite}, NEON {'on' if self.runtime.neon else 'off'}, "
                f"XNNPACK {'on' if self.runtime.xnnpack else 'off'}"
                + (f"; also measured at {', '.join(self.modes)} (the edge converted at each)" if self.modes else ""))


@dataclass
class MeasuredTable:
    """Per-layer ms: `flat[layer]` when measured at one precision, else `by_bits[layer][(w, a)]`."""

    path: str
    flat: dict[str, float] = field(default_factory=dict)
    by_bits: dict[str, dict[Pair, float]] = field(default_factory=dict)
    source: MeasuredSource | None = None

    def layers(self) -> set[str]:
        return set(self.flat) | set(self.by_bits)

    def require(self, layers: Iterable[str]) -> None:
        """Raise ProfileError naming the first model layer the table lacks."""
        have = self.layers()
        for name in layers:
            if name not in have:
                raise ProfileError(f"{self.path}: no measurement for layer '{name}' of the model")

    def find(self, layer: str, pair: Pair, same_mode: Iterable[Pair] = ()) -> float | None:
        """ms of `layer` at `pair`, or at a measured pair that the runtime executes the same way
        (`same_mode`, closest first); None when the table has neither."""
        if layer in self.flat:
            return self.flat[layer]
        row = self.by_bits.get(layer, {})
        return next((row[p] for p in (pair, *same_mode) if p in row), None)

    def lookup(self, layer: str, pair: Pair, same_mode: Iterable[Pair] = ()) -> float:
        """`find`, but a value the table cannot give is an error naming the file and the layer."""
        same_mode = tuple(same_mode)
        ms = self.find(layer, pair, same_mode)
        if ms is not None:
            return ms
        row = self.by_bits.get(layer)
        if row is None:
            raise ProfileError(f"{self.path}: no measurement for layer '{layer}' of the model")
        raise ProfileError(
            f"{self.path}: layer '{layer}' has no measurement at wbits={pair[0]}, abits={pair[1]} "
            f"(nor at a precision the device runs the same way; measured: {sorted(row)})"
        )


def load_measured(path: str | Path) -> MeasuredTable:
    """Read a CSV or JSON latency table."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{p}: cannot read the latency table: {exc}") from exc
    table = MeasuredTable(str(p))
    if p.suffix.lower() == ".json":
        _read_json(table, text)
    else:
        _read_csv(table, text)
    if not table.layers():
        raise ProfileError(f"{p}: the latency table has no rows")
    return table


def _ms(table: MeasuredTable, where: str, value: Any) -> float:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise ProfileError(f"{table.path}: {where}: field 'ms': not a number: {value!r}") from None
    if not math.isfinite(ms) or ms < 0:
        raise ProfileError(f"{table.path}: {where}: field 'ms': must be a finite number >= 0, got {value!r}")
    return ms


def _bits(table: MeasuredTable, where: str, key: str, value: Any) -> int:
    try:
        bits = int(str(value).strip())
    except ValueError:
        raise ProfileError(f"{table.path}: {where}: field '{key}': not an integer: {value!r}") from None
    if not 1 <= bits <= 32:
        raise ProfileError(f"{table.path}: {where}: field '{key}': {bits} outside 1..32")
    return bits


def _add(table: MeasuredTable, where: str, layer: Any, ms: float, pair: Pair | None) -> None:
    if not isinstance(layer, str) or not layer:
        raise ProfileError(f"{table.path}: {where}: field 'layer': missing or not a name")
    if pair is None:
        if layer in table.by_bits:
            raise ProfileError(f"{table.path}: {where}: layer '{layer}' has rows with and without bits")
        table.flat[layer] = ms
    else:
        if layer in table.flat:
            raise ProfileError(f"{table.path}: {where}: layer '{layer}' has rows with and without bits")
        table.by_bits.setdefault(layer, {})[pair] = ms


def _source(table: MeasuredTable, data: Any) -> MeasuredSource:
    try:
        return decode(MeasuredSource, data)
    except CodecError as exc:
        raise ProfileError(f"{table.path}: source.{exc}") from None


def _read_csv(table: MeasuredTable, text: str) -> None:
    for line in text.splitlines():
        if line.startswith(SOURCE_PREFIX):
            try:
                data = json.loads(line.removeprefix(SOURCE_PREFIX))
            except json.JSONDecodeError as exc:
                raise ProfileError(f"{table.path}: source: not valid JSON: {exc}") from None
            table.source = _source(table, data)
    reader = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    fields = [f.strip() for f in reader.fieldnames or []]
    with_bits = {"wbits", "abits"} <= set(fields)
    if "layer" not in fields or "ms" not in fields:
        raise ProfileError(f"{table.path}: header must be 'layer,ms' or 'layer,wbits,abits,ms', got {fields}")
    for lineno, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        where = f"line {lineno}"
        pair = (_bits(table, where, "wbits", row["wbits"]), _bits(table, where, "abits", row["abits"])) \
            if with_bits else None
        _add(table, where, row["layer"], _ms(table, where, row["ms"]), pair)


def _read_json(table: MeasuredTable, text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{table.path}: not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("layers"), list | dict):
        if "source" in data:
            table.source = _source(table, data["source"])
        data = data["layers"]
    if isinstance(data, list):
        for i, rec in enumerate(data):
            where = f"record {i}"
            if not isinstance(rec, dict):
                raise ProfileError(f"{table.path}: {where}: expected an object")
            has_bits = "wbits" in rec or "abits" in rec
            pair = None
            if has_bits:
                wbits = _bits(table, where, "wbits", rec.get("wbits"))
                pair = (wbits, _bits(table, where, "abits", rec.get("abits")))
            _add(table, where, rec.get("layer"), _ms(table, where, rec.get("ms")), pair)
    elif isinstance(data, dict):
        for layer, val in data.items():
            where = f"layer '{layer}'"
            if isinstance(val, dict):
                for key, ms in val.items():
                    parts = str(key).split(",")
                    if len(parts) != 2:
                        raise ProfileError(f"{table.path}: {where}: key {key!r}: expected '<wbits>,<abits>'")
                    pair = (_bits(table, where, "wbits", parts[0]), _bits(table, where, "abits", parts[1]))
                    _add(table, where, layer, _ms(table, where, ms), pair)
            else:
                _add(table, where, layer, _ms(table, where, val), None)
    else:
        raise ProfileError(f"{table.path}: expected a list of records or an object of layers")


@dataclass(frozen=True)
class MeasuredRow:
    layer: str
    wbits: int
    abits: int
    ms: float


def write_measured(path: str | Path, rows: Iterable[MeasuredRow], source: MeasuredSource) -> Path:
    """Write a `layer,wbits,abits,ms` table with its source line (and a readable comment) on top."""
    lines = [
        SOURCE_PREFIX + json.dumps(encode(source), sort_keys=True),
        f"# {source.describe()}",
        "layer,wbits,abits,ms",
    ]
    lines += [f"{r.layer},{r.wbits},{r.abits},{r.ms:.6f}" for r in rows]
    out = Path(path)
    try:
        write_atomic(out, "\n".join(lines) + "\n")
    except OSError as exc:
        raise ProfileError(f"{out}: cannot write the latency table: {exc.strerror or exc}") from None
    return out


# -- the per-layer comparison a plan carries in selection.notes (the report reads it back) ---------------
_COMPARE = "edge layer {layer!r} at w{w}/a{a}: measured {measured:.6g} ms, analytic model {modelled:.6g} ms"
_COMPARE_RE = re.compile(
    r"^edge layer '(?P<layer>[^']+)' at w(?P<w>\d+)/a(?P<a>\d+): measured (?P<measured>[\d.eE+-]+) ms, "
    r"analytic model (?P<modelled>[\d.eE+-]+) ms$"
)


@dataclass(frozen=True)
class LayerComparison:
    layer: str
    wbits: int
    abits: int
    measured_ms: float
    modelled_ms: float

    def note(self) -> str:
        return _COMPARE.format(layer=self.layer, w=self.wbits, a=self.abits, measured=self.measured_ms,
                               modelled=self.modelled_ms)


def parse_comparison(note: str) -> LayerComparison | None:
    """The comparison a `LayerComparison.note()` line holds, None for any other note."""
    m = _COMPARE_RE.match(note)
    if m is None:
        return None
    return LayerComparison(m["layer"], int(m["w"]), int(m["a"]), float(m["measured"]), float(m["modelled"]))
