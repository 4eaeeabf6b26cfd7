"""`splitsdk plan MODEL --target T --uplink MBPS -o plan.json`: AUTO-SPLIT's split and bit widths (with a range of
rates, `--uplink LOW..HIGH` or `--uplink-trace`, also the split set that follows the uplink)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from splitsdk.cli.args import input_shape
from splitsdk.cli.progress import progress_bar
from splitsdk.errors import PlanError

if TYPE_CHECKING:
    from rich.console import Console

    from splitsdk.plan.build import TrafficOptions
    from splitsdk.plan.schema import Plan, Predicted, QueueRecord, SplitSet
    from splitsdk.plan.uplink import Uplink

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]i?b?|b)?\s*$", re.I)
_FACTOR = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_bytes(text: str) -> int:
    """A memory size: plain bytes, or with a unit (kB, MB, GB, KiB, MiB, GiB)."""
    m = _SIZE.match(text)
    if m is None:
        raise PlanError(f"--memory: bad size {text!r} (expected bytes, e.g. 65536, 64MB, 256MiB)")
    unit = (m.group(2) or "").lower().rstrip("b")
    value = int(float(m.group(1)) * _FACTOR[unit])
    if value <= 0:
        raise PlanError(f"--memory: must be a positive number of bytes, got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="choose the split and per-layer bit widths (AUTO-SPLIT) and write plan.json")
    p.add_argument("model", help=".keras / .h5 file, SavedModel directory or .onnx file")
    p.add_argument("--target", required=True, help="edge target (e.g. cortex-a7, eyeriss) or a target .toml")
    p.add_argument("--cloud", default="cloud-gpu", help="cloud target (default: cloud-gpu)")
    uplink = p.add_mutually_exclusive_group(required=True)
    uplink.add_argument(
        "--uplink",
        help="uplink rate in Mbit/s (e.g. 3, 500kbit, 1gbit), or a range LOW..HIGH (e.g. 1mbit..20mbit): the plan "
             "then also holds the split set that follows the uplink",
    )
    uplink.add_argument("--uplink-trace", help="a measured uplink trace (CSV time_s,mbit_s): a range weighted by time")
    p.add_argument("--max-splits", type=int, help="most splits in the set with a range or trace (default 3)")
    p.add_argument("--rtt", type=float, default=0.0, help="round-trip time in ms (default 0)")
    p.add_argument("--memory", help="edge memory for weights + activations (default: the target's app memory)")
    p.add_argument("--max-accuracy-drop", type=float, help="largest top-1 drop in points (with --eval)")
    p.add_argument("--max-error", type=float, help="error-proxy threshold without --eval (default: uniform 8-bit)")
    p.add_argument("--calib", help="calibration data (.npz or image folder); random inputs without it")
    p.add_argument(
        "--input-shape", type=input_shape, metavar="H,W,C",
        help="per-sample input shape fixing the model's dynamic dims (default: the calibration data's)",
    )
    p.add_argument("--eval", dest="eval_data", help="labelled evaluation data (.npz with x and y)")
    p.add_argument(
        "--metric", default="top1", help="accuracy measured on --eval: top1 (default) or lpr_exact (plate match)"
    )
    p.add_argument(
        "--cloud-ops",
        default="",
        help="comma-separated layer ops kept in the cloud with all layers after them (e.g. Bidirectional,LSTM)",
    )
    p.add_argument(
        "--exact",
        choices=["auto", "milp", "exhaustive", "none"],
        default="auto",
        help="also solve the joint problem exactly to report the chosen solution's gap to the optimum (default: auto)",
    )
    p.add_argument(
        "--edge-profile",
        help="measured edge latency table (`splitsdk profile`): used where it has a layer, analytic elsewhere",
    )
    p.add_argument("--fps", type=float, help="the camera's frame rate: predict queueing, loss and throughput")
    p.add_argument("--arrivals", choices=["periodic", "poisson"], help="how frames come with --fps (default periodic)")
    p.add_argument("--max-loss", type=float, help="largest share of frames dropped at --fps (0..1, e.g. 0.01)")
    p.add_argument("--queue-depth", type=int, help="the edge app's --queue-depth with --fps (default 4)")
    p.add_argument(
        "--compress", choices=["none", "zstd", "auto"], default="none",
        help="zstd on the crossing tensors: every one, or auto (where the measured ratio pays for the edge cost)",
    )
    p.add_argument(
        "--jpeg", default="95,75,50",
        help="JPEG qualities of the CLOUD-ONLY+JPEG baselines, measured on the data (default 95,75,50; none: off)",
    )
    p.add_argument(
        "--no-jpeg-solution", dest="jpeg_solution", action="store_false",
        help="keep CLOUD-ONLY+JPEG among the baselines only (by default, with --max-accuracy-drop, the fastest "
             "JPEG quality within it becomes the solution when it beats the chosen split)",
    )
    p.add_argument("-o", "--output", required=True, help="where to write plan.json")
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cli.args import check_output_file
    from splitsdk.plan.build import representative_rate

    check_output_file(args.output, PlanError)  # the cheap checks first: no NumPy/TF for a bad flag
    if args.rtt < 0:
        raise PlanError(f"--rtt: must be >= 0, got {args.rtt}")
    uplink = uplink_arg(args)
    traffic = traffic_options(args)
    jpeg = jpeg_qualities(args.jpeg)

    from splitsdk.plan import Constraints, plan_model, save_plan
    from splitsdk.plan.schema import dumps
    from splitsdk.profile import Link

    link = Link(representative_rate(uplink), args.rtt)
    constraints = Constraints(
        memory_bytes=None if args.memory is None else parse_bytes(args.memory),
        max_accuracy_drop=args.max_accuracy_drop,
        max_error=args.max_error,
        cloud_ops=tuple(op.strip() for op in args.cloud_ops.split(",") if op.strip()),
    )
    with progress_bar("plan", enabled=not args.json) as tick:
        plan = plan_model(
            args.model,
            args.target,
            link,
            constraints,
            cloud=args.cloud,
            calib=args.calib,
            eval_data=args.eval_data,
            exact=None if args.exact == "none" else args.exact,
            progress=tick,
            metric=args.metric,
            edge_profile=args.edge_profile,
            input_shape=args.input_shape,
            traffic=traffic,
            compress=args.compress,
            jpeg=jpeg,
            uplink=uplink,
            max_splits=args.max_splits,
            jpeg_solution=args.jpeg_solution,
        )
    save_plan(plan, args.output)
    for note in plan.selection.notes:
        if note.startswith("warning: "):
            print(f"splitsdk: {note}", file=sys.stderr)
    if args.json:
        print(dumps(plan), end="")
        return 0
    print_plan(plan)
    print(f"plan: {args.output}")
    return 0


def uplink_arg(args: argparse.Namespace) -> Uplink:
    """--uplink (a rate or a range) or --uplink-trace (a CSV file), exactly one of them."""
    from splitsdk.plan.uplink import load_uplink_trace, parse_uplink

    if (args.uplink is None) == (args.uplink_trace is None):
        raise PlanError("--uplink: give one uplink rate or range, or --uplink-trace (not both, not neither)")
    uplink = parse_uplink(args.uplink) if args.uplink is not None else load_uplink_trace(args.uplink_trace)
    if args.max_splits is not None and args.max_splits < 1:
        raise PlanError(f"--max-splits: must be at least 1, got {args.max_splits}")
    if args.max_splits is not None and uplink.single:
        raise PlanError("--max-splits: needs a rate distribution (--uplink LOW..HIGH or --uplink-trace)")
    return uplink


def traffic_options(args: argparse.Namespace) -> TrafficOptions | None:
    """--fps and its companions as the planner's TrafficOptions (None without --fps)."""
    from splitsdk.plan.build import DEFAULT_QUEUE_DEPTH, TrafficOptions
    from splitsdk.plan.traffic import Arrivals

    if args.fps is None:
        extra = [f for f, v in (("--max-loss", args.max_loss), ("--arrivals", args.arrivals),
                                ("--queue-depth", args.queue_depth)) if v is not None]
        if extra:
            raise PlanError(f"{extra[0]}: needs --fps (the camera's frame rate)")
        return None
    return TrafficOptions(
        Arrivals(args.fps, args.arrivals or "periodic"),
        max_loss=args.max_loss,
        queue_depth=DEFAULT_QUEUE_DEPTH if args.queue_depth is None else args.queue_depth,
    )


