"""The any-model corpus check of benchmarks/bench_corpus.py on a small subset: import -> plan at 1 and 20 Mbit/s ->
convert -> recompose within the plan's stated bound -> edge.tflite bytes within 5% of the prediction (above 20 KB).
A model listed in EXPECTED_FAILURES must really fail with its reason, so the table stays honest."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_corpus.py"
    spec = importlib.util.spec_from_file_location("bench_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _bench()

# keras.applications at 32x32 (the narrowest width each offers), and two ONNX exporters' shapes. DenseNet121
# passes too (benchmarks/README.md) but takes minutes here.
SUBSET: dict[str, dict[str, Any]] = {
    "MobileNetV2": {"alpha": 0.35},
    "MobileNetV3Small": {"alpha": 0.75, "minimalistic": True},
    "EfficientNetB0": {},
    "onnx:two_branch": {},
    "onnx:paddle_constants": {},
}

# model -> the start of the one-line reason it fails with (checked: the model must fail so)
# (empty since the import records an Activation layer's function: MobileNet/MobileNetV3 end in Activation('softmax'),
# whose int8 output the simulation now rounds on TFLite's fixed 1/256 grid, as the file does)
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
