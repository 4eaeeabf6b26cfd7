"""The baselines of the paper's evaluation, scored on the same profiles, link and memory limit.

* CLOUD-ONLY: the raw frame (8 bits) goes up, the cloud runs everything (the paper's CLOUD16).
* EDGE-ONLY: the whole model on the device, in float and uniformly at each candidate width Uk.
* Neurosurgeon: float, the best single split of a *chain* (the unoptimised graph's topological
  order; its model sends only the split layer's output). Its choice is then scored with the real
  crossing set of the unoptimised graph, since that is what would be deployed.
* DADS/QDMP: float, a minimum s-t cut of the optimised DAG (networkx flow): layer costs on the
  source/sink arcs, one arc per tensor for its transmission (paid once however many cloud layers
  read it), infinite reverse arcs so no edge layer reads a cloud result. QDMP keeps the whole model
  on the device (its edge memory is the full float model); QDMP_E stores only the edge part;
  QDMP_E+U4 is that cut with the edge part uniformly at 4 bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import networkx as nx

from splitsdk.graph.model import LayerGraph
from splitsdk.plan.problem import (
    INPUT_BITS,
    Evaluation,
    PlanProblem,
    edge_latency,
    model_file_bytes,
    tensor_bytes,
)
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link

KIND_CLOUD, KIND_EDGE, KIND_SPLIT = "CLOUD_ONLY", "EDGE_ONLY", "SPLIT"
UNIFORM_WIDTHS = (2, 4, 6, 8)


@dataclass(frozen=True)
class Baseline:
    """A baseline's solution: the cut, its uniform bits and its figures.

    `split_index` is the index of the matching prefix of the planner's topological order, or None
    when the cut is not such a prefix (a min-cut may be any closed set of layers). `fits` says
    whether it respects the memory limit; `note` says how its numbers were obtained.
    """

    name: str
    kind: str
    split_index: int | None
    edge_layers: tuple[str, ...]
    weight_bits: int
    activation_bits: int
    evaluation: Evaluation
    fits: bool
    note: str = ""


def kind_of(n_edge: int, n_layers: int) -> str:
    return KIND_CLOUD if n_edge == 0 else KIND_EDGE if n_edge == n_layers else KIND_SPLIT


def evaluate_cut(
    graph: LayerGraph,
    profile: LatencyProfile,
    link: Link,
    edge: Iterable[str],
    bits: int,
    problem: PlanProblem | None = None,
    storage_bits: Mapping[int, int] | None = None,
) -> Evaluation:
    """Figures of any closed set of edge layers, every edge layer at `bits` (32: float).

    Same rules as `PlanProblem.evaluate` (crossing tensors: edge-produced or model inputs read in
    the cloud, and model outputs made on the edge unless everything runs there); the error proxy
    comes from `problem`'s sensitivities when given, else it is 0 (float only). Memory uses the
    problem's (or the given) storage widths.
    """
    storage = dict(problem.storage_bits) if problem is not None else dict(storage_bits or {})

    def stored(elements: int, b: int) -> int:
        return tensor_bytes(elements, storage.get(b, b))

    order = graph.topological_order()
    on_edge = set(edge)
    prefix = [graph.layer(n) for n in order if n in on_edge]
    readers: dict[str, list[str]] = {}
    for name in order:
        for t in graph.layer(name).inputs:
            readers.setdefault(t, []).append(name)
    everything = len(on_edge) == len(order)
    produced = list(graph.inputs) + [t for lay in prefix for t in lay.outputs]
    crossing = [
        t
        for t in produced
        if any(r not in on_edge for r in readers.get(t, []))
        or (not everything and t in graph.outputs and graph.tensors[t].producer is not None)
    ]

    def tbits(t: str) -> int:
        return INPUT_BITS if graph.tensors[t].producer is None else bits

    tx = sum(tensor_bytes(graph.tensors[t].elements, tbits(t)) for t in crossing)
    keep = set(crossing) | (set(graph.outputs) if everything else set())
    steps = graph._live_sets(prefix, keep) if prefix else []  # same liveness as live_sets(k)
    peak = max((sum(stored(e, tbits(t)) for t, e in s.items()) for s in steps), default=0)
    model_file = problem.model_file if problem is not None else None
    error = 0.0
    if problem is not None:
        error = sum(problem.weight_mse(lay.name, bits) + problem.activation_mse(lay.name, bits) for lay in prefix)
    return Evaluation(
        edge_ms=sum(edge_latency(graph, profile, lay.name, bits, bits) for lay in prefix),
        transmit_ms=link.transmit_ms(tx),
        cloud_ms=sum(profile.cloud_ms(n) for n in order if n not in on_edge),
        transmit_bytes=tx,
        edge_weight_bytes=model_file_bytes(
            prefix, {lay.name: bits for lay in prefix}, len(crossing) or len(graph.outputs), storage, model_file
        ),
        peak_activation_bytes=peak,
        error=error,
    )


def _baseline(
    problem: PlanProblem, name: str, edge: list[str], bits: int, note: str, weight_bytes: int | None = None
) -> Baseline:
    ev = evaluate_cut(problem.graph, problem.profile, problem.link, edge, bits, problem)
    if weight_bytes is not None:
        ev = replace(ev, edge_weight_bytes=weight_bytes)
    index = len(edge) if problem.order[: len(edge)] == edge else None
    return Baseline(
        name=name,
        kind=kind_of(len(edge), len(problem.order)),
        split_index=index,
        edge_layers=tuple(edge),
        weight_bits=bits,
        activation_bits=bits,
        evaluation=ev,
        fits=ev.memory_bytes <= problem.memory_bytes,
        note=note,
    )


def min_cut_edge_layers(graph: LayerGraph, profile: LatencyProfile, link: Link) -> list[str]:
    """DADS/QDMP: the float min-cut of the DAG; the edge layers in topological order."""
    scale = 1e6  # integer capacities (nanoseconds) keep the flow exact
    ms_per_byte = 8.0 / (link.uplink_mbps * 1e6) * 1e3
    g: nx.DiGraph = nx.DiGraph()
    src, sink = ("src",), ("sink",)
    order = graph.topological_order()
    for name in order:
        g.add_edge(src, name, capacity=round(profile.cloud_ms(name) * scale))
        g.add_edge(name, sink, capacity=round(edge_latency(graph, profile, name, FLOAT_BITS, FLOAT_BITS) * scale))
    for t, info in sorted(graph.tensors.items()):
        producer = info.producer if info.producer is not None else src
        if info.producer is None and t not in graph.inputs:
            continue
        bits = INPUT_BITS if info.producer is None else FLOAT_BITS
        node = ("tensor", t)
        g.add_edge(producer, node, capacity=round(tensor_bytes(info.elements, bits) * ms_per_byte * scale))
        for reader in order:
            if t in graph.layer(reader).inputs:
                g.add_edge(node, reader)  # no capacity attribute: infinite
                if info.producer is not None:
                    g.add_edge(reader, info.producer)  # a cloud producer cannot feed an edge reader
    _, (side, _) = nx.minimum_cut(g, src, sink)
    return [n for n in order if n in side]


def neurosurgeon_split(chain_graph: LayerGraph, chain_profile: LatencyProfile, link: Link) -> int:
    """Neurosurgeon's split of a chain: the prefix length k minimising its chain latency model."""
    order = chain_graph.topological_order()
    best: tuple[float, int] | None = None
    for k in range(len(order) + 1):
        edge = sum(edge_latency(chain_graph, chain_profile, n, FLOAT_BITS, FLOAT_BITS) for n in order[:k])
        cloud = sum(chain_profile.cloud_ms(n) for n in order[k:])
        if k == 0:
            sent = sum(tensor_bytes(chain_graph.tensors[t].elements, INPUT_BITS) for t in chain_graph.inputs)
        elif k == len(order):
            sent = 0
        else:
            outs = chain_graph.layer(order[k - 1]).outputs
            sent = sum(tensor_bytes(chain_graph.tensors[t].elements, FLOAT_BITS) for t in outs)
        total = edge + link.transmit_ms(sent) + cloud
        if best is None or total < best[0] - 1e-12:
            best = (total, k)
    assert best is not None
    return best[1]


