"""`splitsdk plan` end to end on a tiny Keras model: output, fallbacks, measured accuracy, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from splitsdk.cli.main import main
from splitsdk.plan import load_plan

import model_zoo


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "chain.keras"
    model_zoo.chain().save(path)
    return path


def _plan(model: Path, out: Path, *extra: str) -> int:
    return main(["plan", str(model), "--target", "cortex-a7", "--uplink", "3", "--rtt", "10", "-o", str(out), *extra])


def test_plan_prints_solution_reason_and_baselines(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    assert _plan(chain_model, out) == 0
    text = capsys.readouterr().out
    assert "why:" in text and "Neurosurgeon" in text and "QDMP_E+U4" in text and "CLOUD-ONLY" in text
    plan = load_plan(out)
    assert plan.target == "cortex-a7" and plan.cloud == "cloud-gpu"
    assert plan.bits == (2, 4, 6, 8)
    assert plan.selection.criterion == "error-proxy"
    assert any("emulated on the int8 grid" in n for n in plan.selection.notes)
    assert plan.exact is not None and plan.exact.gap >= 0.0
    # Remark 5 on a real model
    assert plan.solution.predicted.total_ms <= plan.baselines["cloud_only"].predicted.total_ms


def test_plan_json_output_matches_the_file(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    assert _plan(chain_model, out, "--json", "--exact", "none") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["exact"] is None


def test_memory_too_small_falls_back_to_cloud_only(chain_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert _plan(chain_model, out, "--memory", "100") == 0
    s = load_plan(out).solution
    assert s.kind == "CLOUD_ONLY" and s.reason.startswith("CLOUD-ONLY fallback: no edge part fits")


def test_unreachable_threshold_falls_back_to_cloud_only(chain_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert _plan(chain_model, out, "--max-error", "0") == 0
    s = load_plan(out).solution
    assert s.kind == "CLOUD_ONLY" and "exceed the accuracy threshold" in s.reason


def test_measured_accuracy_selection(chain_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.random((8, 8, 8, 3), np.float32))
    x = rng.random((16, 8, 8, 3), np.float32)
    np.savez(tmp_path / "eval.npz", x=x, y=rng.integers(0, 10, 16))
    out = tmp_path / "plan.json"
    rc = _plan(
        chain_model,
        out,
        "--calib",
        str(tmp_path / "calib.npz"),
        "--eval",
        str(tmp_path / "eval.npz"),
        "--max-accuracy-drop",
        "100",
    )
    assert rc == 0
    plan = load_plan(out)
    assert plan.selection.criterion == "measured-accuracy"
    assert plan.solution.predicted.accuracy_drop is not None and plan.solution.predicted.accuracy_drop <= 100
    assert plan.exact is None  # no solver sees a measured constraint


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--memory", "0"], "--memory"),
        (["--memory", "lots"], "--memory"),
        (["--uplink", "-1"], "link rate"),
        (["--eval", "nowhere.npz", "--max-accuracy-drop", "1"], "nowhere.npz"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "plan.json"
    assert _plan(chain_model, out, *extra) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("splitsdk: error:") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_unknown_target(chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", str(chain_model), "--target", "pdp-11", "--uplink", "3", "-o", str(tmp_path / "p.json")])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown target 'pdp-11'" in err[0]


def test_eval_without_threshold_is_refused(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "eval.npz", x=np.zeros((2, 8, 8, 3), np.float32), y=np.zeros(2, np.int64))
    assert _plan(chain_model, tmp_path / "p.json", "--eval", str(tmp_path / "eval.npz")) != 0
    assert "--max-accuracy-drop" in capsys.readouterr().err


def test_fake_quantised_evaluator_measures_a_real_drop(chain_model: Path) -> None:
    """Labels = the float model's own predictions: float loses nothing, 2 bits everywhere loses accuracy."""
    from splitsdk.graph import load_graph
    from splitsdk.plan import Assignment, Candidate, PlanProblem
    from splitsdk.plan.accuracy import make_evaluator
    from splitsdk.plan.synthetic import profile_for, sensitivity_for
    from splitsdk.profile.types import Link
    from splitsdk.quant import Dataset

    graph = load_graph(chain_model)
    order = graph.topological_order()
    prof = profile_for(graph, dict.fromkeys(order, 1.0), dict.fromkeys(order, 0.1), [2, 8])
    sens = sensitivity_for(
        graph, {n: 1.0 for n in order if graph.layer(n).quantizable}, dict.fromkeys(order, 1.0), [2, 8]
    )
    p = PlanProblem(graph, prof, sens, Link(3.0), [2, 8], 10**6)
    x = np.random.default_rng(1).random((64, 8, 8, 3), np.float32)
    model = __import__("keras").models.load_model(chain_model)
    labels = np.asarray(model(x)).argmax(axis=-1)
    evaluate = make_evaluator(p, Dataset(x, labels, "own labels"), calib=Dataset(x, None, "calib"))
    n = len(order)

    def cand(bits: int) -> Candidate:
        a = p.uniform(n, bits)
        return Candidate(a, p.evaluate(a), "uniform")

    assert evaluate(cand(32)) == pytest.approx(0.0)
    assert evaluate(cand(2)) > 5.0
    assert evaluate(Candidate(Assignment(0), p.evaluate(Assignment(0)), "cloud-only")) == pytest.approx(0.0)
    # the model's weights are restored after each evaluation
    assert np.asarray(model(x)).argmax(axis=-1).tolist() == labels.tolist()
    assert evaluate(cand(32)) == pytest.approx(0.0)


