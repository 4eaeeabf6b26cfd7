"""`splitsdk profile`: the edge model's per-op latency measured by the firmware itself, as a table the
planner reads (`build_profile(..., measured_edge=...)`, `splitsdk plan --edge-profile`).

The firmware's `splitsdk-edge --profile N --warmup W` times every TFLite op with a profiler attached
to the interpreter and prints JSON (`AppProfile`). It runs natively (target `host`), under qemu-arm
user mode (emulated wall time: the host's speed through a translator, not the camera's), or on the
emulated camera over SSH (qemu-system-arm; with `-icount shift=N` the guest clock counts
instructions, so the numbers are instruction-count time, not Cortex-A7 milliseconds: the app's own
instructions repeat exactly from run to run; the kernel's timer ticks that fall into an op, whose
phase follows the SSH command's arrival in host time, add a few thousand instructions each).

Each op is mapped back to the plan's edge layers: by the layer names TFLite keeps in its output
tensor names, the edge model's outputs by the plan's crossing tensors, and an op that names no
layer (QUANTIZE of the input, an op a converter split off) to its neighbour layer: the layer whose
op follows it when it comes first, else the layer before it. A layer with no op of its own (fused
into a neighbour by the converter) gets 0 ms: its time is in the neighbour's. The rows' sum is the
sum of the ops, i.e. one invocation.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from splitsdk.codec import CodecError, bounds, decode
from splitsdk.errors import ProfileError, SplitSdkError, first_line
from splitsdk.profile.measured import Clock, MeasuredRow, MeasuredSource
from splitsdk.profile.modes import SHIPPED, convert_modes, parse_modes
from splitsdk.target import ComputeMode, RuntimeBuild, load_target
from splitsdk.toolchain.build import BINARY, Firmware
from splitsdk.toolchain.emulate import app_command
from splitsdk.toolchain.tools import run_tool

Where = Literal["native", "qemu", "camera"]  # native: a target without QEMU (host)
FLOAT_BITS = 32
_REMOTE_DIR = "/tmp/splitsdk-profile"


# -- what `splitsdk-edge --profile` prints ------------------------------------------------------------
@dataclass(frozen=True)
class AppRuntime:
    tflite_version: str
    delegates: tuple[str, ...]
    xnnpack: bool
    xnnpack_source: str
    neon: bool
    neon_source: str


@dataclass(frozen=True)
class Timing:
    median_ms: float = field(metadata=bounds(ge=0))
    min_ms: float = field(metadata=bounds(ge=0))
    max_ms: float = field(metadata=bounds(ge=0))


@dataclass(frozen=True)
class OpTiming:
    index: int = field(metadata=bounds(ge=0))
    subgraph: int
    delegate_internal: bool
    op: str
    outputs: tuple[str, ...]
    count: int = field(metadata=bounds(ge=0))
    median_ms: float = field(metadata=bounds(ge=0))
    min_ms: float = field(metadata=bounds(ge=0))
    max_ms: float = field(metadata=bounds(ge=0))


@dataclass(frozen=True)
class AppProfile:
    runtime: AppRuntime
    runs: int = field(metadata=bounds(ge=1))
    warmup: int = field(metadata=bounds(ge=0))
    invoke: Timing
    ops: tuple[OpTiming, ...]


def parse_app_profile(stdout: str, where: str) -> AppProfile:
    """The JSON document the app printed (its last line starting with '{')."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise ProfileError(f"{where}: the edge app printed no profile ({stdout.strip()[-200:] or 'no output'})")
    try:
        return decode(AppProfile, json.loads(line))
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{where}: the profile is not valid JSON: {exc}") from None
    except CodecError as exc:
        raise ProfileError(f"{where}: profile: {exc}") from None


# -- running the app ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceRun:
    profile: AppProfile
    clock: Clock
    icount_shift: int | None = None


