"""`splitsdk inspect`: the split table of a model (the paper's Table 10) and its plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splitsdk.errors import DataError
from splitsdk.graph import LayerGraph, model_sha256
from splitsdk.profile.types import LatencyProfile
from splitsdk.quant.types import Sensitivity

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_BITS = 8  # the edge ms column is the prefix run at int8, the usual deployment


@dataclass
class Inspection:
    graph: LayerGraph
    profile: LatencyProfile | None = None
    sensitivity: Sensitivity | None = None

    def split_rows(self) -> list[dict[str, Any]]:
        rows = []
        order = self.graph.topological_order()
        input_elements = self.graph.input_elements
        for c in self.graph.split_candidates():
            row: dict[str, Any] = {
                "index": c.index,
                "layer": c.last_layer or "(input)",
                "op": self.graph.layer(c.last_layer).op if c.last_layer else "-",
                "edge_layers": list(c.edge_layers),
                "crossing": [{"tensor": x.tensor, "shape": list(x.shape), "elements": x.elements}
                             for x in c.crossing],
                "transmit_elements": c.transmit_elements,
                "delta_vs_input": c.transmit_elements - input_elements,
                "edge_weights": c.edge_weights,
                "peak_activation_elements": c.peak_activation_elements,
            }
            if self.profile is not None:
                p = self.profile
                row["edge_ms"] = sum(p.edge_ms(n, TABLE_BITS, TABLE_BITS) for n in c.edge_layers)
                row["cloud_ms"] = sum(p.cloud_ms(n) for n in order[c.index:])
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        out = self.graph.summary()
        out["splits"] = self.split_rows()
        if self.profile is not None:
            out["profile"] = {"edge": self.profile.edge_device, "cloud": self.profile.cloud_device,
                              "source": self.profile.source, "edge_bits": TABLE_BITS}
        if self.sensitivity is not None:
            from splitsdk.quant import sensitivity_to_json

            out["sensitivity"] = sensitivity_to_json(self.sensitivity)
        return out


def inspect_model(
    model: Any,
    target: str | None = None,
    cloud: str = "cloud-gpu",
    calib: str | Path | None = None,
    sensitivity: bool = False,
    progress: Any = None,
    input_shape: tuple[int, ...] | None = None,
) -> Inspection:
    """Import and optimise `model`; with a target, profile it; with data (or `sensitivity`), measure bits.

    `input_shape` (else the calibration data's sample shape) fixes the model's dynamic input dims."""
    from splitsdk.quant.calib import load_graph_for_data

    graph = load_graph_for_data(model, calib, input_shape)
    result = Inspection(graph)
    if target is not None:
        from splitsdk.profile import build_profile
        from splitsdk.target import load_target

        result.profile = build_profile(graph, load_target(target), load_target(cloud))
    if calib is not None or sensitivity:
        from splitsdk.quant import load_dataset, measure_sensitivity

        if len(graph.inputs) != 1:
            raise DataError(f"{model}: sensitivity is measured on single-input models only")
        data = load_dataset(calib, graph.tensors[graph.inputs[0]].shape)
        bits = [2, 4, 6, 8, 16]
        if target is not None:
            from splitsdk.target import load_target

            bits = sorted({*load_target(target).quant.candidate_bits, 16})
        result.sensitivity = measure_sensitivity(
            graph, data, bits, model_sha256=model_sha256(model), progress=progress
        )
    return result


WIRE_BYTES_PER_VALUE = TABLE_BITS // 8  # the plot counts each sent value at int8, as the edge ms column does


def transmission_figure(inspection: Inspection) -> Figure:
    """Bytes sent per frame at each split candidate (8-bit values), the model input as a reference line."""
    from splitsdk.plots import layer_figure_size, legend_outside, name_ticks, new_figure

    rows = inspection.split_rows()
    labels = [r["layer"] for r in rows]
    fig, ax = new_figure(*layer_figure_size(len(rows)))
    ax.bar(range(len(rows)), [r["transmit_elements"] * WIRE_BYTES_PER_VALUE / 1e3 for r in rows], color="#4477aa",
           label="sent at this split")
    raw = inspection.graph.input_elements * WIRE_BYTES_PER_VALUE / 1e3
    ax.axhline(raw, color="#cc3311", linestyle="--", label=f"model input (CLOUD-ONLY, {raw:.1f} kB)")
    name_ticks(ax, labels)
    ax.set_xlabel("split point: the last layer on the edge ((input): CLOUD-ONLY, last: EDGE-ONLY)")
    ax.set_ylabel(f"sent per frame (kB, {TABLE_BITS}-bit values)")
    ax.set_title(f"{inspection.graph.name}: bytes sent per frame at each split candidate")
    legend_outside(ax)
    return fig


def plot_transmission(inspection: Inspection, path: Path) -> None:
    """Write `transmission_figure` as a PNG (atomically)."""
    from splitsdk.plots import png_bytes

    tmp = path.with_suffix(".tmp.png")
    tmp.write_bytes(png_bytes(transmission_figure(inspection)))
    tmp.replace(path)
