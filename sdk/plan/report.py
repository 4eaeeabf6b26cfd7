"""`write_report(plan, folder)`: a Markdown report and three PNGs, from plan.json alone.

* pareto.png: every candidate's latency vs its error (or measured accuracy drop), the Pareto
  front, the chosen solution and the baselines marked (after the paper's Fig. 5);
* latency.png: edge / transmit / cloud latency of the solution and each baseline;
* transmit.png: the bytes each candidate sends per frame, by split point, the chosen split marked;
* bits.png: weight and activation bits of each layer of the solution, the chosen split marked (cloud
  layers run in float);
* edge_profile.png (only for a plan made with a measured edge table, `plan --edge-profile`): the
  measured and the analytic edge latency of each measured layer side by side;
* traffic.png (only for a plan made with a frame rate, `plan --fps`): latency and loss ratio of the solution
  and the cloud-only baselines at frame rates around the solution's knee, recomputed from the stages the plan
  stores (`splitsdk.plan.traffic`, modelled).

Each figure has a title, axis labels with units, its legend outside the plotting area and at most
`plots.MAX_TICK_LABELS` layer names on an axis (`plots.figure_problems` checks); `figures(plan)` returns
them. PNGs are written without timestamps (no `Software`/date metadata), so the output is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from splitsdk.plan.reason import mb
from splitsdk.plan.schema import (
    BaselineRecord,
    CandidateRecord,
    Plan,
    Predicted,
    QueueRecord,
    SplitSet,
    write_atomic,
)
from splitsdk.plots import layer_figure_size, legend_outside, name_ticks, new_figure, png_bytes
from splitsdk.profile.measured import LayerComparison, parse_comparison
from splitsdk.target import FLOAT_BITS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Progress = Callable[[str, int, int], None]
MARKERS = "s^v<>DPXhd*"  # one per baseline, the same in every figure


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


def _log_ms_axis(ax: Axes) -> None:
    """A log latency axis labelled 5, 10, 20, 50 ms rather than 2x10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _threshold_label(plan: Plan, threshold: float) -> str:
    """What the Pareto plot's horizontal line is, from the plan's selection criterion."""
    if plan.selection.criterion == "measured-accuracy":
        return f"accuracy limit: drop <= {threshold:g} points (measured)"
    return f"error-proxy limit: {threshold:.3g} (not a measured accuracy)"


def pareto_figure(plan: Plan) -> Figure:
    measured = plan.selection.criterion == "measured-accuracy"
    cands: list[CandidateRecord] = [
        c for c in plan.candidates if not measured or c.predicted.accuracy_drop is not None
    ] or list(plan.candidates)
    pts = [(c.predicted.total_ms, _quality(c.predicted, measured)) for c in cands]
    fig, ax = new_figure(9.5, 5.0)
    ax.scatter([x for x, _ in pts], [y for _, y in pts], s=12, c="#9bb7d4", label="AUTO-SPLIT candidates")
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "-", c="#1f5aa6", lw=1, label="Pareto front")
    for j, (_key, b) in enumerate(sorted(plan.baselines.items())):
        ax.scatter(
            [b.predicted.total_ms],
            [b.predicted.error],
            marker=MARKERS[j % len(MARKERS)],
            s=45,
            label=b.name + ("" if b.fits else " (does not fit)") + ("" if b.buildable else " (not buildable)"),
            edgecolors="k",
            linewidths=0.5,
            clip_on=False,  # an error of 0 sits on the x axis: drawn whole, not cut in half
        )
    s = plan.solution.predicted
    ax.scatter([s.total_ms], [_quality(s, measured)], marker="*", s=220, c="#d62728", edgecolors="k", zorder=5,
               label=f"chosen ({plan.solution.kind}, {s.total_ms:.1f} ms)", clip_on=False)
    threshold = plan.selection.threshold
    if threshold is not None:
        ax.axhline(threshold, ls="--", c="grey", lw=0.8, label=_threshold_label(plan, threshold))
    _log_ms_axis(ax)
    ax.set_yscale("symlog", linthresh=max(1e-9, min((y for _, y in pts if y > 0), default=1e-6)))
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("predicted end-to-end latency per frame (ms, log scale)")
    label_free = any("without labels" in n for n in plan.selection.notes)
    ax.set_ylabel("label-free accuracy drop (points, vs the float model)" if measured and label_free
                  else "measured accuracy drop (points)" if measured
                  else "error proxy (summed output MSE vs float)")
    quality = "accuracy drop" if measured else "error proxy"
    ax.set_title(f"{plan.model.name}: latency vs {quality} of {len(pts)} candidates\n"
                 f"{plan.target} -> {plan.cloud}, {plan.link.uplink_mbps:g} Mbit/s uplink")
    legend_outside(ax)
    return fig


