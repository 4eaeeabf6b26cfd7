"""`splitsdk deploy BUNDLE --ray-address ADDR`: run a bundle's cloud model as a Ray Serve application.

One application per bundle (named after its plan hash unless `--app` names it; a multi-split bundle: one per
member's cloud half, `<name>-split<k>`), so that several plans run side by side; receivers started with `serve
--engine ray` send it their batches. The `[engine]` section of `--config` (receiver.toml) sets replicas, CPUs,
autoscaling and Serve's batching; the flags override it. Deploying an unchanged bundle again leaves its
replicas running.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FLAGS = {
    "engine.ray_address": ("ray_address", "--ray-address"),
    "engine.app": ("app", "--app"),
    "engine.replicas": ("replicas", "--replicas"),
    "engine.max_replicas": ("max_replicas", "--max-replicas"),
    "engine.num_cpus": ("num_cpus", "--num-cpus"),
    "engine.max_batch": ("max_batch", "--max-batch"),
}


def register(sub: Any) -> None:
    p = sub.add_parser("deploy", help="deploy a bundle's cloud model on Ray Serve (one app per cloud half)")
    p.add_argument("bundle", type=Path, help="bundle directory (manifest.json, cloud model)")
    p.add_argument("--ray-address", required=True, help="the Ray cluster: HOST:PORT of its head, or auto")
    p.add_argument("--app", help="Serve application name (default splitsdk-<plan hash prefix>)")
    p.add_argument("--replicas", type=int, help="replicas (the fewest, with --max-replicas)")
    p.add_argument("--max-replicas", type=int, help="autoscale up to this many replicas")
    p.add_argument("--num-cpus", type=float, help="CPUs each replica reserves")
    p.add_argument("--max-batch", type=int, help="frames one replica runs at once")
    p.add_argument("--config", type=Path, help="receiver.toml whose [engine] section gives the settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from splitsdk.cli.args import receiver_config
    from splitsdk.wire.bundle import load_bundle

    config = receiver_config(args, FLAGS)
    config = replace(config, engine=replace(config.engine, kind="ray"))
    if 0 < config.engine.max_replicas < config.engine.replicas:
        from splitsdk.errors import UsageError

        raise UsageError("--max-replicas: below --replicas")
    bundle = load_bundle(args.bundle)
    from splitsdk.cloud.engine_ray import cloud_halves, deploy

    for split in cloud_halves(bundle):  # a multi-split bundle: one application per member's cloud half
        print(deploy(bundle, config.engine, split=split))
    return 0
