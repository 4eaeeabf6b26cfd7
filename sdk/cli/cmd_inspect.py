"""`splitsdk inspect MODEL`: the split table, JSON for tools, a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splitsdk.cli.args import input_shape
from splitsdk.cli.progress import progress_bar


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show the model's split candidates (crossing tensors, sizes, latency)")
    p.add_argument("model", help=".keras / .h5 file, SavedModel directory or .onnx file")
    p.add_argument("--target", help="edge target for the latency columns (e.g. cortex-a7, eyeriss)")
    p.add_argument("--cloud", default="cloud-gpu", help="cloud target (default: cloud-gpu)")
    p.add_argument("--calib", help="calibration data (.npz or image folder) for per-layer sensitivity")
    p.add_argument(
        "--input-shape", type=input_shape, metavar="H,W,C",
        help="per-sample input shape fixing the model's dynamic dims (default: the calibration data's)",
    )
    p.add_argument("--sensitivity", action="store_true", help="measure sensitivity (random data without --calib)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--plot", type=Path, help="write a PNG of the bytes sent per frame at each split candidate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.inspect import inspect_model, plot_transmission

    with progress_bar("sensitivity", enabled=not args.json) as tick:
        result = inspect_model(
            args.model, target=args.target, cloud=args.cloud, calib=args.calib,
            sensitivity=args.sensitivity, progress=tick, input_shape=args.input_shape,
        )
    if args.plot:
        plot_transmission(result, args.plot)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
        return 0
    _print_table(result)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _shape(shape: list[int]) -> str:
    return "x".join(str(d) for d in shape)


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    g = result.graph
    rows = result.split_rows()
    table = Table(title=f"{g.name}: {len(g)} layers, {g.total_weights:,} weights, "
                        f"{g.total_macs / 1e6:,.1f} M MACs, input {g.input_elements:,} elements")
    cols = ["#", "last edge layer", "op", "crossing tensors", "transmit", "vs input", "edge weights"]
    if result.profile is not None:
        cols += ["edge ms (int8)", "cloud ms"]
    cols.append("peak act.")
    for c in cols:
        table.add_column(c, justify="left" if c in ("last edge layer", "op", "crossing tensors") else "right")
    for r in rows:
        crossing = ", ".join(f"{x['tensor']}[{_shape(x['shape'])}]" for x in r["crossing"]) or "(results)"
        cells = [str(r["index"]), r["layer"], r["op"], crossing, f"{r['transmit_elements']:,}",
                 f"{r['delta_vs_input']:+,}", f"{r['edge_weights']:,}"]
        if result.profile is not None:
            cells += [f"{r['edge_ms']:.2f}", f"{r['cloud_ms']:.2f}"]
        cells.append(f"{r['peak_activation_elements']:,}")
        table.add_row(*cells)
    console = Console(width=200)
    console.print(table)
    if result.sensitivity is not None:
        s = result.sensitivity
        st = Table(title="per-layer sensitivity (MSE vs float" + (", RANDOM data" if s.synthetic_data else "") + ")")
        st.add_column("layer")
        for b in s.bits:
            st.add_column(f"w{b}", justify="right")
        for b in s.bits:
            st.add_column(f"a{b}", justify="right")
        for name in g.topological_order():
            w = s.weights.get(name, {})
            a = s.activations.get(name, {})
            st.add_row(name, *[f"{w[b]:.2e}" if b in w else "-" for b in s.bits],
                       *[f"{a[b]:.2e}" if b in a else "-" for b in s.bits])
        console.print(st)
