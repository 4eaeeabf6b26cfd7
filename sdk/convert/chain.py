"""A split set (`splitsdk.plan.adaptive.SplitSet`) -> one multi-split bundle: an edge chain and a cloud half per split.

The edge side is a CHAIN of segment models, one per member with edge layers: segment 1 runs the frame to
cut 1, segment 2 cut 1's tensors to cut 2, ... (`segment<k>.tflite`, k the cut's split index), so no layer's
weights are stored twice; a member runs the segments up to its cut and sends that cut's tensors. A CLOUD-ONLY
member (split 0) sends the frame, quantised by `segment0.tflite` (no weights). Every segment is converted as
`splitsdk convert` converts an edge half (the same sub-model builder, the plan's weights fake-quantised on their
grid, full-integer int8 on calibration data: here each segment's inputs are its predecessor's float outputs on
the calibration frames), with the split set's one shared weight/activation assignment. The cloud half of member k
(`cloud<k>.keras`) is the model from cut k to the outputs, in float.

Recomposition is verified per member on held-out frames as `splitsdk convert` verifies a bundle: the chain up to
the cut (int8, each segment fed its predecessor's dequantised outputs), the wire (LUT, packing at the member's
bits), the cloud half, against the full float model; and next to it the member's float simulation (weights on
their grid, activations at their widths, the sent tensors at their bits). A member whose output MSE exceeds
RECOMPOSE_FACTOR times the simulation's (+ a floor) is an error: the bundle is not written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from splitsdk.convert.convert import (
    EDGE_CONTAINER_BITS,
    _check_arguments,
    _check_plan_against,
    _plan_file,
    _precision_record,
    calibration_and_held_out,
    is_mixed,
    layer_precisions,
    manifest_crossing,
    model_outputs,
)
from splitsdk.convert.keras_io import save_keras_deterministic
from splitsdk.convert.split import _safe, cloud_model, edge_model, fake_quantize_weights
from splitsdk.convert.tflite import to_int8_tflite
from splitsdk.convert.verify import _mse, full_model_outputs, simulate, simulated_edge
from splitsdk.errors import ConvertError
from splitsdk.graph import LayerGraph, load_graph
from splitsdk.graph.keras_import import call_outputs
from splitsdk.outputs import check_replaceable, replace_dir
from splitsdk.plan.adaptive import SetMember, SplitSet
from splitsdk.plan.schema import Plan
from splitsdk.runtime import bind_inputs, interpreter, io_details, match_outputs
from splitsdk.wire.bundle import (
    DEFAULT_POSTPROCESS,
    MANIFEST,
    Bundle,
    InputSpec,
    Manifest,
    ManifestSegment,
    ManifestSplit,
    load_bundle,
    write_manifest,
)

RECOMPOSE_FACTOR = 4.0  # a member's output MSE may be this many times its float simulation's (int8 kernels,
RECOMPOSE_FLOOR = 1e-5  # and the requantisation between segments, add to it) plus this floor


@dataclass(frozen=True)
class MemberCheck:
    """One member's recomposition on held-out frames (every figure measured on the host)."""

    split: int
    output_mse: float  # chain -> wire -> cloud half vs the full float model
    simulated_mse: float  # the member's float simulation vs the full float model
    agreement: float  # argmax (first output) agreement with the float model
    samples: int

    @property
    def bound(self) -> float:
        return RECOMPOSE_FACTOR * self.simulated_mse + RECOMPOSE_FLOOR


@dataclass
class ChainReport:
    bundle: Path
    splits: tuple[int, ...]
    segment_bytes: dict[str, int]  # segment file -> bytes (the chain's edge models)
    cloud_models: dict[int, str]
    checks: list[MemberCheck] = field(default_factory=list)

    @property
    def edge_bytes(self) -> int:
        return sum(self.segment_bytes.values())


@dataclass(frozen=True)
class _Cut:
    member: SetMember
    layers: list[str]  # the edge layers of this split (a prefix of the order)
    crossing: list[str]  # wire order

    @property
    def k(self) -> int:
        return self.member.split_index

    @property
    def kind(self) -> Literal["CLOUD_ONLY", "EDGE_ONLY", "SPLIT"]:
        k = self.member.kind
        assert k in ("CLOUD_ONLY", "EDGE_ONLY", "SPLIT")
        return k  # type: ignore[return-value]


def _cuts(graph: LayerGraph, split_set: SplitSet) -> list[_Cut]:
    cands = graph.split_candidates()
    out = []
    for m in split_set.members:
        if not 0 <= m.split_index < len(cands):
            raise ConvertError(f"split set: split {m.split_index} is not a split of '{graph.name}'")
        cand = cands[m.split_index]
        crossing = [c.tensor for c in cand.crossing] if cand.crossing else list(graph.outputs)
        out.append(_Cut(m, list(cand.edge_layers), crossing))
    return out


