"""`splitsdk convert`: plan.json + model -> a deployable bundle, verified on the host.

The bundle (read by `splitsdk.wire.bundle.load_bundle`, served by `splitsdk serve`, compiled into
the edge app by `splitsdk generate`) holds edge.tflite (int8, outputs in wire order), cloud.keras
(+ cloud.tflite where it converts), manifest.json (`splitsdk.wire.bundle.Manifest`) and a copy of
plan.json. It is written to a temporary folder beside the destination and renamed into place: never
half-written. Errors name the plan's fields or `convert_plan`'s parameters (the CLI names its flags).
"""

from __future__ import annotations

import copy
import hashlib
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from splitsdk.convert.keras_io import save_keras_deterministic
from splitsdk.convert.mixed import Precision, to_mixed_tflite
from splitsdk.convert.onnx_split import convert_onnx_halves, fake_quantize_onnx
from splitsdk.convert.split import cloud_model, edge_model, edge_with_probe, fake_quantize_weights
from splitsdk.convert.tflite import to_float_tflite, to_int8_tflite
from splitsdk.convert.verify import (
    Verification,
    held_out_split,
    simulate,
    simulated_edge,
    simulated_onnx,
    verify_bundle,
)
from splitsdk.errors import ConvertError, PlanError, TargetError
from splitsdk.graph import LayerGraph, load_graph, model_sha256
from splitsdk.graph.keras_import import call_outputs
from splitsdk.outputs import check_replaceable, replace_dir
from splitsdk.plan.schema import Plan, Solution, load_plan, plan_text
from splitsdk.profile.types import FLOAT_BITS
from splitsdk.quant import Dataset, load_dataset
from splitsdk.quant.sensitivity import activation_runner
from splitsdk.runtime import TensorQuant, io_details, match_outputs, tensor_key
from splitsdk.target import load_target
from splitsdk.wire.bundle import (
    DEFAULT_POSTPROCESS,
    MANIFEST,
    InputSpec,
    Manifest,
    ManifestCrossing,
    ModelOutput,
    PrecisionRecord,
    wire_quant_params,
    write_manifest,
)
from splitsdk.wire.packing import build_lut

EDGE_CONTAINER_BITS = 8


class ConvertArgumentError(ConvertError):
    """A `convert_plan` argument out of range; `parameter` names it (the CLI reports its flag instead)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass
class ConvertReport:
    bundle: Path
    kind: str
    edge_tflite_bytes: int
    predicted_edge_weight_bytes: int
    emulated_layers: list[str]
    crossing: tuple[ManifestCrossing, ...]
    precisions: dict[str, str] = field(default_factory=dict)  # edge layer -> what it executes in edge.tflite
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        """Real edge.tflite bytes over the plan's predicted edge weight bytes."""
        return self.edge_tflite_bytes / max(self.predicted_edge_weight_bytes, 1)


def _plan_file(plan: Plan | str | Path) -> tuple[Plan, bytes, str]:
    """The plan, the bytes of the bundle's plan.json (and manifest.plan_sha256) and its name in errors."""
    if isinstance(plan, Plan):
        return plan, plan_text(plan, "plan").encode(), "plan"
    path = Path(plan)
    loaded = load_plan(path)
    return loaded, path.read_bytes(), str(path)


def _check_arguments(samples: int, input_scale: float, input_offset: float, postprocess: dict[str, Any]) -> None:
    if samples < 1:
        raise ConvertArgumentError("samples", f"must be >= 1, got {samples}")
    if not (math.isfinite(input_scale) and input_scale > 0):
        raise ConvertArgumentError("input_scale", f"must be a finite number > 0, got {input_scale}")
    if not math.isfinite(input_offset):
        raise ConvertArgumentError("input_offset", f"must be a finite number, got {input_offset}")
    if not isinstance(postprocess.get("kind"), str) or not postprocess["kind"]:
        raise ConvertArgumentError("postprocess", f"needs a non-empty string 'kind', got {postprocess!r}")


def _check_plan_against(plan: Plan, graph: LayerGraph, model: Path, src: str) -> None:
    if plan.model.sha256 != model_sha256(model):
        raise PlanError(f"{src}: model.sha256 does not match {model} (the plan was made for another model)")
    missing = [n for n in plan.solution.edge_layers if n not in graph]
    if missing:
        raise PlanError(f"{src}: solution.edge_layers names layer {missing[0]!r}, which {model} does not have")
    for c in plan.solution.crossing:
        if c.tensor not in graph.tensors:
            raise PlanError(f"{src}: solution.crossing names tensor {c.tensor!r}, which {model} does not have")