def baselines_ranked(plan: Plan) -> list[BaselineRecord]:
    """The baselines by latency, those that can be built first: one that cannot is never the fastest option."""
    return sorted(plan.baselines.values(), key=lambda b: (not b.buildable, b.predicted.total_ms))


def _rows(plan: Plan) -> list[tuple[str, Predicted]]:
    return [("AUTO-SPLIT", plan.solution.predicted)] + [
        (b.name + ("" if b.buildable else " (not buildable)"), b.predicted) for b in baselines_ranked(plan)
    ]


def latency_figure(plan: Plan) -> Figure:
    rows = _rows(plan)
    fig, ax = new_figure(9.0, 0.4 * len(rows) + 1.6)
    names = [n for n, _ in rows][::-1]
    preds = [p for _, p in rows][::-1]
    left = [0.0] * len(rows)
    for part, color in (("edge_ms", "#2ca02c"), ("transmit_ms", "#ff7f0e"), ("cloud_ms", "#1f77b4")):
        vals = [getattr(p, part) for p in preds]
        ax.barh(names, vals, left=left, color=color, label=part.replace("_ms", ""))
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, max(left, default=1.0) * 1.12 or 1.0)
    ax.set_xlabel("predicted latency per frame (ms)")
    ax.set_ylabel("method")
    ax.set_title(f"{plan.model.name}: AUTO-SPLIT vs baselines, {plan.target} -> {plan.cloud}, "
                 f"{plan.link.uplink_mbps:g} Mbit/s")
    legend_outside(ax)
    return fig


def _bits_label(wbits: int, abits: int) -> str:
    return "float" if wbits >= FLOAT_BITS and abits >= FLOAT_BITS else f"w{wbits}/a{abits} bits"


def _sent(nbytes: int) -> str:
    return f"{mb(nbytes)} per frame" if nbytes else "nothing crosses the split"


def _split_labels(plan: Plan) -> list[str]:
    """The x labels of split points 0..len(layers): the last layer on the edge ("(input)": CLOUD-ONLY)."""
    return ["(input)", *plan.layers]


def _mark_split(ax: Axes, plan: Plan, x: float) -> None:
    s = plan.solution
    where = "CLOUD-ONLY" if s.split_index == 0 else f"after {plan.layers[s.split_index - 1]}"
    ax.axvline(x, color="#d62728", ls="--", lw=1.2, label=f"chosen split ({where})")


def transmit_figure(plan: Plan) -> Figure:
    labels = _split_labels(plan)
    fig, ax = new_figure(*layer_figure_size(len(labels)))
    ax.scatter([c.split_index for c in plan.candidates], [c.predicted.transmit_bytes / 1e3 for c in plan.candidates],
               s=14, c="#9bb7d4", label="AUTO-SPLIT candidates")
    for j, (_key, b) in enumerate(sorted(plan.baselines.items())):
        if b.split_index is not None:
            ax.scatter([b.split_index], [b.predicted.transmit_bytes / 1e3], marker=MARKERS[j % len(MARKERS)], s=40,
                       label=f"{b.name} ({_bits_label(b.weight_bits, b.activation_bits)})", edgecolors="k",
                       linewidths=0.5, clip_on=False)
    s = plan.solution
    ax.scatter([s.split_index], [s.predicted.transmit_bytes / 1e3], marker="*", s=220, c="#d62728",
               edgecolors="k", zorder=5, label=f"chosen: {_sent(s.predicted.transmit_bytes)}", clip_on=False)
    _mark_split(ax, plan, s.split_index)
    raw = plan.baselines["cloud_only"].predicted.transmit_bytes / 1e3
    ax.axhline(raw, color="grey", ls=":", lw=1, label=f"model input as sent by CLOUD-ONLY ({raw:.1f} kB)")
    sizes = [c.predicted.transmit_bytes / 1e3 for c in plan.candidates] + [raw]
    ax.set_yscale("symlog", linthresh=max(1e-3, min((v for v in sizes if v > 0), default=1.0)))
    ax.set_ylim(0.0, max(sizes) * 2.5)  # headroom: the largest marker is drawn whole
    name_ticks(ax, labels, keep=[s.split_index])
    ax.set_xlabel("split point: the last layer on the edge (topological order)")
    ax.set_ylabel("sent per frame (kB, log scale)")
    ax.set_title(f"{plan.model.name}: bytes sent per frame at each split, "
                 f"{plan.link.uplink_mbps:g} Mbit/s uplink")
    legend_outside(ax)
    return fig


