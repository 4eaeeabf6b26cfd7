"""Per-op-kind rates (`[device.op_rates]`, issue 19): what they change in the analytic model, and what they do not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from benchmark_module import load_benchmark
from test_profile_graphs import toy_graph

from splitsdk.errors import TargetError
from splitsdk.graph.model import Layer
from splitsdk.profile.analytic import data_bytes, layer_cost, widths
from splitsdk.profile.geometry import LayerWork, layer_work, op_kind
from splitsdk.target import OpRate, Target, load_target

RATES = {
    "conv": OpRate(per_op_us=20.0, macs_per_cycle=2.5, cycles_per_output=12.0),
    "depthwise": OpRate(per_op_us=10.0, macs_per_cycle=0.5),
    "dense": OpRate(per_op_us=30.0, macs_per_cycle=0.25),
    "pool": OpRate(per_op_us=4.0, elements_per_cycle=0.5),
    "elementwise": OpRate(per_op_us=3.0, elements_per_cycle=0.25),
}


def works() -> dict[str, LayerWork]:
    g = toy_graph()
    return {layer.name: layer_work(g, layer) for layer in g.layers()}


def with_rates(target: Target, rates: dict | None) -> Target:  # type: ignore[type-arg]
    return dataclasses.replace(target, device=dataclasses.replace(target.device, op_rates=rates))


def roofline_ms(work: LayerWork, target: Target, wbits: int, abits: int) -> float:
    """The model without a table, written out: mode MAC rate, elementwise_per_cycle, layer_overhead_us."""
    dev, w = target.device, widths(target, wbits, abits)
    hz = dev.clock_mhz * 1e6 * dev.cores
    compute = work.macs / (w.macs_per_cycle * hz) + work.elementwise_ops / (dev.elementwise_per_cycle * hz)
    memory = data_bytes(work, w) / (dev.bandwidth_gbps * 1e9)
    return (max(compute, memory) + dev.layer_overhead_us * 1e-6) * 1e3


def test_op_kinds_from_importer_names() -> None:
    kinds = {name: w.kind for name, w in works().items()}
    assert kinds == {"conv1": "conv", "dw": "depthwise", "add": "elementwise", "pool": "pool", "flat": None,
                     "fc": "dense"}
    # the Keras importer counts a pooling's or an add's element operations as MACs: they stay element ops
    assert op_kind(Layer("p", "MaxPooling2D", ["a"], ["b"], macs=4096)) == "pool"
    assert op_kind(Layer("a", "Add", ["a", "b"], ["c"], macs=4096)) == "elementwise"
    assert op_kind(Layer("l", "LSTM", ["a"], ["b"], weights=100, macs=4096)) is None
    assert op_kind(Layer("c", "Conv", ["a"], ["b"], weights=90, macs=4096, attrs={"groups": 10})) == "depthwise"


def expected_ms(w: LayerWork, target: Target, wbits: int, abits: int) -> float:
    """The table's price written out: the kind's rate scaled by the mode's MAC rate over int8's."""
    assert w.kind is not None
    rate, hz = RATES[w.kind], target.device.clock_mhz * 1e6
    scale = target.quant.mode_for(wbits, abits).macs_per_cycle / target.quant.mode_for(8, 8).macs_per_cycle
    if rate.macs_per_cycle is not None:
        compute = (w.macs / (rate.macs_per_cycle * scale) + w.output_elements * rate.cycles_per_output / scale) / hz
    else:
        assert rate.elements_per_cycle is not None
        compute = w.elements / (rate.elements_per_cycle * scale * hz)
    memory = data_bytes(w, widths(target, wbits, abits)) / (target.device.bandwidth_gbps * 1e9)
    return (max(compute, memory) + rate.per_op_us * 1e-6) * 1e3


def test_table_prices_each_kind() -> None:
    target = with_rates(load_target("cortex-a7"), RATES)
    hz = target.device.clock_mhz * 1e6
    for name, w in works().items():
        if w.free:
            assert layer_cost(w, target, 8, 8).total_s == 0.0
            continue
        assert w.kind is not None
        for wbits, abits in ((8, 8), (8, 16), (32, 32)):
            cost = layer_cost(w, target, wbits, abits)
            assert cost.overhead_s == pytest.approx(RATES[w.kind].per_op_us * 1e-6), name
            assert cost.ms == pytest.approx(expected_ms(w, target, wbits, abits), rel=1e-12), (name, wbits, abits)
        # int16 activations and float still cost more than int8 (the modes' ratio is kept)
        assert layer_cost(w, target, 8, 16).ms > layer_cost(w, target, 8, 8).ms
        assert layer_cost(w, target, 32, 32).ms > layer_cost(w, target, 8, 8).ms
    # the conv's int8 rate is the table's, not the int8 mode's, and each output element adds its cycles
    conv = works()["conv1"]
    assert conv.output_elements > 0
    cycles = conv.macs / 2.5 + conv.output_elements * 12.0
    assert layer_cost(conv, target, 8, 8).compute_s == pytest.approx(cycles / hz)


def test_targets_without_table_unchanged() -> None:
    for target in (with_rates(load_target("cortex-a7"), None), load_target("host")):
        for w in works().values():
            if w.free:
                continue
            # no table: exactly the roofline of the mode's rates, elementwise_per_cycle and layer_overhead_us
            for wbits, abits in ((8, 8), (8, 16), (32, 32)):
                assert layer_cost(w, target, wbits, abits).ms == pytest.approx(
                    roofline_ms(w, target, wbits, abits), rel=1e-12)
    assert load_target("host").device.op_rates is None
    # a kind the table does not list keeps the mode's rate
    partial = with_rates(load_target("cortex-a7"), {"conv": RATES["conv"]})
    fc = works()["fc"]
    assert layer_cost(fc, partial, 8, 8).ms == pytest.approx(roofline_ms(fc, partial, 8, 8), rel=1e-12)


def test_shipped_cortex_a7_table_is_read() -> None:
    rates = load_target("cortex-a7").device.op_rates
    assert rates is not None and set(rates) == {"conv", "depthwise", "dense", "pool", "elementwise", "quantize"}
    assert all(rates[k].macs_per_cycle for k in ("conv", "depthwise", "dense"))
    assert all(rates[k].elements_per_cycle for k in ("pool", "elementwise", "quantize"))


def test_frame_quantize_is_priced_where_the_frame_is_read() -> None:
    """The `quantize` rate adds the frame's QUANTIZE to the layers that read the camera frame, only those."""
    quantize = OpRate(per_op_us=0.9, elements_per_cycle=0.06)
    base, target = (with_rates(load_target("cortex-a7"), r) for r in (RATES, {**RATES, "quantize": quantize}))
    hz = target.device.clock_mhz * 1e6
    for name, w in works().items():
        if w.free:
            continue
        extra = layer_cost(w, target, 8, 8).compute_s - layer_cost(w, base, 8, 8).compute_s
        if w.model_input_elements:
            assert extra == pytest.approx(w.model_input_elements / (0.06 * hz) + 0.9e-6), name
            # another mode scales it like every kind: float32 at its MAC rate over int8's
            scale = target.quant.mode_for(32, 32).macs_per_cycle / target.quant.mode_for(8, 8).macs_per_cycle
            extra32 = layer_cost(w, target, 32, 32).compute_s - layer_cost(w, base, 32, 32).compute_s
            assert extra32 == pytest.approx(w.model_input_elements / (0.06 * scale * hz) + 0.9e-6), name
        else:
            assert extra == 0.0, name
    assert any(w.model_input_elements for w in works().values())


