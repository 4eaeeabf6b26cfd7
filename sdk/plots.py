"""What every splitsdk figure shares (the report's PNGs, `inspect --plot`), and the checks a figure must pass.

Figures are `matplotlib.figure.Figure` objects made without pyplot (no global state, no backend switch);
`png_bytes` renders one without timestamps, so the output is deterministic. `figure_problems` lists what
a reader would not accept: a missing title or axis label, more than `MAX_TICK_LABELS` tick labels on an
axis, or a legend drawn over the plotting area.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_TICK_LABELS = 30  # more layer names than this on one axis are unreadable: every k-th is shown


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """One figure of `width` x `height` inches with one axes; the layout makes room for outside legends."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def layer_figure_size(n: int, inches_per_item: float = 0.1) -> tuple[float, float]:
    """Width and height (inches) of a figure with `n` layers along x: wider with more, within a page."""
    return min(16.0, max(8.0, inches_per_item * n + 5)), 4.8


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, without `Software` metadata."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def name_ticks(ax: Axes, labels: Sequence[str], keep: Sequence[int] = ()) -> None:
    """Label x positions 0..n-1 with `labels`, thinned to at most MAX_TICK_LABELS (every k-th, plus the
    positions in `keep`, e.g. the chosen split), rotated so that long layer names stay readable."""
    n = len(labels)
    kept = {i for i in keep if 0 <= i < n}
    step = max(1, -(-(n + len(kept)) // MAX_TICK_LABELS))
    # evenly spaced names, less those that would print on top of a kept one
    even = {i for i in range(0, n, step) if all(abs(i - k) * 2 >= step for k in kept)}
    shown = sorted(even | kept)
    ax.set_xticks(shown, [labels[i] for i in shown], rotation=60, ha="right", rotation_mode="anchor",
                  fontsize=8 if len(shown) <= 20 else 7)
    ax.set_xlim(-0.6, n - 0.4)


def legend_outside(ax: Axes, **kwargs: Any) -> None:
    """The legend to the right of the plotting area, where it cannot cover data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kwargs)


def figure_problems(fig: Figure) -> list[str]:
    """What a reader would not accept in `fig` (empty: none)."""
    fig.draw_without_rendering()
    problems: list[str] = []
    for i, ax in enumerate(fig.axes):
        where = f"axes {i} ({ax.get_title() or 'untitled'})"
        for what, text in (("title", ax.get_title()), ("x label", ax.get_xlabel()), ("y label", ax.get_ylabel())):
            if not text.strip():
                problems.append(f"{where}: no {what}")
        for axis_name, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            visible = [t for t in labels if t.get_visible() and t.get_text()]
            if len(visible) > MAX_TICK_LABELS:
                problems.append(f"{where}: {len(visible)} {axis_name} tick labels (at most {MAX_TICK_LABELS})")
        legend = ax.get_legend()
        if legend is not None:
            box, area = legend.get_window_extent(), ax.get_window_extent()
            if box.x0 < area.x1 - 1 and box.x1 > area.x0 + 1 and box.y0 < area.y1 - 1 and box.y1 > area.y0 + 1:
                problems.append(f"{where}: the legend is drawn over the plotting area")
    return problems
