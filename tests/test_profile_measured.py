"""Measured latency tables replace the analytic numbers: a cloud table must cover the model, an edge table
may cover part of it (the analytic model fills the rest, and the profile's source says so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_profile_graphs import toy_graph

from splitsdk.errors import ProfileError
from splitsdk.profile import build_profile, load_measured

LAYERS = ["conv1", "dw", "add", "pool", "flat", "fc"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def flat_csv(tmp_path: Path, skip: str = "") -> Path:
    rows = [f"{name},{i + 0.5}" for i, name in enumerate(LAYERS) if name != skip]
    return write(tmp_path / "edge.csv", "layer,ms\n" + "\n".join(rows) + "\n")


def test_flat_csv_replaces_every_precision_of_the_edge(tmp_path: Path) -> None:
    p = build_profile(toy_graph(), "cortex-a7", "cloud-gpu", measured_edge=flat_csv(tmp_path))
    assert p.edge_ms("conv1", 8, 8) == p.edge_ms("conv1", 32, 32) == 0.5
    assert p.edge_ms("fc", 4, 16) == 5.5
    assert p.source == f"edge=measured:{tmp_path / 'edge.csv'};cloud=analytic"
    assert p.cloud_ms("conv1") == build_profile(toy_graph(), "cortex-a7", "cloud-gpu").cloud_ms("conv1")


def test_measured_cloud_table(tmp_path: Path) -> None:
    path = write(tmp_path / "cloud.json", json.dumps({"layers": {n: 0.01 * (i + 1) for i, n in enumerate(LAYERS)}}))
    p = build_profile(toy_graph(), "eyeriss", "tpu", measured_cloud=path)
    assert p.cloud_ms("fc") == pytest.approx(0.06)
    assert p.source.endswith(f"cloud=measured:{path}")


def test_edge_table_missing_a_layer_takes_the_model_there(tmp_path: Path) -> None:
    path = flat_csv(tmp_path, skip="pool")
    p = build_profile(toy_graph(), "cortex-a7", "cloud-gpu", measured_edge=path)
    analytic = build_profile(toy_graph(), "cortex-a7", "cloud-gpu")
    assert p.edge_ms("pool", 8, 8) == analytic.edge_ms("pool", 8, 8) != 3.5
    assert p.edge_ms("conv1", 8, 8) == 0.5
    n = len(p.edge["conv1"])
    assert p.source == f"edge=measured:{path}+analytic({5 * n}/{6 * n} values measured);cloud=analytic"


def test_cloud_table_missing_a_layer_names_file_and_layer(tmp_path: Path) -> None:
    path = flat_csv(tmp_path, skip="pool")
    with pytest.raises(ProfileError, match=rf"{path}: no measurement for layer 'pool'"):
        build_profile(toy_graph(), "cortex-a7", "cloud-gpu", measured_cloud=path)


def per_bits_csv(tmp_path: Path, pairs: list[tuple[int, int]]) -> Path:
    lines = ["layer,wbits,abits,ms"]
    for name in LAYERS:
        for w, a in pairs:
            lines.append(f"{name},{w},{a},{w + a / 100}")
    return write(tmp_path / "bits.csv", "\n".join(lines) + "\n")


def test_per_bits_table_fills_pairs_the_runtime_runs_the_same_way(tmp_path: Path) -> None:
    # what one can measure on the camera: the four precisions TFLite runs
    path = per_bits_csv(tmp_path, [(8, 8), (8, 16), (8, 32), (32, 32)])
    p = build_profile(toy_graph(), "cortex-a7", "cloud-gpu", measured_edge=path)
    assert p.edge_ms("conv1", 8, 16) == pytest.approx(8.16)
    assert p.edge_ms("conv1", 4, 2) == pytest.approx(8.08)  # emulated widths run as int8
    assert p.edge_ms("conv1", 32, 8) == pytest.approx(32.32)  # float weights run in float
    assert p.edge_ms("conv1", 2, 32) == pytest.approx(8.32)  # dynamic-range int8


def test_per_bits_table_lacking_a_mode_takes_the_model_for_it(tmp_path: Path) -> None:
    path = per_bits_csv(tmp_path, [(8, 8), (32, 32)])
    p = build_profile(toy_graph(), "cortex-a7", "cloud-gpu", measured_edge=path)
    analytic = build_profile(toy_graph(), "cortex-a7", "cloud-gpu")
    assert p.edge_ms("conv1", 4, 8) == pytest.approx(8.08)
    assert p.edge_ms("conv1", 2, 16) == analytic.edge_ms("conv1", 2, 16)  # int16x8 was not measured
    with pytest.raises(ProfileError, match=r"bits.csv: layer 'conv1' has no measurement at wbits=2, abits=16"):
        load_measured(path).lookup("conv1", (2, 16))


@pytest.mark.parametrize(
    "name,text",
    [
        ("list.json", json.dumps([{"layer": n, "ms": 1.5} for n in LAYERS])),
        ("map.json", json.dumps({n: 1.5 for n in LAYERS})),
        ("nested.json", json.dumps({n: {"8,8": 1.5, "32,32": 3.0} for n in LAYERS})),
        ("records.json", json.dumps({"layers": [{"layer": n, "wbits": 8, "abits": 8, "ms": 1.5} for n in LAYERS]})),
        ("comments.csv",
         "# measured on a Hi3516EV200, TFLite 2.14.1\nlayer , ms\n" + "".join(f"{n}, 1.5\n" for n in LAYERS)),
    ],
)
def test_table_formats(tmp_path: Path, name: str, text: str) -> None:
    table = load_measured(write(tmp_path / name, text))
    assert table.layers() == set(LAYERS)
    assert table.lookup("conv1", (8, 8)) == 1.5


@pytest.mark.parametrize(
    "name,text,match",
    [
        ("bad_ms.csv", "layer,ms\nconv1,fast\n", r"line 2: field 'ms': not a number: 'fast'"),
        ("neg.csv", "layer,ms\nconv1,-1\n", r"line 2: field 'ms': must be a finite number >= 0"),
        ("nan.json", '{"conv1": NaN}', r"layer 'conv1': field 'ms': must be a finite number"),
        ("bits.csv", "layer,wbits,abits,ms\nconv1,x,8,1\n", r"line 2: field 'wbits': not an integer"),
        ("wide.csv", "layer,wbits,abits,ms\nconv1,64,8,1\n", r"line 2: field 'wbits': 64 outside 1..32"),
        ("header.csv", "name,time\nconv1,1\n", r"header must be 'layer,ms' or 'layer,wbits,abits,ms'"),
        ("empty.csv", "layer,ms\n", r"the latency table has no rows"),
        ("broken.json", "{", r"not valid JSON"),
        ("scalar.json", "3", r"expected a list of records or an object of layers"),
        ("key.json", '{"conv1": {"8": 1}}', r"key '8': expected '<wbits>,<abits>'"),
        ("noname.json", '[{"ms": 1}]', r"record 0: field 'layer': missing"),
        ("mixed.csv", "layer,wbits,abits,ms\nconv1,8,8,1\n", None),
    ],
)
def test_bad_tables_name_file_and_field(tmp_path: Path, name: str, text: str, match: str | None) -> None:
    path = write(tmp_path / name, text)
    if match is None:
        assert load_measured(path).by_bits == {"conv1": {(8, 8): 1.0}}
        return
    with pytest.raises(ProfileError) as err:
        load_measured(path)
    assert str(err.value).startswith(f"{path}: ")
    assert err.match(match)


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the latency table"):
        load_measured(tmp_path / "nope.csv")
