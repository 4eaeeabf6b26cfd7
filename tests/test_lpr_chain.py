"""The licence-plate case study's chain, CI-sized: the checked-in small reader on a few frames through plan ->
convert -> generate -> build -> the ARM edge app under qemu-arm -> a real `splitsdk serve` -> plates in SQLite.

Also the two planner hooks the case study needs: an accuracy metric chosen by name (`--metric lpr_exact`, exact
plate match through CTC decoding) and ops kept in the cloud (`--cloud-ops Bidirectional`: TFLite's converter
cannot convert the BiLSTM for the camera).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitsdk.cli.main import main
from splitsdk.errors import PlanError, ToolchainError
from splitsdk.examples.lpr import data, pipeline, weights_path
from splitsdk.examples.lpr.metric import exact_rate, label_strings, lpr_exact
from splitsdk.examples.lpr.plate import ALPHABET, BLANK, NUM_CLASSES, encode
from splitsdk.examples.lpr.table import Case, build_rows, markdown
from splitsdk.plan.accuracy import METRICS, get_metric

FRAMES = 6  # test frames 0..5 through QEMU and the host pipeline
CHAIN = [pytest.mark.requires_toolchain, pytest.mark.requires_qemu, pytest.mark.slow]


def _chain(test: Any) -> Any:
    """Mark a test that builds the firmware and runs it under qemu-arm."""
    for mark in CHAIN:
        test = mark(test)
    return test


def _one_hot_path(text: str, steps: int = 16) -> np.ndarray:
    """(steps, classes) probabilities whose greedy CTC path reads `text` (each character then a blank)."""
    out = np.zeros((steps, NUM_CLASSES), np.float32)
    out[:, BLANK] = 1.0
    for i, c in enumerate(text):
        out[2 * i] = 0.0
        out[2 * i, ALPHABET.index(c)] = 1.0
    return out


def test_lpr_exact_counts_whole_plates_only() -> None:
    outputs = np.stack([_one_hot_path("AB123CD"), _one_hot_path("AB123CE"), _one_hot_path("XY987ZW")])
    labels = np.stack([encode("AB123CD"), encode("AB123CD"), encode("XY987ZW")])
    assert lpr_exact(outputs, labels) == pytest.approx(200.0 / 3.0)
    assert METRICS["lpr_exact"](outputs, labels) == pytest.approx(200.0 / 3.0)
    assert label_strings(labels) == ["AB123CD", "AB123CD", "XY987ZW"]
    with pytest.raises(ValueError):
        exact_rate(["AB123CD"], [])


def test_unknown_metric_and_cloud_op_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PlanError, match="unknown accuracy metric 'f1'"):
        get_metric("f1")
    model = str(weights_path("small"))
    args = ["plan", model, "--target", "cortex-a7", "--uplink", "3mbit", "-o", str(tmp_path / "p.json")]
    assert main([*args, "--metric", "f1"]) != 0
    assert main([*args, "--cloud-ops", "GRU"]) != 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("splitsdk: error:")]
    assert len(err) == 2
    assert err[-2].startswith("splitsdk: error: --metric: unknown accuracy metric 'f1'")
    assert err[-1].startswith("splitsdk: error: --cloud-ops: no layer of op GRU in the model")
    assert "Bidirectional" in err[-1]
    assert not (tmp_path / "p.json").exists()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data, plan (measured exact-plate accuracy on 16 validation frames), bundle and firmware of the small reader."""
    d = tmp_path_factory.mktemp("lpr")
    calib = d / "calib.npz"
    with np.load(data.write_npz(d / "calib-labelled.npz", data.SPLITS["train"], 16)) as z:
        np.savez(calib, x=z["x"])
    val = data.write_npz(d / "val.npz", data.SPLITS["val"], 16)
    test = data.write_npz(d / "test.npz", data.SPLITS["test"], FRAMES)
    frames = d / "frames"
    data.write_frames(frames, data.SPLITS["test"], FRAMES)
    model = str(weights_path("small"))
    wd = d / "small"
    wd.mkdir()
    plan = wd / "plan.json"
    common = ["--calib", str(calib)]
    assert (
        main(
            [
                "plan",
                model,
                "--target",
                "cortex-a7",
                "--uplink",
                "3mbit",
                "--max-accuracy-drop",
                "1",
                *common,
                "--eval",
                str(val),
                "--metric",
                "lpr_exact",
                "--cloud-ops",
                "Bidirectional",
                # 16 validation frames cannot tell JPEG-Q75's drop from none, and this chain is the split's
                # (tests/test_edge_jpeg.py runs JPEG bundles through the edge app)
                "--no-jpeg-solution",
                "-o",
                str(plan),
            ]
        )
        == 0
    )
    assert (
        main(["convert", str(plan), "--model", model, *common, "--postprocess", "lpr_ctc", "-o", str(wd / "bundle")])
        == 0
    )
    assert main(["generate", "--target", "cortex-a7", "--bundle", str(wd / "bundle"), "-o", str(d / "app")]) == 0
    assert main(["build", str(d / "app"), "-o", str(wd / "firmware")]) == 0
    return {"dir": d, "calib": calib, "test": test, "frames": frames, "plan": plan, "work": wd}


