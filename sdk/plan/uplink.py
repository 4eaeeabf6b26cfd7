"""The uplink a plan is made for: one rate, a range of rates, or a measured trace, as a distribution.

`--uplink 5mbit` is one rate (weight 1). `--uplink 1mbit..20mbit` is a log-uniform range represented by
RANGE_POINTS equal-weight rates, the midpoints (in log rate) of RANGE_POINTS equally likely bins: the
expectation over them approximates the expectation over the log-uniform distribution without
overweighting the two ends. `--uplink-trace trace.csv` reads `time_s,mbit_s` rows (a header row is
optional): each rate weighs as long as it holds, until the next row's time. The last row has no end of
its own: a last row with an empty rate (`60,`) only marks the end of the trace; otherwise the last rate
holds for the median of the trace's intervals (a trace sampled at a regular interval: one more sample).
Equal rates are merged; the distribution is sorted by rate.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from splitsdk.errors import LinkError, PlanError
from splitsdk.profile.link import parse_rate

RANGE_POINTS = 8  # rates representing a range
RANGE_SEP = ".."
WEIGHT_TOL = 1e-9


@dataclass(frozen=True)
class Uplink:
    """A distribution of uplink rates: `rates` in Mbit/s (ascending, distinct), `weights` (same length,
    positive, summing to 1), and `source`: the text or file it was read from, in one line."""

    rates: tuple[float, ...]
    weights: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.rates or len(self.rates) != len(self.weights):
            raise PlanError(f"uplink {self.source}: needs as many weights as rates (at least one)")
        if any(not math.isfinite(r) or r <= 0 for r in self.rates):
            raise PlanError(f"uplink {self.source}: rates must be positive Mbit/s")
        if any(not math.isfinite(w) or w <= 0 for w in self.weights) or abs(sum(self.weights) - 1) > WEIGHT_TOL:
            raise PlanError(f"uplink {self.source}: weights must be positive and sum to 1")

    @staticmethod
    def of(pairs: list[tuple[float, float]], source: str) -> Uplink:
        """From (rate, weight) pairs in any order: equal rates merged, weights normalised."""
        merged: dict[float, float] = {}
        for rate, weight in pairs:
            merged[rate] = merged.get(rate, 0.0) + weight
        total = sum(merged.values())
        rates = tuple(sorted(merged))
        return Uplink(rates, tuple(merged[r] / total for r in rates), source)

    @property
    def single(self) -> bool:
        return len(self.rates) == 1

    def mean_mbps(self) -> float:
        return sum(r * w for r, w in zip(self.rates, self.weights, strict=True))


def _rate(text: str, field: str) -> float:
    try:
        return parse_rate(text)
    except LinkError as exc:
        raise PlanError(f"{field}: {exc}") from None


def parse_uplink(text: str, points: int = RANGE_POINTS, field: str = "--uplink") -> Uplink:
    """A single rate (`3`, `500kbit`, `1gbit`) or a range `LOW..HIGH` (e.g. `1mbit..20mbit`)."""
    if points < 1:
        raise PlanError(f"{field}: a range needs at least one point, got {points}")
    if RANGE_SEP not in text:
        return Uplink((_rate(text, field),), (1.0,), text.strip())
    low_text, high_text = text.split(RANGE_SEP, 1)
    low = _rate(low_text, f"{field} (low end of {text!r})")
    high = _rate(high_text, f"{field} (high end of {text!r})")
    if high < low:
        raise PlanError(f"{field}: range {text!r} runs from high to low (expected LOW..HIGH)")
    if high == low:
        return Uplink((low,), (1.0,), text.strip())
    rates = [low * (high / low) ** ((i + 0.5) / points) for i in range(points)]
    return Uplink.of([(r, 1.0) for r in rates], f"{text.strip()} ({points} log-uniform points)")


def _number(path: Path, row: int, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PlanError(f"{path}: row {row}: {field}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise PlanError(f"{path}: row {row}: {field}: {text.strip()!r} is not finite")
    return value


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_uplink_trace(path: str | Path) -> Uplink:
    """A trace CSV of `time_s,mbit_s` rows (see the module's docstring for the weights and the last row)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read the uplink trace ({exc.__class__.__name__})") from None
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(text.splitlines())) if any(c.strip() for c in r)]
    if rows and not any(_parses(c) for c in rows[0][1]):
        rows = rows[1:]  # a header row: no number in it
    if not rows:
        raise PlanError(f"{path}: no time_s,mbit_s rows in the uplink trace")
    times: list[float] = []
    rates: list[float | None] = []
    for n, (line, cells) in enumerate(rows):
        if len(cells) != 2:
            raise PlanError(f"{path}: row {line}: expected 2 fields (time_s,mbit_s), got {len(cells)}")
        t = _number(path, line, "time_s", cells[0])
        if t < 0:
            raise PlanError(f"{path}: row {line}: time_s: must be >= 0, got {cells[0].strip()}")
        if times and t <= times[-1]:
            raise PlanError(f"{path}: row {line}: time_s: {cells[0].strip()} is not after the previous row's")
        times.append(t)
        if not cells[1].strip() and n == len(rows) - 1 and n > 0:
            rates.append(None)  # the end of the trace
            continue
        r = _number(path, line, "mbit_s", cells[1])
        if r <= 0:
            raise PlanError(f"{path}: row {line}: mbit_s: must be positive, got {cells[1].strip()}")
        rates.append(r)
    if rates[-1] is None:
        ends = times[1:]
    else:
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        ends = [*times[1:], times[-1] + (statistics.median(gaps) if gaps else 1.0)]
    pairs = [(r, end - t) for r, t, end in zip(rates, times, ends, strict=False) if r is not None]
    span = ends[-1] - times[0]
    return Uplink.of(pairs, f"{path.name} ({len(pairs)} intervals, {span:g} s)")