def profile_args(model: str, runs: int, warmup: int, frame: str | None) -> list[str]:
    args = ["--model", model, "--profile", str(runs), "--warmup", str(warmup)]
    return [*args, "--input", frame] if frame is not None else args


def check_where(fw: Firmware, where: Where) -> None:
    target = load_target(fw.target_file)
    if where == "native" and target.qemu is not None:
        raise ProfileError(f"--host: {fw.root} is built for {target.name}, which runs under QEMU (use --qemu)")
    if where == "qemu" and target.qemu is None:
        raise ProfileError(f"--qemu: {fw.root} is built for {target.name}, which has no QEMU (use --host)")


def run_local(fw: Firmware, where: Where, runs: int, warmup: int, frame: Path | None,
              timeout_s: float = 600.0, model: Path | None = None) -> DeviceRun:
    """Natively (`native`: a target without QEMU, e.g. host) or under qemu-arm user mode (`qemu`), on
    the firmware's edge model or on `model` (another conversion of the same edge)."""
    check_where(fw, where)
    frame_arg = str(frame.resolve()) if frame is not None else None
    path = model if model is not None else fw.model
    cmd = app_command(fw, profile_args(str(path.resolve()), runs, warmup, frame_arg))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ProfileError(f"{path}: the profile run did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise ProfileError(f"{path}: the edge app failed ({proc.returncode}): {_last_error(proc.stderr)}")
    return DeviceRun(parse_app_profile(proc.stdout, str(path)), "qemu-user" if where == "qemu" else "host")


def _last_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1].removeprefix("splitsdk-edge: error: ") if lines else "no message"


