"""`splitsdk emulate FIRMWARE BUNDLE --frames DIR [-n N]`: the firmware under QEMU against a real receiver."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splitsdk.cli.args import input_argument, resolve_input


def register(sub: Any) -> None:
    p = sub.add_parser("emulate", help="run a firmware under QEMU user mode against a local `splitsdk serve`")
    p.add_argument("firmware", type=Path, help="firmware directory from `splitsdk build`")
    input_argument(p, "bundle", "--bundle", help="the bundle the receiver serves")
    p.add_argument("--frames", required=True, type=Path, help="directory of .pgm/.ppm/.raw/.f32 frames")
    p.add_argument("-n", type=int, help="number of frames (default: each file once)")
    p.add_argument("--json", action="store_true", help="print results and stage times as JSON")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    import sys

    from splitsdk.toolchain.emulate import emulate

    bundle = resolve_input(args, "bundle")
    print(f"starting a receiver for {bundle}, then {args.firmware} under emulation...", file=sys.stderr)
    result = emulate(args.firmware, bundle, args.frames, args.n)
    if args.json:
        out = {
            "results": [r.__dict__ for r in result.results],
            "stages": result.stages,
            "counters": result.counters,
        }
        print(json.dumps(out, indent=1, sort_keys=True))
        return 0
    for r in result.results:
        print(f"seq {r.seq:4d}  {r.frame:24s} status {r.status}  {r.ms:9.3f} ms  {r.body}")
    print(f"\n{'stage':12s} {'frames':>8s} {'mean_ms':>10s} {'max_ms':>10s}")
    for name, s in sorted(result.stages.items()):
        print(f"{name:12s} {int(s['n']):8d} {s['mean_ms']:10.3f} {s['max_ms']:10.3f}")
    print("  ".join(f"{k}={v}" for k, v in sorted(result.counters.items())))
    return 0
