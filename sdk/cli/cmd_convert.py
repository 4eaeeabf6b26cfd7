"""`splitsdk convert plan.json --model M -o BUNDLE`: the deployable bundle, verified on the host."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from splitsdk.errors import ConvertError

if TYPE_CHECKING:
    from splitsdk.plan.schema import SplitSet

# convert_plan's parameters as this command's flags, for its errors
FLAGS = {"samples": "--samples", "input_scale": "--input-scale", "input_offset": "--input-offset",
         "postprocess": "--postprocess"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "convert", help="turn a plan into a bundle: edge TFLite (int8 or a per-layer mix), cloud model, manifest"
    )
    p.add_argument("plan", help="plan.json written by `splitsdk plan`")
    p.add_argument("--model", required=True, help="the model the plan was made for")
    p.add_argument("--calib", help="calibration data (.npz or image folder); random inputs without it")
    p.add_argument("--samples", type=int, default=32, help="calibration samples (default 32)")
    p.add_argument("--input-scale", type=float, default=1.0 / 255.0, help="model input = pixel * scale + offset")
    p.add_argument("--input-offset", type=float, default=0.0)
    p.add_argument("--postprocess", default="topk:5", help="cloud post-processing: topk:K, argmax, or a name")
    p.add_argument("--no-verify", action="store_true", help="skip the host verification")
    p.add_argument("-o", "--output", required=True, help="bundle directory to write (an old bundle is replaced)")
    p.add_argument("--force", action="store_true", help="replace -o even when it is not a bundle splitsdk wrote")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def _postprocess(text: str) -> dict[str, Any]:
    kind, _, arg = text.partition(":")
    if kind == "topk" and arg:
        if not arg.isdigit() or int(arg) < 1:
            raise ConvertError(f"--postprocess: topk:K needs a positive integer K, got {arg!r}")
        return {"kind": kind, "k": int(arg)}
    return {"kind": kind}


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from splitsdk.cli.progress import working
    from splitsdk.convert import convert_plan
    from splitsdk.convert.convert import ConvertArgumentError
    from splitsdk.toolchain.doctor import missing_package

    if str(args.model).endswith(".onnx") and importlib.util.find_spec("onnx2tf") is None:  # say it before the work
        raise ConvertError(f"{args.model}: {missing_package('onnx2tf', 'converting an ONNX model')}")
    from splitsdk.errors import PlanError
    from splitsdk.plan.schema import load_plan

    try:
        split_set = load_plan(args.plan).split_set
    except PlanError:  # convert_plan says what is wrong with it, after the checks it makes first
        split_set = None
    if split_set is not None and len(split_set.members) > 1:
        return _convert_chain(args, split_set)
    try:
        with working(f"convert: {args.plan} -> {args.output}", enabled=not args.json):
            report = convert_plan(
                args.plan, args.model, args.output, calib=args.calib, samples=args.samples,
                input_scale=args.input_scale, input_offset=args.input_offset,
                postprocess=_postprocess(args.postprocess), verify=not args.no_verify, force=args.force,
            )
    except ConvertArgumentError as exc:
        raise ConvertError(f"{FLAGS.get(exc.parameter, exc.parameter)}: {exc.message}") from None
    v = report.verification
    summary = {
        "bundle": str(report.bundle),
        "kind": report.kind,
        "edge_tflite_bytes": report.edge_tflite_bytes,
        "predicted_edge_weight_bytes": report.predicted_edge_weight_bytes,
        "size_ratio": round(report.size_ratio, 4),
        "emulated_layers": report.emulated_layers,
        "precisions": report.precisions,
        "crossing": [{"tensor": c.tensor, "shape": list(c.shape), "bits": c.bits, "scale": c.scale,
                      "zero_point": c.zero_point} for c in report.crossing],
        "verification": None if v is None else {
            "samples": v.samples, "output_mse": v.output_mse, "output_max_abs": v.output_max_abs,
            "output_relative_mse": v.output_rel_mse, "held_out": v.held_out, "in_sample_mse": v.in_sample_mse,
            "predicted_error": v.predicted_error, "simulated_mse": v.simulated_mse, "argmax_agreement": v.agreement,
            "accuracy_drop_points": v.accuracy_drop,
        },
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"bundle {report.bundle} ({report.kind})")
    print(f"  edge.tflite: {report.edge_tflite_bytes:,} bytes; plan predicted {report.predicted_edge_weight_bytes:,} "
          f"weight bytes (ratio {report.size_ratio:.2f})")
    for c in report.crossing:
        print(f"  sends {c.tensor} {'x'.join(map(str, c.shape))} at {c.bits} bits "
              f"(scale {c.scale:.4g}, zero point {c.zero_point})")
    modes: dict[str, list[str]] = {}
    for layer, mode in report.precisions.items():
        modes.setdefault(mode.split(" ")[0], []).append(layer)
    if set(modes) - {"int8"}:
        print("  per-layer precision: " + "; ".join(f"{m}: {', '.join(ls)}" for m, ls in sorted(modes.items())))
    if report.emulated_layers:
        print(f"  emulated on the int8 grid: {', '.join(report.emulated_layers)}")
    if v is not None:
        where = "held-out" if v.held_out else "calibration (no held-out data)"
        print(f"  host check on {v.samples} {where} samples: output MSE {v.output_mse:.3g} "
              f"(relative {v.output_rel_mse:.2%}) "
              f"(max |diff| {v.output_max_abs:.3g}); the plan simulated in float: {v.simulated_mse:.3g}; "
              f"error proxy {v.predicted_error:.3g}; argmax agreement {v.agreement:.1%}")
        if v.in_sample_mse is not None:
            print(f"  on the calibration samples themselves: output MSE {v.in_sample_mse:.3g}")
        if v.accuracy_drop is not None:
            print(f"  accuracy: float {v.accuracy_float:.1%}, split {v.accuracy_split:.1%} "
                  f"(drop {v.accuracy_drop:.2f} points)")
    return 0


def _convert_chain(args: argparse.Namespace, split_set: SplitSet) -> int:
    """A plan with a split set of several splits: the multi-split bundle (`splitsdk.convert.chain`), verified per
    split on held-out frames."""
    from splitsdk.cli.progress import working
    from splitsdk.convert.chain import RECOMPOSE_FACTOR, convert_split_set
    from splitsdk.convert.convert import ConvertArgumentError

    if args.no_verify:
        raise ConvertError("--no-verify: a multi-split bundle (the plan's split_set) is always verified per split")
    try:
        with working(f"convert: {args.plan} -> {args.output} (splits {', '.join(map(str, split_set.splits))})",
                     enabled=not args.json):
            report = convert_split_set(
                args.plan, split_set, args.model, args.output, calib=args.calib, samples=args.samples,
                input_scale=args.input_scale, input_offset=args.input_offset,
                postprocess=_postprocess(args.postprocess), force=args.force,
            )
    except ConvertArgumentError as exc:
        raise ConvertError(f"{FLAGS.get(exc.parameter, exc.parameter)}: {exc.message}") from None
    if args.json:
        print(json.dumps({
            "bundle": str(report.bundle), "kind": "multi-split", "splits": list(report.splits),
            "segment_bytes": report.segment_bytes, "cloud_models": {str(k): v for k, v in report.cloud_models.items()},
            "checks": [{"split": c.split, "samples": c.samples, "output_mse": c.output_mse,
                        "simulated_mse": c.simulated_mse, "bound": c.bound, "argmax_agreement": c.agreement}
                       for c in report.checks],
        }, indent=1))
        return 0
    print(f"bundle {report.bundle} (multi-split: splits {', '.join(map(str, report.splits))}, from the plan's "
          f"split_set over {split_set.uplink})")
    print("  edge chain: " + ", ".join(f"{name} {size:,} bytes" for name, size in report.segment_bytes.items())
          + f" ({report.edge_bytes:,} bytes)")
    for c in report.checks:
        print(f"  split {c.split}: cloud half {report.cloud_models[c.split]}; host check on {c.samples} held-out "
              f"samples: output MSE {c.output_mse:.3g} (bound {c.bound:.3g}: {RECOMPOSE_FACTOR:g}x its float "
              f"simulation's {c.simulated_mse:.3g} + a floor); argmax agreement {c.agreement:.1%}")
    return 0