def _tar(root: Path, extra: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sub in ("bin", "lib", "share"):
            tar.add(root / sub, arcname=sub)
        for name, path in extra.items():
            tar.add(path, arcname=name)
    return buf.getvalue()


def run_on_camera(fw: Firmware, image_dir: str | Path, runs: int, warmup: int, frame: Path | None,
                  icount: int | None = 0, timeout_s: float = 900.0,
                  models: Sequence[Path] = ()) -> tuple[DeviceRun, list[DeviceRun | str]]:
    """On the emulated camera booted from `image_dir` (a running one is reused, with its own -icount;
    otherwise it is booted with `icount` and powered off afterwards): the firmware is copied to the
    camera's RAM disk, the installed app is stopped, and the profile runs with the firmware's libraries,
    on the shipped edge model and then on each of `models` in the same boot (per model its run, or
    why the app failed on it)."""
    from splitsdk.camera.errors import CameraError
    from splitsdk.camera.flash import DEFAULT_ROOT, CameraTool
    from splitsdk.camera.qemu import camera_down, camera_up, load_state

    try:
        cam = load_state(image_dir)
        started = False
    except SplitSdkError:
        cam = camera_up(image_dir, icount=icount, timeout_s=300.0)
        started = True
    try:
        with tempfile.TemporaryDirectory(prefix="splitsdk-profile-") as tmp:
            remote = cam.remote(known_hosts=Path(tmp) / "known_hosts")
            tool = CameraTool(remote, DEFAULT_ROOT)
            tool.info()
            tool.fw("stop")  # the installed app would share the core with the profile run
            extra = {"input" + frame.suffix: frame} if frame is not None else {}
            extra |= {f"model-{i}.tflite": m for i, m in enumerate(models)}
            remote.check(f"rm -rf {_REMOTE_DIR} && mkdir -p {_REMOTE_DIR} && tar -x -C {_REMOTE_DIR}",
                         _tar(fw.root, extra), timeout_s=300)
            loader = _loader(fw)
            d = _REMOTE_DIR
            outs: list[tuple[int, str, str]] = []
            remote_frame = f"{d}/input{frame.suffix}" if frame is not None else None
            on_camera = [f"{d}/share/{BINARY}/edge.tflite", *(f"{d}/model-{i}.tflite" for i in range(len(models)))]
            for remote_model in on_camera:
                args = profile_args(remote_model, runs, warmup, remote_frame)
                # without address-space randomisation, so that repeated runs execute the same instructions
                aslr = "/proc/sys/kernel/randomize_va_space"
                app = f"{d}/lib/{loader} --library-path {d}/lib {d}/bin/{BINARY} {' '.join(args)}"
                ran = remote.run(f"o=$(cat {aslr}); echo 0 > {aslr}; {app}; rc=$?; echo $o > {aslr}; exit $rc",
                                 timeout_s=timeout_s)
                if ran[0] == 255:
                    raise CameraError(f"cannot reach the camera at {remote}: {ran[2].strip()[-200:] or 'ssh failed'}")
                outs.append(ran)
            remote.run(f"rm -rf {_REMOTE_DIR}", timeout_s=60)
            tool.fw("start")
    finally:
        if started:
            camera_down(image_dir)
    clock: Clock = "camera" if cam.icount is None else "camera-icount"
    rc, out, err = outs[0]
    if rc != 0:
        raise ProfileError(f"{cam.host}: the edge app failed ({rc}): {_last_error(err)}")
    shipped = DeviceRun(parse_app_profile(out, f"{cam.host}"), clock, cam.icount)
    others: list[DeviceRun | str] = []
    for model, (rc, out, err) in zip(models, outs[1:], strict=True):
        try:
            if rc != 0:
                raise ProfileError(f"the edge app failed ({rc}): {_last_error(err)}")
            others.append(DeviceRun(parse_app_profile(out, f"{cam.host}: {model.name}"), clock, cam.icount))
        except ProfileError as exc:
            others.append(first_line(exc))
    return shipped, others


def _loader(fw: Firmware) -> str:
    out = run_tool(["readelf", "-l", str(fw.binary)], f"reading {fw.binary.name}'s program headers")
    m = re.search(r"Requesting program interpreter: (\S+)\]", out)
    if m is None:
        raise ProfileError(f"{fw.binary}: no program interpreter (not a dynamic executable?)")
    return Path(m.group(1)).name


# -- the runtime build that ran ----------------------------------------------------------------------
def runtime_build(fw: Firmware, app: AppRuntime) -> RuntimeBuild:
    from splitsdk.toolchain.build import library_neon

    target = load_target(fw.target_file)
    neon, how = library_neon(target, sorted((fw.root / "lib").iterdir()))
    return RuntimeBuild(
        tflite=app.tflite_version,
        neon=neon,
        xnnpack=app.xnnpack,
        how=f"version: TfLiteVersion(); NEON: {how} (the app itself: {app.neon_source} = {str(app.neon).lower()}); "
        f"XNNPACK: {app.xnnpack_source}" + (f" (delegates: {', '.join(app.delegates)})" if app.delegates else ""),
    )


# -- ops -> plan layers -------------------------------------------------------------------------------
def _tokens(name: str) -> set[str]:
    parts = [p for p in re.split(r"[;/:]", name) if p]
    return set(parts) | {re.sub(r"_\d+$", "", p) for p in parts}


def map_ops(ops: Sequence[OpTiming], layers: Sequence[str], output_layer: dict[str, str]) -> dict[str, list[OpTiming]]:
    """Plan edge layer -> the ops that compute it (see the module docstring)."""
    top = sorted((o for o in ops if not o.delegate_internal and o.subgraph == 0), key=lambda o: o.index)
    owner: list[str | None] = []
    for op in top:
        named = [output_layer[t] for t in op.outputs if t in output_layer]
        if not named:
            toks = set().union(*(_tokens(t) for t in op.outputs)) if op.outputs else set()
            named = [n for n in layers if n in toks]
        owner.append(named[-1] if named else None)
    known = [o for o in owner if o is not None]
    if not known:
        raise ProfileError(
            f"no TFLite op of the edge model names a plan layer ({', '.join(layers)}): cannot map the profile"
        )
    out: dict[str, list[OpTiming]] = {n: [] for n in layers}
    last: str | None = None
    for i, (op, who) in enumerate(zip(top, owner, strict=True)):
        if who is None:
            who = last if last is not None else next(o for o in owner[i:] if o is not None)
        out[who].append(op)
        last = who
    return out


@dataclass(frozen=True)
class LayerTiming:
    layer: str
    wbits: int
    abits: int
    ms: float
    ops: tuple[str, ...]  # "CONV_2D#1", ...


def layer_bits(layer: str, weight_bits: dict[str, int], activation_bits: dict[str, int]) -> tuple[int, int]:
    """(wbits, abits) a table row is keyed by: the plan's bits; a layer without weights takes the int8
    container (float with float activations: the runtime executes it the same whatever the weights)."""
    a = activation_bits.get(layer, 8)
    return weight_bits.get(layer, FLOAT_BITS if a == FLOAT_BITS else 8), a


def layer_timings(run: AppProfile, edge: EdgeLayers, fewest: bool = False) -> list[LayerTiming]:
    """One row per edge layer (plan order; without a plan, the order of the layers' first ops): the
    ops' medians, or with `fewest` their minimum over the runs (instruction-count time: the run the
    fewest timer and network interrupts fell into, which repeats exactly from boot to boot)."""
    mapping = map_ops(run.ops, edge.layers, edge.output_layer)
    layers = list(edge.layers)
    if not edge.ordered:
        layers.sort(key=lambda n: min((o.index for o in mapping[n]), default=1 << 30))
    rows = []
    for name in layers:
        w, a = layer_bits(name, edge.weight_bits, edge.activation_bits)
        ops = mapping[name]
        ms = sum(o.min_ms if fewest else o.median_ms for o in ops)
        rows.append(LayerTiming(name, w, a, ms, tuple(f"{o.op}#{o.index}" for o in ops)))
    return rows


@dataclass(frozen=True)
class EdgeLayers:
    """What the profile maps to, from a bundle: the edge layers (plan order when `ordered`), the edge
    model's output tensor names -> producing layer, the plan's bits per edge layer."""

    layers: tuple[str, ...]
    output_layer: dict[str, str]
    weight_bits: dict[str, int]
    activation_bits: dict[str, int]
    ordered: bool


def bundle_edge(bundle_dir: str | Path) -> EdgeLayers:
    """The bundle's plan.json when this splitsdk reads it; else the manifest's precision record (the
    edge layers and their bits; crossing tensors named after their layers; order from the ops)."""
    from splitsdk.errors import PlanError
    from splitsdk.plan.schema import load_plan
    from splitsdk.runtime import io_details
    from splitsdk.wire.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    if bundle.manifest.splits:  # its segments are separate models, whose ops name no layer of the plan
        raise ProfileError(
            f"{bundle.root}: a multi-split bundle (splits {', '.join(map(str, bundle.split_indices))}): profile "
            "times a single-split bundle's edge model; convert the plan of one split on its own and profile that"
        )
    _, outs = io_details(bundle.edge_model.read_bytes())
    names = {c.tensor: outs[c.edge_output].name for c in bundle.crossing if c.edge_output < len(outs)}
    plan_file = bundle.root / "plan.json"
    try:
        plan = load_plan(plan_file) if plan_file.is_file() else None
    except PlanError:
        plan = None  # a plan.json of another schema version: the manifest says enough
    if plan is not None:
        sol = plan.solution
        producers = {c.tensor: c.producer for c in sol.crossing if c.producer is not None}
        edge = EdgeLayers(tuple(sol.edge_layers), {names[t]: p for t, p in producers.items() if t in names},
                          dict(sol.weight_bits), dict(sol.activation_bits), True)
    elif bundle.manifest.precision is not None:
        prec = bundle.manifest.precision
        layers = tuple(prec.activation_bits)
        edge = EdgeLayers(layers, {names[t]: t for t in names if t in layers}, dict(prec.weight_bits),
                          dict(prec.activation_bits), False)
    else:
        raise ProfileError(f"{bundle.root}: neither a plan.json this splitsdk reads nor a manifest precision "
                           "record: the edge layers to map the profile to are unknown")
    if not edge.layers:
        raise ProfileError(f"{bundle.root}: the plan has no edge layers (CLOUD_ONLY): nothing to profile")
    return edge


def invoke_ms(run: DeviceRun) -> float:
    """One whole invocation: the minimum under -icount (see `layer_timings`), else the median."""
    return run.profile.invoke.min_ms if run.clock == "camera-icount" else run.profile.invoke.median_ms


SHIPPED_NOTE = "the bundle's edge model as shipped (its per-layer bits)"


def measured_source(fw: Firmware, run: DeviceRun, note: str = SHIPPED_NOTE,
                    modes: Sequence[str] = ()) -> MeasuredSource:
    return MeasuredSource(
        clock=run.clock,
        target=fw.target,
        firmware=str(fw.root.resolve()),
        runs=run.profile.runs,
        warmup=run.profile.warmup,
        runtime=runtime_build(fw, run.profile.runtime),
        icount_shift=run.icount_shift,
        invoke_ms=invoke_ms(run),
        note=note,
        modes=tuple(modes),
    )


def to_rows(timings: Sequence[LayerTiming]) -> list[MeasuredRow]:
    return [MeasuredRow(t.layer, t.wbits, t.abits, t.ms) for t in timings]


@dataclass(frozen=True)
class ModeProfile:
    """The edge converted at one runtime mode and profiled: its rows (every layer keyed by the mode's
    containers), or why it was not measured."""

    mode: str
    layers: tuple[LayerTiming, ...] = ()
    invoke_ms: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class EdgeProfile:
    """What `splitsdk profile` measured: per-layer rows, where they came from, the table written."""

    layers: tuple[LayerTiming, ...]
    source: MeasuredSource
    table: Path | None
    modes: tuple[ModeProfile, ...] = ()

    def rows(self) -> list[MeasuredRow]:
        """The table's rows: the shipped model's, then each mode's (layer, bits) the shipped did not cover."""
        out = to_rows(self.layers)
        seen = {(r.layer, r.wbits, r.abits) for r in out}
        for m in self.modes:
            for r in to_rows(m.layers):
                if (r.layer, r.wbits, r.abits) not in seen:
                    seen.add((r.layer, r.wbits, r.abits))
                    out.append(r)
        return out


def resolve_firmware(path: str | Path, work: Path) -> Firmware:
    """A firmware directory as is; a generated project is built first (into `work`)."""
    from splitsdk.toolchain.build import FIRMWARE_FILE, PROJECT_FILE, build_firmware, load_firmware

    p = Path(path)
    if (p / FIRMWARE_FILE).is_file():
        return load_firmware(p)
    if (p / PROJECT_FILE).is_file():
        return build_firmware(p, work / "firmware", build_dir=work / "build")
    raise ProfileError(f"{p}: neither a firmware ({FIRMWARE_FILE}) nor a generated project ({PROJECT_FILE})")


def _at_mode(edge: EdgeLayers, mode: ComputeMode) -> EdgeLayers:
    """`edge` with every layer at `mode`'s containers (a weightless layer too: it ran in that model)."""
    return dataclasses.replace(edge, weight_bits={n: int(mode.weights) for n in edge.layers},
                               activation_bits={n: int(mode.activations) for n in edge.layers})


def _modes_note(results: Sequence[ModeProfile], model: Path, calib: str | Path | None) -> str:
    done = [m for m in results if not m.error]
    parts = [SHIPPED_NOTE]
    if done:
        parts.append(f"{', '.join(m.mode for m in done)}: the edge converted with every layer at that mode from "
                     f"{model.name} (calibration: {Path(calib).name if calib is not None else 'random frames'}) "
                     f"and run by the same app (whole invocation: "
                     f"{', '.join(f'{m.mode} {m.invoke_ms:.4g} ms' for m in done)})")
    parts += [f"{m.mode}: not measured: {m.error}" for m in results if m.error]
    return "; ".join(parts)


def profile_edge(
    firmware: str | Path,
    bundle: str | Path,
    *,
    where: Where | None = None,
    runs: int = 10,
    warmup: int = 2,
    frame: str | Path | None = None,
    camera_image: str | Path | None = None,
    icount: int | None = 0,
    out: str | Path | None = None,
    modes: str = SHIPPED,
    model: str | Path | None = None,
    calib: str | Path | None = None,
) -> EdgeProfile:
    """Profile the firmware's edge model (natively, under qemu-arm, or on the emulated camera when
    `camera_image` is given) and map the ops to the bundle plan's edge layers; write the table to `out`.

    `modes` (`shipped`, `all` or a list of the target's mode names) adds the edge converted from
    `model` (and `calib`) at each of those modes, run by the same app in the same place."""
    from splitsdk.profile.measured import write_measured

    if runs < 1:
        raise ProfileError(f"--runs: must be >= 1, got {runs}")
    if warmup < 0:
        raise ProfileError(f"--warmup: must be >= 0, got {warmup}")
    if frame is not None and not Path(frame).is_file():
        raise ProfileError(f"--input: {frame}: no such file")
    edge = bundle_edge(bundle)
    with tempfile.TemporaryDirectory(prefix="splitsdk-profile-") as tmp:
        fw = resolve_firmware(firmware, Path(tmp))
        target = load_target(fw.target_file)
        shipped_modes = {target.quant.mode_for(*layer_bits(n, edge.weight_bits, edge.activation_bits))
                         for n in edge.layers}
        wanted = tuple(m for m in parse_modes(modes, target) if shipped_modes != {m})  # not the shipped again
        if wanted and model is None:
            raise ProfileError("--modes: needs --model, the model the bundle's plan was made for")
        on_camera = camera_image is not None or where == "camera"
        chosen: Where = where or ("qemu" if target.qemu is not None else "native")
        if not on_camera:
            check_where(fw, chosen)  # before minutes of conversion
        converted = convert_modes(bundle, model, wanted, Path(tmp) / "modes", calib) if model and wanted else []
        paths = [m.path for m in converted if m.path is not None]
        img = Path(frame) if frame is not None else None
        others: list[DeviceRun | str] = []
        if on_camera:
            if camera_image is None:
                raise ProfileError("--camera needs the camera image directory")
            run, others = run_on_camera(fw, camera_image, runs, warmup, img, icount, models=paths)
        else:
            run = run_local(fw, chosen, runs, warmup, img)
            for path in paths:
                try:
                    others.append(run_local(fw, chosen, runs, warmup, img, model=path))
                except ProfileError as exc:
                    others.append(first_line(exc))
        fewest = run.clock == "camera-icount"
        ran = iter(others)
        results: list[ModeProfile] = []
        for m in converted:
            got = next(ran) if m.path is not None else m.error
            if isinstance(got, str):
                results.append(ModeProfile(m.mode.name, error=got))
                continue
            try:
                timings = layer_timings(got.profile, _at_mode(edge, m.mode), fewest=fewest)
            except ProfileError as exc:
                results.append(ModeProfile(m.mode.name, error=first_line(exc)))
                continue
            results.append(ModeProfile(m.mode.name, tuple(timings), invoke_ms(got)))
        note = _modes_note(results, Path(model), calib) if model and wanted else SHIPPED_NOTE
        source = measured_source(fw, run, note, [r.mode for r in results if not r.error])
    timings = layer_timings(run.profile, edge, fewest=fewest)
    result = EdgeProfile(tuple(timings), source, None, tuple(results))
    if out is None:
        return result
    return dataclasses.replace(result, table=write_measured(out, result.rows(), source))
