"""Target descriptors: the TOML files under `targets/` (package data `splitsdk.targets`) as typed data.

A target says what a device is (figures the latency model needs), which precisions its runtime
executes and how fast, and, for deployable targets, how to cross-compile for it and emulate it.
Adding a target is adding a file: code reads the fields, it never tests a target's name.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from splitsdk.errors import TargetError

FLOAT_BITS = 32  # a bit width of 32 means "kept in float" (float32 on a CPU, float16 on a TPU-like device)

ROLES = ("edge", "cloud", "any")
KINDS = ("systolic", "cpu", "gpu")
DATAFLOWS = ("os", "ws", "is")
MODE_WIDTHS = (8, 16, FLOAT_BITS)  # container widths a runtime computes in


@dataclass(frozen=True)
class Systolic:
    """A systolic array as SCALE-Sim sees it: rows x cols PEs, a dataflow, three SRAMs."""

    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int

    @property
    def pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Device:
    """Figures for planning. `kind` picks the analytic model: systolic closed form or roofline."""

    kind: str
    clock_mhz: float
    cores: int
    memory_mb: int
    app_memory_mb: int
    onchip_kb: int
    bandwidth_gbps: float  # off-chip GB/s
    peak_gops: float  # as documented by the source the file cites (informative)
    efficiency: float  # sustained fraction of the mode MAC rates (1.0: rates already sustained)
    elementwise_per_cycle: float  # elements per cycle per core for layers without MACs
    layer_overhead_us: float
    systolic: Systolic | None = None

    @property
    def bytes_per_cycle(self) -> float:
        return self.bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    @property
    def app_memory_bytes(self) -> int:
        return self.app_memory_mb * 1024 * 1024


@dataclass(frozen=True)
class ComputeMode:
    """A precision the runtime executes: weight and activation container widths and its MAC rate."""

    name: str
    weights: int
    activations: int
    macs_per_cycle: float  # per PE (systolic) or per core (cpu/gpu), sustained


@dataclass(frozen=True)
class ModelFile:
    """What the runtime's model file holds beyond the kernels (bytes, fitted on converted files).

    A weighted layer stores its kernel at the weights' storage width plus, per output channel, a
    bias of `bias_bits` and its quantisation parameters (`per_channel_bytes` in all), plus the
    tensor and operator records (`per_weighted_layer_bytes`); any other layer costs
    `per_layer_bytes`, each model output `per_output_bytes`, the file itself `base_bytes`. The
    runtime maps the file into memory, so this is also what the edge weights cost in RAM.
    """

    per_channel_bytes: float
    per_weighted_layer_bytes: float
    per_layer_bytes: float
    per_output_bytes: float
    base_bytes: float
    # per-layer precision mixes: each conversion op between precisions (with its tensor), and the extra
    # bytes per output channel of a layer with 16-bit activations (its bias is int64, not int32)
    per_conversion_bytes: float = 0.0
    wide_bias_bytes: float = 0.0


@dataclass(frozen=True)
class QuantSupport:
    """Which bit widths the planner may pick on this device and what they cost.

    `packed_storage`: b-bit data is stored and moved at exactly b bits (the paper's accelerator);
    otherwise data moves at the width of the runtime mode that executes it. `emulated_bits` are
    widths the runtime computes on the next mode's grid (e.g. 4-bit values held in int8).
    """

    candidate_bits: tuple[int, ...]
    packed_storage: bool
    emulated_bits: tuple[int, ...]
    native_weights: int
    native_activations: int
    runtime: str
    modes: tuple[ComputeMode, ...]
    unsupported: tuple[str, ...] = ()
    model_file: ModelFile | None = None  # None: weights are stored alone, biases at the weights' width

    @property
    def precisions(self) -> tuple[str, ...]:
        """Names of the precisions the runtime executes."""
        return tuple(m.name for m in self.modes)

    @property
    def runs_int16_activations(self) -> bool:
        return any(m.activations == 16 for m in self.modes)

    @property
    def weight_bit_options(self) -> tuple[int, ...]:
        """Weight widths a profile covers: the candidates plus float."""
        return tuple(sorted({*self.candidate_bits, FLOAT_BITS}))

    @property
    def activation_bit_options(self) -> tuple[int, ...]:
        """Activation widths a profile covers: candidates, float, and 16 where int16 runs."""
        extra = {16} if self.runs_int16_activations else set()
        return tuple(sorted({*self.candidate_bits, FLOAT_BITS, *extra}))

    def mode_for(self, wbits: int, abits: int) -> ComputeMode:
        """The runtime mode that executes `wbits` weights with `abits` activations.

        The narrowest mode whose containers hold both (what a converter emits: 8-bit weights with
        16-bit activations run as int16x8 even where a float-activation mode would be faster);
        among equally narrow modes, the fastest.
        """
        w, a = _container(wbits), _container(abits)
        fits = [m for m in self.modes if m.weights >= w and m.activations >= a]
        if not fits:
            raise TargetError(f"no runtime mode holds {wbits}-bit weights with {abits}-bit activations")
        return min(fits, key=lambda m: (m.weights + m.activations, -m.macs_per_cycle, m.name))

    def data_bits(self, bits: int, mode_bits: int) -> int:
        """Bits one element occupies in memory when a `bits` value is executed in a `mode_bits` mode."""
        if self.packed_storage and bits not in self.emulated_bits:
            return bits
        return mode_bits

    def storage_bits(self, bits: int) -> int:
        """Bits one weight of width `bits` takes in the device's memory (for memory budgets)."""
        return self.data_bits(bits, _container(bits))


@dataclass(frozen=True)
class SysrootRecipe:
    """How host_tools builds the sysroot: Debian packages of one suite and arch, unpacked."""

    mirror: str
    suite: str
    arch: str
    packages: tuple[str, ...]
    tflite_version: str
    lib_dir: str
    symlinks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Toolchain:
    triple: str
    cflags: tuple[str, ...]
    cmake_system_processor: str
    debian_packages: tuple[str, ...] = ()
    sysroot: SysrootRecipe | None = None


@dataclass(frozen=True)
class Qemu:
    user_binary: str
    user_cpu: str
    system_binary: str = ""
    system_machine: str = ""
    system_cpu: str = ""
    system_memory_mb: int = 0
    kernel_package: str = ""
    modules: tuple[str, ...] = ()
    host_address: str = "10.0.2.2"


@dataclass(frozen=True)
class Target:
    """One target descriptor, loaded and checked."""

    name: str
    description: str
    role: str
    device: Device
    quant: QuantSupport
    family: str = ""  # template folder family for deployable targets ("edge-linux")
    toolchain: Toolchain | None = None
    qemu: Qemu | None = None
    path: str = field(default="", compare=False)

    def summary(self) -> dict[str, Any]:
        """The descriptor as plain JSON data (`splitsdk targets --json`)."""
        data = asdict(self)
        data["quant"]["precisions"] = list(self.quant.precisions)
        data["quant"]["runs_int16_activations"] = self.quant.runs_int16_activations
        return data


def _container(bits: int) -> int:
    """The runtime container width for a value of `bits` bits (sub-8-bit values live in 8)."""
    for width in MODE_WIDTHS:
        if bits <= width:
            return width
    raise TargetError(f"bit width {bits} is wider than float ({FLOAT_BITS})")


# -- loading ----------------------------------------------------------------------------------------


def builtin_targets_dir() -> Path:
    """The folder of the descriptors shipped as package data."""
    return Path(str(resources.files("splitsdk.targets")))


def list_targets() -> list[str]:
    """Names of the targets shipped with splitsdk, sorted."""
    return sorted(p.stem for p in builtin_targets_dir().glob("*.toml"))


def load_target(name_or_path: str | Path) -> Target:
    """Load a shipped target by name (`"cortex-a7"`) or any descriptor file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.exists()):
        path = builtin_targets_dir() / f"{text}.toml"
        if not path.is_file():
            raise TargetError(f"unknown target '{text}' (known: {', '.join(list_targets())})")
    if not path.is_file():
        raise TargetError(f"{path}: target file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: cannot parse: {exc}") from exc
    return _Reader(str(path)).target(data)


class _Reader:
    """Typed field access that names the file and the dotted field in every error."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> TargetError:
        return TargetError(f"{self.path}: field '{key}': {msg}")

    def section(self, data: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        full = prefix + key
        if key not in data:
            raise self.fail(full, "missing section")
        val = data[key]
        if not isinstance(val, dict):
            raise self.fail(full, "expected a table")
        return val

    def get(self, data: dict[str, Any], key: str, typ: type, prefix: str = "", default: Any = ...) -> Any:
        full = prefix + key
        if key not in data:
            if default is ...:
                raise self.fail(full, "missing")
            return default
        val = data[key]
        if typ is float and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
            raise self.fail(full, f"expected {typ.__name__}, got {type(val).__name__} {val!r}")
        return val

    def positive(self, data: dict[str, Any], key: str, typ: type, prefix: str) -> Any:
        val = self.get(data, key, typ, prefix)
        if val <= 0:
            raise self.fail(prefix + key, f"must be positive, got {val}")
        return val

    def strings(self, data: dict[str, Any], key: str, prefix: str) -> tuple[str, ...]:
        val = self.get(data, key, list, prefix, default=[])
        if not all(isinstance(v, str) for v in val):
            raise self.fail(prefix + key, "expected a list of strings")
        return tuple(val)

    def bits(self, data: dict[str, Any], key: str, prefix: str, default: Any = ...) -> tuple[int, ...]:
        val = self.get(data, key, list, prefix, default=default)
        if not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 16 for b in val):
            raise self.fail(prefix + key, f"expected bit widths between 1 and 16, got {val!r}")
        return tuple(sorted(set(val)))

    def choice(self, data: dict[str, Any], key: str, options: tuple[str, ...], prefix: str = "") -> str:
        val: str = self.get(data, key, str, prefix)
        if val not in options:
            raise self.fail(prefix + key, f"expected one of {', '.join(options)}, got {val!r}")
        return val

    # -- sections ------------------------------------------------------------------------------
    def target(self, data: dict[str, Any]) -> Target:
        name = self.get(data, "name", str)
        stem = Path(self.path).stem
        if name != stem:
            raise self.fail("name", f"'{name}' differs from the file name '{stem}'")
        toolchain = self.toolchain(data["toolchain"]) if "toolchain" in data else None
        qemu = self.qemu(data["qemu"]) if "qemu" in data else None
        return Target(
            name=name,
            description=self.get(data, "description", str),
            role=self.choice(data, "role", ROLES),
            device=self.device(self.section(data, "device")),
            quant=self.quant(self.section(data, "quant")),
            family=self.get(data, "family", str, default=""),
            toolchain=toolchain,
            qemu=qemu,
            path=self.path,
        )

    def device(self, d: dict[str, Any]) -> Device:
        p = "device."
        kind = self.choice(d, "kind", KINDS, p)
        systolic = self.systolic(d["systolic"]) if "systolic" in d else None
        if (kind == "systolic") != (systolic is not None):
            raise self.fail("device.systolic", "required exactly when device.kind is 'systolic'")
        efficiency = self.positive(d, "efficiency", float, p)
        if efficiency > 1.0:
            raise self.fail("device.efficiency", f"must be in (0, 1], got {efficiency}")
        memory_mb = self.positive(d, "memory_mb", int, p)
        app_memory_mb = self.positive(d, "app_memory_mb", int, p)
        if app_memory_mb > memory_mb:
            raise self.fail("device.app_memory_mb", f"{app_memory_mb} exceeds device.memory_mb {memory_mb}")
        overhead = self.get(d, "layer_overhead_us", float, p)
        if overhead < 0:
            raise self.fail("device.layer_overhead_us", "must not be negative")
        return Device(
            kind=kind,
            clock_mhz=self.positive(d, "clock_mhz", float, p),
            cores=self.positive(d, "cores", int, p),
            memory_mb=memory_mb,
            app_memory_mb=app_memory_mb,
            onchip_kb=self.positive(d, "onchip_kb", int, p),
            bandwidth_gbps=self.positive(d, "bandwidth_gbps", float, p),
            peak_gops=self.positive(d, "peak_gops", float, p),
            efficiency=efficiency,
            elementwise_per_cycle=self.positive(d, "elementwise_per_cycle", float, p),
            layer_overhead_us=overhead,
            systolic=systolic,
        )

    def systolic(self, s: dict[str, Any]) -> Systolic:
        p = "device.systolic."
        if not isinstance(s, dict):
            raise self.fail("device.systolic", "expected a table")
        return Systolic(
            rows=self.positive(s, "rows", int, p),
            cols=self.positive(s, "cols", int, p),
            dataflow=self.choice(s, "dataflow", DATAFLOWS, p),
            ifmap_sram_kb=self.positive(s, "ifmap_sram_kb", int, p),
            filter_sram_kb=self.positive(s, "filter_sram_kb", int, p),
            ofmap_sram_kb=self.positive(s, "ofmap_sram_kb", int, p),
        )

    def quant(self, q: dict[str, Any]) -> QuantSupport:
        p = "quant."
        candidates = self.bits(q, "candidate_bits", p)
        if not candidates:
            raise self.fail("quant.candidate_bits", "must not be empty")
        emulated = self.bits(q, "emulated_bits", p, default=[])
        if not set(emulated) <= set(candidates):
            raise self.fail("quant.emulated_bits", f"{list(emulated)} not all in quant.candidate_bits")
        raw_modes = self.get(q, "modes", list, p)
        modes = tuple(self.mode(m, i) for i, m in enumerate(raw_modes))
        if not any(m.weights == FLOAT_BITS and m.activations == FLOAT_BITS for m in modes):
            raise self.fail("quant.modes", "needs a float mode (weights = activations = 32)")
        native = self.section(q, "native", p)
        qs = QuantSupport(
            candidate_bits=candidates,
            packed_storage=self.get(q, "packed_storage", bool, p),
            emulated_bits=emulated,
            native_weights=self.get(native, "weights", int, "quant.native."),
            native_activations=self.get(native, "activations", int, "quant.native."),
            runtime=self.get(q, "runtime", str, p),
            modes=modes,
            unsupported=self.strings(q, "unsupported", p),
            model_file=self.model_file(self.section(q, "model_file", p)) if "model_file" in q else None,
        )
        try:
            qs.mode_for(qs.native_weights, qs.native_activations)
        except TargetError as exc:
            raise self.fail("quant.native", str(exc)) from exc
        return qs

    def model_file(self, m: dict[str, Any]) -> ModelFile:
        p = "quant.model_file."
        fields = ("per_channel_bytes", "per_weighted_layer_bytes", "per_layer_bytes", "per_output_bytes", "base_bytes")
        optional = ("per_conversion_bytes", "wide_bias_bytes")
        values = {}
        for key in (*fields, *(k for k in optional if k in m)):
            val = self.get(m, key, float, p)
            if val < 0:
                raise self.fail(p + key, f"must be >= 0, got {val}")
            values[key] = float(val)
        return ModelFile(**values)

    def mode(self, m: Any, i: int) -> ComputeMode:
        p = f"quant.modes[{i}]."
        if not isinstance(m, dict):
            raise self.fail(f"quant.modes[{i}]", "expected a table")
        mode = ComputeMode(
            name=self.get(m, "name", str, p),
            weights=self.get(m, "weights", int, p),
            activations=self.get(m, "activations", int, p),
            macs_per_cycle=self.positive(m, "macs_per_cycle", float, p),
        )
        for key, val in (("weights", mode.weights), ("activations", mode.activations)):
            if val not in MODE_WIDTHS:
                raise self.fail(p + key, f"expected one of {MODE_WIDTHS}, got {val}")
        return mode

    def toolchain(self, t: Any) -> Toolchain:
        p = "toolchain."
        if not isinstance(t, dict):
            raise self.fail("toolchain", "expected a table")
        sysroot = None
        if "sysroot" in t:
            s = self.section(t, "sysroot", p)
            sp = "toolchain.sysroot."
            links = self.get(s, "symlinks", list, sp, default=[])
            if not all(isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x)
                       for x in links):
                raise self.fail(sp + "symlinks", "expected a list of [link, target] string pairs")
            sysroot = SysrootRecipe(
                mirror=self.get(s, "mirror", str, sp),
                suite=self.get(s, "suite", str, sp),
                arch=self.get(s, "arch", str, sp),
                packages=self.strings(s, "packages", sp),
                tflite_version=self.get(s, "tflite_version", str, sp),
                lib_dir=self.get(s, "lib_dir", str, sp),
                symlinks=tuple((x[0], x[1]) for x in links),
            )
        return Toolchain(
            triple=self.get(t, "triple", str, p),
            cflags=self.strings(t, "cflags", p),
            cmake_system_processor=self.get(t, "cmake_system_processor", str, p),
            debian_packages=self.strings(t, "debian_packages", p),
            sysroot=sysroot,
        )

    def qemu(self, q: Any) -> Qemu:
        p = "qemu."
        if not isinstance(q, dict):
            raise self.fail("qemu", "expected a table")
        return Qemu(
            user_binary=self.get(q, "user_binary", str, p),
            user_cpu=self.get(q, "user_cpu", str, p),
            system_binary=self.get(q, "system_binary", str, p, default=""),
            system_machine=self.get(q, "system_machine", str, p, default=""),
            system_cpu=self.get(q, "system_cpu", str, p, default=""),
            system_memory_mb=self.get(q, "system_memory_mb", int, p, default=0),
            kernel_package=self.get(q, "kernel_package", str, p, default=""),
            modules=self.strings(q, "modules", p),
            host_address=self.get(q, "host_address", str, p, default="10.0.2.2"),
        )
