"""The AUTO-SPLIT paper's Table 7, on this SDK: raw and JPEG cloud-only vs AUTO-SPLIT without and with zstd.

Per model and uplink (1/3/10/20 Mbit/s; edge `cortex-a7`, cloud `cloud-gpu`, RTT 0), one run, every number from
`splitsdk plan` itself (`plan_model`): the plan without feature compression carries CLOUD-ONLY (the raw frame)
and CLOUD-ONLY+JPEG-Q95/75/50 as baselines (JPEG bytes measured on the frames, encode time modelled from the
target's `jpeg_ns_per_pixel`); the plan with `compress="zstd"` re-chooses with the zstd ratios measured per
crossing tensor on the calibration frames and the modelled compression cost. Both plans select on measured
accuracy (`--max-accuracy-drop 1`): with labels where the model has them, else without (agreement with the
float model). Latencies are modelled (the analytic cortex-a7 profile, the link model); bytes and accuracies
are measured.

Models: the trained licence-plate reader (`sdk/examples/lpr`, small, its BiLSTM kept in the cloud; accuracy =
exact plates on labelled test frames of the generator) and a detector-like model (a tiny-YOLO layout on the same
128x256 frames, random weights: accuracy is the label-free fidelity to the float model, and says little).

    .venv/bin/python benchmarks/bench_table7.py [--models lpr,detector] [--rates 1,3,10,20] [-o out/bench_table7.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
RATES = (1.0, 3.0, 10.0, 20.0)
CALIB_FRAMES = 32
TEST_FRAMES = 64
MAX_DROP = 1.0
JPEG = (95, 75, 50)


def tiny_detector() -> Any:
    """yolov3-tiny's layout on a 128x256 RGB frame, at half its widths (random weights, seed 0)."""
    import keras
    from bench_planner import _L, _cbr

    L = _L()
    inp = keras.Input((128, 256, 3))
    x = inp
    for f in (8, 16, 32, 64):
        x = L.MaxPooling2D(2, 2)(_cbr(x, f, 3, act="leaky"))
    r8 = x = _cbr(x, 128, 3, act="leaky")
    x = L.MaxPooling2D(2, 2)(x)
    x = _cbr(_cbr(x, 256, 3, act="leaky"), 128, 1, act="leaky")
    out1 = L.Conv2D(24, 1)(_cbr(x, 256, 3, act="leaky"))
    y = L.UpSampling2D(2)(_cbr(x, 64, 1, act="leaky"))
    out2 = L.Conv2D(24, 1)(_cbr(L.Concatenate()([y, r8]), 128, 3, act="leaky"))
    return keras.Model(inp, [out1, out2], name="tiny_detector")


def _case(name: str, folder: Path) -> dict[str, Any]:
    import numpy as np

    from splitsdk.examples.lpr import data as lpr_data
    from splitsdk.examples.lpr import weights_path

    calib = lpr_data.write_npz(folder / "calib-labelled.npz", lpr_data.SPLITS["train"], CALIB_FRAMES)
    with np.load(calib) as z:
        np.savez(folder / "calib.npz", x=z["x"])
    if name == "lpr":
        test = lpr_data.write_npz(folder / "test.npz", lpr_data.SPLITS["test"], TEST_FRAMES)
        return {"model": str(weights_path("small")), "calib": folder / "calib.npz", "eval": test,
                "metric": "lpr_exact", "cloud_ops": ("Bidirectional",), "accuracy": "exact plates, labelled"}
    path = folder / "tiny_detector.keras"
    tiny_detector().save(path)
    return {"model": str(path), "calib": folder / "calib.npz", "eval": None, "metric": "top1", "cloud_ops": (),
            "accuracy": "label-free fidelity to the float model"}


def _float_accuracy(case: dict[str, Any]) -> float:
    """The float model's accuracy on the labelled test frames (100: label-free, the float model agrees with itself)."""
    if case["eval"] is None:
        return 100.0
    import numpy as np

    from splitsdk.plan.accuracy import get_metric, replay
    from splitsdk.quant import load_graph_for_data

    graph = load_graph_for_data(case["model"], case["calib"], None)
    with np.load(case["eval"]) as z:
        x, y = z["x"], z["y"]
    return float(get_metric(case["metric"])(replay(graph, x.astype(np.float32), lambda _n, _t, v: v), y))


