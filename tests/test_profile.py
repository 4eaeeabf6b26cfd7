"""The analytic latency model: the paper's rules on bits, the SCALE-Sim closed form, the CPU roofline."""

from __future__ import annotations

import pytest
from test_profile_graphs import conv_layer, single_layer_graph, toy_graph

from splitsdk.errors import ProfileError
from splitsdk.graph.model import Layer
from splitsdk.profile import FLOAT_BITS, build_profile, edge_bit_pairs
from splitsdk.profile.analytic import layer_cost
from splitsdk.profile.geometry import SimLayer, layer_work
from splitsdk.profile.systolic import compute_cycles, memory_cycles, operand_words
from splitsdk.target import load_target

EDGES = ["eyeriss", "cortex-a7", "host"]

# Cycles SCALE-Sim 3.0.0 reported for these layers ("Total Cycles", no stalls), recorded once from
# the simulator; test_profile_scalesim.py re-runs the simulator on a subset. Layers are
# (ifmap h, ifmap w, filter h, filter w, channels, filters, stride).
A, B, C, D = (16, 16, 3, 3, 8, 16, 1), (10, 10, 1, 1, 16, 20, 1), (9, 9, 3, 3, 4, 5, 2), (1, 1, 1, 1, 64, 10, 1)
RECORDED = [
    ("os", 12, 14, A, 3263), ("os", 12, 14, B, 719), ("os", 12, 14, C, 119), ("os", 12, 14, D, 87),
    ("os", 8, 8, A, 4299), ("os", 4, 6, B, 2399), ("os", 4, 6, D, 143),
    ("ws", 12, 14, A, 2783), ("ws", 12, 14, D, 221), ("ws", 8, 8, C, 189), ("ws", 4, 6, A, 11231),
    ("is", 12, 14, A, 4367), ("is", 8, 8, B, 1091), ("is", 4, 6, C, 458), ("is", 4, 6, D, 351),
]


@pytest.mark.parametrize("df,rows,cols,layer,cycles", RECORDED)
def test_closed_form_reproduces_recorded_scalesim_cycles(
    df: str, rows: int, cols: int, layer: tuple[int, ...], cycles: int
) -> None:
    ih, iw, fh, fw, ch, nf, s = layer
    assert compute_cycles(SimLayer(ih, iw, fh, fw, ch, nf, s, s), rows, cols, df) == cycles


def test_repeat_counts_each_depthwise_channel() -> None:
    one = SimLayer(12, 12, 3, 3, 1, 1)
    assert compute_cycles(SimLayer(12, 12, 3, 3, 1, 1, repeat=16), 12, 14, "os") == 16 * compute_cycles(
        one, 12, 14, "os")


def test_memory_closed_form_counts_padded_operands() -> None:
    # layer A on a 12 x 14 array, os: the im2col'd ifmap is padded to 17 row folds of 12
    w = operand_words(SimLayer(16, 16, 3, 3, 8, 16), 12, 14, "os")
    assert (w.ifmap, w.filter, w.ofmap) == (72 * 204, 72 * 28, 196 * 16)
    # 5 bytes/cycle at 8 bits: (14688 + 3136) / 5; SCALE-Sim measured 6828 - 3263 = 3565
    assert memory_cycles(w, 8, 8, 8, 5.0) == pytest.approx(3564.8)
    assert memory_cycles(w, 4, 4, 4, 5.0) == pytest.approx(3564.8 / 2)


def test_edge_profile_covers_every_bit_pair_and_cloud_every_layer() -> None:
    g = toy_graph()
    p = build_profile(g, "eyeriss", "tpu")
    pairs = edge_bit_pairs(load_target("eyeriss"))
    assert {w for w, _ in pairs} == {2, 4, 6, 8, FLOAT_BITS}
    assert {a for _, a in pairs} == {2, 4, 6, 8, 16, FLOAT_BITS}  # eyeriss runs int16 activations
    assert set(p.edge) == set(p.cloud) == set(g.topological_order())
    assert all(set(row) == set(pairs) for row in p.edge.values())
    assert (p.edge_device, p.cloud_device, p.source) == ("eyeriss", "tpu", "analytic")
    assert p.cloud_ms("flat") == 0.0 and p.cloud_ms("conv1") > 0


def test_weight_bits_do_not_matter_for_layers_without_weights() -> None:
    p = build_profile(toy_graph(), "eyeriss", "tpu")
    for layer in ("add", "pool", "flat"):
        for a in (2, 8, 16, 32):
            assert len({p.edge_ms(layer, w, a) for w in (2, 4, 6, 8, 32)}) == 1


@pytest.mark.parametrize("edge", EDGES)
def test_sub_8_bit_never_speeds_up_macs(edge: str) -> None:
    g = toy_graph()
    t = load_target(edge)
    for name in ("conv1", "dw", "fc"):
        work = layer_work(g, g.layer(name))
        c8 = layer_cost(work, t, 8, 8)
        for b in (2, 4, 6):
            cb = layer_cost(work, t, b, b)
            assert cb.compute_s == c8.compute_s
            assert cb.memory_s <= c8.memory_s