def jpeg_qualities(text: str) -> tuple[int, ...]:
    """--jpeg: comma-separated qualities 1..100, or none."""
    if text.strip().lower() == "none":
        return ()
    out = []
    for part in text.split(","):
        try:
            q = int(part.strip())
        except ValueError:
            raise PlanError(f"--jpeg: {part.strip()!r} is not a quality (integers 1..100, or none)") from None
        if not 1 <= q <= 100:
            raise PlanError(f"--jpeg: quality {q} is outside 1..100")
        out.append(q)
    return tuple(dict.fromkeys(out))


def _bits_summary(bits: dict[str, int]) -> str:
    counts: dict[int, int] = {}
    for b in bits.values():
        counts[b] = counts.get(b, 0) + 1
    return ", ".join(f"{n}x{b}" for b, n in sorted(counts.items())) or "-"


def print_plan(plan: Plan) -> None:
    """The chosen solution, why, the exact gap, and the baselines side by side."""
    from rich.console import Console
    from rich.table import Table

    from splitsdk.plan.reason import ms

    console = Console(width=160)
    s = plan.solution
    p = s.predicted
    console.print(
        f"[bold]{plan.model.name}[/] on {plan.target} -> {plan.cloud} at {plan.link.uplink_mbps:g} Mbit/s: "
        f"[bold]{s.kind}[/] (split index {s.split_index} of {len(plan.layers)}), "
        f"{ms(p.total_ms)} ms = edge {ms(p.edge_ms)} + transmit {ms(p.transmit_ms)} + cloud {ms(p.cloud_ms)}"
    )
    if s.edge_layers:
        console.print(
            f"  weights: {_bits_summary(s.weight_bits)}; activations: {_bits_summary(s.activation_bits)}; "
            f"edge memory {p.edge_weight_bytes:,} B weights + {p.peak_activation_bytes:,} B activations"
        )
    for c in s.crossing:
        ratio = "" if c.compressed_ratio is None else f" ({c.codec} ratio {c.compressed_ratio:.3f}, measured)"
        ratio += "" if c.jpeg_quality is None else f" at quality {c.jpeg_quality}"
        console.print(f"  sends {c.tensor} {list(c.shape)} at {c.bits} bits, codec {c.codec}{ratio}")
    t = plan.traffic
    if t is not None:
        q = t.solution
        console.print(
            f"  at {t.fps:g} fps ({t.arrivals}, queue depth {t.queue_depth}): {q.throughput_fps:.3g} frames/s "
            f"answered, loss {q.loss_ratio:.3g}, latency {ms(q.latency_mean_ms)} ms mean / "
            f"{ms(q.latency_p95_ms)} ms p95 (bottleneck {q.bottleneck}, modelled)"
        )
    console.print(f"  why: {s.reason}")
    for note in plan.selection.notes:
        console.print(f"  note: {note}")
    if plan.exact is not None:
        console.print(
            f"  exact optimum ({plan.exact.solver}): {ms(plan.exact.total_ms)} ms at split "
            f"{plan.exact.split_index}; the chosen solution's gap to it {plan.exact.gap * 100:.2f}%"
            + ("" if plan.selection.certified_gap is None
               else f" (certified at most {plan.selection.certified_gap * 100:.2f}%)")
        )
    cloud_ms = plan.baselines["cloud_only"].predicted.total_ms
    total = plan.selection.candidates_total
    table = Table(title=f"solution vs baselines (Algorithm 1 produced {total} candidates)")
    for col in [
        "method",
        "kind",
        "split",
        "bits w/a",
        "edge ms",
        "tx ms",
        "cloud ms",
        "total ms",
        "vs CLOUD",
        "edge MB",
        "fits",
        *(["queued ms", "loss"] if plan.traffic is not None else []),
    ]:
        table.add_column(col, justify="left" if col in ("method", "kind") else "right")
    queues: dict[str, QueueRecord] = {}
    if plan.traffic is not None:
        queues = {"AUTO-SPLIT": plan.traffic.solution}
        queues.update({b.name: plan.traffic.baselines[key] for key, b in plan.baselines.items()})
    rows: list[tuple[str, str, int | None, str, Predicted, bool]] = [
        ("AUTO-SPLIT", s.kind, s.split_index, "mixed", p, True)
    ]
    rows += [
        (b.name, b.kind, b.split_index, f"{b.weight_bits}/{b.activation_bits}", b.predicted, b.fits)
        for b in plan.baselines.values()
    ]
    for name, kind, k, bits, pr, fits in rows:
        qr = queues.get(name)
        queued = [] if qr is None else [ms(qr.latency_mean_ms), f"{qr.loss_ratio:.3g}"]
        table.add_row(
            name,
            kind,
            "-" if k is None else str(k),
            bits,
            ms(pr.edge_ms),
            ms(pr.transmit_ms),
            ms(pr.cloud_ms),
            ms(pr.total_ms),
            f"{pr.total_ms / cloud_ms:.2f}x" if cloud_ms else "-",
            f"{(pr.edge_weight_bytes + pr.peak_activation_bytes) / 1e6:.3g}",
            "yes" if fits else "NO",
            *queued,
        )
    console.print(table)
    if plan.split_set is not None:
        print_split_set(console, plan.split_set)


def print_split_set(console: Console, s: SplitSet) -> None:
    """The split set per rate (the report's table; every latency modelled)."""
    from rich.table import Table

    from splitsdk.plan.report import split_set_table

    header, rows = split_set_table(s)
    table = Table(title=f"split set over {s.uplink}: splits {', '.join(map(str, s.splits))}, edge chain "
                        f"{s.memory_bytes:,} B of {s.memory_limit:,} B (latencies {s.latencies})")
    for col in header:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
