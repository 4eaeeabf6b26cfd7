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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
    return sorted({0.0} | {s for h in hulls.values() for s in h.slopes})


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
    if not fits(allocation(hulls, grid[-1])):
        return None
    lo, hi = 0, len(grid) - 1  # invariant: grid[hi] fits
    if fits(allocation(hulls, grid[0])):
        return allocation(hulls, grid[0])
    while hi - lo > 1:  # grid[lo] does not fit
        mid = (lo + hi) // 2
        if fits(allocation(hulls, grid[mid])):
            hi = mid
        else:
            lo = mid
    return allocation(hulls, grid[hi])


def allocate_budget(items: Mapping[str, Points], budget: int) -> dict[str, int] | None:
    """Problem (8): minimise the summed distortion subject to the summed rate <= budget."""

    def fits(alloc: dict[str, int]) -> bool:
        return sum(items[name][b][0] for name, b in alloc.items()) <= budget

    return allocate(items, fits)
