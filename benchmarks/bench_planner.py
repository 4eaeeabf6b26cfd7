"""The paper's Fig. 6 / Table 2 side by side: AUTO-SPLIT vs the baselines on the paper's model set.

For each model (Keras builds, random weights) and uplink (1/3/10/20 Mbit/s), with the paper's
devices (edge `eyeriss`, cloud `tpu`): predicted latency normalised to CLOUD-ONLY for AUTO-SPLIT
and every baseline, the chosen split, edge memory vs QDMP_E and QDMP_E+U4, Algorithm 1's optimality
gap against the exact MILP optimum (the plan is Algorithm 1's candidates refined: `splitsdk.plan.refine`),
and the planner's own run time. A second part measures the gap
on random synthetic DAGs. Sensitivities are measured on random inputs (`--samples`), so the error
proxy, and with it the bit choices, are only indicative; latencies come from the analytic profile.

    .venv/bin/python benchmarks/bench_planner.py [--models resnet18,mobilenet_v2] [-o out/bench_planner.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
UPLINKS = (1.0, 3.0, 10.0, 20.0)
PAPER = "paper (Fig. 6 average): CLOUD-ONLY -70%, Neurosurgeon -47%, QDMP -40%, U8 -25%"


# -- models ----------------------------------------------------------------------------------------
def _L() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras.layers


def _cbr(x: Any, f: int, k: int, s: int = 1, act: str = "relu", groups: int = 1) -> Any:
    L = _L()
    x = L.Conv2D(f, k, strides=s, padding="same", use_bias=False, groups=groups)(x)
    x = L.BatchNormalization()(x)
    return L.LeakyReLU(0.1)(x) if act == "leaky" else L.ReLU()(x) if act == "relu" else x


def resnet18() -> Any:
    import keras

    L = _L()
    inp = keras.Input((224, 224, 3))
    x = _cbr(inp, 64, 7, 2)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    for i, f in enumerate((64, 128, 256, 512)):
        for j in range(2):
            s = 2 if (j == 0 and i > 0) else 1
            y = _cbr(x, f, 3, s)
            y = _cbr(y, f, 3, 1, act="none")
            sc = _cbr(x, f, 1, s, act="none") if s != 1 or x.shape[-1] != f else x
            x = L.ReLU()(L.Add()([y, sc]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000)(x), name="resnet18")


def resnext50() -> Any:
    import keras

    L = _L()
    inp = keras.Input((224, 224, 3))
    x = _cbr(inp, 64, 7, 2)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    for i, (blocks, f) in enumerate(((3, 128), (4, 256), (6, 512), (3, 1024))):
        for j in range(blocks):
            s = 2 if (j == 0 and i > 0) else 1
            y = _cbr(x, f, 1)
            y = _cbr(y, f, 3, s, groups=32)
            y = _cbr(y, 2 * f, 1, act="none")
            sc = _cbr(x, 2 * f, 1, s, act="none") if j == 0 else x
            x = L.ReLU()(L.Add()([y, sc]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000)(x), name="resnext50")


def googlenet() -> Any:
    import keras

    L = _L()

    def inception(x: Any, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> Any:
        b1 = _cbr(x, c1, 1)
        b2 = _cbr(_cbr(x, c3r, 1), c3, 3)
        b3 = _cbr(_cbr(x, c5r, 1), c5, 5)
        b4 = _cbr(L.MaxPooling2D(3, 1, padding="same")(x), pp, 1)
        return L.Concatenate()([b1, b2, b3, b4])

    inp = keras.Input((224, 224, 3))
    x = _cbr(inp, 64, 7, 2)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    x = _cbr(_cbr(x, 64, 1), 192, 3)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    x = inception(x, 64, 96, 128, 16, 32, 32)
    x = inception(x, 128, 128, 192, 32, 96, 64)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    for cfg in (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ):
        x = inception(x, *cfg)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    x = inception(x, 256, 160, 320, 32, 128, 128)
    x = inception(x, 384, 192, 384, 48, 128, 128)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000)(x), name="googlenet")


def mnasnet() -> Any:
    """MnasNet-A1's block layout (without squeeze-and-excitation)."""
    import keras

    L = _L()

    def mbconv(x: Any, expand: int, k: int, f: int, s: int) -> Any:
        y = _cbr(x, x.shape[-1] * expand, 1) if expand > 1 else x
        y = L.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False)(y)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = _cbr(y, f, 1, act="none")
        return L.Add()([x, y]) if s == 1 and x.shape[-1] == f else y

    inp = keras.Input((224, 224, 3))
    x = _cbr(inp, 32, 3, 2)
    x = mbconv(x, 1, 3, 16, 1)
    for expand, k, f, n, s in (
        (6, 3, 24, 2, 2),
        (3, 5, 40, 3, 2),
        (6, 3, 80, 4, 2),
        (6, 3, 112, 2, 1),
        (6, 5, 160, 3, 2),
        (6, 3, 320, 1, 1),
    ):
        for j in range(n):
            x = mbconv(x, expand, k, f, s if j == 0 else 1)
    x = _cbr(x, 1280, 1)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000)(x), name="mnasnet")