def bits_figure(plan: Plan) -> Figure:
    s = plan.solution
    layers = list(plan.layers)
    fig, ax = new_figure(*layer_figure_size(len(layers)))
    xs = range(len(layers))
    w = [s.weight_bits.get(n, 0) for n in layers]
    a = [s.activation_bits.get(n, 0) for n in layers]
    ax.bar([x - 0.2 for x in xs], w, width=0.4, label="weight bits", color="#1f5aa6")
    ax.bar([x + 0.2 for x in xs], a, width=0.4, label="activation bits", color="#ff7f0e")
    if s.split_index < len(layers):
        ax.axvspan(s.split_index - 0.5, len(layers) - 0.5, color="#dddddd", label="cloud (float)")
    _mark_split(ax, plan, s.split_index - 0.5)
    if s.split_index == 0:
        ax.text(0.5, 0.6, "CLOUD-ONLY: every layer runs in the cloud", transform=ax.transAxes, ha="center")
    name_ticks(ax, layers, keep=[s.split_index - 1])
    ax.set_xlabel("layer (topological order)")
    ax.set_ylabel("bit width (bits)")
    ax.set_ylim(0, max([*w, *a, 8]) + 1)
    ax.set_title(f"{plan.model.name}: bits per layer of the chosen {s.kind} on {plan.target}")
    legend_outside(ax)
    return fig


def comparisons(plan: Plan) -> list[LayerComparison]:
    """The measured-vs-analytic edge latencies the plan's notes carry (empty without a measured table)."""
    return [c for c in map(parse_comparison, plan.selection.notes) if c is not None]


