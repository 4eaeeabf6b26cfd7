"""`splitsdk report`: Markdown and PNGs from plan.json, deterministic, one-line errors on bad plans."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from splitsdk.cli.main import main
from splitsdk.plan import Plan, PlanMeta, PlanProblem, make_plan, save_plan, write_report
from splitsdk.plan.report import figures, pareto_front
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.plots import MAX_TICK_LABELS, figure_problems, new_figure
from splitsdk.profile.measured import LayerComparison
from splitsdk.profile.types import Link

import model_zoo


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
    assert names == ["bits.png", "latency.png", "pareto.png", "report.md", "transmit.png"]
    for png in ("bits.png", "latency.png", "pareto.png", "transmit.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "rep" / "report.md").read_text()
    for needle in (
        "# Split plan for random2",
        "Why:",
        "![Pareto front](pareto.png)",
        "(transmit.png)",
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
    for name in ("report.md", "pareto.png", "latency.png", "transmit.png", "bits.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not valid JSON"), ('{"schema_version": 2}', "model: missing"), ('{"schema_version": 7}', "schema_version")],
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


def _big_plan(n_layers: int = 64) -> Plan:
    graph, prof, sens = random_problem_parts(3, n_layers, [2, 4, 8], branchy=False)
    p = PlanProblem(graph, prof, sens, Link(3.0, 10.0), [2, 4, 8], 10**7, max_error=5.0)
    return make_plan(p, PlanMeta(f"random{n_layers}", "00" * 32, target="edge", cloud="cloud"))


def _texts(fig: Figure) -> tuple[str, str, str, list[str]]:
    ax = fig.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()] if legend is not None else []
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), labels


def test_report_figures_are_labelled_with_units_and_readable_on_a_64_layer_model() -> None:
    plan = _big_plan()
    figs = figures(plan)
    assert sorted(figs) == ["bits.png", "latency.png", "pareto.png", "transmit.png"]
    for name, fig in figs.items():
        assert figure_problems(fig) == [], name  # titles, labels, <= 30 names per axis, legend off the data
    assert "(ms" in _texts(figs["pareto.png"])[1] and "(ms)" in _texts(figs["latency.png"])[1]
    assert "(kB" in _texts(figs["transmit.png"])[2] and "(bits)" in _texts(figs["bits.png"])[2]
    last_edge = plan.layers[plan.solution.split_index - 1] if plan.solution.split_index else "CLOUD-ONLY"
    for name in ("transmit.png", "bits.png"):  # the chosen split is marked, by name
        assert any(t.startswith("chosen split") and last_edge in t for t in _texts(figs[name])[3]), name
    bits_ticks = [t.get_text() for t in figs["bits.png"].axes[0].get_xticklabels()]
    assert 10 <= len(bits_ticks) <= MAX_TICK_LABELS < len(plan.layers) and set(bits_ticks) <= set(plan.layers)
    # the threshold line says what it is: this plan's criterion is the error proxy, not a measured accuracy
    assert plan.selection.criterion == "error-proxy"
    assert any(t.startswith("error-proxy limit") for t in _texts(figs["pareto.png"])[3])


def test_measured_accuracy_threshold_is_named_as_such() -> None:
    plan = _big_plan(12)
    measured = replace(plan, selection=replace(plan.selection, criterion="measured-accuracy", threshold=1.5))
    labels = _texts(figures(measured)["pareto.png"])[3]
    assert "accuracy limit: drop <= 1.5 points (measured)" in labels
    assert "points" in _texts(figures(measured)["pareto.png"])[2]


def test_edge_profile_figure_with_a_measured_table(tmp_path: Path) -> None:
    plan = _big_plan(40)
    notes = [LayerComparison(n, 8, 8, 0.5 + i, 0.4 + i).note() for i, n in enumerate(plan.layers[:35])]
    plan = replace(plan, selection=replace(plan.selection, notes=(*plan.selection.notes, *notes)))
    figs = figures(plan)
    assert figure_problems(figs["edge_profile.png"]) == []
    assert "(ms" in _texts(figs["edge_profile.png"])[2]
    written = write_report(plan, tmp_path / "rep")
    assert tmp_path / "rep" / "edge_profile.png" in written


def test_figure_problems_finds_what_a_reader_would_not_accept() -> None:
    fig, ax = new_figure(6, 4)
    ax.plot(range(60), range(60), label="data")
    ax.set_xticks(range(60), [f"layer_{i}" for i in range(60)])
    ax.legend(loc="center")
    problems = figure_problems(fig)
    for needle in ("no title", "no x label", "no y label", "60 x tick labels", "legend is drawn over"):
        assert any(needle in p for p in problems), (needle, problems)


def test_inspect_plot_is_in_bytes_and_labelled(tmp_path: Path) -> None:
    from splitsdk.inspect import inspect_model, plot_transmission, transmission_figure

    model_zoo.chain().save(tmp_path / "chain.keras")
    result = inspect_model(str(tmp_path / "chain.keras"))
    fig = transmission_figure(result)
    assert figure_problems(fig) == []
    title, _x, y, legend = _texts(fig)
    assert "bytes" in title and "(kB" in y and any("model input" in t for t in legend)
    plot_transmission(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_traffic_section_and_figure_for_a_plan_with_a_frame_rate(tmp_path: Path) -> None:
    from splitsdk.plan.build import TrafficOptions
    from splitsdk.plan.traffic import Arrivals

    graph, prof, sens = random_problem_parts(1, 6, [2, 4, 8])
    p = PlanProblem(graph, prof, sens, Link(20.0, 1.0), [2, 4, 8], 10**6, max_error=5.0)
    plan = make_plan(p, PlanMeta("random1", "00" * 32, target="edge", cloud="cloud"),
                     traffic=TrafficOptions(Arrivals(200.0, "poisson"), max_loss=0.02))
    figs = figures(plan)
    assert "traffic.png" in figs and figure_problems(figs["traffic.png"]) == []
    written = write_report(plan, tmp_path / "rep")
    assert tmp_path / "rep" / "traffic.png" in written
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Frame rate: latency and loss" in text and "At **200 fps** (poisson arrivals" in text
    table = [line for line in text.splitlines() if line.startswith("| 200 (planned) |")]
    assert len(table) == 1 and "AUTO-SPLIT ms / loss" in text and "CLOUD-ONLY ms / loss" in text
    assert "modelled" in text
