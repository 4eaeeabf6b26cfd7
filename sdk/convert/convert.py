"""`splitsdk convert`: plan.json + model -> a deployable bundle, verified on the host.

The bundle (read by `splitsdk.wire.bundle.load_bundle`, served by `splitsdk serve`, compiled into
the edge app by `splitsdk generate`) holds edge.tflite (int8, outputs in wire order), cloud.keras
(+ cloud.tflite where it converts), manifest.json and a copy of plan.json. It is written to a
temporary folder beside the destination and renamed into place: never half-written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitsdk.convert.keras_io import save_keras_deterministic
from splitsdk.convert.split import cloud_model, edge_model, fake_quantize_weights
from splitsdk.convert.tflite import ConvertError, io_details, match_outputs, to_float_tflite, to_int8_tflite
from splitsdk.convert.verify import Verification, simulate, verify_bundle
from splitsdk.errors import PlanError
from splitsdk.graph import LayerGraph, load_graph, model_sha256
from splitsdk.plan.schema import Plan, load_plan
from splitsdk.profile import load_target
from splitsdk.quant import load_dataset
from splitsdk.wire.bundle import wire_quant_params
from splitsdk.wire.packing import build_lut

MANIFEST_VERSION = 1
EDGE_CONTAINER_BITS = 8


@dataclass
class ConvertReport:
    bundle: Path
    kind: str
    edge_tflite_bytes: int
    predicted_edge_weight_bytes: int
    emulated_layers: list[str]
    crossing: list[dict[str, Any]]
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        """Real edge.tflite bytes over the plan's predicted edge weight bytes."""
        return self.edge_tflite_bytes / max(self.predicted_edge_weight_bytes, 1)


def plan_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_plan_against(plan: Plan, graph: LayerGraph, model: Path, src: str) -> None:
    if plan.model["sha256"] != model_sha256(model):
        raise PlanError(f"{src}: model.sha256 does not match {model} (the plan was made for another model)")
    missing = [n for n in plan.solution.edge_layers if n not in graph]
    if missing:
        raise PlanError(f"{src}: solution.edge_layers names layer {missing[0]!r}, which {model} does not have")
    for c in plan.solution.crossing:
        if c.tensor not in graph.tensors:
            raise PlanError(f"{src}: solution.crossing names tensor {c.tensor!r}, which {model} does not have")


def _check_precisions(plan: Plan, src: str) -> list[str]:
    """Every edge layer's (weight, activation) bits must map onto what the target's runtime executes."""
    target = load_target(plan.target)
    q = target.quant
    emulated = []
    for name in plan.solution.edge_layers:
        wb = plan.solution.weight_bits.get(name, EDGE_CONTAINER_BITS)
        ab = plan.solution.activation_bits.get(name, EDGE_CONTAINER_BITS)
        if wb > EDGE_CONTAINER_BITS or ab > EDGE_CONTAINER_BITS:
            mode = f"{wb}-bit weights x {ab}-bit activations"
            raise ConvertError(
                f"{src}: layer {name!r}: {mode} is not converted yet (splitsdk convert emits int8 edge models; "
                f"{target.name} runs {', '.join(q.precisions)})"
            )
        if wb < EDGE_CONTAINER_BITS and wb not in q.emulated_bits and not q.packed_storage:
            raise ConvertError(f"{src}: layer {name!r}: {wb}-bit weights cannot run on {target.name} ({q.runtime})")
        if wb < EDGE_CONTAINER_BITS or ab < EDGE_CONTAINER_BITS:
            emulated.append(name)
    return emulated


def convert_plan(
    plan_path: str | Path,
    model: str | Path,
    out: str | Path,
    calib: str | Path | None = None,
    samples: int = 32,
    input_scale: float = 1.0 / 255.0,
    input_offset: float = 0.0,
    postprocess: dict[str, Any] | None = None,
    verify: bool = True,
) -> ConvertReport:
    """Write the bundle for `plan_path` to `out` and verify it on the host."""
    plan_path, model, out = Path(plan_path), Path(model), Path(out)
    plan = load_plan(plan_path)
    src = str(plan_path)
    graph = load_graph(model)
    _check_plan_against(plan, graph, model, src)
    _check_precisions(plan, src)
    if len(graph.inputs) != 1:
        raise ConvertError(f"{model}: bundles are made for single-input camera models")
    data = load_dataset(calib, graph.tensors[graph.inputs[0]].shape, samples=samples)

    sol = plan.solution
    edge_layers = list(sol.edge_layers)
    crossing = [c.tensor for c in sol.crossing] if sol.kind != "EDGE_ONLY" else list(graph.outputs)
    bits = {c.tensor: c.bits for c in sol.crossing}

    edge = edge_model(graph, edge_layers, crossing)
    emulated = fake_quantize_weights(edge, dict(sol.weight_bits), graph)
    edge_bytes = to_int8_tflite(edge, [data.x])
    order = match_outputs(edge, edge_bytes, [data.x[:4]])  # wire position -> TFLite output index
    _, tfl_outs = io_details(edge_bytes)
    outs = [tfl_outs[i] for i in order]
    cloud = cloud_model(graph, crossing, edge_layers)

    manifest_crossing = []
    for t, o in zip(crossing, outs, strict=True):
        b = min(bits.get(t, EDGE_CONTAINER_BITS), EDGE_CONTAINER_BITS)
        scale, zp = wire_quant_params(o.scale, o.zero_point, b)
        manifest_crossing.append({
            "tensor": t, "shape": list(o.shape), "edge_scale": o.scale, "edge_zero_point": o.zero_point,
            "bits": b, "scale": scale, "zero_point": zp, "edge_output": o.index,
            "lut": [int(v) for v in build_lut(o.scale, o.zero_point, scale, zp, b)],
        })
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "plan_sha256": plan_sha256(plan_path),
        "kind": sol.kind,
        "target": plan.target,
        "input": {"shape": list(graph.tensors[graph.inputs[0]].shape), "dtype": "uint8",
                  "scale": input_scale, "offset": input_offset},
        "edge_model": "edge.tflite",
        "cloud_model": "cloud.keras",
        "crossing": manifest_crossing,
        "postprocess": postprocess or {"kind": "topk", "k": 5},
        "precision": {
            "edge_runtime": "int8 static (TFLite full-integer), float input, int8 outputs",
            "weight_bits": dict(sol.weight_bits),
            "activation_bits": dict(sol.activation_bits),
            "emulated_layers": emulated,
            "note": "weights below 8 bits are fake-quantised onto their grid and stored in int8; activations "
                    "below 8 bits execute as int8; only the transmitted tensors are reduced to their bits",
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "edge.tflite").write_bytes(edge_bytes)
        save_keras_deterministic(cloud, tmp / "cloud.keras")
        cloud_tfl = to_float_tflite(cloud)
        if cloud_tfl is not None:
            (tmp / "cloud.tflite").write_bytes(cloud_tfl)
            manifest["cloud_tflite"] = "cloud.tflite"
        shutil.copyfile(plan_path, tmp / "plan.json")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        report = ConvertReport(
            bundle=out, kind=sol.kind, edge_tflite_bytes=len(edge_bytes),
            predicted_edge_weight_bytes=sol.predicted.edge_weight_bytes, emulated_layers=emulated,
            crossing=manifest_crossing,
        )
        if verify:
            wire_bits = [c["bits"] for c in manifest_crossing]
            report.verification = verify_bundle(
                tmp, graph, data, predicted_error=sol.predicted.error,
                simulated=lambda x: simulate(edge, cloud, data.x, wire_bits, x),
            )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
