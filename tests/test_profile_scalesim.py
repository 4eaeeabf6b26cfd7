"""The SCALE-Sim backend against the analytic closed form, on the real simulator (PyPI scalesim 3.0.0).

Compute cycles must match exactly. For layers whose operands fit the SRAMs (these), the analytic
memory term (larger operand prefetch + output write-back, over the port bandwidth) is within two
cycles of SCALE-Sim's "Total Cycles (incl. prefetch)".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_profile_graphs import conv_layer, single_layer_graph, toy_graph

from splitsdk.errors import ProfileError
from splitsdk.graph.model import Layer
from splitsdk.profile import build_profile
from splitsdk.profile.analytic import layer_cost
from splitsdk.profile.geometry import SimLayer, layer_work
from splitsdk.profile.scalesim_backend import layer_cost_scalesim, sim_config, simulate_layer
from splitsdk.profile.systolic import compute_cycles, memory_cycles, operand_words
from splitsdk.target import builtin_targets_dir, load_target

EYERISS = load_target("eyeriss")

SMALL_LAYERS = [
    ("conv3x3", conv_layer("l", "x2", "y", 3, 8, 16, 14, 14), (16, 16, 8), (14, 14, 16)),
    ("pointwise", conv_layer("l", "x2", "y", 1, 16, 20, 10, 10), (10, 10, 16), (10, 10, 20)),
    ("strided", conv_layer("l", "x2", "y", 3, 4, 5, 4, 4, attrs={"strides": 2}), (9, 9, 4), (4, 4, 5)),
    ("dense", Layer("l", "Dense", ["x2"], ["y"], weights=64 * 10, macs=640), (64,), (10,)),
    ("depthwise", Layer("l", "DepthwiseConv2D", ["x2"], ["y"], weights=36, macs=8 * 8 * 9 * 4), (10, 10, 4),
     (8, 8, 4)),
]


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("case", SMALL_LAYERS, ids=[c[0] for c in SMALL_LAYERS])
def test_analytic_compute_cycles_equal_scalesim(case: tuple, bits: int, tmp_path: Path) -> None:
    _, layer, in_shape, out_shape = case
    g = single_layer_graph(layer, in_shape, out_shape)
    (sim,) = layer_work(g, g.layer("l")).sims
    arr = EYERISS.device.systolic
    assert arr is not None
    config = sim_config(EYERISS, bits, bits, bits)
    assert config.ifmap_bw == 5 * 8 // bits and config.ifmap_sram_kb == 64 * 8 // bits
    one = SimLayer(**{**sim.__dict__, "repeat": 1})
    measured = simulate_layer(one, config, cache=tmp_path)
    assert measured.stall == 0
    assert measured.compute == compute_cycles(one, arr.rows, arr.cols, arr.dataflow)
    words = operand_words(one, arr.rows, arr.cols, arr.dataflow)
    analytic_total = measured.compute + memory_cycles(words, bits, bits, bits, EYERISS.device.bytes_per_cycle)
    assert abs(measured.overall - analytic_total) <= 2


def eyeriss_8bit_only(tmp_path: Path) -> Path:
    """Eyeriss with one candidate width, so a profile needs few simulations."""
    text = (builtin_targets_dir() / "eyeriss.toml").read_text()
    text = text.replace('name = "eyeriss"', 'name = "eyeriss8"').replace(
        "candidate_bits = [2, 4, 6, 8]", "candidate_bits = [8]")
    path = tmp_path / "eyeriss8.toml"
    path.write_text(text)
    return path


def test_scalesim_profile_agrees_with_analytic_and_is_cached(tmp_path: Path) -> None:
    # conv1 reads the model input, dw repeats per channel, fc is a GEMM; add/pool stay analytic
    g = toy_graph()
    edge = load_target(eyeriss_8bit_only(tmp_path))
    cache = tmp_path / "cache"
    sim = build_profile(g, edge, "cloud-gpu", backend="scalesim", cache=cache)
    ana = build_profile(g, edge, "cloud-gpu")
    assert sim.source == "edge=scalesim;cloud=analytic"
    assert set(sim.edge) == set(ana.edge) and sim.cloud == ana.cloud
    for name in ("add", "pool", "flat"):
        assert sim.edge[name] == ana.edge[name]
    for name in ("conv1", "dw", "fc"):
        work = layer_work(g, g.layer(name))
        for w, a in sim.edge[name]:
            s = layer_cost_scalesim(work, edge, w, a, cache=cache)
            c = layer_cost(work, edge, w, a)
            assert s.compute_s == pytest.approx(c.compute_s, rel=1e-12)  # exact, up to float rounding
    entries = sorted(cache.glob("scalesim/*.json"))
    assert entries  # one per (geometry, scaled config)
    # a second profile reads the cache: doctor one entry and see it come back
    doctored = json.loads(entries[0].read_text())
    doctored["cycles"] = {"overall": 10**9, "total": 10**9, "stall": 0, "compute": 10**9}
    entries[0].write_text(json.dumps(doctored))
    again = build_profile(g, edge, "cloud-gpu", backend="scalesim", cache=cache)
    assert again != sim
    assert max(max(row.values()) for row in again.edge.values()) > 1000  # 10^9 cycles at 200 MHz


def test_scalesim_cache_defaults_to_splitsdk_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "envcache"))
    simulate_layer(SimLayer.gemm(1, 10, 64), sim_config(EYERISS, 8, 8, 8))
    assert len(list((tmp_path / "envcache" / "scalesim").glob("*.json"))) == 1


def test_scalesim_timeout_names_the_layer(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"SCALE-Sim: layer 'big' did not finish within 0 s"):
        simulate_layer(SimLayer(64, 64, 3, 3, 64, 64), sim_config(EYERISS, 8, 8, 8), timeout_s=0.01,
                       name="big", cache=tmp_path)


def test_scalesim_needs_a_systolic_target() -> None:
    with pytest.raises(ProfileError, match="needs a systolic device"):
        sim_config(load_target("cortex-a7"), 8, 8, 8)
