"""`splitsdk profile FIRMWARE BUNDLE [--host | --qemu | --camera IMAGE] --runs N [--modes all --model M] -o OUT`:
the edge model's per-layer latency measured by the firmware (at the shipped bits, and with `--modes` at each
runtime mode of the target), as a table `splitsdk plan --edge-profile` reads."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splitsdk.cli.args import check_output_file, input_argument, resolve_input

if TYPE_CHECKING:
    from splitsdk.profile.device import LayerTiming


def register(sub: Any) -> None:
    p = sub.add_parser("profile", help="measure the edge model's per-layer latency with the firmware itself")
    p.add_argument("firmware", type=Path, help="firmware directory (`splitsdk build`) or generated project")
    input_argument(p, "bundle", "--bundle", help="the bundle the firmware was generated from")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--host", action="store_const", const="native", dest="where", help="run natively (target host)")
    where.add_argument("--qemu", action="store_const", const="qemu", dest="where",
                       help="run under qemu-arm user mode (emulated wall time)")
    where.add_argument("--camera", type=Path, metavar="IMAGE",
                       help="run on the emulated camera booted from this image (qemu-system-arm over SSH)")
    p.add_argument("--icount", type=int, default=0,
                   help="boot the camera with -icount shift=N (default 0; -1: no -icount, wall time)")
    p.add_argument("--runs", type=int, default=10, help="timed invocations (default 10; medians are reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed invocations first (default 2)")
    p.add_argument("--input", type=Path, help="a frame file to run on (default: a mid-grey frame)")
    p.add_argument("--modes", default="shipped",
                   help="runtime modes to measure besides the shipped model: 'all' (every mode of the target), "
                   "a comma-separated list (int8,int16x8,dynamic_int8,float32), or 'shipped' (default: none); "
                   "the edge is converted at each from --model")
    p.add_argument("--model", type=Path, help="the model the bundle's plan was made for (needed by --modes)")
    p.add_argument("--calib", type=Path, help="calibration data for --modes' conversions (random frames without it)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the table to write (layer,wbits,abits,ms CSV)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.errors import ProfileError
    from splitsdk.profile.device import profile_edge

    if args.icount < -1 or args.icount > 10:
        raise ProfileError(f"--icount: must be in 0..10 (or -1 for none), got {args.icount}")
    check_output_file(args.output, ProfileError)  # before minutes of conversions and runs
    result = profile_edge(
        args.firmware,
        resolve_input(args, "bundle"),
        where=args.where,
        runs=args.runs,
        warmup=args.warmup,
        frame=args.input,
        camera_image=args.camera,
        icount=None if args.icount < 0 else args.icount,
        out=args.output,
        modes=args.modes,
        model=args.model,
        calib=args.calib,
    )
    src = result.source
    print(f"{src.target}: {src.describe()}")
    _print_rows("shipped", result.layers, src.invoke_ms)
    for m in result.modes:
        if m.error:
            print(f"{m.mode}: not measured: {m.error}")
        else:
            _print_rows(m.mode, m.layers, m.invoke_ms)
    print(f"table: {result.table}")
    return 0


def _print_rows(title: str, layers: Sequence[LayerTiming], invoke_ms: float) -> None:
    print(f"{title}:")
    width = max(len(t.layer) for t in layers)
    for t in layers:
        print(f"  {t.layer:<{width}}  w{t.wbits}/a{t.abits}  {t.ms:10.4f} ms  {' '.join(t.ops) or '(fused)'}")
    total = sum(t.ms for t in layers)
    print(f"  {'sum':<{width}}           {total:10.4f} ms  (whole invocation: {invoke_ms:.4f} ms)")
