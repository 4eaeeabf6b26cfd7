"""`splitsdk plan --uplink LOW..HIGH` / `--uplink-trace` end to end: the split set in plan.json, its report, and
`splitsdk convert` of such a plan into the multi-split bundle that a real receiver serves split by split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_adaptive_bundle import _cloud, ladder_model

from splitsdk.cli.main import main
from splitsdk.plan import load_plan
from splitsdk.plan.build import representative_rate
from splitsdk.plan.uplink import load_uplink_trace, parse_uplink
from splitsdk.wire.bundle import load_bundle

RANGE = "1mbit..20mbit"
TRACE = "time_s,mbit_s\n0,20\n10,1\n15,20\n30,\n"  # 20 Mbit/s for 25 s, 1 Mbit/s for 5 s
HEAD = ["--target", "cortex-a7", "--rtt", "10", "--cloud-ops", "Dense", "--jpeg", "none"]  # the head stays in the cloud


def _plan(model: Path, out: Path, *extra: str) -> int:
    return main(["plan", str(model), *HEAD, "-o", str(out), *extra])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uplink-cli")
    model = ladder_model(root / "ladder.keras")
    assert _plan(model, root / "plan.json", "--uplink", RANGE) == 0
    assert main(["convert", str(root / "plan.json"), "--model", str(model), "-o", str(root / "bundle"),
                 "--postprocess", "raw"]) == 0
    return {"root": root, "model": model, "plan": load_plan(root / "plan.json"), "bundle": load_bundle(root / "bundle")}


def test_a_range_records_the_split_set_and_plans_the_rest_at_its_median(work: dict[str, Any]) -> None:
    plan = work["plan"]
    s = plan.split_set
    uplink = parse_uplink(RANGE)
    assert s is not None and len(s.members) >= 2 and s.latencies == "modelled"
    assert s.rates == uplink.rates and s.weights == uplink.weights and s.uplink == uplink.source
    assert plan.link.uplink_mbps == representative_rate(uplink) and plan.link.rtt_ms == 10.0
    assert s.expected_ms <= s.best_static_ms and s.oracle_ms <= s.expected_ms + 1e-9
    assert all(m.split_index <= 5 for m in s.members)  # --cloud-ops Dense: the head stays in the cloud
    assert [r.mbps for r in s.per_rate] == list(s.rates) and {r.split_index for r in s.per_rate} <= set(s.splits)
    assert s.memory_bytes <= plan.constraints.memory_bytes == s.memory_limit
    assert any("weighted median" in n for n in plan.selection.notes)


def test_the_printed_summary_and_the_report_show_the_set(
    work: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = work["plan"].split_set
    assert _plan(work["model"], tmp_path / "plan.json", "--uplink", RANGE, "--exact", "none") == 0
    text = capsys.readouterr().out
    assert f"split set over {s.uplink}" in text and "set / oracle" in text
    assert main(["report", str(work["root"] / "plan.json"), "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Split set: a split that follows the uplink" in md and f"{s.vs_static:.3f}x the best static" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line.count("|") == 9]
    assert len(rows) == 1 + len(s.rates) + 1  # header, one row per rate, the expectation


def test_convert_writes_the_multi_split_bundle_and_a_receiver_serves_each_split(work: dict[str, Any]) -> None:
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.wire.edge import EdgeChain, EdgeClient

    bundle, s = work["bundle"], work["plan"].split_set
    assert [m.split for m in bundle.manifest.splits] == list(s.splits) == list(bundle.split_indices)
    assert (bundle.root / "plan.json").read_bytes() == (work["root"] / "plan.json").read_bytes()
    image = np.random.default_rng(7).integers(0, 256, bundle.input.shape).astype(np.uint8)
    chain = EdgeChain(bundle)
    with ReceiverProcess(bundle) as receiver:
        for k in bundle.split_indices:
            camera = EdgeClient(bundle, "127.0.0.1", receiver.port, f"cam-{k}", split=k)
            try:
                got = json.loads(camera.infer(image).body)["outputs"][0]
            finally:
                camera.close()
            want = _cloud(load_cloud_runner(bundle.member(k)), bundle.member(k), [chain.run(image, k)])[0]
            assert np.allclose(got, want, atol=1e-5)


def test_convert_of_a_split_set_plan_keeps_the_refusal_rules(
    work: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    argv = ["convert", str(work["root"] / "plan.json"), "--model", str(work["model"]), "--postprocess", "raw"]
    capsys.readouterr()
    assert main([*argv, "-o", str(mine)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and str(mine) in err
    assert (mine / "notes.txt").read_text() == "my own file" and not (mine / "manifest.json").exists()
    assert main([*argv, "-o", str(tmp_path / "b"), "--no-verify"]) == 1
    assert "--no-verify: a multi-split bundle" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "b"), "--samples", "0"]) == 1
    assert capsys.readouterr().err.strip().endswith("--samples: must be >= 1, got 0")
    assert not (tmp_path / "b").exists()


def test_a_trace_file_weighs_each_rate_by_how_long_it_holds(work: dict[str, Any], tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    assert _plan(work["model"], tmp_path / "plan.json", "--uplink-trace", str(trace), "--max-splits", "2",
                 "--exact", "none", "--json") == 0
    plan = load_plan(tmp_path / "plan.json")
    s = plan.split_set
    assert s is not None and s.rates == (1.0, 20.0) and s.weights == pytest.approx((5 / 30, 25 / 30))
    assert s.uplink == load_uplink_trace(trace).source and "trace.csv" in s.uplink
    assert plan.link.uplink_mbps == 20.0  # the weighted median
    assert len(s.members) <= 2
    sent = {m.split_index: m.transmit_bytes for m in s.members}
    assert sent[s.per_rate[0].split_index] <= sent[s.per_rate[1].split_index]  # 1 Mbit/s: no more bytes than 20


def test_one_rate_plans_as_before_without_a_split_set(work: dict[str, Any], tmp_path: Path) -> None:
    assert _plan(work["model"], tmp_path / "plan.json", "--uplink", "3", "--exact", "none") == 0
    plan = load_plan(tmp_path / "plan.json")
    assert plan.split_set is None and plan.link.uplink_mbps == 3.0
    assert not any("weighted median" in n for n in plan.selection.notes)
    assert _plan(work["model"], tmp_path / "same.json", "--uplink", "3mbit..3mbit", "--exact", "none") == 0
    assert load_plan(tmp_path / "same.json").split_set is None  # an empty range is one rate


BAD_TRACES = {
    "row": ("time_s,mbit_s\n0,20\n5,fast\n", "trace.csv: row 3: mbit_s: 'fast' is not a number"),
    "zero": ("0,20\n5,0\n", "trace.csv: row 2: mbit_s: must be positive, got 0"),
    "order": ("0,20\n5,1\n5,3\n", "trace.csv: row 3: time_s: 5 is not after the previous row's"),
    "fields": ("0,20,1\n", "trace.csv: row 1: expected 2 fields (time_s,mbit_s), got 3"),
    "empty": ("time_s,mbit_s\n", "trace.csv: no time_s,mbit_s rows in the uplink trace"),
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--uplink", "20mbit..1mbit"], "--uplink: range '20mbit..1mbit' runs from high to low"),
        (["--uplink", "1mbit..fast"], "--uplink (high end of '1mbit..fast'): bad link rate"),
        (["--uplink", "..5"], "--uplink (low end of '..5')"),
        (["--uplink", RANGE, "--max-splits", "0"], "--max-splits: must be at least 1, got 0"),
        (["--uplink", "3", "--max-splits", "2"], "--max-splits: needs a rate distribution"),
        (["--uplink", RANGE, "--compress", "zstd"], "--compress: not modelled for a split set"),
        (["--uplink-trace", "{tmp}/none.csv"], "none.csv: cannot read the uplink trace"),
        *[(["--uplink-trace", "{tmp}/trace.csv"], m) for m in [msg for _, msg in BAD_TRACES.values()]],
    ],
    ids=["high-low", "bad-high", "bad-low", "max-splits-0", "max-splits-one-rate", "compress", "no-trace",
         *[f"trace-{k}" for k in BAD_TRACES]],
)
def test_bad_uplinks_are_refused_in_one_line_naming_the_flag_or_row(
    work: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    text = next((t for t, m in BAD_TRACES.values() if m == message), None)
    if text is not None:
        (tmp_path / "trace.csv").write_text(text)
    capsys.readouterr()
    assert _plan(work["model"], tmp_path / "plan.json", *[a.format(tmp=tmp_path) for a in args]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and message in err, err
    assert not (tmp_path / "plan.json").exists()


def test_uplink_and_trace_together_are_a_usage_error(work: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _plan(work["model"], tmp_path / "plan.json", "--uplink", "3", "--uplink-trace", "t.csv")
    assert exc.value.code == 2 and not (tmp_path / "plan.json").exists()
