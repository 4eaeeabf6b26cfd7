"""Plans for convert/codegen tests: a real `plan_model` plan, optionally forced onto a chosen split and bits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from splitsdk.graph import load_graph
from splitsdk.plan import Constraints, load_plan, plan_model, save_plan
from splitsdk.plan.schema import MAX_WIRE_BITS, PlannedCrossing
from splitsdk.profile.types import Link


def make_plan(model: Path, out: Path, target: str = "cortex-a7") -> Path:
    plan = plan_model(str(model), target, Link(3.0, 10.0), Constraints(), exact=None)
    save_plan(plan, out)
    return out


def forced_plan(model: Path, out: Path, split: int, wbits: int = 8, abits: int = 8,
                crossing_bits: dict[str, int] | None = None, target: str = "cortex-a7",
                layer_bits: dict[str, tuple[int, int]] | None = None) -> Path:
    """The planner's plan with its solution replaced by split `split` at uniform bits, or per layer
    (weight bits, activation bits) where `layer_bits` says (tests only). A crossing tensor goes at
    `crossing_bits`, else at its producer's activation bits up to the wire's widest (8)."""
    make_plan(model, out, target)
    plan = load_plan(out)
    graph = load_graph(model)
    cand = graph.split_candidates()[split]
    edge = list(cand.edge_layers)
    n = len(graph)
    kind = "CLOUD_ONLY" if split == 0 else "EDGE_ONLY" if split == n else "SPLIT"
    layer_bits = layer_bits or {}
    abits_map = {name: layer_bits.get(name, (wbits, abits))[1] for name in edge}
    crossing = tuple(
        PlannedCrossing(
            tensor=c.tensor, shape=c.shape,
            bits=(crossing_bits or {}).get(
                c.tensor, min(abits_map.get(graph.tensors[c.tensor].producer or "", 8), MAX_WIRE_BITS)
            ),
            producer=graph.tensors[c.tensor].producer,
        )
        for c in cand.crossing
    )
    sol = dataclasses.replace(
        plan.solution, kind=kind, split_index=split, edge_layers=tuple(edge), crossing=crossing,
        weight_bits={name: layer_bits.get(name, (wbits, abits))[0] for name in edge if graph.layer(name).weights},
        activation_bits=abits_map,
        reason="forced by the test",
    )
    save_plan(dataclasses.replace(plan, solution=sol), out)
    return out