# (weight, activation) containers of the runtime modes convert emits, the container for "no weights" aside
CONVERTED_MODES = {(8, 8), (8, 16), (8, FLOAT_BITS), (FLOAT_BITS, FLOAT_BITS)}


def layer_precisions(plan: Plan, graph: LayerGraph, src: str) -> dict[str, Precision]:
    """Every edge layer's (weight, activation) bits mapped onto a mode the target's runtime executes:
    the containers the layer runs in (weights 0 for a layer without weights)."""
    target = load_target(plan.target)
    q = target.quant
    out = {}
    for name in plan.solution.edge_layers:
        wb = plan.solution.weight_bits.get(name, EDGE_CONTAINER_BITS)
        ab = plan.solution.activation_bits.get(name, EDGE_CONTAINER_BITS)
        if wb < EDGE_CONTAINER_BITS and wb not in q.emulated_bits and not q.packed_storage:
            raise ConvertError(f"{src}: layer {name!r}: {wb}-bit weights cannot run on {target.name} ({q.runtime})")
        try:
            mode = q.mode_for(wb, ab)
        except TargetError:
            mode = None
        if mode is None or (mode.weights, mode.activations) not in CONVERTED_MODES:
            what = f"{wb}-bit weights x {ab}-bit activations"
            runs = mode.name if mode is not None else f"no mode of {target.name} ({', '.join(q.precisions)})"
            raise ConvertError(f"{src}: layer {name!r}: {what} runs as {runs}, which splitsdk convert cannot emit")
        out[name] = Precision(mode.weights if graph.layer(name).quantizable else 0, mode.activations)
    return out


@dataclass
class Halves:
    """The two converted halves of one cut, whatever the source format."""

    edge: bytes  # int8 TFLite
    edge_reference: Callable[[np.ndarray], list[np.ndarray]]  # float edge outputs, wire order, NHWC
    write_cloud: Callable[[Path], None]
    cloud_name: str
    emulated: list[str]
    simulate: Callable[[np.ndarray, list[int], np.ndarray], list[np.ndarray]] | None = None
    executed: dict[str, Precision] | None = None  # per layer, read back from a per-layer mix (None: all int8)


def _keras_halves(
    graph: LayerGraph, sol: Solution, crossing: list[str], calib: np.ndarray, want: dict[str, Precision]
) -> Halves:
    layers = list(sol.edge_layers)
    executed = None
    if is_mixed(want):
        edge, probe = edge_with_probe(graph, layers, crossing)
        emulated = fake_quantize_weights(edge, dict(sol.weight_bits), graph)
        flat = to_float_tflite(edge)
        if flat is None:
            raise ConvertError(f"'{graph.name}': the edge half does not convert to TFLite")
        mixed = to_mixed_tflite(flat, lambda x: call_outputs(probe, [x]), layers, want, calib)
        content, executed = mixed.content, mixed.executed
    else:
        edge = edge_model(graph, layers, crossing)
        emulated = fake_quantize_weights(edge, dict(sol.weight_bits), graph)
        content = to_int8_tflite(edge, [calib])
    cloud = cloud_model(graph, crossing, layers)
    widths = {n: p.activations for n, p in want.items()}

    def write_cloud(folder: Path) -> None:
        save_keras_deterministic(cloud, folder / "cloud.keras")
        cloud_tfl = to_float_tflite(cloud)
        if cloud_tfl is not None:
            (folder / "cloud.tflite").write_bytes(cloud_tfl)

    return Halves(
        edge=content,
        edge_reference=lambda x: call_outputs(edge, [x]),
        write_cloud=write_cloud,
        cloud_name="cloud.keras",
        emulated=emulated,
        simulate=lambda c, bits, x: simulate(simulated_edge(graph, layers, crossing, dict(sol.weight_bits),
                                                            widths, c), cloud, c, bits, x),
        executed=executed,
    )