def baselines(
    problem: PlanProblem,
    chain_graph: LayerGraph | None = None,
    chain_profile: LatencyProfile | None = None,
) -> dict[str, Baseline]:
    """Every baseline on the problem's profiles and link; Neurosurgeon on the unoptimised chain if given."""
    order = problem.order
    out: dict[str, Baseline] = {
        "cloud_only": _baseline(
            problem, "CLOUD-ONLY", [], FLOAT_BITS, "the raw frame at 8 bits, all layers in the cloud"
        ),
        "edge_only": _baseline(problem, "EDGE-ONLY", order, FLOAT_BITS, "all layers on the device in float"),
    }
    for b in UNIFORM_WIDTHS:
        if b in problem.bits:
            out[f"u{b}"] = _baseline(problem, f"U{b}", order, b, f"all layers on the device, uniformly {b}-bit")
    if chain_graph is None or chain_profile is None:
        chain_graph, chain_profile, where = (
            problem.graph,
            problem.profile,
            "the optimised graph (no unoptimised one given)",
        )
    else:
        where = "the unoptimised graph"
    k = neurosurgeon_split(chain_graph, chain_profile, problem.link)
    chain_order = chain_graph.topological_order()
    ev = evaluate_cut(
        chain_graph,
        chain_profile,
        problem.link,
        chain_order[:k],
        FLOAT_BITS,
        storage_bits=problem.storage_bits,
    )
    out["neurosurgeon"] = Baseline(
        name="Neurosurgeon",
        kind=kind_of(k, len(chain_order)),
        split_index=k,
        edge_layers=tuple(chain_order[:k]),
        weight_bits=FLOAT_BITS,
        activation_bits=FLOAT_BITS,
        evaluation=ev,
        fits=ev.memory_bytes <= problem.memory_bytes,
        note=f"float, best split of the topological chain of {where}; scored with its real crossing tensors",
    )
    cut = min_cut_edge_layers(problem.graph, problem.profile, problem.link)
    full = problem.stored_bytes(problem.graph.total_weights, FLOAT_BITS)
    out["qdmp"] = _baseline(
        problem, "QDMP", cut, FLOAT_BITS, "float min-cut of the DAG; whole model on the device", full
    )
    out["qdmp_e"] = _baseline(problem, "QDMP_E", cut, FLOAT_BITS, "QDMP's cut, only the edge part on the device")
    if 4 in problem.bits:
        out["qdmp_e_u4"] = _baseline(problem, "QDMP_E+U4", cut, 4, "QDMP's cut, edge part uniformly 4-bit")
    return out