def test_packed_device_moves_b_bits_emulating_device_moves_int8() -> None:
    g = toy_graph()
    work = layer_work(g, g.layer("dw"))  # reads and writes activations only from other layers
    eyeriss, a7 = load_target("eyeriss"), load_target("cortex-a7")
    assert layer_cost(work, eyeriss, 4, 4).memory_s == pytest.approx(layer_cost(work, eyeriss, 8, 8).memory_s / 2)
    assert layer_cost(work, eyeriss, 2, 2).ms < layer_cost(work, eyeriss, 8, 8).ms
    assert layer_cost(work, a7, 2, 2).ms == layer_cost(work, a7, 8, 8).ms


@pytest.mark.parametrize("edge", EDGES)
def test_int16_activations_and_float_cost_more_than_int8(edge: str) -> None:
    p = build_profile(toy_graph(), edge, "cloud-gpu")
    for name in ("conv1", "dw", "add", "fc"):
        int8 = p.edge_ms(name, 8, 8)
        assert p.edge_ms(name, 8, 16) > int8
        assert p.edge_ms(name, 32, 32) > int8


def test_cortex_a7_int16_activations_run_reference_kernels() -> None:
    # int16x8 is several times slower than int8 on the A7 (no NEON path in TFLite 2.14)
    p = build_profile(toy_graph(), "cortex-a7", "cloud-gpu")
    assert p.edge_ms("conv1", 8, 16) > 3 * p.edge_ms("conv1", 8, 8)
    assert p.edge_ms("conv1", 8, 32) < p.edge_ms("conv1", 32, 32)  # dynamic-range beats float


def test_model_input_is_read_at_8_bits() -> None:
    t = load_target("eyeriss")
    first = conv_layer("c", "img", "y", 3, 3, 8, 14, 14)
    g_in = single_layer_graph(first, (16, 16, 3), (14, 14, 8), model_input=True)
    g_mid = single_layer_graph(conv_layer("c", "x2", "y", 3, 3, 8, 14, 14), (16, 16, 3), (14, 14, 8))
    w_in, w_mid = layer_work(g_in, g_in.layer("c")), layer_work(g_mid, g_mid.layer("c"))
    # float activations: a layer reading the camera frame still reads 8-bit pixels
    assert layer_cost(w_in, t, 8, 32).memory_s < layer_cost(w_mid, t, 8, 32).memory_s
    assert layer_cost(w_in, t, 8, 8).memory_s == layer_cost(w_mid, t, 8, 8).memory_s


def test_systolic_latency_is_closed_form_plus_memory_over_clock() -> None:
    t = load_target("eyeriss")
    layer = conv_layer("c", "x2", "y", 3, 8, 16, 14, 14)
    g = single_layer_graph(layer, (16, 16, 8), (14, 14, 16))
    cost = layer_cost(layer_work(g, g.layer("c")), t, 8, 8)
    assert cost.compute_s * 200e6 == pytest.approx(3263)
    assert cost.memory_s * 200e6 == pytest.approx(3564.8)
    assert cost.ms == pytest.approx((3263 + 3564.8) / 200e6 * 1e3)


def test_cpu_roofline_by_hand() -> None:
    t = load_target("cortex-a7")
    layer = Layer("fc", "Dense", ["x2"], ["y"], weights=1024 * 256, macs=1024 * 256)
    g = single_layer_graph(layer, (1024,), (256,))
    work = layer_work(g, g.layer("fc"))
    compute = 1024 * 256 / (1.18 * 900e6)  # int8: its [device.op_rates.dense] at 1.18 MACs/cycle
    memory = (1024 + 256 + 1024 * 256) / 1e9  # one byte per element at 1 GB/s: memory-bound
    assert memory > compute
    assert layer_cost(work, t, 8, 8).total_s == pytest.approx(memory + 1.7e-6)  # its fixed 1.7 us per op
    # float: 4 bytes per element, and 1.18 x 1.2 / 3.0 MACs/cycle
    assert 4 * memory > 1024 * 256 / (1.18 * 1.2 / 3.0 * 900e6)
    assert layer_cost(work, t, 32, 32).total_s == pytest.approx(4 * memory + 1.7e-6)


def test_cloud_uses_its_native_precision() -> None:
    g = toy_graph()
    p16 = build_profile(g, "eyeriss", "tpu")
    tpu = load_target("tpu")
    for name in ("conv1", "fc"):
        assert p16.cloud_ms(name) == pytest.approx(layer_cost(layer_work(g, g.layer(name)), tpu, 16, 16).ms)


def test_progress_reports_each_layer_of_each_device() -> None:
    calls: list[tuple[str, int, int]] = []
    build_profile(toy_graph(), "eyeriss", "tpu", progress=lambda s, i, n: calls.append((s, i, n)))
    assert calls[0] == ("profile eyeriss", 1, 6) and calls[5] == ("profile eyeriss", 6, 6)
    assert calls[-1] == ("profile tpu", 6, 6) and len(calls) == 12


def test_profile_is_deterministic() -> None:
    g = toy_graph()
    assert build_profile(g, "cortex-a7", "cloud-cpu") == build_profile(g, "cortex-a7", "cloud-cpu")


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ProfileError, match="unknown profile backend 'magic'"):
        build_profile(toy_graph(), "eyeriss", "tpu", backend="magic")


def test_scalesim_backend_leaves_cpus_analytic() -> None:
    g = toy_graph()
    p = build_profile(g, "cortex-a7", "cloud-cpu", backend="scalesim")
    assert p.source == "analytic"
    assert p == build_profile(g, "cortex-a7", "cloud-cpu")
