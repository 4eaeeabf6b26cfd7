"""Lagrangian bit allocation (Shoham & Gersho, 1988), as AUTO-SPLIT solves its problems (8) and (9).

Each item (a weight set, or a layer's output activation) offers one (rate, distortion) point per
candidate bit width. For a multiplier lambda >= 0 every item independently takes the point that
minimises `distortion + lambda * rate`; that point always lies on the item's lower convex hull, so
only hull points matter. As lambda grows each item slides down its hull towards lower rate, so the
total rate is a non-increasing step function of lambda that changes only at the hull's segment
slopes. We therefore bisect over the sorted set of those slopes (exact, no float tolerance) for the
smallest lambda whose allocation satisfies the budget.

Everett's theorem makes the result optimal for every budget equal to the rate of some allocation
on the hull (tests check this against brute force); between hull points it is the best hull point
under the budget, which may be beaten by an off-hull combination. Rates are integers (bytes), so
budgets compare exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Points = Mapping[int, tuple[int, float]]  # bits -> (rate, distortion)


@dataclass(frozen=True)
class Hull:
    """The lower convex hull of one item: bits by increasing rate, and the slopes between them.

    `slopes[j]` is the distortion saved per unit of rate when moving from hull point j to j + 1;
    on a convex hull the slopes strictly decrease.
    """

    bits: tuple[int, ...]
    slopes: tuple[float, ...]

    def choose(self, lam: float) -> int:
        """The hull point minimising distortion + lam * rate; on a tie the lower rate."""
        j = 0
        while j < len(self.slopes) and self.slopes[j] > lam:
            j += 1
        return self.bits[j]


def lower_hull(points: Points) -> Hull:
    """The lower convex hull of an item's (rate, distortion) points, dominated points removed."""
    if not points:
        raise ValueError("an item needs at least one (rate, distortion) point")
    # by rate, then distortion, then bits (deterministic when two widths cost the same)
    ordered = sorted(points.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
    kept: list[tuple[int, int, float]] = []  # (bits, rate, distortion), distortion strictly falling
    for bits, (rate, dist) in ordered:
        if kept and (rate == kept[-1][1] or dist >= kept[-1][2]):
            continue  # same rate with no less distortion, or more rate for no gain
        while len(kept) >= 2:
            (_, r0, d0), (_, r1, d1) = kept[-2], kept[-1]
            # drop the middle point when it lies on or above the chord from r0 to the new point
            if (d1 - d0) * (rate - r0) >= (dist - d0) * (r1 - r0):
                kept.pop()
            else:
                break
        kept.append((bits, rate, dist))
    slopes = tuple((kept[j][2] - kept[j + 1][2]) / (kept[j + 1][1] - kept[j][1]) for j in range(len(kept) - 1))
    return Hull(bits=tuple(b for b, _, _ in kept), slopes=slopes)


def lambdas(hulls: Mapping[str, Hull]) -> list[float]:
    """Every multiplier at which some allocation changes, ascending, with 0 first."""
    return slope_grid(hulls.values())


def slope_grid(hulls: Iterable[Hull]) -> list[float]:
    """`lambdas` of a sequence of hulls."""
    return sorted({0.0} | {s for h in hulls for s in h.slopes})


class HullTable:
    """Many items' hulls as arrays: every item's choice at many multipliers in one operation.

    Row j holds item j's slopes padded with -inf (at least one) and its bits padded by repeating the
    last (`row`);
    `positions(at)[i, j]` is the index `Hull.choose` picks for item j at multiplier `grid[at[i]]` (the
    first slope not above it), so the choices are exactly Hull.choose's. `grid` is `slope_grid`'s.
    """

    def __init__(self, slopes: np.ndarray, bits: np.ndarray) -> None:
        self.slopes, self.bits = slopes, bits
        self.grid = np.unique(np.concatenate([[0.0], slopes[slopes > -np.inf]]))

    @staticmethod
    def row(hull: Hull, points: int) -> tuple[list[float], list[int]]:
        """A hull's slopes and bits, each padded to `points` (at least the hull's own point count)."""
        pad = points - len(hull.bits)
        return [*hull.slopes, *[-math.inf] * (pad + 1)], [*hull.bits, *hull.bits[-1:] * pad]

    @staticmethod
    def of(hulls: Sequence[Hull], points: int) -> HullTable:
        rows = [HullTable.row(h, points) for h in hulls]
        return HullTable(
            np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), points),
            np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), points),
        )

    def positions(self, at: Sequence[int]) -> np.ndarray:
        """len(at) x items: each item's hull position at the multipliers grid[at]."""
        lams = self.grid[np.asarray(at, dtype=np.int64)]
        return np.argmax(self.slopes[None, :, :] <= lams[:, None, None], axis=2)

    def bits_at(self, at: Sequence[int]) -> np.ndarray:
        """len(at) x items: each item's bits at the multipliers grid[at]."""
        return self.bits[np.arange(len(self.bits)), self.positions(at)]


