"""`write_report(plan, folder)`: a Markdown report and three PNGs, from plan.json alone.

* pareto.png: every candidate's latency vs its error (or measured accuracy drop), the Pareto
  front, the chosen solution and the baselines marked (after the paper's Fig. 5);
* latency.png: edge / transmit / cloud latency of the solution and each baseline;
* bits.png: weight and activation bits of each layer of the solution (cloud layers run in float).

PNGs are written without timestamps (no `Software`/date metadata), so the output is deterministic.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from splitsdk.plan.reason import mb
from splitsdk.plan.schema import CandidateRecord, Plan, Predicted, write_atomic

Progress = Callable[[str, int, int], None]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _quality(p: Predicted, measured: bool) -> float:
    return p.accuracy_drop if measured and p.accuracy_drop is not None else p.error


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both latency and error, by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best = float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_png(plan: Plan) -> bytes:
    measured = plan.selection.get("criterion") == "measured-accuracy"
    cands: list[CandidateRecord] = [
        c for c in plan.candidates if not measured or c.predicted.accuracy_drop is not None
    ] or list(plan.candidates)
    pts = [(c.predicted.total_ms, _quality(c.predicted, measured)) for c in cands]
    fig, ax = _figure(7.5, 5.0)
    ax.scatter([x for x, _ in pts], [y for _, y in pts], s=12, c="#9bb7d4", label="AUTO-SPLIT candidates")
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "-", c="#1f5aa6", lw=1, label="Pareto front")
    markers = "s^v<>DPXhd*"
    for j, (_key, b) in enumerate(sorted(plan.baselines.items())):
        ax.scatter(
            [b.predicted.total_ms],
            [b.predicted.error],
            marker=markers[j % len(markers)],
            s=45,
            label=b.name + ("" if b.fits else " (does not fit)"),
            edgecolors="k",
            linewidths=0.5,
        )
    s = plan.solution.predicted
    ax.scatter(
        [s.total_ms], [_quality(s, measured)], marker="*", s=220, c="#d62728", edgecolors="k", zorder=5, label="chosen"
    )
    threshold = plan.selection.get("threshold")
    if threshold is not None:
        ax.axhline(threshold, ls="--", c="grey", lw=0.8, label="accuracy threshold")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=max(1e-9, min((y for _, y in pts if y > 0), default=1e-6)))
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("predicted end-to-end latency (ms)")
    ax.set_ylabel("measured top-1 drop (points)" if measured else "error proxy (summed MSE)")
    ax.set_title(f"{plan.model['name']}: {plan.target} -> {plan.cloud}, {plan.link['uplink_mbps']:g} Mbit/s")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _rows(plan: Plan) -> list[tuple[str, Predicted]]:
    return [("AUTO-SPLIT", plan.solution.predicted)] + [(b.name, b.predicted) for b in plan.baselines.values()]


def latency_png(plan: Plan) -> bytes:
    rows = _rows(plan)
    fig, ax = _figure(7.5, 0.45 * len(rows) + 1.2)
    names = [n for n, _ in rows][::-1]
    preds = [p for _, p in rows][::-1]
    left = [0.0] * len(rows)
    for part, color in (("edge_ms", "#2ca02c"), ("transmit_ms", "#ff7f0e"), ("cloud_ms", "#1f77b4")):
        vals = [getattr(p, part) for p in preds]
        ax.barh(names, vals, left=left, color=color, label=part.replace("_ms", ""))
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("predicted latency (ms)")
    ax.legend(fontsize=8)
    return _png(fig)


def bits_png(plan: Plan) -> bytes:
    s = plan.solution
    layers = list(plan.layers)
    fig, ax = _figure(min(24.0, max(6.0, 0.12 * len(layers) + 2)), 3.8)
    xs = range(len(layers))
    w = [s.weight_bits.get(n, 0) for n in layers]
    a = [s.activation_bits.get(n, 0) for n in layers]
    ax.bar([x - 0.2 for x in xs], w, width=0.4, label="weight bits", color="#1f5aa6")
    ax.bar([x + 0.2 for x in xs], a, width=0.4, label="activation bits", color="#ff7f0e")
    if s.split_index < len(layers):
        ax.axvspan(s.split_index - 0.5, len(layers) - 0.5, color="#dddddd", label="cloud (float)")
    if s.split_index == 0:
        ax.text(0.5, 0.6, "CLOUD-ONLY: every layer runs in the cloud", transform=ax.transAxes, ha="center")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(layers, rotation=90, fontsize=6)
    ax.set_ylabel("bits")
    ax.set_ylim(0, max([*w, *a, 8]) + 1)
    ax.legend(fontsize=7)
    return _png(fig)


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def markdown(plan: Plan) -> str:
    s, p = plan.solution, plan.solution.predicted
    cloud = plan.baselines["cloud_only"].predicted.total_ms
    lines = [
        f"# Split plan for {plan.model['name']}",
        "",
        f"Edge `{plan.target}`, cloud `{plan.cloud}`, uplink {plan.link['uplink_mbps']:g} Mbit/s, "
        f"RTT {plan.link['rtt_ms']:g} ms, edge memory {mb(float(plan.constraints['memory_bytes'] or 0))}, "
        f"candidate bits {', '.join(map(str, plan.bits))}. Model sha256 `{plan.model['sha256'][:16]}…`.",
        "",
        f"**{s.kind}** at split index {s.split_index} of {len(plan.layers)}: **{p.total_ms:.2f} ms** "
        f"(edge {p.edge_ms:.2f} + transmit {p.transmit_ms:.2f} + cloud {p.cloud_ms:.2f}), "
        f"{p.total_ms / cloud:.2f}x CLOUD-ONLY; edge memory {mb(p.edge_weight_bytes)} weights + "
        f"{mb(p.peak_activation_bytes)} activations; error proxy {p.error:.3g}"
        + (f"; measured drop {p.accuracy_drop:.2f} points" if p.accuracy_drop is not None else "")
        + ".",
        "",
        f"Why: {s.reason}",
        "",
    ]
    for note in plan.selection.get("notes", []):
        lines.append(f"- Note: {note}")
    if plan.exact is not None:
        lines.append(
            f"- Exact optimum ({plan.exact.solver}): {plan.exact.total_ms:.3f} ms at split "
            f"{plan.exact.split_index}; Algorithm 1's optimality gap {plan.exact.gap * 100:.2f}%."
        )
    if s.crossing:
        lines += ["", "Sent per frame:", ""]
        lines.append(
            _table(
                ["tensor", "shape", "bits", "producer"],
                [
                    [c.tensor, "x".join(map(str, c.shape)), str(c.bits), c.producer or "(model input)"]
                    for c in s.crossing
                ],
            )
        )
    lines += ["", "## Solution and baselines", "", "![latency breakdown](latency.png)", ""]
    rows = [
        [
            "AUTO-SPLIT",
            s.kind,
            str(s.split_index),
            "mixed",
            f"{p.total_ms:.2f}",
            f"{p.total_ms / cloud:.2f}",
            f"{(p.edge_weight_bytes + p.peak_activation_bytes) / 1e6:.3f}",
            "yes",
            "this plan",
        ]
    ]
    for b in plan.baselines.values():
        q = b.predicted
        rows.append(
            [
                b.name,
                b.kind,
                "-" if b.split_index is None else str(b.split_index),
                f"{b.weight_bits}/{b.activation_bits}",
                f"{q.total_ms:.2f}",
                f"{q.total_ms / cloud:.2f}",
                f"{(q.edge_weight_bytes + q.peak_activation_bytes) / 1e6:.3f}",
                "yes" if b.fits else "no",
                b.note,
            ]
        )
    lines.append(
        _table(["method", "kind", "split", "bits w/a", "total ms", "vs CLOUD-ONLY", "edge MB", "fits", "how"], rows)
    )
    lines += [
        "",
        "## Candidates",
        "",
        "![Pareto front](pareto.png)",
        "",
        f"{len(plan.candidates)} candidates; the fastest ten:",
        "",
    ]
    lines.append(
        _table(
            ["#", "kind", "split", "origin", "total ms", "error", "edge weights"],
            [
                [
                    str(i),
                    c.kind,
                    str(c.split_index),
                    c.origin,
                    f"{c.predicted.total_ms:.2f}",
                    f"{c.predicted.error:.3g}",
                    mb(c.predicted.edge_weight_bytes),
                ]
                for i, c in enumerate(plan.candidates[:10])
            ],
        )
    )
    lines += ["", "## Bits per layer", "", "![bits per layer](bits.png)", ""]
    return "\n".join(lines) + "\n"


def write_report(plan: Plan, folder: str | Path, progress: Progress | None = None) -> list[Path]:
    """Write report.md, pareto.png, latency.png and bits.png into `folder`; returns the paths."""
    out = Path(folder)
    parts: list[tuple[str, Callable[[Plan], str | bytes]]] = [
        ("pareto.png", pareto_png),
        ("latency.png", latency_png),
        ("bits.png", bits_png),
        ("report.md", markdown),
    ]
    written = []
    for i, (name, make) in enumerate(parts):
        write_atomic(out / name, make(plan))
        written.append(out / name)
        if progress is not None:
            progress("report", i + 1, len(parts))
    return written