def _onnx_halves(
    model: Path, graph: LayerGraph, sol: Solution, crossing: list[str], calib: np.ndarray, want: dict[str, Precision]
) -> Halves:
    source = fake_quantize_onnx(model, graph, dict(sol.weight_bits))
    emulated = sorted(n for n, b in sol.weight_bits.items() if b < EDGE_CONTAINER_BITS)
    mixed = is_mixed(want)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        src.write_bytes(source.SerializeToString())
        try:
            edge, cloud = convert_onnx_halves(
                src, list(graph.inputs), crossing, list(graph.outputs), calib,
                edge_only=sol.kind == "EDGE_ONLY", cloud_only=sol.kind == "CLOUD_ONLY", edge_float=mixed,
            )
        except ConvertError as exc:  # name the user's model, not the scratch copy
            raise ConvertError(f"{model}: {exc}") from None
        onnx_graph = copy.copy(graph)
        onnx_graph.source = source  # the ONNX model with the emulated low-bit weights
        runner = activation_runner(onnx_graph, crossing) if sol.kind != "CLOUD_ONLY" else None
        layers = list(sol.edge_layers)
        per_layer = activation_runner(onnx_graph, [graph.layer(n).outputs[0] for n in layers]) if mixed else None

    def nhwc(outs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.moveaxis(o, 1, -1) if o.ndim == 4 else o for o in outs]

    def reference(x: np.ndarray) -> list[np.ndarray]:
        if runner is None:  # CLOUD-ONLY: the edge sends the (NHWC) frame itself
            return [x]
        return nhwc(runner(x))

    executed = None
    if per_layer is not None:
        result = to_mixed_tflite(edge, lambda x: nhwc(per_layer(x)), layers, want, calib)
        edge, executed = result.content, result.executed

    def write_cloud(folder: Path) -> None:
        if sol.kind == "EDGE_ONLY":  # the results cross: the cloud passes them through
            import keras

            ins = [keras.Input(shape=graph.tensors[t].shape, name=tensor_key(t)) for t in crossing]  # bound by name
            identity = keras.Model(ins, [keras.layers.Identity()(i) for i in ins])
            (folder / "cloud.tflite").write_bytes(to_float_tflite(identity) or b"")
        else:
            (folder / "cloud.tflite").write_bytes(cloud)

    widths = {n: p.activations for n, p in want.items()}
    return Halves(edge=edge, edge_reference=reference, write_cloud=write_cloud, cloud_name="cloud.tflite",
                  emulated=emulated, executed=executed,
                  simulate=lambda c, bits, x: simulated_onnx(graph, layers, crossing, dict(sol.weight_bits), widths,
                                                             bits, c)(x))


def is_mixed(want: dict[str, Precision]) -> bool:
    """Whether any edge layer runs at something other than int8 (the TF converter's full-integer mode)."""
    return any(p.name != "int8" for p in want.values())


def manifest_crossing(tensor: str, out: TensorQuant, bits: int, codec: Literal["none", "zstd", "jpeg"],
                      jpeg_quality: int | None = None) -> ManifestCrossing:
    """A crossing as deployed: the edge model output `out` (its int8 quantisation), the b-bit wire grid over its
    range and the LUT between them; `jpeg_quality` with codec "jpeg" (the frame sent as a JPEG)."""
    scale, zp = wire_quant_params(out.scale, out.zero_point, bits)
    return ManifestCrossing(
        tensor=tensor, shape=tuple(out.shape), edge_scale=float(out.scale), edge_zero_point=int(out.zero_point),
        bits=bits, scale=scale, zero_point=int(zp),
        lut=tuple(int(v) for v in build_lut(out.scale, out.zero_point, scale, zp, bits)),
        edge_output=int(out.index), codec=codec, jpeg_quality=jpeg_quality,
    )


def model_outputs(graph: LayerGraph) -> tuple[ModelOutput, ...]:
    """The source model's outputs in its order, as the manifest records them for the receiver."""
    return tuple(ModelOutput(name=o, shape=tuple(int(d) for d in graph.tensors[o].shape)) for o in graph.outputs)


def calibration_and_held_out(
    calib: str | Path | None, graph: LayerGraph, samples: int
) -> tuple[Dataset, Dataset | None]:
    """`samples` calibration samples and others to verify on (random inputs: as many again, up to 32)."""
    loaded = load_dataset(calib, graph.tensors[graph.inputs[0]].shape, samples=samples + min(samples, 32))
    return held_out_split(loaded, samples)


def _precision_record(
    sol: Solution, want: dict[str, Precision], executed: dict[str, Precision] | None, emulated: list[str]
) -> PrecisionRecord:
    if executed is None:
        runtime = "int8 static (TFLite full-integer), float input, int8 outputs"
        layers = {n: "int8" for n in sol.edge_layers}
    else:
        modes = sorted({p.name for p in executed.values()})
        runtime = f"per-layer mix ({', '.join(modes)}; ai-edge-quantizer), int8 input and outputs"
        # a layer with no op of its own (fused by the converter) runs as its plan says, inside its neighbour
        layers = {n: executed[n].name if n in executed else f"{want[n].name} (fused)" for n in sol.edge_layers}
    return PrecisionRecord(
        edge_runtime=runtime,
        layers=layers,
        weight_bits=dict(sol.weight_bits),
        activation_bits=dict(sol.activation_bits),
        emulated_layers=tuple(emulated),
        note="weights below 8 bits are fake-quantised onto their grid and stored in int8; activations "
             "below 8 bits execute as int8; only the transmitted tensors are reduced to their bits",
    )


