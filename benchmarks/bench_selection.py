"""The planner's choice, judged: latency against the baselines and the exact optimum, accuracy on trained models.

Per (model, uplink), edge `eyeriss` -> cloud `tpu`, one run: the default plan's (error-proxy budget, refined by
the exact solver: `splitsdk.plan.refine`) latency / the best buildable baseline (fits the memory and meets the
same error budget; never above 1), / CLOUD-ONLY, / U8, its gap to the exact MILP optimum of the same problem
(and Algorithm 1's own gap, for comparison), the certified gap the plan states, and the plan's wall time.

Random-weight ImageNet models (bench_planner's builds) are kept for latency and speed only: their outputs are
near-uniform, so their accuracy says nothing. Accuracy is judged on trained models: the digits CNN
(sdk/examples/digits) and the small licence-plate reader (sdk/examples/lpr, its BiLSTM kept in the cloud).
For those a second plan selects by accuracy without labels (`--max-accuracy-drop`, label-free agreement with
the float model on calibration data), once per calibration size of `--selection-frames` (the first N frames of
the same calibration data: 32 was the earlier setting, 256 the label-free selection's sample now), and the
choice's accuracy drop is then measured with labels on held-out test data. The same run measures Algorithm 1's
CPU time on YOLOv3 against the 0.3 s goal and the previous implementation (`bench_planner_speed`).

    .venv/bin/python benchmarks/bench_selection.py [--models digits,lpr_small,mobilenet_v2,resnet50,yolov3]
        [--selection-frames 32,256] [--rates 1,3,10,20] [--speed-models yolov3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
UPLINKS = (1.0, 3.0, 10.0, 20.0)
TRAINED = ("digits", "lpr_small")
MAX_DROP = 1.0  # points, for the accuracy-selected plans
SPEED_MBPS = 3.0  # Algorithm 1's CPU time is measured at this rate
JPEG_BASELINES = "cloud_only_jpeg"  # lossy frames, judged by bench_jpeg; not among the baselines compared here


def _trained(name: str, folder: Path, frames: list[int]) -> tuple[str, dict[int, Path], Path, str, tuple[str, ...]]:
    """(model file, {N: .npz of the first N calibration frames, without labels}, labelled test .npz, metric,
    cloud ops) of a trained model."""
    import numpy as np

    cloud_ops: tuple[str, ...] = ()
    if name == "digits":
        from splitsdk.examples.digits import data, weights_path

        x = data.calibration(max(frames))
        test = data.save_npz(folder / "digits-test.npz", "test")
        model, metric = str(weights_path()), "top1"
    else:
        from splitsdk.examples.lpr import data as lpr_data
        from splitsdk.examples.lpr import weights_path as lpr_weights

        with np.load(lpr_data.write_npz(folder / "lpr-calib-labelled.npz", lpr_data.SPLITS["train"], max(frames))) as z:
            x = z["x"]
        test = lpr_data.write_npz(folder / "lpr-test.npz", lpr_data.SPLITS["test"], 200)
        model, metric, cloud_ops = str(lpr_weights("small")), "lpr_exact", ("Bidirectional",)
    calib = {}
    for n in frames:
        calib[n] = folder / f"{name}-calib-{n}.npz"
        np.savez(calib[n], x=x[:n])
    return model, calib, test, metric, cloud_ops


def _ratios(plan: Any, opt_ms: float | None, a1_ms: float, ok: Any) -> dict[str, Any]:
    """`ok(baseline) -> bool`: whether a baseline meets the plan's accuracy constraint."""
    b = plan.baselines
    s = plan.solution.predicted
    buildable = [x for k, x in b.items() if x.fits and ok(x) and not k.startswith(JPEG_BASELINES)]
    best = min(buildable, key=lambda x: x.predicted.total_ms)
    return {
        "auto_ms": s.total_ms,
        "vs_best": s.total_ms / best.predicted.total_ms,
        "best_name": best.name,
        "vs_cloud": s.total_ms / b["cloud_only"].predicted.total_ms,
        "vs_u8": s.total_ms / b["u8"].predicted.total_ms,
        "u8_fits": b["u8"].fits,
        "u8_ok": ok(b["u8"]),
        "gap": None if opt_ms is None else (s.total_ms - opt_ms) / opt_ms,
        "a1_gap": None if opt_ms is None else (a1_ms - opt_ms) / opt_ms,
        "certified": plan.selection.certified_gap,
        "kind": plan.solution.kind,
        "split": plan.solution.split_index,
        "layers": len(plan.layers),
        "origin": plan.solution.origin,
    }


