"""Target descriptors: the TOML files under `targets/` (package data `splitsdk.targets`) as typed data.

A target says what a device is (figures the latency model needs), which precisions its runtime
executes and how fast, and, for deployable targets, how to cross-compile for it, emulate it and
build a camera image for it. Adding a target is adding a file: code reads the fields, it never tests
a target's name. The file's layout is the dataclass tree below, read through `splitsdk.codec`:
unknown keys, wrong types and out-of-range figures are refused, naming the file and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from splitsdk.codec import CodecError, bounds, decode, encode
from splitsdk.errors import TargetError

FLOAT_BITS = 32  # a bit width of 32 means "kept in float" (float32 on a CPU, float16 on a TPU-like device)

MODE_WIDTHS = (8, 16, FLOAT_BITS)  # container widths a runtime computes in
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a target's name is part of file and folder names

POSITIVE = bounds(gt=0)
AT_LEAST_ONE = bounds(ge=1)
NOT_NEGATIVE = bounds(ge=0)


@dataclass(frozen=True)
class Systolic:
    """A systolic array as SCALE-Sim sees it: rows x cols PEs, a dataflow, three SRAMs."""

    rows: int = field(metadata=AT_LEAST_ONE)
    cols: int = field(metadata=AT_LEAST_ONE)
    dataflow: Literal["os", "ws", "is"]
    ifmap_sram_kb: int = field(metadata=AT_LEAST_ONE)
    filter_sram_kb: int = field(metadata=AT_LEAST_ONE)
    ofmap_sram_kb: int = field(metadata=AT_LEAST_ONE)

    @property
    def pes(self) -> int:
        return self.rows * self.cols


# "quantize": the frame's QUANTIZE (float -> the edge's integer input), priced on the elements of the camera frame
# a layer reads, on top of that layer's own kind
OpKind = Literal["conv", "depthwise", "dense", "pool", "elementwise", "quantize"]
MAC_KINDS = ("conv", "depthwise", "dense")  # rated in MACs per cycle; the other kinds in elements per cycle


@dataclass(frozen=True)
class OpRate:
    """One op kind's rate on a CPU or GPU in the int8 mode: its work (MACs, or elements for pooling and
    element-wise ops) at `macs_per_cycle` / `elements_per_cycle` per core, plus `cycles_per_output` per output
    element (what an op does once per value it writes: requantise and store; a conv on few input channels does
    few MACs per output), plus `per_op_us` per layer (in place of the device's `layer_overhead_us`). Other
    modes scale the rates by their MAC rate over the int8 mode's. Sustained figures: the device's
    `efficiency` does not apply."""

    per_op_us: float = field(metadata=NOT_NEGATIVE)
    macs_per_cycle: float | None = field(default=None, metadata=POSITIVE)
    elements_per_cycle: float | None = field(default=None, metadata=POSITIVE)
    cycles_per_output: float = field(default=0.0, metadata=NOT_NEGATIVE)

    def __post_init__(self) -> None:
        if (self.macs_per_cycle is None) == (self.elements_per_cycle is None):
            raise ValueError("give exactly one of macs_per_cycle and elements_per_cycle")


@dataclass(frozen=True)
class Device:
    """Figures for planning. `kind` picks the analytic model: systolic closed form or roofline."""

    kind: Literal["systolic", "cpu", "gpu"]
    clock_mhz: float = field(metadata=POSITIVE)
    cores: int = field(metadata=AT_LEAST_ONE)
    memory_mb: int = field(metadata=AT_LEAST_ONE)
    app_memory_mb: int = field(metadata=AT_LEAST_ONE)
    onchip_kb: int = field(metadata=AT_LEAST_ONE)
    bandwidth_gbps: float = field(metadata=POSITIVE)  # off-chip GB/s
    peak_gops: float = field(metadata=POSITIVE)  # as documented by the source the file cites (informative)
    # sustained fraction of the mode MAC rates (1.0: rates already sustained)
    efficiency: float = field(metadata=bounds(gt=0, le=1))
    elementwise_per_cycle: float = field(metadata=POSITIVE)  # elements per cycle per core for layers without MACs
    layer_overhead_us: float = field(metadata=NOT_NEGATIVE)
    systolic: Systolic | None = None
    # the device CPU's cost of the traffic codecs (None: the file does not say; the planner then cannot model them)
    zstd_ns_per_byte: float | None = field(default=None, metadata=POSITIVE)  # zstd level 3, per uncompressed byte
    jpeg_ns_per_pixel: float | None = field(default=None, metadata=POSITIVE)  # libjpeg-turbo 4:2:0, per input pixel
    # per-op-kind rates measured in the int8 mode (cpu/gpu; None: mode rates, elementwise_per_cycle, overhead)
    op_rates: dict[OpKind, OpRate] | None = None

    def __post_init__(self) -> None:
        for kind, rate in (self.op_rates or {}).items():
            if (kind in MAC_KINDS) != (rate.macs_per_cycle is not None):
                unit = "macs_per_cycle" if kind in MAC_KINDS else "elements_per_cycle"
                raise ValueError(f"op_rates.{kind}: give {unit}")
        if self.op_rates and self.kind == "systolic":
            raise ValueError("op_rates: only for cpu and gpu devices (a systolic device uses its closed form)")

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
    weights: Literal[8, 16, 32]
    activations: Literal[8, 16, 32]
    macs_per_cycle: float = field(metadata=POSITIVE)  # per PE (systolic) or per core (cpu/gpu), sustained


@dataclass(frozen=True)
class ModelFile:
    """What the runtime's model file holds beyond the kernels (bytes, fitted on converted files).

    A weighted layer stores its kernel at the weights' storage width, each bias value it has (its
    own or a folded batch norm's) at `bias_value_bytes`, per output channel the kernel's and bias'
    quantisation parameters (`per_channel_bytes`), and per runtime op the tensor and operator
    records (`per_weighted_layer_bytes`; a separable conv is two ops, its depthwise half with
    channels of its own). A layer without a bias, or with a bias of zeros, gets a buffer of zeros,
    which the converter stores once for all of its length: not priced. Any other op (a weightless
    layer, an activation the runtime does not fuse) costs `per_layer_bytes`, each model output
    `per_output_bytes`, the file itself `base_bytes`. The runtime maps the file into memory, so
    this is also what the edge weights cost in RAM.
    """

    per_channel_bytes: float = field(metadata=NOT_NEGATIVE)
    per_weighted_layer_bytes: float = field(metadata=NOT_NEGATIVE)
    per_layer_bytes: float = field(metadata=NOT_NEGATIVE)
    per_output_bytes: float = field(metadata=NOT_NEGATIVE)
    base_bytes: float = field(metadata=NOT_NEGATIVE)
    bias_value_bytes: float = field(default=0.0, metadata=NOT_NEGATIVE)  # 0: a bias costs its weights' width
    # per-layer precision mixes: each conversion op between precisions (with its tensor), and the extra
    # bytes per output channel of a layer with 16-bit activations (its bias is int64, not int32)
    per_conversion_bytes: float = field(default=0.0, metadata=NOT_NEGATIVE)
    wide_bias_bytes: float = field(default=0.0, metadata=NOT_NEGATIVE)


@dataclass(frozen=True)
class Native:
    """The precision the runtime runs a model in when nothing is quantised (bit widths)."""

    weights: int = field(metadata=bounds(ge=1, le=FLOAT_BITS))
    activations: int = field(metadata=bounds(ge=1, le=FLOAT_BITS))


@dataclass(frozen=True)
class QuantSupport:
    """Which bit widths the planner may pick on this device and what they cost.

    `packed_storage`: b-bit data is stored and moved at exactly b bits (the paper's accelerator);
    otherwise data moves at the width of the runtime mode that executes it. `emulated_bits` are
    widths the runtime computes on the next mode's grid (e.g. 4-bit values held in int8).
    """

    candidate_bits: tuple[int, ...] = field(metadata=bounds(ge=1, le=16))
    packed_storage: bool
    native: Native
    runtime: str
    modes: tuple[ComputeMode, ...]
    emulated_bits: tuple[int, ...] = field(default=(), metadata=bounds(ge=1, le=16))
    unsupported: tuple[str, ...] = ()
    # layer ops (the graph's op names: Keras classes, ONNX op types) this runtime cannot execute on the device,
    # beyond what the host's TFLite converter refuses: the planner keeps them, and all after them, in the cloud
    unsupported_ops: tuple[str, ...] = ()
    model_file: ModelFile | None = None  # None: weights are stored alone, biases at the weights' width

    def __post_init__(self) -> None:  # bit lists are sets: sorted, each width once
        object.__setattr__(self, "candidate_bits", tuple(sorted(set(self.candidate_bits))))
        object.__setattr__(self, "emulated_bits", tuple(sorted(set(self.emulated_bits))))

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
    """The cross compiler (GNU triple, flags) and, for deployable targets, the sysroot recipe."""

    triple: str
    cflags: tuple[str, ...]
    cmake_system_processor: str
    debian_packages: tuple[str, ...] = ()
    sysroot: SysrootRecipe | None = None


@dataclass(frozen=True)
class Qemu:
    """How the target is emulated: user-mode binary and CPU, and the system board for camera images."""

    user_binary: str
    user_cpu: str
    system_binary: str = ""
    system_machine: str = ""
    system_cpu: str = ""
    system_memory_mb: int = field(default=0, metadata=NOT_NEGATIVE)
    kernel_package: str = ""
    modules: tuple[str, ...] = ()  # kernel modules the board's network needs
    host_address: str = "10.0.2.2"  # the host's loopback as the guest sees it (QEMU user networking)


@dataclass(frozen=True)
class Camera:
    """What `splitsdk image` builds a camera from: a Debian userland and kernel booted on the [qemu] board."""

    suite: str  # Debian suite of the camera's kernel and userland (the sysroot's may differ)
    console: str  # the kernel's serial console device on the board
    packages: tuple[str, ...]  # userland packages (with their dependency closure): shell tools, SSH server
    storage_modules: tuple[str, ...]  # kernel modules the persistent data disk needs, on top of [qemu] modules
    guest_address: str  # the camera's address/prefix on QEMU's user network


@dataclass(frozen=True)
class RuntimeBuild:
    """A TFLite build: the one a target's analytic rates assume (`[runtime]`), the one a firmware ships
    (firmware.json), or the one a measured table ran on."""

    tflite: str  # version, e.g. "2.14.1"
    neon: bool
    xnnpack: bool
    how: str = ""  # how the facts were found out (informative)

    def differs(self, other: RuntimeBuild) -> str:
        """'' when the builds agree on version, NEON and XNNPACK; else what differs, in words."""
        diffs = [f"{k} {getattr(self, k)} vs {getattr(other, k)}" for k in ("tflite", "neon", "xnnpack")
                 if getattr(self, k) != getattr(other, k)]
        return ", ".join(diffs).replace("True", "on").replace("False", "off")


@dataclass(frozen=True)
class Target:
    """One target descriptor, loaded and checked. `path` is the file it was read from."""

    name: str
    description: str
    role: Literal["edge", "cloud", "any"]
    device: Device
    quant: QuantSupport
    family: str = ""  # template folder family for deployable targets ("edge-linux")
    toolchain: Toolchain | None = None
    qemu: Qemu | None = None
    camera: Camera | None = None
    runtime: RuntimeBuild | None = None  # the TFLite build the device's rates (MACs per cycle) assume
    path: str = field(default="", compare=False, init=False)

    def summary(self) -> dict[str, Any]:
        """The descriptor as plain JSON data (`splitsdk targets --json`): the file's fields and more."""
        data: dict[str, Any] = encode(self)
        data["path"] = self.path
        data["quant"]["precisions"] = list(self.quant.precisions)
        data["quant"]["runs_int16_activations"] = self.quant.runs_int16_activations
        return data


def _container(bits: int) -> int:
    """The runtime container width for a value of `bits` bits (sub-8-bit values live in 8)."""
    for width in MODE_WIDTHS:
        if bits <= width:
            return width
    raise TargetError(f"bit width {bits} is wider than float ({FLOAT_BITS})")


def _check(t: Target) -> None:
    """What the types cannot say: rules across fields (a CodecError names the field)."""
    if not _NAME.match(t.name):
        raise CodecError("name", f"{t.name!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    d = t.device
    if (d.kind == "systolic") != (d.systolic is not None):
        raise CodecError("device.systolic", "required exactly when device.kind is 'systolic'")
    if d.app_memory_mb > d.memory_mb:
        raise CodecError("device.app_memory_mb", f"{d.app_memory_mb} exceeds device.memory_mb {d.memory_mb}")
    q = t.quant
    if not q.candidate_bits:
        raise CodecError("quant.candidate_bits", "must not be empty")
    if not set(q.emulated_bits) <= set(q.candidate_bits):
        raise CodecError("quant.emulated_bits", f"{list(q.emulated_bits)} not all in quant.candidate_bits")
    if not any(m.weights == FLOAT_BITS and m.activations == FLOAT_BITS for m in q.modes):
        raise CodecError("quant.modes", "needs a float mode (weights = activations = 32)")
    try:
        q.mode_for(q.native.weights, q.native.activations)
    except TargetError as exc:
        raise CodecError("quant.native", str(exc)) from None
    if t.camera is not None and (t.qemu is None or not t.qemu.system_binary or not t.qemu.kernel_package):
        raise CodecError("camera", "needs [qemu] system_binary and kernel_package (the board it boots on)")
    if t.camera is not None and (t.toolchain is None or t.toolchain.sysroot is None):
        raise CodecError("camera", "needs [toolchain.sysroot] (its Debian mirror and architecture)")


# -- loading ----------------------------------------------------------------------------------------


def builtin_targets_dir() -> Path:
    """The folder of the descriptors shipped as package data."""
    return Path(str(resources.files("splitsdk.targets")))


def list_targets() -> list[str]:
    """Names of the targets shipped with splitsdk, sorted."""
    return sorted(p.stem for p in builtin_targets_dir().glob("*.toml"))


def target_file(name_or_path: str | Path) -> Path:
    """The descriptor file meant: a path when the argument is an existing file or ends in `.toml`,
    else a shipped target's name (a folder named like a target does not hide it)."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise TargetError(f"{path}: target file not found")
        return path
    path = builtin_targets_dir() / f"{text}.toml"
    if not path.is_file():
        raise TargetError(f"unknown target '{text}' (known: {', '.join(list_targets())})")
    return path


def load_target(name_or_path: str | Path) -> Target:
    """Load a shipped target by name (`"cortex-a7"`) or any descriptor file by path.

    A file's `name` need not match its file name: a copy of cortex-a7.toml saved as `my-a7.toml`
    loads as is; the path it was read from is kept in `Target.path`.
    """
    path = target_file(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: cannot parse: {exc}") from None
    try:
        target = decode(Target, data)
        _check(target)
    except CodecError as exc:
        raise TargetError(f"{path}: {exc}") from None
    object.__setattr__(target, "path", str(path))  # not a field of the file: where it was read from
    return target


def camera_targets() -> list[str]:
    """The shipped targets a camera image can be built for (those with a [camera] section)."""
    return [n for n in list_targets() if load_target(n).camera is not None]
