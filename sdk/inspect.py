"""`splitsdk inspect`: the split table of a model (the paper's Table 10) and its plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitsdk.errors import DataError
from splitsdk.graph import LayerGraph, load_graph, model_sha256
from splitsdk.profile.types import LatencyProfile
from splitsdk.quant.types import Sensitivity

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
) -> Inspection:
    """Import and optimise `model`; with a target, profile it; with data (or `sensitivity`), measure bits."""
    graph = load_graph(model)
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


def plot_transmission(inspection: Inspection, path: Path) -> None:
    """PNG of transmitted elements per split candidate, the input volume as a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = inspection.split_rows()
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.25), 4))
    ax.bar([r["index"] for r in rows], [r["transmit_elements"] for r in rows], color="#4477aa")
    ax.axhline(inspection.graph.input_elements, color="#cc3311", linestyle="--", label="input volume")
    ax.set_xlabel("split index (0 = cloud-only, last = edge-only)")
    ax.set_ylabel("transmitted elements")
    ax.set_title(f"{inspection.graph.name}: transmission per split candidate")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
