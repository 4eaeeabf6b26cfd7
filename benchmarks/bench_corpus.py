"""Any-model corpus: every keras.applications architecture (weights=None with a trained net's nonzero biases, the
smallest input it builds at) and the ONNX models of tests/onnx_zoo.py through the whole chain: import -> plan at
1 and 20 Mbit/s -> convert -> recompose (edge -> pack -> cloud equals the full model within the plan's stated
bound) -> edge.tflite bytes over the plan's predicted edge weight bytes (judged above 20 KB: within 5%).

Each model runs in its own process with a time limit; models are run smallest first (parameter counts from a
sizing pass) until the overall budget is spent, and the ones left are listed as not run.
Usage: python benchmarks/bench_corpus.py [--budget-s 1200] [--model-timeout-s 240] [--models A,B] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # onnx_zoo

import onnx_zoo  # noqa: E402

RATES_MBPS = (1.0, 20.0)
RTT_MS = 10.0
SIZE_JUDGED_ABOVE = 20 * 1024  # edge.tflite bytes; smaller files are mostly flatbuffer overhead
SIZE_TOLERANCE = 0.05
SIZES = (32, 75)  # the input sizes tried, smallest first (Xception needs 71, the Inceptions 75)
CALIB_SAMPLES = 16
STAGES = ("imported", "planned", "converted", "recomposed")


# model -> why it cannot pass today, one line (the table lists these under the failures it expects). Empty: the
# size model's misses on MobileNetV3 and NASNetMobile were fixed (benchmarks/README.md, "Any-model corpus").
EXPECTED_FAILURES: dict[str, str] = {}


class CorpusCheckFailed(Exception):
    """A chain stage ran but its result broke the corpus's check (bound, size)."""


@dataclass
class Outcome:
    """How far one model got. `stages` are those passed, in order; `reason` the first line of the failure."""

    model: str
    stages: list[str] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)  # per converted plan: "1.01", or "- (N KB)" when not judged
    reason: str = ""
    seconds: float = 0.0

    def row(self) -> str:
        failed = False
        cells = []
        for s in STAGES:
            ok = s in self.stages
            unknown = failed or not self.reason or self.reason.startswith("not finished")  # a timeout: no stage known
            cells.append("yes" if ok else ("-" if unknown else "**no**"))
            failed = failed or not ok
        ratio = " / ".join(self.ratios) or "-"
        return f"| {self.model} | {' | '.join(cells)} | {ratio} | {self.reason or ''} |"


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


# -- the models -------------------------------------------------------------------------------------------------
def keras_architectures() -> list[str]:
    """Every architecture keras.applications exports (its constructors are the capitalised names)."""
    import keras

    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


def keras_model(arch: str, **kwargs: Any) -> Any:
    """`arch` with weights=None and 10 classes, at the smallest of SIZES it accepts."""
    import keras

    keras.utils.set_random_seed(0)
    ctor = getattr(keras.applications, arch)
    errors = []
    for size in SIZES:
        try:
            return trained_like(ctor(weights=None, input_shape=(size, size, 3), classes=10, **kwargs))
        except ValueError as err:
            errors.append(f"{size}x{size}: {first_line(err)}")
    raise CorpusCheckFailed(f"builds at none of {SIZES}: {'; '.join(errors)}")


def trained_like(model: Any) -> Any:
    """`model` with the biases and batch-norm statistics a trained network has instead of their initial zeros and
    ones: small seeded offsets. At initialisation every folded bias is zero, and the TFLite converter stores
    identical constant buffers once, so an untrained file is smaller than any trained one of the same
    architecture (MobileNetV3Small: 120 KB of its 1.8 MB shared)."""
    rng = np.random.default_rng(0)
    for var in model.weights:
        leaf = var.path.rsplit("/", 1)[-1]
        value = np.asarray(var.numpy())
        if leaf in ("bias", "beta", "moving_mean"):
            var.assign(value + rng.normal(0.0, 0.05, value.shape).astype(value.dtype))
        elif leaf in ("gamma", "moving_variance"):
            var.assign(value * rng.uniform(0.8, 1.2, value.shape).astype(value.dtype))
    return model


def build_keras(arch: str, path: Path, **kwargs: Any) -> Path:
    keras_model(arch, **kwargs).save(path)
    return path


