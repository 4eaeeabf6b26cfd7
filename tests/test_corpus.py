"""The any-model corpus check of benchmarks/bench_corpus.py on a small subset: import -> plan at 1 and 20 Mbit/s ->
convert -> recompose within the plan's stated bound -> edge.tflite bytes within 5% of the prediction (above 20 KB).
A model listed in EXPECTED_FAILURES must really fail with its reason, so the table stays honest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from benchmark_module import load_benchmark

bench = load_benchmark("bench_corpus")

# keras.applications at 32x32 (the narrowest width each offers; MobileNetV2 as tf2onnx exports it), and two ONNX
# exporters' shapes. The rest of keras.applications runs in benchmarks/bench_corpus.py (minutes each here).
SUBSET: dict[str, dict[str, Any]] = {
    "tf2onnx:MobileNetV2": {"alpha": 0.35},
    "MobileNetV3Small": {"alpha": 0.75, "minimalistic": True},
    "EfficientNetB0": {},
    "onnx:two_branch": {},
    "onnx:paddle_constants": {},
}

# model -> the start of the one-line reason it fails with (checked: the model must fail so). Empty: every subset model
# passes; the full corpus's expected failures, with their reasons, are bench.EXPECTED_FAILURES.
EXPECTED_FAILURES: dict[str, str] = {}


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_corpus_model_passes_the_whole_chain(name: str, tmp_path: Path) -> None:
    model = bench.model_file(name, tmp_path, **SUBSET[name])
    outcome = bench.Outcome(name)
    if name in EXPECTED_FAILURES:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the reason is matched below
            bench.check_model(model, tmp_path, outcome)
        assert bench.first_line(info.value).startswith(EXPECTED_FAILURES[name])
        return
    bench.check_model(model, tmp_path, outcome)
    assert outcome.stages == list(bench.STAGES)
    assert outcome.ratios and len(outcome.ratios) <= len(bench.RATES_MBPS)


def test_expected_failures_are_in_the_subset() -> None:
    assert set(EXPECTED_FAILURES) <= set(SUBSET)


def test_failure_rows_name_the_first_failed_stage() -> None:
    row = bench.Outcome("m", stages=["imported"], reason="PlanError: x").row()
    assert row == "| m | yes | **no** | - | - | - | PlanError: x |"
    assert bench.Outcome("m", list(bench.STAGES), ["1.010"]).row() == "| m | yes | yes | yes | yes | 1.010 |  |"


def test_onnx_softmax_output_sent_from_the_edge_stays_on_its_int8_grid(tmp_path: Path) -> None:
    """tf2onnx MobileNetV2 EDGE-ONLY: the camera's int8 softmax output has 1/256 steps, but the plan's simulation
    put the sent tensor back on a grid over the float values' narrow range, undoing them (simulated MSE 0 against a
    measured 2.4e-6, so the recompose bound failed)."""
    import numpy as np

    from splitsdk.convert.verify import full_model_outputs, simulated_onnx
    from splitsdk.inspect import inspect_model

    graph = inspect_model(str(bench.onnx_zoo.softmax_head(tmp_path / "m.onnx"))).graph
    layers = list(graph.topological_order())
    x = np.random.default_rng(0).random((8, *graph.tensors[graph.inputs[0]].shape), np.float32)
    got = simulated_onnx(graph, layers, list(graph.outputs), dict.fromkeys(layers, 8), dict.fromkeys(layers, 8), [8],
                         x)(x)[0]
    full = full_model_outputs(graph, x)[0]
    assert np.ptp(full) < 1 / 256  # the float outputs all lie within one int8 step
    np.testing.assert_allclose(got * 256, np.round(got * 256), atol=1e-3)  # on the runtime's 1/256 grid


def test_tf2onnx_split_after_its_input_transpose_sends_the_nhwc_frame(tmp_path: Path) -> None:
    """tf2onnx:ResNet50's plan put only tf2onnx's input Transpose on the edge (split 1). On that edge half alone no
    convolution tells the frame's layout, so onnx2tf took the NHWC frame for NCHW (edge input [1,32,3,32]: "Cannot
    set tensor: Dimension mismatch"), and with the layout right it cancels the Transpose, leaving an edge of no
    ops. The layout now comes from the whole model, and an op-less edge sends the frame, quantised."""
    import keras
    import numpy as np
    import tensorflow as tf
    import tf2onnx
    from plan_factory import forced_plan

    from splitsdk.convert import convert_plan, split_pipeline
    from splitsdk.convert.verify import full_model_outputs
    from splitsdk.graph import load_graph
    from splitsdk.runtime import io_details, op_names

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(24, 7, strides=2)(layers.ZeroPadding2D(3)(inp))))
    x = layers.MaxPooling2D(3, strides=2)(layers.ZeroPadding2D(1)(x))
    out = layers.Dense(10)(layers.GlobalAveragePooling2D()(layers.Conv2D(16, 3, padding="same")(x)))
    model = tmp_path / "net.onnx"
    spec = (tf.TensorSpec((1, 32, 32, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(bench.trained_like(keras.Model(inp, out)), input_signature=spec, opset=17,
                               output_path=str(model))
    graph = load_graph(model)
    assert graph.layer(graph.topological_order()[0]).op == "Permute"  # the importer's name for Transpose
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.random((32, 32, 32, 3), np.float32))
    plan = forced_plan(model, tmp_path / "plan.json", 1)
    report = convert_plan(plan, model=model, out=tmp_path / "bundle", calib=tmp_path / "calib.npz", samples=16)
    edge = (tmp_path / "bundle" / "edge.tflite").read_bytes()
    assert io_details(edge)[0][0].shape == (32, 32, 3) and op_names(edge)
    v = report.verification
    assert v is not None and v.output_mse <= 2 * v.simulated_mse + 1e-6
    x = rng.random((4, 32, 32, 3), np.float32)
    full = full_model_outputs(graph, x)
    got = split_pipeline(tmp_path / "bundle", x)
    assert float(np.mean((got[0] - full[0]) ** 2)) <= 2 * v.simulated_mse + 1e-6
