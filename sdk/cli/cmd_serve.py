"""`splitsdk serve BUNDLE`: the cloud receiver daemon (foreground, systemd-friendly)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from splitsdk.cli.args import receiver_config, with_flags
from splitsdk.errors import ReceiverError


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the cloud receiver for a bundle (TLS, batching, SQLite, metrics)")
    p.add_argument("bundle", type=Path, help="bundle directory (manifest.json, cloud.keras)")
    p.add_argument("--listen", help="HOST:PORT to accept cameras on (default 127.0.0.1:7700)")
    p.add_argument("--db", help="results database: a SQLite file or a postgresql:// URL (default results.sqlite)")
    p.add_argument("--metrics", help="HOST:PORT for /metrics and /healthz (off by default)")
    p.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    p.add_argument("--client-ca", type=Path, help="CA that signed the cameras' certificates (PEM)")
    p.add_argument(
        "--crl",
        type=Path,
        help="the client CA's revocation list (PEM, `splitsdk certs revoke`); re-read when it changes or on SIGHUP",
    )
    p.add_argument(
        "--allowed-devices",
        type=Path,
        help="file of the device ids served, one a line (others are refused); re-read when it changes or on SIGHUP",
    )
    p.add_argument("--config", type=Path, help="receiver.toml with limits and batching (flags override it)")
    p.add_argument("--max-batch", type=int, help="largest batch across cameras")
    p.add_argument("--max-wait-ms", type=float, help="longest a frame waits for its batch to fill")
    p.add_argument(
        "--insecure-plain-tcp",
        action="store_true",
        default=None,
        help="serve without TLS (any host that reaches the port can submit frames)",
    )
    p.add_argument("--engine", choices=("local", "ray"), help="run the cloud model here (local) or on Ray Serve (ray)")
    p.add_argument("--ray-address", help="the Ray cluster for --engine ray (HOST:PORT of its head, or auto)")
    p.add_argument("--print-systemd-unit", action="store_true", help="print a systemd unit for this command and exit")
    p.set_defaults(func=run, needs_tensorflow=False)


# config field -> (argparse dest, flag): the flags override the file's fields (None: not given)
FLAGS = {
    "listen": ("listen", "--listen"),
    "db": ("db", "--db"),
    "metrics": ("metrics", "--metrics"),
    "tls.cert": ("tls_cert", "--tls-cert"),
    "tls.key": ("tls_key", "--tls-key"),
    "tls.client_ca": ("client_ca", "--client-ca"),
    "tls.crl": ("crl", "--crl"),
    "tls.allowed_devices": ("allowed_devices", "--allowed-devices"),
    "insecure_plain_tcp": ("insecure_plain_tcp", "--insecure-plain-tcp"),
    "batching.max_batch": ("max_batch", "--max-batch"),
    "batching.max_wait_ms": ("max_wait_ms", "--max-wait-ms"),
    "engine.kind": ("engine", "--engine"),
    "engine.ray_address": ("ray_address", "--ray-address"),
}


def run(args: argparse.Namespace) -> int:
    from splitsdk.cloud.daemon import serve, systemd_unit

    config = receiver_config(args, FLAGS)
    try:
        config.validate()
    except ReceiverError as exc:
        raise ReceiverError(with_flags(str(exc), FLAGS)) from None
    if args.print_systemd_unit:  # ExecStart= from the parsed config, with absolute paths
        flags = {field: flag for field, (_, flag) in FLAGS.items()}
        print(systemd_unit(args.bundle, config, args.config, flags), end="")
        return 0
    return serve(args.bundle, config)