def host_with(tmp_path: Path, table: str) -> Path:
    text = (Path(__file__).resolve().parents[1] / "targets" / "host.toml").read_text()
    out = tmp_path / "mine.toml"
    out.write_text(text.replace("\n[quant]\n", f"\n{table}\n[quant]\n", 1))
    return out


def test_table_from_toml(tmp_path: Path) -> None:
    path = host_with(tmp_path, "[device.op_rates.conv]\nmacs_per_cycle = 2.0\nper_op_us = 7.5\n")
    rates = load_target(path).device.op_rates
    assert rates == {"conv": OpRate(per_op_us=7.5, macs_per_cycle=2.0)} and rates["conv"].cycles_per_output == 0.0


@pytest.mark.parametrize(("table", "field"), [
    ("[device.op_rates.conv]\nelements_per_cycle = 2.0\nper_op_us = 1.0\n", "op_rates.conv"),
    ("[device.op_rates.pool]\nmacs_per_cycle = 2.0\nelements_per_cycle = 1.0\nper_op_us = 1.0\n", "pool"),
    ("[device.op_rates.lstm]\nmacs_per_cycle = 2.0\nper_op_us = 1.0\n", "lstm"),
    ("[device.op_rates.dense]\nmacs_per_cycle = 0.0\nper_op_us = 1.0\n", "macs_per_cycle"),
    ("[device.op_rates.conv]\nmacs_per_cycle = 2.0\ncycles_per_output = -1.0\nper_op_us = 1.0\n", "cycles_per_output"),
])
def test_bad_table_is_refused(tmp_path: Path, table: str, field: str) -> None:
    path = host_with(tmp_path, table)
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert "mine.toml" in str(err.value) and field in str(err.value)


def test_bench_neon_fit() -> None:
    """The fit bench_neon.py fills the table from: an exact line comes back, b is never negative."""
    fit = load_benchmark("bench_neon").fit
    f = fit([(1000.0, 1000.0 * 0.4 + 3000.0), (5000.0, 5000.0 * 0.4 + 3000.0), (9e5, 9e5 * 0.4 + 3000.0)])
    assert (f.a, f.b, f.c, f.worst) == (pytest.approx(0.4), pytest.approx(3000.0), 0.0, pytest.approx(0.0, abs=1e-9))
    f = fit([(100.0, 100.0), (200.0, 300.0)])  # the exact line has b = -100: a rate alone instead
    assert f.b == 0.0 and f.a > 0 and f.worst == pytest.approx(max(abs(f.a * 100 / 100 - 1), abs(f.a * 200 / 300 - 1)))
    # with output elements: a conv's MACs, its outputs (requantise and store) and a fixed cost come back
    macs, outs = [5e6, 14e6, 1.5e5, 6e5, 2.7e6], [2e5, 6.5e4, 1.6e4, 4e3, 3.7e4]
    assert fit([(m, 0.25 * m + 29.0 * o) for m, o in zip(macs[:3], outs[:3], strict=True)], outs[:3]).c == 0.0
    f = fit([(m, 0.25 * m + 29.0 * o + 16000.0) for m, o in zip(macs, outs, strict=True)], outs)
    assert (f.a, f.c, f.b) == (pytest.approx(0.25), pytest.approx(29.0), pytest.approx(16000.0))
    assert f.worst == pytest.approx(0.0, abs=1e-9)
