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

With a `SplitBound` (the first layer the edge cannot build, `splitsdk.plan.buildable`, or one kept in
the cloud by `--cloud-ops`) that layer and every later one of the order stay in the cloud: Neurosurgeon
and the min-cut choose among the cuts that can be built; EDGE-ONLY and Uk cannot, and are marked
`buildable=False` with the layer named in their note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

import networkx as nx

from splitsdk.graph.model import LayerGraph
from splitsdk.plan.buildable import SplitBound
from splitsdk.plan.problem import (
    INPUT_BITS,
    Evaluation,
    PlanProblem,
    edge_latency,
    model_file_bytes,
    tensor_bytes,
)
from splitsdk.plan.schema import Kind
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link

KIND_CLOUD: Final = "CLOUD_ONLY"
KIND_EDGE: Final = "EDGE_ONLY"
KIND_SPLIT: Final = "SPLIT"
UNIFORM_WIDTHS = (2, 4, 6, 8)


@dataclass(frozen=True)
class Baseline:
    """A baseline's solution: the cut, its uniform bits and its figures.

    `split_index` is the index of the matching prefix of the planner's topological order, or None
    when the cut is not such a prefix (a min-cut may be any closed set of layers). `fits` says
    whether it respects the memory limit; `buildable` whether every edge layer converts for the
    target; `note` says how its numbers were obtained (and which layer cannot be built).
    """

    name: str
    kind: Kind
    split_index: int | None
    edge_layers: tuple[str, ...]
    weight_bits: int
    activation_bits: int
    evaluation: Evaluation
    fits: bool
    note: str = ""
    buildable: bool = True


def kind_of(n_edge: int, n_layers: int) -> Kind:
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


def blocked_layers(graph: LayerGraph, bound: SplitBound | None) -> set[str]:
    """The layers (and the names folded into them) that must stay in the cloud under `bound`."""
    if bound is None:
        return set()
    later = [graph.layer(n) for n in graph.topological_order()[bound.index :]]
    return {n for lay in later for n in (lay.name, *lay.folded)}


def unbuildable_note(bound: SplitBound) -> str:
    return f"not buildable: layer {bound.layer!r}, op {bound.op} ({bound.reason})"


def _marked(b: Baseline, bound: SplitBound | None, blocked: set[str]) -> Baseline:
    """`b` marked unbuildable when an edge layer of it is blocked by `bound`."""
    if bound is None or not blocked.intersection(b.edge_layers):
        return b
    return replace(b, buildable=False, note=f"{unbuildable_note(bound)}; {b.note}")


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


def min_cut_edge_layers(
    graph: LayerGraph, profile: LatencyProfile, link: Link, cloud: Iterable[str] = ()
) -> list[str]:
    """DADS/QDMP: the float min-cut of the DAG; the edge layers in topological order. Layers in `cloud`
    are kept in the cloud (an infinite arc to the sink)."""
    forced = set(cloud)
    scale = 1e6  # integer capacities (nanoseconds) keep the flow exact
    ms_per_byte = link.ms_per_byte
    g: nx.DiGraph = nx.DiGraph()
    src, sink = ("src",), ("sink",)
    order = graph.topological_order()
    for name in order:
        g.add_edge(src, name, capacity=round(profile.cloud_ms(name) * scale))
        if name in forced:
            g.add_edge(name, sink)  # no capacity attribute: infinite
        else:
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


def neurosurgeon_split(
    chain_graph: LayerGraph, chain_profile: LatencyProfile, link: Link, max_k: int | None = None
) -> int:
    """Neurosurgeon's split of a chain: the prefix length k (at most `max_k`) minimising its chain latency model."""
    order = chain_graph.topological_order()
    best: tuple[float, int] | None = None
    for k in range(len(order) + 1 if max_k is None else min(max_k, len(order)) + 1):
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
    bound: SplitBound | None = None,
) -> dict[str, Baseline]:
    """Every baseline on the problem's profiles and link; Neurosurgeon on the unoptimised chain if given.
    `bound`: the first layer the edge cannot run (see the module's docstring)."""
    order = problem.order
    blocked = blocked_layers(problem.graph, bound)
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
    chain_order = chain_graph.topological_order()
    max_k = next((i for i, n in enumerate(chain_order) if n in blocked), None)
    k = neurosurgeon_split(chain_graph, chain_profile, problem.link, max_k)
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
    cut = min_cut_edge_layers(problem.graph, problem.profile, problem.link, blocked)
    full = problem.stored_bytes(problem.graph.total_weights, FLOAT_BITS)
    out["qdmp"] = _baseline(
        problem, "QDMP", cut, FLOAT_BITS, "float min-cut of the DAG; whole model on the device", full
    )
    out["qdmp_e"] = _baseline(problem, "QDMP_E", cut, FLOAT_BITS, "QDMP's cut, only the edge part on the device")
    if 4 in problem.bits:
        out["qdmp_e_u4"] = _baseline(problem, "QDMP_E+U4", cut, 4, "QDMP's cut, edge part uniformly 4-bit")
    return {key: _marked(b, bound, blocked) for key, b in out.items()}
