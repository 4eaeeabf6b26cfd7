"""The edge model at each runtime mode of the target, for `splitsdk profile --modes`.

The shipped edge model runs at the plan's per-layer bits (int8 for most plans). The planner may also
choose a layer's activations at 16 bits (int16x8), float activations (dynamic_int8) or float weights
(float32), each a different set of kernels on the device. To measure those, the edge part of the same
plan is converted again with every edge layer at one mode (`splitsdk convert`'s own path, from the
model the plan was made for, without the host verification) and the firmware profiles each file with
`--model`: the app's profile mode loads any model whose input and outputs have the plan's shapes.
Each mode's rows hold the whole of its model's ops, the conversions at its edges included (the
frame's QUANTIZE to int16 or DEQUANTIZE to float, the QUANTIZE of an output to the int8 wire): what a
layer at that mode next to int8 neighbours also pays. A mode the shipped model already runs in
every layer is not converted again. A mode the converter cannot emit for this model, or the
device's runtime cannot run, is reported with its reason and left to the analytic model; it does
not fail the profile. Without calibration data the conversions calibrate on random frames: the
values do not change which kernels run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitsdk.errors import ProfileError, SplitSdkError, first_line
from splitsdk.target import ComputeMode, Target

SHIPPED = "shipped"
ALL = "all"


def parse_modes(spec: str, target: Target) -> tuple[ComputeMode, ...]:
    """`--modes`: `shipped` (none besides the bundle's own), `all` (every mode of the target), or a
    comma-separated list of the target's mode names."""
    known = {m.name: m for m in target.quant.modes}
    spec = spec.strip()
    if spec in ("", SHIPPED):
        return ()
    if spec == ALL:
        return tuple(target.quant.modes)
    out: list[ComputeMode] = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in known:
            raise ProfileError(f"--modes: {target.name} runs no mode {name!r} (its modes: {', '.join(known)}; "
                               f"or '{ALL}', '{SHIPPED}')")
        if known[name] not in out:
            out.append(known[name])
    return tuple(out)


@dataclass(frozen=True)
class ModeModel:
    """One mode's edge model (`path`), or why there is none (`error`)."""

    mode: ComputeMode
    path: Path | None
    error: str = ""


def convert_modes(
    bundle_dir: str | Path,
    model: str | Path,
    modes: Sequence[ComputeMode],
    work: Path,
    calib: str | Path | None = None,
    samples: int = 8,
) -> list[ModeModel]:
    """The bundle's plan with every edge layer at each of `modes`, converted from `model` into `work`."""
    from splitsdk.convert.convert import convert_plan
    from splitsdk.errors import PlanError
    from splitsdk.graph import load_graph
    from splitsdk.plan.schema import load_plan

    plan_file = Path(bundle_dir) / "plan.json"
    if not plan_file.is_file():
        raise ProfileError(f"{bundle_dir}: no plan.json: the edge cannot be converted at other modes")
    try:
        plan = load_plan(plan_file)
    except PlanError as exc:
        raise ProfileError(f"{exc} (converting the edge at other modes needs a plan this splitsdk reads)") from None
    if not Path(model).is_file():
        raise ProfileError(f"--model: {model}: no such file")
    graph = load_graph(model)
    sol = plan.solution
    if calib is not None:  # a bad file is the user's error, not one mode's
        from splitsdk.quant.calib import load_dataset

        try:
            load_dataset(calib, tuple(graph.tensors[graph.inputs[0]].shape), samples=1)
        except SplitSdkError as exc:
            raise ProfileError(f"--calib: {first_line(exc)}") from None
    if calib is None:  # the values do not change which kernels run: uniform frames in [0, 1)
        work.mkdir(parents=True, exist_ok=True)
        calib = work / "random-frames.npz"
        shape = tuple(graph.tensors[graph.inputs[0]].shape)
        np.savez(calib, x=np.random.default_rng(0).random((samples * 2, *shape), dtype=np.float32))
    out: list[ModeModel] = []
    for mode in modes:
        weights = {n: int(mode.weights) for n in sol.edge_layers if graph.layer(n).quantizable}
        acts = {n: int(mode.activations) for n in sol.edge_layers}
        at_mode = dataclasses.replace(plan, solution=dataclasses.replace(sol, weight_bits=weights,
                                                                         activation_bits=acts))
        dest = work / f"edge-{mode.name}"
        try:
            convert_plan(at_mode, model, dest, calib=calib, samples=samples, verify=False, force=True)
        except PlanError as exc:  # the model is not the plan's: every mode would fail the same way
            raise ProfileError(f"--model: {first_line(exc)}") from None
        except SplitSdkError as exc:
            out.append(ModeModel(mode, None, f"convert: {first_line(exc)}"))
            continue
        out.append(ModeModel(mode, dest / "edge.tflite"))
    return out