def bench_model(name: str, rates: list[float], folder: Path) -> list[dict[str, Any]]:
    from splitsdk.plan import Constraints, plan_model
    from splitsdk.profile import Link

    case = _case(name, folder)
    float_acc = _float_accuracy(case)
    rows = []
    for mbps in rates:
        plans = {}
        for compress in ("none", "zstd"):
            t0 = time.perf_counter()
            plans[compress] = plan_model(
                case["model"], "cortex-a7", Link(mbps, 0.0),
                Constraints(max_accuracy_drop=MAX_DROP, cloud_ops=case["cloud_ops"]),
                cloud="cloud-gpu", calib=case["calib"], eval_data=case["eval"], exact=None, metric=case["metric"],
                compress=compress, jpeg=JPEG if compress == "none" else (),
            )
            print(f"{name} {mbps:g} Mbit/s {compress}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        raw = plans["none"].baselines["cloud_only"]

        def acc(drop: float | None) -> float | None:
            return None if drop is None else float_acc - drop

        methods: list[tuple[str, Any, float | None, str]] = [("CLOUD-ONLY (raw frame)", raw.predicted, float_acc, "")]
        for q in JPEG:
            b = plans["none"].baselines.get(f"cloud_only_jpeg_q{q}")
            if b is not None:
                measured = b.measured_accuracy if case["eval"] is not None else 100.0 - (b.predicted.accuracy_drop or 0)
                methods.append((b.name, b.predicted, measured, ""))
        for label, plan in (("AUTO-SPLIT", plans["none"]), ("AUTO-SPLIT + zstd", plans["zstd"])):
            s = plan.solution
            codecs = ", ".join(f"{c.codec} (ratio {c.compressed_ratio:.2f})" if c.codec != "none" else "raw"
                               for c in s.crossing)
            how = f"{s.kind} at split {s.split_index}" + (f", sends {codecs}" if s.crossing else "")
            methods.append((label, s.predicted, acc(s.predicted.accuracy_drop), how))
        best_jpeg = min((p.total_ms for n, p, _, _ in methods if "JPEG" in n), default=None)
        for method, p, accuracy, how in methods:
            rows.append({"model": name, "mbps": mbps, "method": method, "bytes": p.transmit_bytes,
                         "edge": p.edge_ms, "tx": p.transmit_ms, "total": p.total_ms,
                         "vs_raw": p.total_ms / raw.predicted.total_ms,
                         "vs_jpeg": None if best_jpeg is None else p.total_ms / best_jpeg,
                         "accuracy": accuracy, "how": how, "acc_kind": case["accuracy"]})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        out += [f"### {model} (accuracy: {mine[0]['acc_kind']}, measured; latency modelled)", "",
                "| Mbit/s | method | bytes/frame | edge ms | transmit ms | total ms | / raw CLOUD-ONLY | / best JPEG "
                "| accuracy % | choice |", "|" + "---|" * 10]
        for r in mine:
            vs_jpeg = "-" if r["vs_jpeg"] is None else f"{r['vs_jpeg']:.3f}"
            accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.1f}"
            out.append(
                f"| {r['mbps']:g} | {r['method']} | {r['bytes']:,} | {r['edge']:.2f} | {r['tx']:.2f} "
                f"| {r['total']:.2f} | {r['vs_raw']:.3f} | {vs_jpeg} | {accuracy} | {r['how']} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lpr,detector")
    ap.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    ap.add_argument("-o", "--output", type=Path, default=Path("out/bench_table7.md"))
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in ("lpr", "detector"):
                print(f"bench_table7: unknown model {name!r} (lpr, detector)", file=sys.stderr)
                return 2
            folder = Path(tmp) / name
            folder.mkdir()
            rows += bench_model(name, rates, folder)
    from bench_planner import write_report

    return write_report(markdown(rows), args.output)


if __name__ == "__main__":
    sys.exit(main())