@_chain
def test_plan_keeps_the_bilstm_in_the_cloud(chain: dict[str, Path]) -> None:
    plan = json.loads(chain["plan"].read_text())
    sol = plan["solution"]
    assert sol["kind"] == "SPLIT"
    assert "bilstm" not in sol["edge_layers"] and sol["edge_layers"][0] == "stem_conv"
    assert sol["predicted"]["accuracy_drop"] <= 1.0
    notes = " ".join(plan["selection"]["notes"])
    assert "accuracy measured as lpr_exact" in notes and "op Bidirectional stay in the cloud" in notes
    assert plan["selection"]["criterion"] == "measured-accuracy"
    assert plan["baselines"]["cloud_only_jpeg_q75"]["jpeg_quality"] == 75  # still compared, as a baseline
    cloud = plan["baselines"]["cloud_only"]["predicted"]["total_ms"]
    assert sol["predicted"]["total_ms"] <= 0.65 * cloud  # the goal, in the planner's model


@_chain
def test_qemu_plates_from_the_receiver_db_equal_the_host_pipeline(chain: dict[str, Path]) -> None:
    with np.load(chain["test"]) as z:
        x, truth = z["x"], label_strings(z["y"])
    bundle, work = chain["work"] / "bundle", chain["work"]
    host = pipeline.host_plates(bundle, x)
    run = pipeline.qemu_plates(work / "firmware", bundle, chain["frames"], chain["dir"] / "results.sqlite")
    names = [f"frame_{i:05d}.ppm" for i in range(FRAMES)]
    assert sorted(run.plates) == names
    assert [run.plates[n] for n in names] == host  # ARM int8 edge + wire + receiver == host pipeline, exactly
    assert pipeline.frame_labels(chain["frames"]) == dict(zip(names, truth, strict=True))
    assert exact_rate(host, truth) >= (FRAMES - 1) / FRAMES  # checked-in weights read this fixed slice
    assert exact_rate(pipeline.float_plates(weights_path("small"), x), truth) >= (FRAMES - 1) / FRAMES
    assert run.counters["results"] == FRAMES and run.stages["infer"]["n"] == FRAMES
    with pytest.raises(ToolchainError, match="already exists"):
        pipeline.qemu_plates(work / "firmware", bundle, chain["frames"], chain["dir"] / "results.sqlite")


@_chain
def test_table_rows_from_the_chain(chain: dict[str, Path]) -> None:
    case = Case("small", weights_path("small"), chain["work"])
    rows, schedule = build_rows(case, None, chain["test"], chain["calib"], chain["frames"], 3, chain["dir"])
    assert schedule is None  # no --adaptive folder: no schedule rows (tests/test_lpr_table.py runs them)
    by = {r.method: r for r in rows}
    assert list(by) == [
        "Float on edge",
        "Float to cloud (CLOUD-ONLY)",
        "CLOUD-ONLY+JPEG-Q95",
        "CLOUD-ONLY+JPEG-Q75",
        "CLOUD-ONLY+JPEG-Q50",
        "TQ8 edge-only",
        "AUTO-SPLIT",
        "AUTO-SPLIT, large LSTM",
    ]
    split = by["AUTO-SPLIT"]
    assert split.edge_bytes == (chain["work"] / "bundle" / "edge.tflite").stat().st_size
    assert "3/3 plates equal to the host's" in split.accuracy_how
    assert by["Float to cloud (CLOUD-ONLY)"].vs_cloud == 1.0 and split.vs_cloud < 1.0
    assert by["AUTO-SPLIT, large LSTM"].accuracy is None
    text = markdown(rows, "t")
    assert "| AUTO-SPLIT |" in text and "QEMU (emulation)" in text
