"""The optional SCALE-Sim backend for systolic devices: per layer, in a subprocess, cached on disk.

SCALE-Sim has no bit-width setting (a word is one byte, one MAC per PE per cycle). b-bit data is
emulated by scaling: each SRAM and each DRAM port is scaled by 8/b for the operand it
holds (ifmap and ofmap at the activation width, filter at the weight width), so the same bytes
hold 8/b times as many words. SCALE-Sim needs whole words per cycle: the scaled bandwidth is
rounded to the nearest integer (at least 1); at Eyeriss' 5 B/cycle that is exact for 2, 4 and 8
bits and rounds 6-bit (6.67 words) to 7.

Results are cached under `<splitsdk cache>/scalesim` (splitsdk.cache) keyed by the
layer geometry, the scaled config and the SCALE-Sim version, so a model is simulated once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from splitsdk.cache import cache_root
from splitsdk.errors import ProfileError
from splitsdk.profile.analytic import MODEL_INPUT_BITS, Cost, layer_cost, widths
from splitsdk.profile.geometry import LayerWork, SimLayer
from splitsdk.target import Target
from splitsdk.toolchain.doctor import missing_package

DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class SimConfig:
    """The SCALE-Sim configuration of one target at one (ifmap, filter, ofmap) bit width."""

    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    ifmap_bw: int
    filter_bw: int
    ofmap_bw: int


@dataclass(frozen=True)
class SimCycles:
    overall: int  # "Total Cycles (incl. prefetch)": what the layer takes
    total: int  # compute + stall
    stall: int
    compute: int


def sim_config(target: Target, ifmap_bits: int, filter_bits: int, ofmap_bits: int) -> SimConfig:
    """Scale the target's SRAMs and port bandwidths by 8/b for the operand each one carries."""
    arr = target.device.systolic
    if arr is None:
        raise ProfileError(f"target '{target.name}': the SCALE-Sim backend needs a systolic device")
    bpc = target.device.bytes_per_cycle

    def kb(size: int, bits: int) -> int:
        return max(1, int(size * 8 / bits))

    def bw(bits: int) -> int:
        return max(1, int(bpc * 8 / bits + 0.5))

    return SimConfig(
        rows=arr.rows,
        cols=arr.cols,
        dataflow=arr.dataflow,
        ifmap_sram_kb=kb(arr.ifmap_sram_kb, ifmap_bits),
        filter_sram_kb=kb(arr.filter_sram_kb, filter_bits),
        ofmap_sram_kb=kb(arr.ofmap_sram_kb, ofmap_bits),
        ifmap_bw=bw(ifmap_bits),
        filter_bw=bw(filter_bits),
        ofmap_bw=bw(ofmap_bits),
    )


def _scalesim_version() -> str:
    if importlib.util.find_spec("scalesim") is None:
        raise ProfileError(missing_package("scalesim", "the SCALE-Sim backend"))
    return importlib.metadata.version("scalesim")


def simulate_layer(sim: SimLayer, config: SimConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                   name: str = "layer", cache: Path | None = None) -> SimCycles:
    """Cycles of one repetition of `sim` under `config`, from the cache or a SCALE-Sim subprocess."""
    spec = {**asdict(config), "layer": sim.row()}
    key_src = json.dumps({"scalesim": _scalesim_version(), **spec}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    folder = (cache or cache_root()) / "scalesim"
    path = folder / f"{key}.json"
    if path.is_file():
        try:
            return SimCycles(**json.loads(path.read_text(encoding="utf-8"))["cycles"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged entry is recomputed
    cycles = _run(spec, timeout_s, name)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, encoding="utf-8") as fh:
        json.dump({"spec": spec, "cycles": asdict(cycles)}, fh, sort_keys=True)
    os.replace(fh.name, path)
    return cycles


def _run(spec: dict[str, object], timeout_s: float, name: str) -> SimCycles:
    with tempfile.TemporaryDirectory(prefix="splitsdk-scalesim-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "splitsdk.profile._scalesim_run"],
                input=json.dumps(spec), capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
            )
        except subprocess.TimeoutExpired:
            raise ProfileError(f"SCALE-Sim: layer '{name}' did not finish within {timeout_s:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProfileError(f"SCALE-Sim: layer '{name}' failed (exit {proc.returncode}): {tail[0]}")
    try:
        return SimCycles(**json.loads(lines[-1]))
    except (ValueError, TypeError) as exc:
        raise ProfileError(f"SCALE-Sim: layer '{name}': unreadable result {lines[-1]!r}") from exc


def layer_cost_scalesim(work: LayerWork, target: Target, wbits: int, abits: int, *, name: str = "layer",
                        timeout_s: float = DEFAULT_TIMEOUT_S, cache: Path | None = None) -> Cost:
    """Latency of one layer with its matrix products simulated by SCALE-Sim.

    Layers without MACs (adds, pooling) are outside what SCALE-Sim models: the analytic model
    prices them. SCALE-Sim counts one MAC per PE per cycle; a mode with another rate scales the
    compute part.
    """
    if not work.sims:
        return layer_cost(work, target, wbits, abits)
    w = widths(target, wbits, abits)
    in_bits = MODEL_INPUT_BITS if work.model_input_elements and not work.input_elements else w.activations
    config = sim_config(target, in_bits, w.weights, w.activations)
    hz = target.device.clock_mhz * 1e6
    compute = memory = 0.0
    for sim in work.sims:
        c = simulate_layer(SimLayer(**{**asdict(sim), "repeat": 1}), config, timeout_s=timeout_s,
                           name=name, cache=cache)
        compute += sim.repeat * c.compute / w.macs_per_cycle
        memory += sim.repeat * (c.overall - c.compute)
    overhead = target.device.layer_overhead_us * 1e-6
    return Cost(compute / hz, memory / hz, overhead, (compute + memory) / hz + overhead)
