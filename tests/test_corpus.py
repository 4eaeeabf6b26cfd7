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