def bench_model(name: str, edge: str, cloud: str, samples: int, folder: Path, frames: list[int],
                uplinks: list[float]) -> list[dict[str, Any]]:
    from splitsdk.graph import load_graph, model_sha256
    from splitsdk.plan import Constraints, PlanMeta, PlanProblem, exact, make_plan, plan_model
    from splitsdk.plan.accuracy import make_label_free_evaluator
    from splitsdk.plan.autosplit import Candidate, candidate_list, select
    from splitsdk.plan.pipeline import _cloud_ops_bound, _max_split, default_max_error
    from splitsdk.profile import build_profile
    from splitsdk.profile.types import FLOAT_BITS, Link
    from splitsdk.quant import load_dataset, measure_sensitivity
    from splitsdk.target import load_target

    trained = name in TRAINED
    calibs: dict[int, Path] = {}
    if trained:
        model, calibs, test, metric, cloud_ops = _trained(name, folder, frames)
        calib: Path | None = calibs[max(frames)]  # the error-proxy plan's sensitivities: all the frames
    else:
        import bench_planner

        model, calib, test, metric, cloud_ops = bench_planner.MODELS[name](), None, None, "top1", ()
    graph = load_graph(model)
    chain = load_graph(model, optimize_graph=False)
    edge_t, cloud_t = load_target(edge), load_target(cloud)
    profile, chain_profile = build_profile(graph, edge_t, cloud_t), build_profile(chain, edge_t, cloud_t)
    bits = sorted(edge_t.quant.candidate_bits)
    data = load_dataset(calib, graph.tensors[graph.inputs[0]].shape, samples=samples)
    sens = measure_sensitivity(graph, data, bits, model_sha256=model_sha256(model), batch_size=1)
    max_split = _max_split(graph, cloud_ops)
    names = set(graph.topological_order())

    def deployable(x: Any) -> bool:  # a baseline running a layer of `cloud_ops` on the edge cannot be built
        ops = {(graph if n in names else chain).layer(n).op for n in x.edge_layers}
        return not ops & set(cloud_ops)

    rows = []
    judges: dict[int, Any] = {}
    for mbps in uplinks:
        storage = {b: edge_t.quant.storage_bits(b) for b in [*bits, FLOAT_BITS]}
        p = PlanProblem(graph, profile, sens, Link(mbps, 0.0), bits, edge_t.device.app_memory_bytes,
                        storage_bits=storage, model_file=edge_t.quant.model_file)
        p.max_error = default_max_error(p)
        t = time.perf_counter()
        plan = make_plan(p, PlanMeta(name), chain_graph=chain, chain_profile=chain_profile, exact=None,
                         bound=_cloud_ops_bound(graph, max_split))
        plan_s = time.perf_counter() - t
        cands = candidate_list(p)
        if max_split is not None:
            cands = [c for c in cands if c.assignment.split_index <= max_split]
        a1_ms = select(p, cands).chosen.evaluation.total_ms
        opt_ms = None
        if max_split is None:  # the exact solvers cannot restrict the split
            t = time.perf_counter()
            opt_ms = exact.milp(p).evaluation.total_ms
            exact_s = time.perf_counter() - t
        row = {"model": name, "mbps": mbps, "mode": "error proxy", "plan_s": plan_s,
               "exact_s": exact_s if opt_ms is not None else None,
               **_ratios(plan, opt_ms, a1_ms, lambda x, e=p.error_limit: deployable(x) and x.predicted.error <= e)}
        rows.append(row)
        print(f"  {name} @ {mbps:g}: {row['kind']} {row['split']}/{row['layers']} ({row['origin']}), "
              f"x{row['vs_best']:.3f} best buildable, gap {row['gap']}, plan {plan_s:.2f} s", file=sys.stderr)
        for n, calib_n in calibs.items():
            t = time.perf_counter()
            acc_plan = plan_model(model, edge, Link(mbps, 0.0), Constraints(max_accuracy_drop=MAX_DROP,
                                  cloud_ops=cloud_ops), cloud=cloud, calib=calib_n, exact=None, metric=metric)
            acc_s = time.perf_counter() - t
            label_free = acc_plan.solution.predicted.accuracy_drop
            measured = _labelled_drop(acc_plan, model, test, calib_n, metric)
            if n not in judges:  # the same for every rate: it judges the graph on the calibration frames
                judges[n] = make_label_free_evaluator(p, load_dataset(calib_n, graph.tensors[graph.inputs[0]].shape),
                                                      metric=metric)
            judge = judges[n]

            def meets(x: Any, p: PlanProblem = p, judge: Any = judge) -> bool:  # the same label-free threshold
                if x.split_index is None or not deployable(x):
                    return False
                if min(x.weight_bits, x.activation_bits) >= FLOAT_BITS:  # float: nothing quantised
                    return True
                a = p.uniform(x.split_index, x.weight_bits, x.activation_bits)
                return x.split_index == 0 or judge(Candidate(a, p.evaluate(a), "baseline")) <= MAX_DROP

            rows.append({"model": name, "mbps": mbps, "mode": f"label-free <= {MAX_DROP:g}, {len(judge.x)} frames",
                         "plan_s": acc_s,
                         "exact_s": None, **_ratios(acc_plan, None, a1_ms, meets),
                         "label_free_drop": label_free, "test_drop": measured})
            print(f"  {name} @ {mbps:g} by accuracy on {n} frames: {acc_plan.solution.kind} "
                  f"{acc_plan.solution.split_index}, label-free drop {label_free}, test drop {measured:.2f}, "
                  f"plan {acc_s:.1f} s", file=sys.stderr)
    return rows


