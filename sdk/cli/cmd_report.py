"""`splitsdk report plan.json -o DIR`: Markdown and PNGs (Pareto front, latency breakdown, bits per layer; latency
and loss vs frame rate for a plan made with `--fps`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splitsdk.cli.progress import progress_bar


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write a Markdown report with plots from a plan.json")
    p.add_argument("plan", help="plan.json written by `splitsdk plan`")
    p.add_argument("-o", "--output", required=True, help="folder for report.md and the PNGs (created)")
    p.add_argument("--json", action="store_true", help="print the written files as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.plan import load_plan
    from splitsdk.plan.report import write_report

    plan = load_plan(args.plan)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    with progress_bar("report", enabled=not args.json) as tick:
        paths = write_report(plan, args.output, progress=tick)
    if args.json:
        print(json.dumps({"report": [str(p) for p in paths]}, indent=1))
        return 0
    for p in paths:
        print(p)
    return 0
