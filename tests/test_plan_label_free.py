"""Selection by accuracy without labels, on the trained digits classifier (sdk/examples/digits).

The label-free drop (100 - top-1 agreement of the fake-quantised pipeline with the float model) of an 8-bit plan
equals the labelled drop within the sampling error on the same images; it sees the damage of 2 bits; it is judged on
up to `SELECTION_SAMPLES` calibration frames (a folder of images read again for them, a larger set evenly thinned);
and `plan_model` with `--max-accuracy-drop` and no `--eval` selects on it and says so."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from splitsdk.examples.digits import data, weights_path
from splitsdk.graph import load_graph
from splitsdk.plan import Constraints, plan_model
from splitsdk.plan.accuracy import (
    SELECTION_SAMPLES,
    fidelity,
    label_free_agreement,
    make_evaluator,
    make_label_free_evaluator,
    selection_sample,
)
from splitsdk.plan.autosplit import Candidate
from splitsdk.plan.problem import PlanProblem
from splitsdk.profile import build_profile
from splitsdk.profile.types import Link
from splitsdk.quant import Dataset, load_dataset, measure_sensitivity
from splitsdk.target import load_target

BITS = [2, 4, 6, 8]


@pytest.fixture(scope="module")
def problem() -> PlanProblem:
    graph = load_graph(str(weights_path()))
    calib = Dataset(data.calibration(32), None, "digits train[:32]")
    sens = measure_sensitivity(graph, calib, BITS, use_cache=False)
    prof = build_profile(graph, load_target("eyeriss"), load_target("tpu"))
    return PlanProblem(graph, prof, sens, Link(3.0, 0.0), BITS, 10**9)


def _uniform(p: PlanProblem, bits: int) -> Candidate:
    a = p.uniform(len(p.order), bits)
    return Candidate(a, p.evaluate(a), "uniform")


def test_label_free_drop_of_an_8_bit_plan_equals_the_labelled_drop_within_sampling_error(
    problem: PlanProblem,
) -> None:
    x, y = data.load("test")
    same = Dataset(x, y, "digits test")
    labelled = make_evaluator(problem, same, calib=same)
    label_free = make_label_free_evaluator(problem, Dataset(x, None, "digits test"), samples=len(x))  # all of them
    assert len(label_free.x) == len(labelled.x) == len(x)
    assert label_free.measure.startswith("label-free: top-1 agreement")
    c = _uniform(problem, 8)
    lf, lab = label_free(c), labelled(c)
    disagree = lf / 100.0
    n = len(x)
    sampling = 100.0 * max(math.sqrt(disagree * (1 - disagree) / n), 1.0 / n)  # one image at least
    assert abs(lf - lab) <= 2 * sampling
    assert lf <= 2.0  # 8 bits throughout barely moves a trained classifier
    # 2 bits everywhere wrecks it, and both measures see it
    two = _uniform(problem, 2)
    assert label_free(two) > 20.0 and labelled(two) > 20.0


def test_selection_sample_reads_more_of_a_folder_and_thins_a_large_set(problem: PlanProblem, tmp_path: Path) -> None:
    from PIL import Image

    x = data.calibration(40)
    for i, frame in enumerate(x):
        Image.fromarray(np.round(frame[..., 0] * 255).astype(np.uint8), "L").save(tmp_path / f"{i:03d}.png")
    shape = problem.graph.tensors[problem.graph.inputs[0]].shape
    calib = load_dataset(tmp_path, shape)  # what the sensitivities are measured on: the default 32 images
    assert len(calib.x) == 32 < SELECTION_SAMPLES
    judged = make_label_free_evaluator(problem, calib)
    assert len(judged.x) == 40 and "on 40 calibration samples" in judged.measure
    np.testing.assert_allclose(judged.x, x, atol=0.6 / 255)
    # more frames than asked for: evenly spread over all of them, first and last included, labels kept alongside
    many = Dataset(x, np.arange(40), "digits train[:40]")
    thin = selection_sample(problem.graph, many, samples=10)
    assert len(thin.x) == 10 and thin.y is not None and thin.y[0] == 0 and thin.y[-1] == 39
    assert np.all(np.diff(thin.y) >= 4) and "10 of 40" in thin.origin
    np.testing.assert_array_equal(thin.x, x[thin.y])
    assert selection_sample(problem.graph, many, samples=40) is many


def test_agreement_is_task_aware() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert label_free_agreement(None, "top1", scores)[1].startswith("top-1")  # type: ignore[arg-type]
    maps = np.ones((2, 4, 4, 3))
    assert label_free_agreement(None, "top1", maps)[1].startswith("output fidelity")  # type: ignore[arg-type]
    assert label_free_agreement(None, "lpr_exact", maps)[1].startswith("decoded-plate")  # type: ignore[arg-type]
    assert fidelity(maps, maps) == 100.0
    assert fidelity(maps * 1.5, maps) == pytest.approx(50.0)


def test_plan_without_labels_selects_on_label_free_accuracy(tmp_path: Path) -> None:
    calib = data.save_npz(tmp_path / "calib.npz", "train", samples=64, labels=False)
    plan = plan_model(str(weights_path()), "eyeriss", Link(3.0, 0.0), Constraints(max_accuracy_drop=1.0),
                      cloud="tpu", calib=calib, exact=None)
    sel = plan.selection
    assert sel.criterion == "measured-accuracy" and sel.evaluated >= 1 and sel.certified_gap is None
    assert any("without labels" in n and "top-1 agreement" in n for n in sel.notes)
    assert "label-free" in plan.solution.reason
    drop = plan.solution.predicted.accuracy_drop
    assert drop is not None and drop <= 1.0
    # the selection is the fastest candidate within the threshold among those measured
    measured = [c for c in plan.candidates if c.predicted.accuracy_drop is not None]
    faster = [c for c in measured if c.predicted.total_ms < plan.solution.predicted.total_ms]
    assert all((c.predicted.accuracy_drop or 0.0) > 1.0 for c in faster)


def test_an_onnx_model_is_judged_without_labels_too(tmp_path: Path) -> None:
    """--max-accuracy-drop without --eval measures top-1 agreement with the float ONNX model (onnxruntime)."""
    import onnx_zoo

    model = onnx_zoo.chain(tmp_path / "chain.onnx")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((16, 8, 8, 3)).astype(np.float32))
    plan = plan_model(model, "cortex-a7", Link(3.0, 10.0), Constraints(max_accuracy_drop=1.0), calib=calib, exact=None)
    assert plan.selection.criterion == "measured-accuracy"
    assert any("without labels" in n and "top-1 agreement" in n for n in plan.selection.notes)
