"""`splitsdk report plan.json -o DIR`: Markdown and PNGs (Pareto front, latency breakdown, bits per layer)."""

from __future__ import annotations

import argparse
from typing import Any

from splitsdk.cli.progress import progress_bar


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write a Markdown report with plots from a plan.json")
    p.add_argument("plan", help="plan.json written by `splitsdk plan`")
    p.add_argument("-o", "--output", required=True, help="folder for report.md and the PNGs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.plan import load_plan
    from splitsdk.plan.report import write_report

    plan = load_plan(args.plan)
    with progress_bar("report") as tick:
        paths = write_report(plan, args.output, progress=tick)
    for p in paths:
        print(p)
    return 0
