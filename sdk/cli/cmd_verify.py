"""`splitsdk verify FIRMWARE --bundle B`: the target's TFLite (under QEMU) against the host runtime."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check that the target runtime computes the edge model like the host does")
    p.add_argument("firmware", type=Path, help="firmware directory from `splitsdk build`")
    p.add_argument("--bundle", required=True, type=Path, help="the bundle the firmware was generated from")
    p.add_argument("--calib", type=Path, help="calibration data (.npz or image folder); default: random inputs")
    p.add_argument("-n", "--samples", type=int, default=8, help="samples to compare (default 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.toolchain.verify import verify

    checks = verify(args.firmware, args.bundle, args.calib, args.samples)
    for c in checks:
        diff = f"max |diff| {c.max_abs_diff:g} over {c.samples} samples"
        print(f"{c.crossing:24s} {c.output:32s} {c.dtype:6s} {diff}: ok")
    return 0
