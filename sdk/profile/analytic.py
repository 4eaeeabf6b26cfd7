"""The analytic per-layer latency model (the default backend).

As in the AUTO-SPLIT paper, a bit width never speeds up a MAC below the runtime's container width
(a 2-bit weight multiplies as fast as an 8-bit one); it only cuts the bytes moved, and only on a
device that stores b-bit data at b bits (`quant.packed_storage`); a device that emulates sub-8-bit
widths on the int8 grid moves int8. The runtime mode that executes (wbits, abits) sets the MAC
rate, so int16 activations and float cost what they cost on that device.

Systolic devices: SCALE-Sim's closed-form compute cycles (systolic.py) plus its memory time.
CPUs and GPUs: a roofline, max(MACs / MAC rate, bytes / bandwidth), plus a per-layer overhead. A device
with `op_rates` prices each op kind it lists from the int8 mode's measured rates: the kind's MAC or element
rate, its cycles per output element and its fixed per-op cost replace the mode's MAC rate,
`elementwise_per_cycle` and `layer_overhead_us`. Another mode runs each kind at the table's rates scaled by
that mode's MAC rate over the int8 mode's (the ratio between the modes is kept), with the same fixed cost
per op; its `quantize` rate prices the frame's QUANTIZE in the layers that read the camera frame.
Model inputs (camera frames) are read at 8 bits. A layer's activation width applies to the
activations it reads and writes (the profile is per layer; its producer's width is not known here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from splitsdk.profile.geometry import LayerWork
from splitsdk.profile.systolic import compute_cycles, memory_cycles, operand_words
from splitsdk.target import MAC_KINDS, Target

MODEL_INPUT_BITS = 8


@dataclass(frozen=True)
class Cost:
    """One layer's latency on one device at one precision, and its parts (seconds)."""

    compute_s: float
    memory_s: float
    overhead_s: float
    total_s: float

    @property
    def ms(self) -> float:
        return self.total_s * 1e3


@dataclass(frozen=True)
class Widths:
    """Bits per element actually moved for each operand, and the executing mode's MAC rate."""

    weights: int
    activations: int
    macs_per_cycle: float


def widths(target: Target, wbits: int, abits: int) -> Widths:
    """The bits moved and the MAC rate when `target` runs (wbits, abits)."""
    q = target.quant
    mode = q.mode_for(wbits, abits)
    return Widths(
        weights=q.data_bits(wbits, mode.weights),
        activations=q.data_bits(abits, mode.activations),
        macs_per_cycle=mode.macs_per_cycle * target.device.efficiency,
    )


def data_bytes(work: LayerWork, w: Widths) -> float:
    """Bytes a layer reads and writes once: inputs, weights, outputs."""
    bits = (
        work.model_input_elements * MODEL_INPUT_BITS
        + work.input_elements * w.activations
        + work.output_elements * w.activations
        + work.weights * w.weights
    )
    return bits / 8.0


def layer_cost(work: LayerWork, target: Target, wbits: int, abits: int) -> Cost:
    """Latency of one layer on `target` at (wbits, abits)."""
    if work.free:
        return Cost(0.0, 0.0, 0.0, 0.0)
    dev = target.device
    w = widths(target, wbits, abits)
    hz = dev.clock_mhz * 1e6
    overhead = dev.layer_overhead_us * 1e-6
    elementwise_s = work.elementwise_ops / (dev.elementwise_per_cycle * dev.cores * hz)
    if dev.systolic is not None:
        arr = dev.systolic
        cycles = 0.0
        mem = 0.0
        in_bits = _ifmap_bits(work, w)
        for sim in work.sims:
            cycles += compute_cycles(sim, arr.rows, arr.cols, arr.dataflow) / w.macs_per_cycle
            words = operand_words(sim, arr.rows, arr.cols, arr.dataflow)
            mem += memory_cycles(words, in_bits, w.weights, w.activations, dev.bytes_per_cycle)
        if not work.sims:  # no MACs: the data goes in and out once
            mem = data_bytes(work, w) / dev.bytes_per_cycle
        compute_s, memory_s = cycles / hz + elementwise_s, mem / hz
        return Cost(compute_s, memory_s, overhead, compute_s + memory_s + overhead)
    memory_s = data_bytes(work, w) / (dev.bandwidth_gbps * 1e9)
    kind_rate = op_rate(work, target, wbits, abits)
    frame = input_quantize_s(work, target, wbits, abits)
    if kind_rate is not None:
        units = work.macs if work.kind in MAC_KINDS else work.elements
        cycles = units / kind_rate.per_cycle + work.output_elements * kind_rate.cycles_per_output
        compute_s = cycles / (dev.cores * hz) + frame
        return Cost(compute_s, memory_s, kind_rate.per_op_s, max(compute_s, memory_s) + kind_rate.per_op_s)
    compute_s = work.macs / (w.macs_per_cycle * dev.cores * hz) + elementwise_s + frame
    return Cost(compute_s, memory_s, overhead, max(compute_s, memory_s) + overhead)


def input_quantize_s(work: LayerWork, target: Target, wbits: int, abits: int) -> float:
    """The frame's QUANTIZE when this layer reads the camera frame and the device's `op_rates` price it (the
    `quantize` kind, scaled to the mode like the others; its fixed cost included): seconds, else 0."""
    rates = target.device.op_rates
    if not work.model_input_elements or not rates or "quantize" not in rates:
        return 0.0
    kind = op_rate(dataclasses.replace(work, kind="quantize"), target, wbits, abits)
    if kind is None:
        return 0.0
    hz = target.device.clock_mhz * 1e6 * target.device.cores
    return work.model_input_elements / (kind.per_cycle * hz) + kind.per_op_s


@dataclass(frozen=True)
class KindRate:
    """An op kind's price in one mode: work units per cycle per core, cycles per output element, fixed seconds."""

    per_cycle: float
    cycles_per_output: float
    per_op_s: float


def op_rate(work: LayerWork, target: Target, wbits: int, abits: int) -> KindRate | None:
    """This layer's kind's rates in the device's `op_rates`, for the mode that runs (wbits, abits): the table
    holds the int8 mode's rates; another mode runs every kind at the table's rates scaled by its MAC rate over
    the int8 mode's (the ratio between the modes). None: the device has no table, no int8 mode, or no rate for
    this kind."""
    rates = target.device.op_rates
    if not rates or work.kind is None or work.kind not in rates:
        return None
    int8 = next((m for m in target.quant.modes if (m.weights, m.activations) == (8, 8)), None)
    if int8 is None:
        return None
    r = rates[work.kind]
    per_cycle = r.macs_per_cycle if r.macs_per_cycle is not None else r.elements_per_cycle
    scale = target.quant.mode_for(wbits, abits).macs_per_cycle / int8.macs_per_cycle
    return KindRate((per_cycle or 0.0) * scale, r.cycles_per_output / scale, r.per_op_us * 1e-6)


def _ifmap_bits(work: LayerWork, w: Widths) -> int:
    """Width of the ifmap operand: 8 when the layer reads only model inputs."""
    if work.model_input_elements and not work.input_elements:
        return MODEL_INPUT_BITS
    return w.activations
