"""The licence-plate table's CLOUD-ONLY+JPEG rows and adaptive-bundle rows, on a few frames.

The small reader planned over `--uplink 1mbit..20mbit` (8 calibration frames, label-free), its split set
converted into one multi-split bundle, the JPEG rows measured on 4 test frames, and the adaptive camera and each
static member run under the 20 -> 1 -> 20 Mbit/s link-shaper schedule (1 s per step) against a real
`splitsdk serve`, plates read back from its database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitsdk.cli.main import main
from splitsdk.errors import DataError
from splitsdk.examples.lpr import data, weights_path
from splitsdk.examples.lpr.adaptive import ScheduleResult, measure_schedule, schedule_lines, schedule_markdown
from splitsdk.examples.lpr.metric import label_strings
from splitsdk.examples.lpr.table import Case, Row, adaptive_row, jpeg_rows, markdown
from splitsdk.plan.jpeg import encode, to_pixels
from splitsdk.profile.types import Link
from splitsdk.wire.bundle import load_bundle

pytestmark = pytest.mark.slow  # a plan, a convert and four receiver runs

FRAMES = 4
STEP_S = 1.0


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("lpr-table")
    calib = d / "calib.npz"
    with np.load(data.write_npz(d / "calib-labelled.npz", data.SPLITS["train"], 8)) as z:
        np.savez(calib, x=z["x"])
    with np.load(data.write_npz(d / "test.npz", data.SPLITS["test"], FRAMES)) as z:
        x, truth = z["x"], label_strings(z["y"])
    model = str(weights_path("small"))
    ad = d / "adaptive"
    ad.mkdir()
    common = ["--calib", str(calib)]
    plan = ["plan", model, "--target", "cortex-a7", "--uplink", "1mbit..20mbit", *common, "-o", str(ad / "plan.json")]
    assert main(plan) == 0
    assert main(["convert", str(ad / "plan.json"), "--model", model, *common, "--postprocess", "lpr_ctc",
                 "-o", str(ad / "bundle")]) == 0
    return {"dir": d, "x": x, "truth": truth, "model": Path(model), "adaptive": ad,
            "plan": json.loads((ad / "plan.json").read_text())}


@pytest.fixture(scope="module")
def schedule(work: dict[str, Any]) -> ScheduleResult:
    return measure_schedule(work["adaptive"] / "bundle", work["x"], work["truth"], STEP_S)


def test_jpeg_rows_measure_bytes_and_plates_on_the_test_frames(work: dict[str, Any]) -> None:
    plan = work["plan"]
    cloud_ms = plan["baselines"]["cloud_only"]["predicted"]["total_ms"]
    rows = jpeg_rows(Case("small", work["model"], work["adaptive"]), work["x"], work["truth"], cloud_ms)
    assert [r.method for r in rows] == ["CLOUD-ONLY+JPEG-Q95", "CLOUD-ONLY+JPEG-Q75", "CLOUD-ONLY+JPEG-Q50"]
    link = Link(plan["link"]["uplink_mbps"], plan["link"]["rtt_ms"])
    pixels = to_pixels(work["x"])
    for r, q in zip(rows, (95, 75, 50), strict=True):
        nbytes = float(np.mean([len(encode(p, q)) for p in pixels]))
        base = plan["baselines"][f"cloud_only_jpeg_q{q}"]["predicted"]
        # latency: the plan's encode and cloud terms, transmit of the bytes measured on these frames
        assert r.modelled_ms == pytest.approx(base["edge_ms"] + link.transmit_ms(round(nbytes)) + base["cloud_ms"])
        assert r.vs_cloud == pytest.approx(r.modelled_ms / cloud_ms) and r.vs_cloud < 1.0
        assert f"{nbytes:,.0f} B" in r.size_how and r.edge_bytes is None
        assert r.accuracy is not None and 0.0 <= r.accuracy <= 100.0 and r.accuracy * FRAMES / 100.0 % 1 == 0
        assert "Pillow" in r.accuracy_how and "modelled" in r.emulated and "measured" in r.emulated
    assert rows[0].modelled_ms > rows[-1].modelled_ms  # Q95 sends more than Q50


def test_schedule_runs_every_member_and_loses_no_frame(work: dict[str, Any], schedule: ScheduleResult) -> None:
    bundle = load_bundle(work["adaptive"] / "bundle")
    splits = bundle.split_indices
    assert len(splits) >= 2 and splits == tuple(m["split_index"] for m in work["plan"]["split_set"]["members"])
    assert [r.name for r in schedule.runs] == ["adaptive", *(f"static split {k}" for k in splits)]
    assert schedule.steps_mbps == (20.0, 1.0, 20.0) and schedule.images == FRAMES
    for r in schedule.runs:
        assert r.frames > 0 and r.answered == r.frames  # every frame's plate stored once, read back
        assert r.lost == 0 and r.duplicated == 0
        assert len(r.interval_ms) == 3 and 0.0 <= r.accuracy <= 100.0
    assert all(r.switches == 0 and r.probes == 0 for r in schedule.runs[1:])  # static cameras never switch
    assert all(p.removeprefix("split ").isdigit() for p in schedule.oracle_picks)
    assert schedule.oracle_mean_ms <= max(r.mean_ms for r in schedule.runs[1:])
    text = schedule_markdown(schedule)
    assert "| adaptive |" in text and "per-interval oracle" in text and "paced to the modelled" in text
    assert "lost 0, answered twice 0" in schedule_lines(schedule)[0]


def test_adaptive_row_in_the_main_table(work: dict[str, Any], schedule: ScheduleResult) -> None:
    table_plan = {"link": {"uplink_mbps": 3.0, "rtt_ms": 0.0}}
    row = adaptive_row(work["adaptive"], table_plan, schedule, cloud_ms=262.0)
    bundle = load_bundle(work["adaptive"] / "bundle")
    files = {s.file for k in bundle.split_indices for s in bundle.segments(k)}
    assert row.edge_bytes == sum((bundle.root / f).stat().st_size for f in files)
    assert row.accuracy == schedule.runs[0].accuracy
    assert row.vs_cloud == pytest.approx(row.modelled_ms / 262.0)
    assert "at 3 Mbit/s" in row.emulated and "1mbit..20mbit" in row.size_how
    cloud = Row("Float to cloud (CLOUD-ONLY)", 90.0, "x", 262.0, 1.0, "x", None, "x", "yes")
    text = markdown([cloud, row], "t")
    assert f"| {row.method} |" in text and "adaptive camera got answered" in text


def test_schedule_needs_one_label_per_frame(work: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="4 frames with 3 labels"):
        measure_schedule(work["adaptive"] / "bundle", work["x"], work["truth"][:3], STEP_S)


def test_table_cli_names_a_missing_adaptive_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from splitsdk.examples.lpr.table import main as table_main

    args = ["--test", "t.npz", "--calib", "c.npz", "--frames", "f", "-n", "1", "--case", "small", "m.keras", "w",
            "-o", str(tmp_path / "table.md"), "--adaptive", str(tmp_path / "none")]
    with pytest.raises(SystemExit) as exit_info:
        table_main(args)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    want = f"--adaptive {tmp_path / 'none'}: no plan.json (plan --uplink LOW..HIGH and convert into it)"
    assert err[0].startswith("usage:") and err[-1].endswith(want) and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "table.md").exists()
