"""`splitsdk targets [NAME|FILE] [--json]`: the shipped target descriptors, or one in full."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("targets", help="list the target devices (or show one descriptor)")
    p.add_argument("target", nargs="?", help="a target name or a descriptor .toml file to show in full")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.target import list_targets, load_target

    targets = [load_target(args.target)] if args.target else [load_target(n) for n in list_targets()]
    if args.json:
        data = [t.summary() for t in targets]
        print(json.dumps(data[0] if args.target else data, indent=2, sort_keys=True))
        return 0
    if args.target:
        print(json.dumps(targets[0].summary(), indent=2, sort_keys=True))
        return 0
    rows = [("target", "role", "kind", "clock", "memory (app)", "bandwidth", "bits", "precisions")]
    for t in targets:
        d = t.device
        rows.append((
            t.name, t.role, d.kind, f"{d.clock_mhz:g} MHz x{d.cores}", f"{d.memory_mb} MB ({d.app_memory_mb})",
            f"{d.bandwidth_gbps:g} GB/s", ",".join(map(str, t.quant.candidate_bits)), ",".join(t.quant.precisions),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0
