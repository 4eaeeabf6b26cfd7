"""Measured per-layer latency tables (from the device or QEMU) that replace the analytic numbers.

Accepted files:
- CSV with a header `layer,ms` (one number per layer, whatever the precision) or
  `layer,wbits,abits,ms` (one row per layer and precision);
- JSON: a list of records `{"layer", "ms"[, "wbits", "abits"]}`, or an object mapping a layer to
  ms or to `{"<wbits>,<abits>": ms}`, optionally under a top-level `"layers"` key.
Rows for layers the model does not have are ignored (a table may come from the unoptimised model);
a layer of the model missing from the table is an error naming the file and the layer.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitsdk.errors import ProfileError

Pair = tuple[int, int]


@dataclass
class MeasuredTable:
    """Per-layer ms: `flat[layer]` when measured at one precision, else `by_bits[layer][(w, a)]`."""

    path: str
    flat: dict[str, float] = field(default_factory=dict)
    by_bits: dict[str, dict[Pair, float]] = field(default_factory=dict)

    def layers(self) -> set[str]:
        return set(self.flat) | set(self.by_bits)

    def require(self, layers: Iterable[str]) -> None:
        """Raise ProfileError naming the first model layer the table lacks."""
        have = self.layers()
        for name in layers:
            if name not in have:
                raise ProfileError(f"{self.path}: no measurement for layer '{name}' of the model")

    def lookup(self, layer: str, pair: Pair, same_mode: Iterable[Pair] = ()) -> float:
        """ms of `layer` at `pair`; a pair not measured takes the value of a measured pair that the
        runtime executes the same way (`same_mode`, closest first), else it is an error."""
        if layer in self.flat:
            return self.flat[layer]
        row = self.by_bits.get(layer)
        if row is None:
            raise ProfileError(f"{self.path}: no measurement for layer '{layer}' of the model")
        if pair in row:
            return row[pair]
        for alt in same_mode:
            if alt in row:
                return row[alt]
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


def _read_csv(table: MeasuredTable, text: str) -> None:
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