def edge_profile_figure(plan: Plan) -> Figure:
    rows = comparisons(plan)
    fig, ax = new_figure(*layer_figure_size(len(rows), 0.4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r.modelled_ms for r in rows], width=0.4, label="analytic model", color="#9bb7d4")
    ax.bar([x + 0.2 for x in xs], [r.measured_ms for r in rows], width=0.4, label="measured", color="#d62728")
    name_ticks(ax, [f"{r.layer} w{r.wbits}/a{r.abits}" for r in rows])
    ax.set_xlabel("edge layer (weight/activation bits)")
    ax.set_ylabel("edge latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title(f"{plan.target}: measured vs modelled edge latency per layer")
    legend_outside(ax)
    return fig


def traffic_sweep(plan: Plan) -> tuple[list[float], dict[str, list[QueueRecord | None]]]:
    """Frame rates around the solution's knee (and the plan's own rate) and, per method (the solution, raw and
    JPEG cloud-only), its queue prediction at each rate, from the stages the plan stores. Empty without --fps."""
    from splitsdk.plan.traffic import Arrivals, knee_fps, predict_queue, rates_around_knee

    t = plan.traffic
    if t is None:
        return [], {}
    knees = [knee_fps(t.solution.stages)] + [knee_fps(q.stages) for k, q in t.baselines.items() if k == "cloud_only"]
    rates = rates_around_knee(knees, [t.fps])
    methods = {"AUTO-SPLIT": t.solution}
    methods.update({plan.baselines[k].name: q for k, q in sorted(t.baselines.items())
                    if plan.baselines[k].kind == "CLOUD_ONLY"})
    out: dict[str, list[QueueRecord | None]] = {}
    for name, q in methods.items():
        row: list[QueueRecord | None] = []
        for r in rates:
            p = predict_queue(Arrivals(r, t.arrivals), q.stages, t.queue_frames)
            row.append(QueueRecord(q.stages, p.throughput_fps, min(1.0, p.loss_ratio), p.latency_mean_ms,
                                   p.latency_p95_ms, min(1.0, p.utilisation), p.bottleneck))
        out[name] = row
    return rates, out


def traffic_figure(plan: Plan) -> Figure:
    from matplotlib.figure import Figure

    rates, sweep = traffic_sweep(plan)
    t = plan.traffic
    assert t is not None
    fig = Figure(figsize=(9.5, 7.0), dpi=100, layout="constrained")
    lat, loss = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for j, (name, row) in enumerate(sweep.items()):
        marker = "*" if name == "AUTO-SPLIT" else MARKERS[j % len(MARKERS)]
        lat.plot(rates, [q.latency_mean_ms if q else float("nan") for q in row], marker=marker, label=name)
        loss.plot(rates, [q.loss_ratio * 100 if q else float("nan") for q in row], marker=marker, label=name)
    for ax in (lat, loss):
        ax.axvline(t.fps, color="grey", ls="--", lw=0.8, label=f"planned rate ({t.fps:g} fps)")
        ax.set_xlabel("frame rate (frames/s, log scale)")
        legend_outside(ax)
    if t.max_loss is not None:
        loss.axhline(t.max_loss * 100, color="#d62728", ls=":", lw=1, label=f"--max-loss {t.max_loss:g}")
        legend_outside(loss)
    lat.set_yscale("log")
    for ax in (lat, loss):
        ax.set_xscale("log")
    lat.set_ylabel("mean latency, queueing included (ms, log)")
    loss.set_ylabel("frames dropped (%)")
    lat.set_title(f"{plan.model.name}: latency vs frame rate ({t.arrivals} arrivals, queue depth {t.queue_depth}, "
                  "modelled)")
    loss.set_title(f"{plan.model.name}: loss ratio vs frame rate")
    return fig


def _traffic_section(plan: Plan) -> list[str]:
    t = plan.traffic
    if t is None:
        return []
    rates, sweep = traffic_sweep(plan)
    q = t.solution
    header = ["fps", *(f"{name} ms / loss" for name in sweep)]

    def cell(q: QueueRecord | None) -> str:
        return "-" if q is None else f"{q.latency_mean_ms:.3g} / {q.loss_ratio:.3g}"

    rows = [[f"{r:g}" + (" (planned)" if r == t.fps else ""), *(cell(row[i]) for row in sweep.values())]
            for i, r in enumerate(rates)]
    stages = ", ".join(f"{k} {v:.3g} ms" for k, v in q.stages.items())
    infeasible = sum(not c.feasible for c in t.candidates)
    return [
        "## Frame rate: latency and loss",
        "",
        f"At **{t.fps:g} fps** ({t.arrivals} arrivals, `--queue-depth {t.queue_depth}`: {t.queue_frames} frames held) "
        f"the solution answers {q.throughput_fps:.3g} frames/s, drops {q.loss_ratio:.3g} of them, and takes "
        f"{q.latency_mean_ms:.3g} ms mean / {q.latency_p95_ms:.3g} ms p95 from capture to RESULT (modelled; stages "
        f"{stages}; bottleneck {q.bottleneck}, {q.utilisation * 100:.0f}% busy)."
        + (f" Loss limit {t.max_loss:g}: {infeasible} of {len(t.candidates)} stored candidates exceed it."
           if t.max_loss is not None else ""),
        "",
        *[f"- {n}" for n in t.notes],
        "",
        "Mean latency (ms) and loss ratio at rates around the solution's knee:",
        "",
        _table(header, rows),
        "",
        "![latency and loss vs frame rate](traffic.png)",
        "",
    ]


def split_set_table(s: SplitSet) -> tuple[list[str], list[list[str]]]:
    """The split set per rate: the split it uses, its latency next to the best static plan's and the oracle's, and
    the ratios (header, rows; the last row is the expectation over the distribution). Every latency modelled."""
    header = ["Mbit/s", "weight", "split used", "set ms", "best static ms", "oracle ms (split)", "set / static",
              "set / oracle"]
    rows = [[f"{r.mbps:.3g}", f"{r.weight:.3f}", str(r.split_index), f"{r.set_ms:.2f}", f"{r.static_ms:.2f}",
             f"{r.oracle_ms:.2f} ({r.oracle_split})", f"{r.set_ms / r.static_ms:.3f}" if r.static_ms else "-",
             f"{r.set_ms / r.oracle_ms:.3f}" if r.oracle_ms else "-"] for r in s.per_rate]
    rows.append(["expected", "1", ", ".join(map(str, s.splits)), f"{s.expected_ms:.2f}",
                 f"{s.best_static_ms:.2f} ({s.best_static_split})", f"{s.oracle_ms:.2f}", f"{s.vs_static:.3f}",
                 f"{s.vs_oracle:.3f}"])
    return header, rows


def _split_set_section(plan: Plan) -> list[str]:
    s = plan.split_set
    if s is None:
        return []
    members = _table(
        ["split", "kind", "wire cap", "sends (tensor: bits)", "edge ms", "transmit bytes", "cloud ms", "error",
         "expected ms alone"],
        [[str(m.split_index), m.kind, "-" if m.wire_cap is None else str(m.wire_cap),
          ", ".join(f"{t}: {b}" for t, b in m.crossing_bits) or "-", f"{m.edge_ms:.2f}", f"{m.transmit_bytes:,}",
          f"{m.cloud_ms:.2f}", f"{m.error:.3g}", f"{m.expected_ms:.2f}"] for m in s.members],
    )
    return [
        "## Split set: a split that follows the uplink",
        "",
        f"Over {s.uplink} the edge holds a chain of {len(s.members)} split(s) ({', '.join(map(str, s.splits))}) in "
        f"{mb(s.memory_bytes)} ({mb(s.weight_bytes)} weights and model files, {mb(s.peak_activation_bytes)} peak "
        f"activations, {mb(s.buffer_bytes)} cut buffers; limit {mb(s.memory_limit)}): expected **{s.expected_ms:.2f} "
        f"ms**, {s.vs_static:.3f}x the best static plan (split {s.best_static_split}, {s.best_static_ms:.2f} ms) and "
        f"{s.vs_oracle:.3f}x the per-rate oracle ({s.oracle_ms:.2f} ms). Latencies {s.latencies}.",
        "",
        members,
        "",
        _table(*split_set_table(s)),
        "",
        *[f"- {n}" for n in s.notes],
        "",
    ]


def _comparison_section(plan: Plan) -> list[str]:
    rows = comparisons(plan)
    if not rows:
        return []
    measured = {r.layer for r in rows}
    modelled = [n for n in plan.layers if n not in measured]
    table = _table(
        ["layer", "bits w/a", "measured ms", "analytic ms", "measured / analytic"],
        [
            [r.layer, f"{r.wbits}/{r.abits}", f"{r.measured_ms:.4g}", f"{r.modelled_ms:.4g}",
             f"{r.measured_ms / r.modelled_ms:.2f}x" if r.modelled_ms else "-"]
            for r in rows
        ],
    )
    return [
        "## Edge latency: measured vs analytic",
        "",
        f"Profile source: `{plan.profile_source}`. Measured on the device: {', '.join(sorted(measured))}; "
        f"analytic model: {', '.join(modelled) or 'none'}.",
        "",
        table,
        "",
        "![measured vs analytic edge latency](edge_profile.png)",
        "",
    ]


def _measured(drop: float | None, accuracy: float | None) -> str:
    """The measured accuracy cell: the accuracy (or agreement) in percent and/or the drop in points."""
    parts = ([f"{accuracy:.1f}%"] if accuracy is not None else []) + (
        [f"drop {drop:.2f} pts"] if drop is not None else [])
    return ", ".join(parts) or "-"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def markdown(plan: Plan) -> str:
    s, p = plan.solution, plan.solution.predicted
    cloud = plan.baselines["cloud_only"].predicted.total_ms
    lines = [
        f"# Split plan for {plan.model.name}",
        "",
        f"Edge `{plan.target}`, cloud `{plan.cloud}`, uplink {plan.link.uplink_mbps:g} Mbit/s, "
        f"RTT {plan.link.rtt_ms:g} ms, edge memory {mb(float(plan.constraints.memory_bytes))}, "
        f"candidate bits {', '.join(map(str, plan.bits))}. Model sha256 `{plan.model.sha256[:16]}…`.",
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
    for note in plan.selection.notes:
        if parse_comparison(note) is None:  # per-layer comparisons get their own table below
            lines.append(f"- Note: {note}")
    if plan.exact is not None:
        lines.append(
            f"- Exact optimum ({plan.exact.solver}): {plan.exact.total_ms:.3f} ms at split "
            f"{plan.exact.split_index}; the solution's optimality gap {plan.exact.gap * 100:.2f}%."
        )
    if plan.selection.certified_gap is not None:
        lines.append(f"- Certified: at most {plan.selection.certified_gap * 100:.2f}% slower than the exact optimum "
                     f"(origin of the solution: {s.origin or 'n/a'}).")
    if s.crossing:
        lines += ["", "Sent per frame:", ""]
        lines.append(
            _table(
                ["tensor", "shape", "bits", "producer", "codec", "zstd ratio (measured)"],
                [
                    [c.tensor, "x".join(map(str, c.shape)), str(c.bits), c.producer or "(model input)", c.codec,
                     "-" if c.compressed_ratio is None else f"{c.compressed_ratio:.3f}"]
                    for c in s.crossing
                ],
            )
        )
    lines += ["", "## Solution and baselines", "", "![latency breakdown](latency.png)", ""]
    unbuilt = [b.name for b in plan.baselines.values() if not b.buildable]
    if unbuilt:
        lines += [f"Baselines by latency, those that can be built first; {', '.join(unbuilt)} cannot be built for "
                  f"`{plan.target}` (an edge layer does not convert: see their note) and are listed last.", ""]
    jpeg_q = next((c.jpeg_quality for c in s.crossing if c.codec == "jpeg"), None)
    rows = [
        [
            "AUTO-SPLIT" if jpeg_q is None else f"AUTO-SPLIT: CLOUD-ONLY+JPEG-Q{jpeg_q}",
            s.kind,
            str(s.split_index),
            "mixed" if jpeg_q is None else f"JPEG Q{jpeg_q}",
            f"{p.total_ms:.2f}",
            f"{p.total_ms / cloud:.2f}",
            f"{(p.edge_weight_bytes + p.peak_activation_bytes) / 1e6:.3f}",
            "yes",
            _measured(p.accuracy_drop, None),
            "this plan",
        ]
    ]
    for b in baselines_ranked(plan):
        q = b.predicted
        rows.append(
            [
                b.name,
                b.kind,
                "-" if b.split_index is None else str(b.split_index),
                f"{b.weight_bits}/{b.activation_bits}",
                f"{q.total_ms:.2f}" + ("" if b.buildable else " (not buildable)"),
                f"{q.total_ms / cloud:.2f}",
                f"{(q.edge_weight_bytes + q.peak_activation_bytes) / 1e6:.3f}",
                "yes" if b.fits else "no",
                _measured(q.accuracy_drop, b.measured_accuracy),
                b.note,
            ]
        )
    lines.append(
        _table(["method", "kind", "split", "bits w/a", "total ms", "vs CLOUD-ONLY", "edge MB", "fits",
                "accuracy (measured)", "how"], rows)
    )
    lines += [
        "",
        "## Candidates",
        "",
        "![Pareto front](pareto.png)",
        "",
        "![bytes sent per frame at each split](transmit.png)",
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
    lines += _traffic_section(plan)
    lines += _split_set_section(plan)
    lines += _comparison_section(plan)
    return "\n".join(lines) + "\n"


FIGURES: list[tuple[str, Callable[[Plan], Figure]]] = [
    ("pareto.png", pareto_figure),
    ("latency.png", latency_figure),
    ("transmit.png", transmit_figure),
    ("bits.png", bits_figure),
]


def _figure_builders(plan: Plan) -> list[tuple[str, Callable[[Plan], Figure]]]:
    return (FIGURES + ([("edge_profile.png", edge_profile_figure)] if comparisons(plan) else [])
            + ([("traffic.png", traffic_figure)] if plan.traffic is not None else []))


def figures(plan: Plan) -> dict[str, Figure]:
    """The report's figures by file name (edge_profile.png only for a plan with a measured edge table,
    traffic.png only for one with a frame rate)."""
    return {name: make(plan) for name, make in _figure_builders(plan)}


def _rendered(make: Callable[[Plan], Figure]) -> Callable[[Plan], bytes]:
    return lambda plan: png_bytes(make(plan))


def write_report(plan: Plan, folder: str | Path, progress: Progress | None = None) -> list[Path]:
    """Write report.md, pareto.png, latency.png, transmit.png, bits.png (and edge_profile.png, traffic.png) into
    `folder`; returns the paths."""
    out = Path(folder)
    parts: list[tuple[str, Callable[[Plan], str | bytes]]] = [
        (name, _rendered(make)) for name, make in _figure_builders(plan)
    ]
    parts.append(("report.md", markdown))
    written = []
    for i, (name, make) in enumerate(parts):
        write_atomic(out / name, make(plan))
        written.append(out / name)
        if progress is not None:
            progress("report", i + 1, len(parts))
    return written
