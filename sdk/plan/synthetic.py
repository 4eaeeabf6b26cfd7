"""Synthetic planning problems: small LayerGraphs with made-up profiles and sensitivities.

The planner's tests and benchmark use these to compare Algorithm 1 with exact solvers without
TensorFlow. Everything is seeded, so a seed names a problem.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from splitsdk.graph.model import Layer, LayerGraph, TensorInfo
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile
from splitsdk.quant.types import Sensitivity


def make_graph(
    name: str,
    input_shape: tuple[int, ...],
    layers: Sequence[tuple[str, str, Sequence[str], tuple[int, ...], int]],
    weight_keys: dict[str, str] | None = None,
) -> LayerGraph:
    """A graph from (layer, op, input tensors, output shape, weights) rows; each layer outputs `<layer>:0`.

    The model input is the tensor "input"; the last layer's output is the model output.
    """
    keys = weight_keys or {}
    tensors: dict[str, TensorInfo] = {}
    built: list[Layer] = []
    for lname, op, inputs, shape, weights in layers:
        out = f"{lname}:0"
        tensors[out] = TensorInfo(out, shape, producer=lname)
        elements = tensors[out].elements
        built.append(
            Layer(
                lname,
                op,
                list(inputs),
                [out],
                weights=weights,
                macs=weights * max(1, elements // 8),
                weight_key=keys.get(lname, ""),
            )
        )
    return LayerGraph(name, [TensorInfo("input", input_shape)], [f"{layers[-1][0]}:0"], built, tensors)


def chain(name: str, input_shape: tuple[int, ...], rows: Sequence[tuple[str, tuple[int, ...], int]]) -> LayerGraph:
    """A chain of layers (op "conv" when it has weights, else "relu")."""
    spec = []
    prev = "input"
    for lname, shape, weights in rows:
        spec.append((lname, "conv" if weights else "relu", [prev], shape, weights))
        prev = f"{lname}:0"
    return make_graph(name, input_shape, spec)


def profile_for(
    graph: LayerGraph,
    edge_base_ms: dict[str, float],
    cloud_ms: dict[str, float],
    bits: Sequence[int],
    float_factor: float = 4.0,
) -> LatencyProfile:
    """Edge ms: base * (0.25 + 0.75 * max(wbits, abits) / 8) for integer widths, base * factor for float."""
    widths = sorted(set(bits) | {FLOAT_BITS})

    def scale(w: int, a: int, quantizable: bool) -> float:
        top = a if not quantizable else max(w, a)
        return float_factor if top >= FLOAT_BITS else 0.25 + 0.75 * top / 8

    edge = {
        n: {(w, a): edge_base_ms[n] * scale(w, a, graph.layer(n).quantizable) for w in widths for a in widths}
        for n in graph.topological_order()
    }
    return LatencyProfile("synthetic-edge", "synthetic-cloud", edge, dict(cloud_ms), source="synthetic")


def sensitivity_for(
    graph: LayerGraph, wscale: dict[str, float], ascale: dict[str, float], bits: Sequence[int]
) -> Sensitivity:
    """MSE = scale * 4^-bits (each extra bit halves the quantisation step)."""
    return Sensitivity(
        bits=sorted(bits),
        weights={n: {b: wscale[n] * 4.0**-b for b in bits} for n in wscale},
        activations={n: {b: ascale[n] * 4.0**-b for b in bits} for n in ascale},
        synthetic_data=True,
    )


def random_problem_parts(
    seed: int, n_layers: int, bits: Sequence[int], branchy: bool = True
) -> tuple[LayerGraph, LatencyProfile, Sensitivity]:
    """A random small DAG (chain with optional skip connections) and its profile and sensitivity."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, Sequence[str], tuple[int, ...], int]] = []
    hw, ch = 16, 3
    outs = ["input"]
    for i in range(n_layers):
        name = f"l{i}"
        weighted = rng.random() < 0.6
        if weighted:
            ch = rng.choice([4, 8, 16, 32])
            if rng.random() < 0.4 and hw > 2:
                hw //= 2
        inputs = [outs[-1]]
        shape = (hw, hw, ch)
        op = "conv" if weighted else "relu"
        if branchy and not weighted and len(outs) >= 3 and rng.random() < 0.5:
            # an add joining an earlier tensor of the same shape, if any (a skip connection)
            same = [t for t in outs[1:-1] if rows[int(t[1:].split(":")[0])][3] == shape]
            if same:
                inputs = [same[-1], outs[-1]]
                op = "add"
        weights = rng.randint(50, 5000) if weighted else 0
        rows.append((name, op, inputs, shape, weights))
        outs.append(f"{name}:0")
    graph = make_graph(f"random{seed}", (16, 16, 3), rows)
    order = graph.topological_order()
    edge_base = {n: rng.uniform(0.5, 5.0) for n in order}
    cloud = {n: edge_base[n] * rng.uniform(0.02, 0.2) for n in order}
    prof = profile_for(graph, edge_base, cloud, bits)
    wscale = {n: rng.uniform(0.5, 50.0) for n in order if graph.layer(n).quantizable}
    ascale = {n: rng.uniform(0.5, 50.0) for n in order}
    return graph, prof, sensitivity_for(graph, wscale, ascale, bits)