def convert_plan(
    plan: Plan | str | Path,
    model: str | Path,
    out: str | Path,
    calib: str | Path | None = None,
    samples: int = 32,
    input_scale: float = 1.0 / 255.0,
    input_offset: float = 0.0,
    postprocess: dict[str, Any] | None = None,
    verify: bool = True,
    force: bool = False,
) -> ConvertReport:
    """Write the bundle for `plan` (a Plan, or a plan.json path) to `out` and verify it on the host.
    An existing `out` that is not a bundle (no manifest.json) is refused unless `force`.

    Bad arguments raise ConvertArgumentError naming the parameter; a bad plan PlanError naming its field."""
    model, out = Path(model), Path(out)
    postprocess = dict(postprocess or DEFAULT_POSTPROCESS)
    _check_arguments(samples, input_scale, input_offset, postprocess)
    check_replaceable(out, MANIFEST, "bundle", ConvertError, force)
    plan, plan_bytes, src = _plan_file(plan)
    graph = load_graph(model)
    _check_plan_against(plan, graph, model, src)
    want = layer_precisions(plan, graph, src)
    if len(graph.inputs) != 1:
        raise ConvertError(f"{model}: bundles are made for single-input camera models")
    data, held_out = calibration_and_held_out(calib, graph, samples)

    sol = plan.solution
    crossing = [c.tensor for c in sol.crossing] if sol.kind != "EDGE_ONLY" else list(graph.outputs)
    bits = {c.tensor: c.bits for c in sol.crossing}
    codecs = {c.tensor: c.codec for c in sol.crossing}  # each crossing's wire codec, as planned
    qualities = {c.tensor: c.jpeg_quality for c in sol.crossing}  # CLOUD-ONLY+JPEG: the frame's JPEG quality

    if graph.source_format == "onnx":
        halves = _onnx_halves(model, graph, sol, crossing, data.x, want)
    else:
        halves = _keras_halves(graph, sol, crossing, data.x, want)
    edge_bytes = halves.edge
    order = match_outputs(halves.edge_reference(data.x[:4]), edge_bytes, [data.x[:4]])  # wire pos -> output
    _, tfl_outs = io_details(edge_bytes)
    outs = [tfl_outs[i] for i in order]
    emulated = halves.emulated

    # the plan's crossing bits are 1..8 (load_plan refuses more)
    wire = [manifest_crossing(t, o, bits.get(t, EDGE_CONTAINER_BITS), codecs.get(t, "none"), qualities.get(t))
            for t, o in zip(crossing, outs, strict=True)]
    precision = _precision_record(sol, want, halves.executed, emulated)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "edge.tflite").write_bytes(edge_bytes)
        halves.write_cloud(tmp)
        (tmp / "plan.json").write_bytes(plan_bytes)
        write_manifest(tmp, Manifest(
            plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
            kind=sol.kind,
            target=plan.target,
            input=InputSpec(shape=tuple(graph.tensors[graph.inputs[0]].shape), dtype="uint8", scale=input_scale,
                            offset=input_offset),
            edge_model="edge.tflite",
            cloud_model=halves.cloud_name,
            cloud_tflite="cloud.tflite" if (tmp / "cloud.tflite").exists() else None,
            crossing=tuple(wire),
            postprocess=postprocess,
            precision=precision,
            outputs=model_outputs(graph),
        ))
        report = ConvertReport(
            bundle=out, kind=sol.kind, edge_tflite_bytes=len(edge_bytes),
            predicted_edge_weight_bytes=sol.predicted.edge_weight_bytes, emulated_layers=emulated,
            crossing=tuple(wire), precisions=dict(precision.layers),
        )
        if verify:
            wire_bits = [c.bits for c in wire]
            sim = None if halves.simulate is None else partial(halves.simulate, data.x, wire_bits)
            report.verification = verify_bundle(tmp, graph, held_out or data, predicted_error=sol.predicted.error,
                                                simulated=sim, calibration=data if held_out else None)
        check_replaceable(out, MANIFEST, "bundle", ConvertError, force)  # it may have appeared meanwhile
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
