"""`splitsdk report`: Markdown and PNGs from plan.json, deterministic, one-line errors on bad plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitsdk.cli.main import main
from splitsdk.plan import PlanMeta, PlanProblem, make_plan, save_plan, write_report
from splitsdk.plan.report import pareto_front
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.profile.types import Link


def _plan_file(tmp_path: Path) -> Path:
    graph, prof, sens = random_problem_parts(2, 7, [2, 4, 8])
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), [2, 4, 8], 10**6, max_error=5.0)
    path = tmp_path / "plan.json"
    save_plan(make_plan(p, PlanMeta("random2", "00" * 32, target="edge", cloud="cloud")), path)
    return path


def test_pareto_front() -> None:
    pts = [(1.0, 5.0), (2.0, 3.0), (2.5, 4.0), (3.0, 1.0), (0.5, 9.0), (3.0, 0.5)]
    assert pareto_front(pts) == [4, 0, 1, 5]  # (3.0, 1.0) is beaten by (3.0, 0.5) at the same latency


def test_report_cli_writes_markdown_and_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan_file(tmp_path)
    assert main(["report", str(plan), "-o", str(tmp_path / "rep")]) == 0
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["bits.png", "latency.png", "pareto.png", "report.md"]
    for png in ("bits.png", "latency.png", "pareto.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "rep" / "report.md").read_text()
    for needle in (
        "# Split plan for random2",
        "Why:",
        "![Pareto front](pareto.png)",
        "| QDMP_E+U4 |",
        "| Neurosurgeon |",
        "optimality gap",
        "## Bits per layer",
    ):
        assert needle in md
    assert str(tmp_path / "rep" / "report.md") in capsys.readouterr().out


def test_report_is_deterministic(tmp_path: Path) -> None:
    from splitsdk.plan import load_plan

    plan = load_plan(_plan_file(tmp_path))
    write_report(plan, tmp_path / "a")
    write_report(plan, tmp_path / "b")
    for name in ("report.md", "pareto.png", "latency.png", "bits.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not valid JSON"), ('{"schema_version": 1}', "model: missing"), ('{"schema_version": 7}', "schema_version")],
)
def test_corrupt_plan_gives_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text(content)
    assert main(["report", str(bad), "-o", str(tmp_path / "rep")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitsdk: error:") and message in err[0] and str(bad) in err[0]
    assert not (tmp_path / "rep").exists()


def test_missing_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none.json"), "-o", str(tmp_path / "rep")]) != 0
    assert "no such file" in capsys.readouterr().err
