"""`splitsdk fleet up|down|haproxy-config` and `splitsdk haproxy-config`: receivers that scale out.

`fleet up BUNDLE` starts a local fleet (PostgreSQL, receivers, HAProxy, a Ray head; see
splitsdk.cloud.fleet) as background processes recorded in `DIR/fleet.json` and prints the addresses;
`fleet down` stops them by their pids. `haproxy-config` writes the HAProxy configuration that puts
receivers on other machines behind one address (splitsdk.cloud.haproxy).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

# splitsdk.cloud.fleet.DEFAULT_ROOT, spelled here so that building the parser imports no receiver code
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "splitsdk-fleet"


def _haproxy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--receiver",
        action="append",
        required=True,
        metavar="HOST:PORT[/METRICS_PORT]",
        help="a receiver (repeat for each); its /healthz port defaults to PORT+1",
    )
    p.add_argument("--listen", required=True, help="HOST:PORT the cameras connect to")
    p.add_argument("--stats", help="HOST:PORT of HAProxy's own statistics page (off by default)")
    p.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    p.set_defaults(func=run_haproxy_config)


def register(sub: Any) -> None:
    _haproxy_args(
        sub.add_parser("haproxy-config", help="write an HAProxy config (TCP, TLS passed through) for receivers")
    )
    p = sub.add_parser("fleet", help="receivers behind HAProxy on one database, the cloud model on Ray Serve")
    fleet = p.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    _haproxy_args(fleet.add_parser("haproxy-config", help="the same as `splitsdk haproxy-config`"))
    start = fleet.add_parser("up", help="start PostgreSQL, receivers, HAProxy and Ray here (background processes)")
    start.add_argument("bundle", type=Path, help="bundle directory the receivers serve")
    start.add_argument("--dir", type=Path, default=DEFAULT_ROOT, help=f"state and logs (default {DEFAULT_ROOT})")
    start.add_argument("--receivers", type=int, default=2, help="how many receivers (default 2)")
    start.add_argument("--engine", choices=("ray", "local"), default="ray", help="where the cloud model runs")
    start.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    start.add_argument("--config", type=Path, help="the receivers' receiver.toml (default: plain TCP on loopback)")
    start.add_argument("--listen", default="", help="HOST:PORT for the cameras (default: a free loopback port)")
    start.set_defaults(func=run_up)
    stop = fleet.add_parser("down", help="stop the fleet `fleet up` started (by the pids it recorded)")
    stop.add_argument("--dir", type=Path, default=DEFAULT_ROOT, help=f"the fleet's folder (default {DEFAULT_ROOT})")
    stop.set_defaults(func=run_down)


def run_haproxy_config(args: argparse.Namespace) -> int:
    from splitsdk.cloud import haproxy
    from splitsdk.codec import write_atomic

    text = haproxy.render([haproxy.parse_backend(r) for r in args.receiver], args.listen, stats=args.stats)
    if args.output is None:
        print(text, end="")
    else:
        write_atomic(args.output, text)
    return 0


def run_up(args: argparse.Namespace) -> int:
    from splitsdk.cloud import fleet
    from splitsdk.errors import UsageError
    from splitsdk.wire.bundle import load_bundle

    if args.receivers < 1:
        raise UsageError("--receivers: at least 1")
    load_bundle(args.bundle)  # a bad bundle is refused here, in one line, before anything starts
    state = fleet.up(
        args.bundle,
        args.dir,
        receivers=args.receivers,
        engine=args.engine,
        num_cpus=args.num_cpus,
        config=args.config,
        listen=args.listen,
    )
    print(json.dumps({"cameras": state.listen, "receivers": state.receivers, "db": state.db,
                      "ray": state.ray_address, "state": str(Path(state.root) / fleet.STATE)}, indent=2))  # fmt: skip
    return 0


def run_down(args: argparse.Namespace) -> int:
    from splitsdk.cloud import fleet

    for name in fleet.down(args.dir):
        print(f"stopped {name}")
    return 0
