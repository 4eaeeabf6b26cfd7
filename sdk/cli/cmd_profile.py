"""`splitsdk profile FIRMWARE BUNDLE [--host | --qemu | --camera IMAGE] --runs N -o measured.csv`:
the edge model's per-layer latency measured by the firmware, as a table `splitsdk plan --edge-profile` reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from splitsdk.cli.args import input_argument, resolve_input


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
    p.add_argument("-o", "--output", required=True, type=Path, help="the table to write (layer,wbits,abits,ms CSV)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.errors import ProfileError
    from splitsdk.profile.device import profile_edge

    if args.icount < -1 or args.icount > 10:
        raise ProfileError(f"--icount: must be in 0..10 (or -1 for none), got {args.icount}")
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
    )
    src = result.source
    print(f"{src.target}: {src.describe()}")
    width = max(len(t.layer) for t in result.layers)
    for t in result.layers:
        print(f"  {t.layer:<{width}}  w{t.wbits}/a{t.abits}  {t.ms:10.4f} ms  {' '.join(t.ops) or '(fused)'}")
    total = sum(t.ms for t in result.layers)
    print(f"  {'sum':<{width}}           {total:10.4f} ms  (whole invocation: {src.invoke_ms:.4f} ms)")
    print(f"table: {result.table}")
    return 0