def bisection(n: int) -> Generator[int, bool, int | None]:
    """The bisection of `allocate` over grid positions 0..n-1, as a coroutine: it yields the positions to
    probe and is sent whether each fits; it returns the first position that fits when `fits` is monotone
    (None: not even the last). The same probes in the same order for every driver below."""
    if not (yield n - 1):
        return None
    if (yield 0):
        return 0
    lo, hi = 0, n - 1  # invariant: hi fits, lo does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (yield mid):
            hi = mid
        else:
            lo = mid
    return hi


def first_fit(n: int, fits: Callable[[int], bool]) -> int | None:
    """`bisection` with one probe at a time."""
    return first_fits(n, [0], lambda at: [0 if fits(i) else 1 for i in at])[0]


def first_fits(n: int, limits: Sequence[int], values: Callable[[list[int]], Sequence[int]]) -> list[int | None]:
    """For each limit, `bisection` with `fits(i) = value(i) <= limit`, all run side by side: each round's
    probes are valued together by `values` (positions -> values), and no position is valued twice."""
    runs = [bisection(n) for _ in limits]
    probe = [next(r) for r in runs]
    known: dict[int, int] = {}
    out: list[int | None] = [None] * len(limits)
    active = list(range(len(limits)))
    while active:
        need = sorted({probe[i] for i in active} - known.keys())
        known.update(zip(need, values(need), strict=True))
        still = []
        for i in active:
            try:
                probe[i] = runs[i].send(known[probe[i]] <= limits[i])
                still.append(i)
            except StopIteration as done:
                out[i] = done.value
        active = still
    return out


def allocation(hulls: Mapping[str, Hull], lam: float) -> dict[str, int]:
    """Each item's bits at multiplier `lam`."""
    return {name: h.choose(lam) for name, h in sorted(hulls.items())}


def allocate(
    items: Mapping[str, Points],
    fits: Callable[[dict[str, int]], bool],
) -> dict[str, int] | None:
    """The least-distortion hull allocation that `fits`, found by bisection on lambda.

    `fits` must be monotone: if an allocation fits, every allocation with no more bits in any item
    fits too (true for a rate budget and for a peak-memory budget). Returns None when even the
    lowest-rate allocation does not fit.
    """
    hulls = {name: lower_hull(pts) for name, pts in items.items()}
    grid = lambdas(hulls)
    at = first_fit(len(grid), lambda i: fits(allocation(hulls, grid[i])))
    return None if at is None else allocation(hulls, grid[at])


def allocate_budget(items: Mapping[str, Points], budget: int) -> dict[str, int] | None:
    """Problem (8): minimise the summed distortion subject to the summed rate <= budget."""

    def fits(alloc: dict[str, int]) -> bool:
        return sum(items[name][b][0] for name, b in alloc.items()) <= budget

    return allocate(items, fits)
