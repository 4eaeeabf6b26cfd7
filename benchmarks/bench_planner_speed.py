"""Algorithm 1's CPU time on the paper's larger models: the array implementation vs the previous one.

For YOLOv3, ResNet-50 and MobileNetV2 (Keras builds from bench_planner, random weights and
calibration inputs; edge `eyeriss`, cloud `tpu`, 3 Mbit/s), one run measures `candidate_list`
(time.process_time, fresh PlanProblem each time) and `reference_candidate_list`, the previous
implementation kept here (per-probe dicts, the live sets weighed step by step), checks that both give
the same candidate list, and prints the times, old / new, and new / the 0.3 s goal.

    .venv/bin/python benchmarks/bench_planner_speed.py [--models yolov3,resnet50,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
GOAL_S = 0.3  # Algorithm 1 on YOLOv3


# -- the previous implementation (the benchmark's baseline and the tests' oracle) ------------------
def reference_allocate(items: Mapping[str, Any], fits: Callable[[dict[str, int]], bool]) -> dict[str, int] | None:
    """lagrangian.allocate as it was: one allocation dict per probe."""
    from splitsdk.plan.lagrangian import allocation, lambdas, lower_hull

    hulls = {name: lower_hull(pts) for name, pts in items.items()}
    grid = lambdas(hulls)
    if not fits(allocation(hulls, grid[-1])):
        return None
    lo, hi = 0, len(grid) - 1
    if fits(allocation(hulls, grid[0])):
        return allocation(hulls, grid[0])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(allocation(hulls, grid[mid])):
            hi = mid
        else:
            lo = mid
    return allocation(hulls, grid[hi])


def reference_evaluate(problem: Any, a: Any) -> Any:
    """PlanProblem.evaluate as it was: the peak over the live-set dicts (`peak_activation_bytes`)."""
    from splitsdk.plan.problem import Evaluation

    ev = problem.evaluate(a)  # every other figure is computed as before
    peak = problem.peak_activation_bytes(problem.live_steps(a.split_index), a.abits)
    return Evaluation(ev.edge_ms, ev.transmit_ms, ev.cloud_ms, ev.transmit_bytes, ev.edge_weight_bytes, peak, ev.error)


def reference_potential_splits(problem: Any) -> list[int]:
    bmin = problem.bits[0]
    out = []
    for k in range(1, len(problem.order) + 1):
        uni = problem.uniform(k, bmin)
        mem = problem.weight_bytes(k, uni.wbits) + problem.peak_activation_bytes(problem.live_steps(k), uni.abits)
        if mem <= problem.memory_bytes and problem.transmit_bytes(k, uni.abits) <= problem.input_bytes:
            out.append(k)
    return out


def reference_split_candidates(problem: Any, k: int) -> list[Any]:
    from splitsdk.plan.autosplit import ORIGIN_LAGRANGIAN, ORIGIN_UNIFORM, Candidate, activation_items, weight_items
    from splitsdk.plan.problem import Assignment

    steps = problem.live_steps(k)
    keys = problem.weight_keys(k)
    w_budgets = sorted({sum(problem.key_bytes(key, b) for key in keys) for b in problem.bits})
    a_budgets = sorted({problem.peak_activation_bytes(steps, problem.uniform(k, b).abits) for b in problem.bits})
    w_items, a_items = weight_items(problem, k), activation_items(problem, k)

    def rate_fits(budget: int) -> Callable[[dict[str, int]], bool]:
        return lambda alloc: sum(w_items[name][b][0] for name, b in alloc.items()) <= budget

    def peak_fits(budget: int) -> Callable[[dict[str, int]], bool]:
        return lambda alloc: problem.peak_activation_bytes(steps, alloc) <= budget

    w_allocs = {mw: reference_allocate(w_items, rate_fits(mw)) for mw in w_budgets}
    found = []
    for ma in a_budgets:
        abits = reference_allocate(a_items, peak_fits(ma))
        for mw in w_budgets:
            kbits = w_allocs[mw]
            if abits is None or kbits is None:
                continue
            wbits = {u: kbits[key] for key, (_, users) in keys.items() for u in users}
            a = Assignment.make(k, wbits, abits)
            ev = reference_evaluate(problem, a)
            if ev.memory_bytes <= problem.memory_bytes:
                found.append(Candidate(a, ev, ORIGIN_LAGRANGIAN, (mw, ma)))
    for bw in problem.bits:
        for ba in problem.bits:
            a = problem.uniform(k, bw, ba)
            ev = reference_evaluate(problem, a)
            if ev.memory_bytes <= problem.memory_bytes:
                found.append(Candidate(a, ev, ORIGIN_UNIFORM))
    return found


def reference_candidate_list(problem: Any) -> list[Any]:
    """autosplit.candidate_list as it was."""
    from splitsdk.plan.autosplit import Candidate, cloud_only

    found = [cloud_only(problem)]
    for k in reference_potential_splits(problem):
        found.extend(reference_split_candidates(problem, k))
    unique: dict[Any, Any] = {}
    for c in found:
        a = c.assignment
        unique.setdefault((a.split_index, a.weight_bits, a.activation_bits), c)
    return sorted(unique.values(), key=Candidate.sort_key)


# -- the measurement -------------------------------------------------------------------------------
def bench_model(name: str, edge: str, cloud: str, mbps: float) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_planner import MODELS

    from splitsdk.graph import load_graph, model_sha256
    from splitsdk.plan import PlanProblem, candidate_list
    from splitsdk.plan.pipeline import default_max_error
    from splitsdk.profile import build_profile
    from splitsdk.profile.types import FLOAT_BITS, Link
    from splitsdk.quant import load_dataset, measure_sensitivity
    from splitsdk.target import load_target

    model = MODELS[name]()
    graph = load_graph(model)
    edge_t, cloud_t = load_target(edge), load_target(cloud)
    profile = build_profile(graph, edge_t, cloud_t)
    bits = sorted(edge_t.quant.candidate_bits)
    data = load_dataset(None, graph.tensors[graph.inputs[0]].shape, samples=2)
    sens = measure_sensitivity(graph, data, bits, model_sha256=model_sha256(model), batch_size=1)
    storage = {b: edge_t.quant.storage_bits(b) for b in [*bits, FLOAT_BITS]}

    def problem() -> PlanProblem:
        p = PlanProblem(graph, profile, sens, Link(mbps, 0.0), bits, edge_t.device.app_memory_bytes,
                        storage_bits=storage)
        p.max_error = default_max_error(p)
        return p

    def timed(run: Callable[[PlanProblem], list[Any]]) -> tuple[float, list[Any]]:
        p = problem()
        t = time.process_time()
        out = run(p)
        return time.process_time() - t, out

    new_s, new = timed(candidate_list)
    old_s, old = timed(reference_candidate_list)
    same = [(c.assignment, c.evaluation, c.origin, c.budget) for c in new] == [
        (c.assignment, c.evaluation, c.origin, c.budget) for c in old
    ]
    splits = len({c.assignment.split_index for c in new} - {0})
    return {"model": name, "layers": len(graph), "splits": splits, "candidates": len(new), "old_s": old_s,
            "new_s": new_s, "same": same}


def markdown(rows: list[dict[str, Any]], edge: str, cloud: str, mbps: float) -> str:
    out = [
        f"### Algorithm 1 CPU time: {edge} -> {cloud}, {mbps:g} Mbit/s (time.process_time, one run)",
        "",
        "| model | layers | splits with candidates | candidates | previous s | now s | previous / now | "
        f"now / {GOAL_S} s | same list |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['layers']} | {r['splits']} | {r['candidates']} | {r['old_s']:.2f} | "
            f"{r['new_s']:.3f} | {r['old_s'] / r['new_s']:.1f}x | {r['new_s'] / GOAL_S:.2f} | "
            f"{'yes' if r['same'] else 'NO'} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="yolov3,resnet50,mobilenet_v2")
    ap.add_argument("--edge", default="eyeriss")
    ap.add_argument("--cloud", default="tpu")
    ap.add_argument("--mbps", type=float, default=3.0)
    ap.add_argument("-o", "--output", type=Path, default=Path("out/bench_planner_speed.md"))
    args = ap.parse_args(argv)
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        print(f"{name} ...", file=sys.stderr)
        rows.append(bench_model(name, args.edge, args.cloud, args.mbps))
    text = markdown(rows, args.edge, args.cloud, args.mbps)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