def convert_split_set(
    plan: Plan | str | Path,
    split_set: SplitSet,
    model: str | Path,
    out: str | Path,
    calib: str | Path | None = None,
    samples: int = 32,
    input_scale: float = 1.0 / 255.0,
    input_offset: float = 0.0,
    postprocess: dict[str, Any] | None = None,
    codec: Literal["none", "zstd"] = "none",
    force: bool = False,
) -> ChainReport:
    """Write the multi-split bundle of `split_set` (planned for `plan`'s model and target) to `out`, verified.

    The bundle's plan.json is `plan` (its hash is what cameras say in HELLO); the members, their wire bits
    and the shared weight/activation bits come from `split_set`. `codec` applies to every crossing tensor.
    Keras models only. Errors name the argument or the split set's member."""
    model, out = Path(model), Path(out)
    postprocess = dict(postprocess or DEFAULT_POSTPROCESS)
    _check_arguments(samples, input_scale, input_offset, postprocess)
    check_replaceable(out, MANIFEST, "bundle", ConvertError, force)
    plan, plan_bytes, src = _plan_file(plan)
    graph = load_graph(model)
    _check_plan_against(plan, graph, model, src)
    if graph.source_format != "keras":
        raise ConvertError(f"{model}: multi-split bundles are made from Keras models (got {graph.source_format})")
    if len(graph.inputs) != 1:
        raise ConvertError(f"{model}: bundles are made for single-input camera models")
    if len(split_set.members) < 2:
        raise ConvertError("split set: a multi-split bundle needs at least 2 splits (convert a plan for one)")
    cuts = _cuts(graph, split_set)
    deep = cuts[-1]
    wbits, abits = dict(split_set.weight_bits), dict(split_set.activation_bits)
    deep_sol = dataclasses.replace(
        plan.solution, kind=deep.kind, split_index=deep.k, edge_layers=tuple(deep.layers),
        weight_bits={n: b for n, b in wbits.items() if n in deep.layers},
        activation_bits={n: b for n, b in abits.items() if n in deep.layers},
    )
    want = layer_precisions(dataclasses.replace(plan, solution=deep_sol), graph, "split set")
    if is_mixed(want):
        raise ConvertError("split set: layers that run at other than int8 are not converted into a chain yet")
    data, held_out = calibration_and_held_out(calib, graph, samples)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        splits, emulated = _write_chain(tmp, graph, cuts, wbits, data.x, codec)
        first = splits[0]
        write_manifest(tmp, Manifest(
            plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
            kind=first.kind,
            target=plan.target,
            input=InputSpec(shape=tuple(graph.tensors[graph.inputs[0]].shape), dtype="uint8", scale=input_scale,
                            offset=input_offset),
            edge_model=first.segments[-1].file,
            cloud_model=first.cloud_model,
            crossing=first.crossing,
            postprocess=postprocess,
            precision=_precision_record(deep_sol, want, None, emulated),
            splits=tuple(splits),
            outputs=model_outputs(graph),
        ))
        (tmp / "plan.json").write_bytes(plan_bytes)
        bundle = load_bundle(tmp)
        x = (held_out or data).x[:32]
        checks = [_check_member(bundle, graph, c, wbits, data.x, x) for c in cuts]
        for check in checks:
            if not check.output_mse <= check.bound:
                raise ConvertError(
                    f"split set: split {check.split}: the chain's output MSE {check.output_mse:.3g} is over "
                    f"{RECOMPOSE_FACTOR:g} x its float simulation's {check.simulated_mse:.3g} + {RECOMPOSE_FLOOR:g}"
                )
        report = ChainReport(
            bundle=out, splits=tuple(c.k for c in cuts),
            segment_bytes={p.name: p.stat().st_size for p in sorted(tmp.glob("segment*.tflite"))},
            cloud_models={s.split: s.cloud_model for s in splits}, checks=checks,
        )
        check_replaceable(out, MANIFEST, "bundle", ConvertError, force)  # it may have appeared meanwhile
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _write_chain(
    folder: Path, graph: LayerGraph, cuts: list[_Cut], wbits: dict[str, int], calib: np.ndarray,
    codec: Literal["none", "zstd"],
) -> tuple[list[ManifestSplit], list[str]]:
    """Convert and write every segment and cloud half; the members (ascending split) and the emulated layers."""
    chain: list[ManifestSegment] = []
    prev: list[str] = list(graph.inputs)  # the tensors the next chain segment starts from
    values: list[np.ndarray] = [calib]  # their float values on the calibration frames (the fake-quantised chain)
    done = 0  # layers the chain has run so far
    emulated: list[str] = []
    splits = []
    for cut in cuts:
        if cut.k == 0:  # CLOUD-ONLY: the frame, quantised by a segment of its own (not part of the chain)
            seg_layers, starts, start_values = [], list(graph.inputs), [calib]
        else:
            seg_layers, starts, start_values = cut.layers[done:], prev, values
        name = f"segment{cut.k}.tflite"
        keras_seg = edge_model(graph, seg_layers, cut.crossing, name=f"segment{cut.k}", from_tensors=starts)
        emulated += fake_quantize_weights(keras_seg, {n: b for n, b in wbits.items() if n in seg_layers}, graph)
        by_name = {f"{_safe(t)}_in": t for t in starts}
        seg_inputs = [by_name[str(i.name)] for i in keras_seg.inputs]
        feed = [start_values[starts.index(t)] for t in seg_inputs]
        content = to_int8_tflite(keras_seg, feed)
        outs_float = call_outputs(keras_seg, feed)
        order = match_outputs([o[:4] for o in outs_float], content, [f[:4] for f in feed])  # wire pos -> output
        _, tfl_outs = io_details(content)
        binding = bind_inputs(interpreter(content).get_input_details(), [tuple(f.shape[1:]) for f in feed],
                              [f"{_safe(t)}_in" for t in seg_inputs])
        fed_by_frame = cut.k == 0 or done == 0
        segment = ManifestSegment(name, () if fed_by_frame else tuple(starts.index(seg_inputs[j]) for j in binding))
        (folder / name).write_bytes(content)
        bits = dict(cut.member.crossing_bits)
        wire = []
        for t, idx in zip(cut.crossing, order, strict=True):
            o = tfl_outs[idx]
            wire.append(manifest_crossing(t, o, min(bits.get(t, EDGE_CONTAINER_BITS), EDGE_CONTAINER_BITS), codec))
        segments = (segment,) if cut.k == 0 else (*chain, segment)
        if cut.k > 0:
            chain.append(segment)
            prev, values, done = cut.crossing, outs_float, len(cut.layers)
        cloud_name = f"cloud{cut.k}.keras"
        save_keras_deterministic(cloud_model(graph, cut.crossing, cut.layers), folder / cloud_name)
        splits.append(ManifestSplit(split=cut.k, kind=cut.kind, segments=segments, crossing=tuple(wire),
                                    cloud_model=cloud_name, edge_ms=cut.member.edge_ms, cloud_ms=cut.member.cloud_ms))
    return splits, sorted(set(emulated))