ONNX_MODELS: dict[str, Callable[[Path], Path]] = {"chain": onnx_zoo.chain, "residual": onnx_zoo.residual,
                                                  **onnx_zoo.CORPUS}


# keras.applications architectures also run as ONNX exported by tf2onnx (a real exporter's graph: NHWC input,
# BN as Mul/Add, depthwise weights reshaped), at the same input and width as their Keras runs
TF2ONNX_MODELS = ("MobileNetV2", "ResNet50", "EfficientNetB0")


def export_tf2onnx(arch: str, path: Path, **kwargs: Any) -> Path:
    """`arch` (as keras_model builds it) exported to ONNX with tf2onnx's from_keras, batch 1, opset 17 (its
    from_function leaves a Normalization layer's mean and variance as extra graph inputs)."""
    import tensorflow as tf
    import tf2onnx

    model = keras_model(arch, **kwargs)
    spec = (tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return path


def model_file(name: str, work: Path, **kwargs: Any) -> Path:
    """The model file for a corpus name: `onnx:<zoo name>`, `tf2onnx:<architecture>` or a keras.applications
    architecture."""
    if name.startswith("onnx:"):
        return ONNX_MODELS[name.removeprefix("onnx:")](work / f"{name.removeprefix('onnx:')}.onnx")
    if name.startswith("tf2onnx:"):
        return export_tf2onnx(name.removeprefix("tf2onnx:"), work / f"{name.removeprefix('tf2onnx:')}.onnx", **kwargs)
    return build_keras(name, work / f"{name}.keras", **kwargs)


# -- the check ------------------------------------------------------------------------------------------------
def check_model(model: Path, work: Path, outcome: Outcome) -> Outcome:
    """Run the chain on `model`, recording each stage passed in `outcome`; raises at the first failure."""
    from splitsdk.convert import convert_plan, split_pipeline
    from splitsdk.convert.verify import full_model_outputs
    from splitsdk.inspect import inspect_model
    from splitsdk.plan import Constraints, plan_model, save_plan
    from splitsdk.profile.types import Link

    inspection = inspect_model(str(model))
    graph = inspection.graph
    shape = graph.tensors[graph.inputs[0]].shape
    outcome.stages.append("imported")

    calib = work / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(calib, x=rng.random((2 * CALIB_SAMPLES, *shape), np.float32))
    plans: list[tuple[float, Any]] = []
    for rate in RATES_MBPS:
        plan = plan_model(str(model), "cortex-a7", Link(rate, RTT_MS), Constraints(), calib=calib, exact=None)
        save_plan(plan, work / f"plan_{rate:g}.json")
        if all(plan.solution != p.solution for _, p in plans):  # the same split at both rates: converted once
            plans.append((rate, plan))
    outcome.stages.append("planned")

    reports = [convert_plan(work / f"plan_{rate:g}.json", model=model, out=work / f"bundle_{rate:g}", calib=calib,
                            samples=CALIB_SAMPLES) for rate, _ in plans]
    outcome.stages.append("converted")

    x = rng.random((4, *shape), np.float32)
    full = full_model_outputs(graph, x)
    for report in reports:
        got = split_pipeline(report.bundle, x)
        if [g.shape for g in got] != [f.shape for f in full] or not all(np.all(np.isfinite(g)) for g in got):
            raise CorpusCheckFailed(f"{report.bundle.name}: recomposed outputs {[g.shape for g in got]} "
                                    f"are not the model's {[f.shape for f in full]} or not finite")
        v = report.verification
        if v is None or not v.output_mse <= 2 * v.simulated_mse + 1e-6:  # the stated bound (NaN fails)
            raise CorpusCheckFailed(f"{report.bundle.name} ({report.kind}): output MSE "
                                    f"{v.output_mse if v else 'none'} above 2 x simulated "
                                    f"{v.simulated_mse if v else 'none'} + 1e-6")
    outcome.stages.append("recomposed")

    for report in reports:
        if report.edge_tflite_bytes <= SIZE_JUDGED_ABOVE:
            outcome.ratios.append(f"- ({report.edge_tflite_bytes / 1024:.0f} KB)")
            continue
        outcome.ratios.append(f"{report.size_ratio:.3f}")
        if abs(report.size_ratio - 1) > SIZE_TOLERANCE:
            raise CorpusCheckFailed(f"{report.bundle.name}: edge.tflite {report.edge_tflite_bytes} B is "
                                    f"{report.size_ratio:.3f} x the predicted {report.predicted_edge_weight_bytes} B")
    return outcome


def run_one(name: str, work: Path) -> Outcome:
    """The chain on one corpus model; failures recorded, not raised."""
    outcome = Outcome(name)
    start = time.perf_counter()
    try:
        check_model(model_file(name, work), work, outcome)
    except Exception as err:  # noqa: BLE001 - any failure is the corpus's finding
        outcome.reason = first_line(err)
    outcome.seconds = time.perf_counter() - start
    return outcome


# -- the driver -----------------------------------------------------------------------------------------------
def _child(args: list[str], timeout: float) -> tuple[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return proc.stdout, proc.stderr


def parameter_counts(archs: list[str], timeout: float) -> dict[str, int]:
    """Each architecture's parameter count at its smallest input, in one child; those not reached are absent."""
    try:
        out, _ = _child(["--size", ",".join(archs)], timeout)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
    counts = {}
    for line in out.splitlines():
        if line.startswith("{"):
            counts.update(json.loads(line))
    return counts


def size_models(archs: list[str]) -> None:
    import keras

    for arch in archs:
        try:
            params = int(keras_model(arch).count_params())
        except Exception:  # noqa: BLE001 - a model that does not build is run (and reported) later
            params = 0
        print(json.dumps({arch: params}), flush=True)
        keras.backend.clear_session()


def table(outcomes: list[Outcome], not_run: list[str]) -> str:
    lines = ["| model | imported | planned | converted | recomposed | size ratio | failure |",
             "|---|---|---|---|---|---|---|", *(o.row() for o in outcomes)]
    lines += [f"| {n} | not run | | | | | time budget spent |" for n in not_run]
    expected = [o.model for o in outcomes if o.reason and o.model in EXPECTED_FAILURES]
    if expected:
        lines += ["", "Expected failures (why they cannot pass today):", "",
                  *(f"- {m}: {EXPECTED_FAILURES[m]}" for m in expected)]
    unexpected = [o.model for o in outcomes if o.reason and o.model not in EXPECTED_FAILURES]
    if unexpected:
        lines += ["", f"Unexpected failures: {', '.join(unexpected)}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=1200.0)
    ap.add_argument("--model-timeout-s", type=float, default=240.0)
    ap.add_argument("--size-timeout-s", type=float, default=600.0, help="for the pass that orders the models")
    ap.add_argument("--models", default="", help="comma-separated (onnx:<name> for the ONNX zoo, tf2onnx:<arch> "
                                                 "for an architecture exported by tf2onnx); default all")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(asdict(run_one(args.one, Path(tmp)))), flush=True)
        return
    if args.size:
        size_models(args.size.split(","))
        return

    deadline = time.monotonic() + args.budget_s
    if args.models:
        names = args.models.split(",")
    else:
        archs = keras_architectures()
        counts = parameter_counts(archs, args.size_timeout_s)
        print(f"sizes: {counts}", file=sys.stderr)
        archs += [f"tf2onnx:{a}" for a in TF2ONNX_MODELS]
        archs.sort(key=lambda a: (a.split(":")[-1] not in counts, counts.get(a.split(":")[-1], 0), a))
        names = [f"onnx:{n}" for n in ONNX_MODELS] + archs
    outcomes: list[Outcome] = []
    not_run: list[str] = []
    for name in names:
        left = deadline - time.monotonic()
        if left < 30:
            not_run.append(name)
            continue
        start = time.monotonic()
        outcome = Outcome(name)
        try:
            out, err = _child(["--one", name], min(args.model_timeout_s, left))
            results = [line for line in out.splitlines() if line.startswith("RESULT ")]
            if results:
                outcome = Outcome(**json.loads(results[-1].removeprefix("RESULT ")))
            else:
                tail = [line for line in err.splitlines() if line.strip()]
                outcome.reason = f"process died: {tail[-1][:200] if tail else 'no output'}"
        except subprocess.TimeoutExpired:
            outcome.reason = f"not finished within {min(args.model_timeout_s, left):.0f} s"
        outcome.seconds = time.monotonic() - start
        outcomes.append(outcome)
        print(f"{outcome.row()} {outcome.seconds:.0f}s", file=sys.stderr, flush=True)
    text = table(outcomes, not_run)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
