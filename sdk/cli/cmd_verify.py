"""`splitsdk verify FIRMWARE BUNDLE`: the target's TFLite (under QEMU) against the host runtime."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splitsdk.cli.args import input_argument, resolve_input


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check that the target runtime computes the edge model like the host does")
    p.add_argument("firmware", type=Path, help="firmware directory from `splitsdk build`")
    input_argument(p, "bundle", "--bundle", help="the bundle the firmware was generated from")
    p.add_argument("--calib", type=Path, help="calibration data (.npz or image folder); default: random inputs")
    p.add_argument("-n", "--samples", type=int, default=8, help="samples to compare (default 8)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from splitsdk.toolchain.verify import verify

    checks = verify(args.firmware, resolve_input(args, "bundle"), args.calib, args.samples)
    if args.json:
        print(json.dumps({"checks": [dataclasses.asdict(c) for c in checks]}, indent=1))
        return 0
    for c in checks:
        diff = f"max |diff| {c.max_abs_diff:g} over {c.samples} samples"
        judged = "top-1 agreement" if c.judged_by == "top1" else f"within {c.tolerance:g}"
        print(f"{c.crossing:24s} {c.output:32s} {c.dtype:6s} {diff}, top-1 agreement {c.top1_agreement:.0%}: "
              f"ok ({judged})")
    return 0