def _check_member(
    bundle: Bundle, graph: LayerGraph, cut: _Cut, wbits: dict[str, int], calib: np.ndarray, x: np.ndarray,
) -> MemberCheck:
    """Member `cut`'s recomposition on `x`: chain -> wire -> its cloud half vs the full float model, and beside
    it the member's float simulation (`splitsdk.convert.verify.simulate`, as a single plan of that split)."""
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.wire.edge import EdgeChain
    from splitsdk.wire.packing import pack, requantize_lut, unpack_dequantize

    member = bundle.member(cut.k)
    chain = EdgeChain(bundle)
    rows: list[list[np.ndarray]] = [[] for _ in member.crossing]
    spec = bundle.input
    for real in x:
        image = (real - np.float32(spec.offset)) / np.float32(spec.scale)  # the raw frame the camera would have
        for i, (q, c) in enumerate(zip(chain.run(image, cut.k), member.crossing, strict=True)):
            rows[i].append(unpack_dequantize(pack(requantize_lut(q, c.lut_table), c.bits), c.shape, c.bits, c.scale,
                                             c.zero_point))
    got = load_cloud_runner(member)([np.stack(r) for r in rows])
    full = full_model_outputs(graph, x)
    widths = {n: EDGE_CONTAINER_BITS for n in cut.layers}
    sim_edge = simulated_edge(graph, cut.layers, cut.crossing, {n: b for n, b in wbits.items() if n in cut.layers},
                              widths, calib)
    sim = simulate(sim_edge, cloud_model(graph, cut.crossing, cut.layers), calib, [c.bits for c in member.crossing], x)
    f0, g0 = full[0].reshape(len(x), -1), got[0].reshape(len(x), -1)
    return MemberCheck(cut.k, _mse(full, got), _mse(full, sim), float(np.mean(f0.argmax(1) == g0.argmax(1))), len(x))