def _image_calib(path: Path, frames: int = 12) -> Path:
    """Smooth 8x8 RGB frames on the 8-bit pixel grid (pixel / 255), as a camera's images would be."""
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 256, size=(frames, 4, 4, 3)).astype(np.float32)
    np.savez(path, x=(np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2) / 255.0).astype(np.float32))
    return path


def test_frame_rate_compression_and_jpeg_flags_end_to_end(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calib = _image_calib(tmp_path / "calib.npz")
    out = tmp_path / "plan.json"
    rc = _plan(chain_model, out, "--calib", str(calib), "--fps", "30", "--arrivals", "poisson", "--max-loss", "0.05",
               "--queue-depth", "2", "--compress", "zstd", "--jpeg", "90,60", "--memory", "100")
    assert rc == 0
    text = capsys.readouterr().out
    assert "at 30 fps (poisson, queue depth 2)" in text and "CLOUD-ONLY+JPEG-Q60" in text and "loss" in text
    plan = load_plan(out)
    t = plan.traffic
    assert t is not None and (t.fps, t.arrivals, t.max_loss, t.queue_depth, t.queue_frames) == (
        30.0, "poisson", 0.05, 2, 6)
    assert plan.solution.kind == "CLOUD_ONLY"  # 100 bytes of memory: nothing fits on the edge
    (c,) = plan.solution.crossing
    assert c.codec == "zstd" and c.compressed_ratio is not None and c.compressed_ratio > 0
    assert plan.solution.predicted.transmit_bytes == math.ceil(c.compressed_ratio * 8 * 8 * 3)
    assert any("ratios measured on 12 calibration frames" in n for n in plan.selection.notes)
    for q in (90, 60):
        b = plan.baselines[f"cloud_only_jpeg_q{q}"]
        assert b.jpeg_quality == q and b.predicted.transmit_bytes > 0 and b.measured_accuracy is not None
        assert "measured" in b.note and "modelled" in b.note
    assert set(t.baselines) == set(plan.baselines)
    assert main(["report", str(out), "-o", str(tmp_path / "rep")]) == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## Frame rate: latency and loss" in report and (tmp_path / "rep" / "traffic.png").is_file()
    assert "CLOUD-ONLY+JPEG-Q90" in report and "| zstd |" in report


def test_a_loss_limit_no_candidate_meets_is_one_line(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    rc = _plan(chain_model, out, "--memory", "100", "--uplink", "0.1", "--fps", "100", "--max-loss", "0.01",
               "--jpeg", "none")
    assert rc != 0 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("splitsdk: error: --max-loss 0.01: no candidate") and "lower --fps" in err[-1]
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-loss", "0.1"], "--max-loss: needs --fps"),
        (["--queue-depth", "3"], "--queue-depth: needs --fps"),
        (["--fps", "0"], "--fps: must be a positive number"),
        (["--fps", "10", "--max-loss", "2"], "--max-loss: must be a fraction in 0..1"),
        (["--fps", "10", "--queue-depth", "0"], "--queue-depth: must be >= 1"),
        (["--jpeg", "high"], "--jpeg: 'high' is not a quality"),
        (["--jpeg", "0"], "--jpeg: quality 0 is outside 1..100"),
        (["--compress", "lz4"], "--compress"),
    ],
)
def test_bad_traffic_flags_give_one_line_errors(
    chain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "plan.json"
    with pytest.raises(SystemExit) if extra[0] == "--compress" else _no_exit():
        assert _plan(chain_model, out, *extra) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not out.exists()


class _no_exit:  # noqa: N801 (a context manager used like pytest.raises)
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False