def _darknet_res(x: Any, f: int, n: int) -> Any:
    L = _L()
    x = _cbr(x, f, 3, 2, act="leaky")
    for _ in range(n):
        y = _cbr(_cbr(x, f // 2, 1, act="leaky"), f, 3, act="leaky")
        x = L.Add()([x, y])
    return x


def _yolo(spp: bool) -> Any:
    import keras

    L = _L()
    inp = keras.Input((416, 416, 3))
    x = _cbr(inp, 32, 3, act="leaky")
    x = _darknet_res(x, 64, 1)
    x = _darknet_res(x, 128, 2)
    r36 = x = _darknet_res(x, 256, 8)
    r61 = x = _darknet_res(x, 512, 8)
    x = _darknet_res(x, 1024, 4)
    outs = []
    for i, (f, skip) in enumerate(((512, r61), (256, r36), (128, None))):
        x = _cbr(_cbr(_cbr(x, f, 1, act="leaky"), 2 * f, 3, act="leaky"), f, 1, act="leaky")
        if spp and i == 0:
            pools = [L.MaxPooling2D(k, 1, padding="same")(x) for k in (5, 9, 13)]
            x = _cbr(L.Concatenate()([*pools, x]), f, 1, act="leaky")
        x = _cbr(_cbr(x, 2 * f, 3, act="leaky"), f, 1, act="leaky")
        outs.append(L.Conv2D(255, 1)(_cbr(x, 2 * f, 3, act="leaky")))
        if skip is not None:
            x = L.UpSampling2D(2)(_cbr(x, f // 2, 1, act="leaky"))
            x = L.Concatenate()([x, skip])
    return keras.Model(inp, outs, name="yolov3_spp" if spp else "yolov3")


def yolov3() -> Any:
    return _yolo(False)


def yolov3_spp() -> Any:
    return _yolo(True)


def yolov3_tiny() -> Any:
    import keras

    L = _L()
    inp = keras.Input((416, 416, 3))
    x = inp
    for f in (16, 32, 64, 128):
        x = L.MaxPooling2D(2, 2)(_cbr(x, f, 3, act="leaky"))
    r8 = x = _cbr(x, 256, 3, act="leaky")
    x = L.MaxPooling2D(2, 2)(x)
    x = _cbr(x, 512, 3, act="leaky")
    x = L.MaxPooling2D(2, 1, padding="same")(x)
    x = _cbr(_cbr(x, 1024, 3, act="leaky"), 256, 1, act="leaky")
    out1 = L.Conv2D(255, 1)(_cbr(x, 512, 3, act="leaky"))
    y = L.UpSampling2D(2)(_cbr(x, 128, 1, act="leaky"))
    y = L.Concatenate()([y, r8])
    out2 = L.Conv2D(255, 1)(_cbr(y, 256, 3, act="leaky"))
    return keras.Model(inp, [out1, out2], name="yolov3_tiny")


def resnet50() -> Any:
    import keras

    _L()  # seeds the random weights
    return keras.applications.ResNet50(weights=None)


def mobilenet_v2() -> Any:
    import keras

    _L()  # seeds the random weights
    return keras.applications.MobileNetV2(weights=None)


MODELS: dict[str, Callable[[], Any]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "googlenet": googlenet,
    "mobilenet_v2": mobilenet_v2,
    "mnasnet": mnasnet,
    "resnext50": resnext50,
    "yolov3_tiny": yolov3_tiny,
    "yolov3": yolov3,
    "yolov3_spp": yolov3_spp,
}


# -- one model -------------------------------------------------------------------------------------
def bench_model(name: str, edge: str, cloud: str, samples: int) -> list[dict[str, Any]]:
    from splitsdk.graph import load_graph, model_sha256
    from splitsdk.plan import PlanMeta, PlanProblem, make_plan
    from splitsdk.plan.pipeline import default_max_error
    from splitsdk.profile import build_profile
    from splitsdk.profile.types import FLOAT_BITS, Link
    from splitsdk.quant import load_dataset, measure_sensitivity
    from splitsdk.target import load_target

    model = MODELS[name]()
    graph = load_graph(model)
    chain = load_graph(model, optimize_graph=False)
    edge_t, cloud_t = load_target(edge), load_target(cloud)
    profile = build_profile(graph, edge_t, cloud_t)
    chain_profile = build_profile(chain, edge_t, cloud_t)
    bits = sorted(edge_t.quant.candidate_bits)
    data = load_dataset(None, graph.tensors[graph.inputs[0]].shape, samples=samples)
    t = time.perf_counter()
    sens = measure_sensitivity(graph, data, bits, model_sha256=model_sha256(model), batch_size=1)
    sens_s = time.perf_counter() - t
    rows = []
    for mbps in UPLINKS:
        storage = {b: edge_t.quant.storage_bits(b) for b in [*bits, FLOAT_BITS]}
        p = PlanProblem(
            graph, profile, sens, Link(mbps, 0.0), bits, edge_t.device.app_memory_bytes, storage_bits=storage
        )
        p.max_error = default_max_error(p)
        t = time.perf_counter()
        plan = make_plan(p, PlanMeta(name), chain_graph=chain, chain_profile=chain_profile, exact=None)
        plan_s = time.perf_counter() - t
        t = time.perf_counter()
        from splitsdk.plan import exact

        opt = exact.milp(p)
        exact_s = time.perf_counter() - t
        b = plan.baselines
        cloud_ms = b["cloud_only"].predicted.total_ms
        s = plan.solution
        rows.append(
            {
                "model": name,
                "mbps": mbps,
                "layers": len(p.order),
                "split": s.split_index,
                "kind": s.kind,
                "auto": s.predicted.total_ms / cloud_ms,
                **{k: b[k].predicted.total_ms / cloud_ms for k in ("neurosurgeon", "qdmp", "u8", "qdmp_e_u4")},
                "u8_fits": b["u8"].fits,
                "u4_ok": b["qdmp_e_u4"].predicted.error <= p.error_limit,
                "edge_mb": s.predicted.edge_weight_bytes / 1e6,
                "qdmp_e_mb": b["qdmp_e"].predicted.edge_weight_bytes / 1e6,
                "qdmp_e_u4_mb": b["qdmp_e_u4"].predicted.edge_weight_bytes / 1e6,
                "gap": (s.predicted.total_ms - opt.evaluation.total_ms) / opt.evaluation.total_ms,
                "exact_split": opt.assignment.split_index,
                "plan_s": plan_s,
                "exact_s": exact_s,
                "sens_s": sens_s,
                "candidates": len(plan.candidates),
            }
        )
        print(
            f"  {name} @ {mbps:g} Mbit/s: {s.kind} split {s.split_index}/{len(p.order)}, "
            f"{rows[-1]['auto']:.2f}x CLOUD-ONLY, gap {rows[-1]['gap'] * 100:.1f}%, plan {plan_s:.2f} s",
            file=sys.stderr,
        )
    return rows


def synthetic_gaps(n_problems: int) -> list[float]:
    """The default plan (Algorithm 1 refined, `splitsdk.plan.refine`) vs the exact optimum on random DAGs
    (8..14 layers, B = {2, 4, 8})."""
    from splitsdk.plan import PlanProblem, candidate_list, exact
    from splitsdk.plan.refine import refine
    from splitsdk.plan.synthetic import random_problem_parts
    from splitsdk.profile.types import Link

    gaps = []
    for seed in range(n_problems):
        graph, prof, sens = random_problem_parts(seed, 8 + seed % 7, [2, 4, 8])
        memory = int(graph.total_weights * 0.6 + graph.input_elements * 1.5)
        p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), [2, 4, 8], memory, max_error=5.0)
        chosen = refine(p, candidate_list(p)).best
        opt = exact.milp(p)
        gaps.append(exact.gap(chosen.evaluation.total_ms, opt.evaluation.total_ms))
    return gaps


def _reduction(rows: list[dict[str, Any]], key: str) -> str:
    vals = [1 - r["auto"] / r[key] for r in rows if key != "u8" or r["u8_fits"]]
    return f"{statistics.mean(vals) * 100:.0f}%" if vals else "n/a"


def markdown(rows: list[dict[str, Any]], gaps: list[float], edge: str, cloud: str) -> str:
    out = [
        f"### Planner benchmark: {edge} -> {cloud} (analytic profiles, random weights and inputs)",
        "",
        "| model | Mbit/s | split/N | kind | AUTO-SPLIT | Neurosurgeon | QDMP | U8 | QDMP_E+U4 | edge MB | "
        "QDMP_E MB | QDMP_E+U4 MB | gap (optimal split) | plan s | MILP s |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['mbps']:g} | {r['split']}/{r['layers']} | {r['kind']} | {r['auto']:.2f} | "
            f"{r['neurosurgeon']:.2f} | {r['qdmp']:.2f} | {r['u8']:.2f}{'' if r['u8_fits'] else '*'} | "
            f"{r['qdmp_e_u4']:.2f}{'' if r['u4_ok'] else '†'} | {r['edge_mb']:.2f} | {r['qdmp_e_mb']:.2f} | "
            f"{r['qdmp_e_u4_mb']:.2f} | "
            f"{r['gap'] * 100:.1f}% ({r['exact_split']}) | {r['plan_s']:.2f} | {r['exact_s']:.1f} |"
        )
    out += [
        "",
        "Latencies are normalised to CLOUD-ONLY (lower is better); * = does not fit the device; "
        "† = above the error-proxy threshold AUTO-SPLIT must meet (the whole model at 8 bits).",
        "",
    ]
    if rows:
        out.append(
            f"Average latency reduction of AUTO-SPLIT: vs CLOUD-ONLY "
            f"{statistics.mean(1 - r['auto'] for r in rows) * 100:.0f}%, vs Neurosurgeon "
            f"{_reduction(rows, 'neurosurgeon')}, vs QDMP {_reduction(rows, 'qdmp')}, vs U8 {_reduction(rows, 'u8')}; "
            + PAPER
            + "."
        )
        out.append(
            f"The plan's gap on these models: mean {statistics.mean(r['gap'] for r in rows) * 100:.2f}%, "
            f"max {max(r['gap'] for r in rows) * 100:.2f}%."
        )
    if gaps:
        out.append(
            f"On {len(gaps)} random synthetic DAGs (8-14 layers, B = {{2,4,8}}, binding memory and error "
            f"limits): mean gap {statistics.mean(gaps) * 100:.1f}%, median {statistics.median(gaps) * 100:.1f}%, "
            f"max {max(gaps) * 100:.1f}%, optimal in {sum(g < 1e-9 for g in gaps)} of {len(gaps)}."
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--edge", default="eyeriss")
    ap.add_argument("--cloud", default="tpu")
    ap.add_argument("--samples", type=int, default=2, help="random calibration samples for the sensitivity")
    ap.add_argument("--synthetic", type=int, default=40, help="random DAGs for the gap statistics (0: none)")
    ap.add_argument("-o", "--output", type=Path, default=Path("out/bench_planner.md"))
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for name in [m for m in args.models.split(",") if m]:
        if name not in MODELS:
            print(f"bench_planner: unknown model {name!r}", file=sys.stderr)
            return 2
        print(f"{name} ...", file=sys.stderr)
        rows += bench_model(name, args.edge, args.cloud, args.samples)
    gaps = synthetic_gaps(args.synthetic) if args.synthetic else []
    return write_report(markdown(rows, gaps, args.edge, args.cloud), args.output)


def write_report(text: str, path: Path) -> int:
    """Write a benchmark's markdown to `path` (folders made) and print it; the exit status 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
