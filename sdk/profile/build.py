"""`build_profile`: per-layer latency of a model on an edge and a cloud device (the profile stage)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from splitsdk.errors import ProfileError
from splitsdk.graph.model import LayerGraph
from splitsdk.profile.analytic import Cost, layer_cost
from splitsdk.profile.geometry import LayerWork, layer_work
from splitsdk.profile.measured import MeasuredTable, load_measured
from splitsdk.profile.scalesim_backend import DEFAULT_TIMEOUT_S, layer_cost_scalesim
from splitsdk.profile.types import LatencyProfile
from splitsdk.target import Target, load_target

BACKENDS = ("analytic", "scalesim")
CostFn = Callable[[LayerWork, Target, int, int, str], Cost]
Progress = Callable[[str, int, int], None]


def edge_bit_pairs(target: Target) -> list[tuple[int, int]]:
    """Every (wbits, abits) an edge profile covers: candidates and float, 16-bit activations where run."""
    q = target.quant
    return [(w, a) for w in q.weight_bit_options for a in q.activation_bit_options]


def build_profile(
    graph: LayerGraph,
    edge: Target | str,
    cloud: Target | str,
    *,
    measured_edge: str | Path | None = None,
    measured_cloud: str | Path | None = None,
    backend: str = "analytic",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> LatencyProfile:
    """Latency of every layer on `edge` at every (wbits, abits) and on `cloud` at its native precision.

    `backend="scalesim"` simulates the matrix products of systolic devices with SCALE-Sim (slow,
    cached per layer); other devices keep the analytic model. A measured cloud table replaces the
    model entirely; a measured edge table where it has a value (layer and precision), the model
    elsewhere (`source` says how many values were measured). `progress(stage, done, total)` is called after each layer.
    """
    if backend not in BACKENDS:
        raise ProfileError(f"unknown profile backend '{backend}' (known: {', '.join(BACKENDS)})")
    edge_t = edge if isinstance(edge, Target) else load_target(edge)
    cloud_t = cloud if isinstance(cloud, Target) else load_target(cloud)
    order = graph.topological_order()
    works = {name: layer_work(graph, graph.layer(name)) for name in order}

    def cost_fn(target: Target) -> CostFn:
        if backend == "scalesim" and target.device.systolic is not None:
            return lambda work, t, w, a, name: layer_cost_scalesim(work, t, w, a, name=name,
                                                                   timeout_s=timeout_s, cache=cache)
        return lambda work, t, w, a, name: layer_cost(work, t, w, a)

    pairs = edge_bit_pairs(edge_t)
    edge_table = load_measured(measured_edge) if measured_edge is not None else None
    cloud_table = load_measured(measured_cloud) if measured_cloud is not None else None
    fn = cost_fn(edge_t)
    edge_ms = {}
    modelled = 0  # (layer, pair) values the edge table did not give: the model's
    for i, name in enumerate(order):
        got = {p: _measured(edge_table, edge_t, name, p, pairs) for p in pairs} if edge_table is not None else {}
        row = {p: v for p, v in got.items() if v is not None}
        if len(row) < len(pairs):
            modelled += len(pairs) - len(row)
            row = {**_model_row(fn, works[name], edge_t, name, pairs), **row}
        edge_ms[name] = row
        if progress is not None:
            progress(f"profile {edge_t.name}", i + 1, len(order))
    native = (cloud_t.quant.native.weights, cloud_t.quant.native.activations)
    if cloud_table is not None:
        cloud_table.require(order)
        cloud_ms = {name: cloud_table.lookup(name, native) for name in order}
    else:
        fn = cost_fn(cloud_t)
        cloud_ms = {}
        for i, name in enumerate(order):
            cloud_ms[name] = fn(works[name], cloud_t, native[0], native[1], name).ms
            if progress is not None:
                progress(f"profile {cloud_t.name}", i + 1, len(order))
    return LatencyProfile(
        edge_device=edge_t.name,
        cloud_device=cloud_t.name,
        edge=edge_ms,
        cloud=cloud_ms,
        source=_source(edge_t, cloud_t, backend, edge_table, cloud_table, modelled, len(order) * len(pairs)),
    )


def _model_row(fn: CostFn, work: LayerWork, target: Target, name: str,
               pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    row: dict[tuple[int, int], float] = {}
    for w, a in pairs:
        # weights bits do not matter for a layer without weights: compute once per abits
        key = (pairs[0][0], a) if work.weights == 0 else (w, a)
        if key in row:
            row[(w, a)] = row[key]
        else:
            row[(w, a)] = fn(work, target, w, a, name).ms
    return row


def _measured(table: MeasuredTable, target: Target, layer: str, pair: tuple[int, int],
              pairs: list[tuple[int, int]]) -> float | None:
    """A measured value; a pair not in the table borrows the closest measured pair of the same mode;
    None when the table has neither (the analytic model fills it in)."""
    mode = target.quant.mode_for(*pair)
    same = [p for p in pairs if p != pair and target.quant.mode_for(*p) == mode]
    same.sort(key=lambda p: (abs(p[0] - pair[0]) + abs(p[1] - pair[1]), p))
    return table.find(layer, pair, same)


def _source(edge: Target, cloud: Target, backend: str, et: MeasuredTable | None, ct: MeasuredTable | None,
            edge_modelled: int = 0, edge_values: int = 0) -> str:
    def one(target: Target, table: MeasuredTable | None) -> str:
        model = "scalesim" if backend == "scalesim" and target.device.systolic is not None else "analytic"
        if table is None:
            return model
        if table is et and edge_modelled:  # a partial edge table: the model fills the rest
            return f"measured:{table.path}+{model}({edge_values - edge_modelled}/{edge_values} values measured)"
        return f"measured:{table.path}"

    e, c = one(edge, et), one(cloud, ct)
    return e if e == c else f"edge={e};cloud={c}"
