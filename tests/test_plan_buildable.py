"""The planner only proposes what can be built: which layers convert is measured (and cached), the
split stops before the first one that does not, baselines that cannot be built are marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitsdk.graph import load_graph
from splitsdk.plan import Constraints, load_plan, plan_model, save_plan
from splitsdk.plan.buildable import first_unbuildable
from splitsdk.plan.report import markdown
from splitsdk.profile.types import Link
from splitsdk.target import builtin_targets_dir, load_target

LINK = Link(3.0, 10.0)


def _lstm_model(path: Path) -> Path:
    """A tiny sequence model whose LSTM the TFLite converter refuses (TensorList ops)."""
    import keras

    x = keras.Input((12, 8), name="seq")
    h = keras.layers.Dense(16, activation="relu", name="embed")(x)
    h = keras.layers.LSTM(8, return_sequences=True, name="lstm")(h)
    y = keras.layers.Dense(5, name="head")(h)
    keras.Model(x, y, name="lstm_net").save(path)
    return path


def _conv_model(path: Path) -> Path:
    import keras

    x = keras.Input((16, 16, 3), name="img")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    y = keras.layers.Dense(3, name="head")(h)
    keras.Model(x, y, name="conv_net").save(path)
    return path


def test_lstm_is_refused_at_plan_time_and_the_plan_converts(tmp_path: Path) -> None:
    from splitsdk.convert import convert_plan

    model = _lstm_model(tmp_path / "lstm.keras")
    graph = load_graph(model)
    lstm = graph.topological_order().index("lstm")
    plan = plan_model(str(model), "cortex-a7", LINK, Constraints(), exact=None)
    # never past the LSTM, and the plan says which layer bounds it
    assert plan.solution.split_index <= lstm and plan.solution.kind != "EDGE_ONLY"
    assert "'lstm'" in plan.solution.reason and "LSTM" in plan.solution.reason
    assert any(n.startswith("buildable on cortex-a7: the edge stops before layer 'lstm', op LSTM")
               for n in plan.selection.notes)
    # EDGE-ONLY and the uniform edge-only baselines cannot be built: marked in plan.json, with the layer
    save_plan(plan, tmp_path / "plan.json")
    loaded = load_plan(tmp_path / "plan.json")
    for key in ("edge_only", "u8", "u4"):
        b = loaded.baselines[key]
        assert not b.buildable and b.note.startswith("not buildable: layer 'lstm', op LSTM"), b
    assert loaded.baselines["cloud_only"].buildable
    for key in ("neurosurgeon", "qdmp_e"):  # the searching baselines choose among the cuts that build
        b = loaded.baselines[key]
        assert b.buildable and "lstm" not in b.edge_layers
    # the report lists them after every baseline that can be built, marked
    text = markdown(loaded)
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "(not buildable)" in ln]
    assert {ln.split(" | ")[0][2:] for ln in table} >= {"EDGE-ONLY", "U8"}
    assert "cannot be built for `cortex-a7`" in text
    # ... and convert of the plan succeeds (the LSTM runs in the cloud half)
    report = convert_plan(tmp_path / "plan.json", model, tmp_path / "bundle", samples=4, verify=False)
    assert report.kind == plan.solution.kind and (tmp_path / "bundle" / "edge.tflite").is_file()


def test_verdicts_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "cache"))
    graph = load_graph(_lstm_model(tmp_path / "lstm.keras"))
    target = load_target("cortex-a7")
    first = first_unbuildable(graph, target)
    assert first.bound is not None and (first.bound.layer, first.bound.op) == ("lstm", "LSTM")
    assert "TensorList" in first.bound.reason  # the converter's words, without MLIR locations
    assert "loc(" not in first.bound.reason
    assert first.converted >= 2 and first.checked == 2  # 'embed' and 'lstm'; 'head' is never looked at
    again = first_unbuildable(graph, target)
    assert again.converted == 0 and again.bound == first.bound
    # a damaged cache file is measured again, not trusted and not an error
    files = sorted((tmp_path / "cache" / "buildable").glob("*.json"))
    assert len(files) == 2
    for f in files:
        f.write_text("{not json")
    third = first_unbuildable(graph, target)
    assert third.bound == first.bound and third.converted >= 2


def test_a_whole_model_that_builds_costs_one_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "cache"))
    graph = load_graph(_conv_model(tmp_path / "conv.keras"))
    check = first_unbuildable(graph, load_target("cortex-a7"))
    assert check.bound is None and check.converted == 1 and check.checked == len(graph)
    assert first_unbuildable(graph, load_target("cortex-a7")).converted == 0


def test_a_target_exclusion_makes_a_layer_unbuildable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "cache"))
    text = (builtin_targets_dir() / "cortex-a7.toml").read_text()
    assert "\nunsupported = [" in text
    custom = tmp_path / "no-gap.toml"
    exclusion = 'unsupported_ops = ["GlobalAveragePooling2D"]\n'
    custom.write_text(text.replace("\nunsupported = [", f"\n{exclusion}unsupported = [", 1))
    target = load_target(custom)
    assert target.quant.unsupported_ops == ("GlobalAveragePooling2D",)
    model = _conv_model(tmp_path / "conv.keras")
    graph = load_graph(model)
    gap = graph.topological_order().index("gap")
    check = first_unbuildable(graph, target)
    assert check.bound is not None and (check.bound.index, check.bound.layer) == (gap, "gap")
    assert "quant.unsupported_ops" in check.bound.reason
    assert check.converted == gap  # the layers before it, one by one; the excluded one is not converted
    plan = plan_model(str(model), str(custom), LINK, Constraints(), exact=None)
    assert plan.solution.split_index <= gap
    assert not plan.baselines["edge_only"].buildable
    assert "not buildable: layer 'gap', op GlobalAveragePooling2D" in plan.baselines["edge_only"].note