def _labelled_drop(plan: Any, model: Any, test: Path | None, calib: Path | None, metric: str) -> float:
    """The chosen solution's accuracy drop on the labelled test data (ranges calibrated on the calibration set)."""
    from splitsdk.graph import load_graph
    from splitsdk.plan.accuracy import AccuracyDrop, calibrate, get_metric
    from splitsdk.plan.autosplit import Candidate
    from splitsdk.plan.problem import Assignment, Evaluation
    from splitsdk.quant import load_dataset

    graph = load_graph(model)
    shape = graph.tensors[graph.inputs[0]].shape
    ev, cal = load_dataset(test, shape, samples=10**9), load_dataset(calib, shape, samples=10**9)
    score = get_metric(metric)
    y = ev.y
    assert y is not None
    drop = AccuracyDrop(graph, ev.x, calibrate(graph, cal.x), lambda out: score(out, y), "labelled test")
    s = plan.solution
    a = Assignment.make(s.split_index, s.weight_bits, s.activation_bits)
    return drop(Candidate(a, Evaluation(0, 0, 0, 0, 0, 0, 0.0), "chosen"))


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.2f}%"


def markdown(rows: list[dict[str, Any]], speed: list[dict[str, Any]], edge: str, cloud: str) -> str:
    out = [
        f"### Selection benchmark: {edge} -> {cloud}",
        "",
        "| model | Mbit/s | selection | choice | origin | / best buildable | / CLOUD-ONLY | / U8 | gap to exact | "
        "Algorithm 1's gap | certified | plan s | label-free drop | test drop |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        lf, td = r.get("label_free_drop"), r.get("test_drop")
        out.append(
            f"| {r['model']} | {r['mbps']:g} | {r['mode']} | {r['kind']} {r['split']}/{r['layers']} | {r['origin']} | "
            f"{r['vs_best']:.3f} ({r['best_name']}) | {r['vs_cloud']:.3f} | {r['vs_u8']:.3f}"
            f"{'*' if not r['u8_fits'] else '' if r['u8_ok'] else '†'} | {_pct(r['gap'])} | {_pct(r['a1_gap'])} | "
            f"{_pct(r['certified'])} | "
            f"{r['plan_s']:.2f} | {'–' if lf is None else f'{lf:.2f}'} | {'–' if td is None else f'{td:.2f}'} |"
        )
    proxy = [r for r in rows if r["mode"] == "error proxy"]
    gaps = [r["gap"] for r in proxy if r["gap"] is not None]
    out += [
        "",
        "Ratios are predicted latencies (lower is better); best buildable = the fastest baseline that fits the memory "
        "and meets the same error budget (label-free rows: the same label-free threshold), CLOUD-ONLY+JPEG not among "
        "them (bench_jpeg compares it); * = U8 does not fit; † = U8 is no valid baseline there: it runs a layer "
        "that must stay in the cloud (the licence-plate reader's BiLSTM) or breaks the row's budget. Drops in points: "
        "label-free (what the plan selected on, calibration data, no labels) and measured with labels on held-out "
        "test data.",
        "",
    ]
    if proxy:
        out.append(
            f"Default plans: worst ratio to the best buildable baseline {max(r['vs_best'] for r in proxy):.3f}; "
            f">= 1% faster than it in {sum(r['vs_best'] <= 0.99 for r in proxy)} of {len(proxy)} cells; "
            + (f"gap to the exact optimum max {max(gaps) * 100:.2f}%, mean {statistics.mean(gaps) * 100:.2f}% "
               f"(Algorithm 1 alone: max {max(r['a1_gap'] for r in proxy if r['a1_gap'] is not None) * 100:.1f}%); "
               if gaps else "")
            + f"plan time max {max(r['plan_s'] for r in proxy):.2f} s."
        )
    chosen = [r for r in rows if r.get("test_drop") is not None]
    for mode in dict.fromkeys(r["mode"] for r in chosen):
        drops = [r["test_drop"] for r in chosen if r["mode"] == mode]
        out.append(f"Selected {mode}: measured test drop max {max(drops):.2f} points, mean "
                   f"{statistics.mean(drops):.2f}, above {MAX_DROP:g} in {sum(d > MAX_DROP for d in drops)} of "
                   f"{len(drops)} cells.")
    if speed:
        import bench_planner_speed

        out += ["", bench_planner_speed.markdown(speed, edge, cloud, SPEED_MBPS)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    import bench_planner

    known = [*TRAINED, *bench_planner.MODELS]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="digits,lpr_small,mobilenet_v2,resnet50,yolov3",
                    help=f"comma-separated, from {', '.join(known)}")
    ap.add_argument("--edge", default="eyeriss")
    ap.add_argument("--cloud", default="tpu")
    ap.add_argument("--samples", type=int, default=2, help="random calibration samples for the untrained models")
    ap.add_argument("--selection-frames", default="32,256",
                    help="calibration sizes the trained models' label-free selection runs with (default 32,256)")
    ap.add_argument("--rates", default=",".join(f"{r:g}" for r in UPLINKS), help="uplinks in Mbit/s")
    ap.add_argument("--speed-models", default="yolov3",
                    help="models whose Algorithm 1 CPU time is measured against the 0.3 s goal ('' for none)")
    ap.add_argument("-o", "--output", type=Path, default=Path("out/bench_selection.md"))
    args = ap.parse_args(argv)
    try:
        frames = sorted({int(n) for n in args.selection_frames.split(",") if n})
        uplinks = [float(r) for r in args.rates.split(",") if r]
    except ValueError as exc:
        print(f"bench_selection: --selection-frames/--rates: {exc}", file=sys.stderr)
        return 2
    models = [m for m in args.models.split(",") if m]
    speed_models = [m for m in args.speed_models.split(",") if m]
    unknown = [m for m in models if m not in known] + [m for m in speed_models if m not in bench_planner.MODELS]
    if unknown or not frames or min(frames) < 1:
        print(f"bench_selection: unknown model {unknown[0]!r}" if unknown else
              "bench_selection: --selection-frames needs positive counts", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            print(f"{name} ...", file=sys.stderr)
            rows += bench_model(name, args.edge, args.cloud, args.samples, Path(tmp), frames, uplinks)
    import bench_planner_speed

    speed = []
    for name in speed_models:
        print(f"Algorithm 1 CPU time on {name} ...", file=sys.stderr)
        speed.append(bench_planner_speed.bench_model(name, args.edge, args.cloud, SPEED_MBPS))
    return bench_planner.write_report(markdown(rows, speed, args.edge, args.cloud), args.output)


if __name__ == "__main__":
    sys.exit(main())
