"""`splitsdk serve BUNDLE`: the cloud receiver daemon (foreground, systemd-friendly)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the cloud receiver for a bundle (TLS, batching, SQLite, metrics)")
    p.add_argument("bundle", type=Path, help="bundle directory (manifest.json, cloud.keras)")
    p.add_argument("--listen", help="HOST:PORT to accept cameras on (default 127.0.0.1:7700)")
    p.add_argument("--db", type=Path, help="SQLite results database (default results.sqlite)")
    p.add_argument("--metrics", help="HOST:PORT for /metrics and /healthz (off by default)")
    p.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    p.add_argument("--client-ca", type=Path, help="CA that signed the cameras' certificates (PEM)")
    p.add_argument("--config", type=Path, help="receiver.toml with limits and batching (flags override it)")
    p.add_argument("--max-batch", type=int, help="largest batch across cameras")
    p.add_argument("--max-wait-ms", type=float, help="longest a frame waits for its batch to fill")
    p.add_argument(
        "--insecure-plain-tcp",
        action="store_true",
        default=None,
        help="serve without TLS (any host that reaches the port can submit frames)",
    )
    p.add_argument("--print-systemd-unit", action="store_true", help="print a systemd unit for this command and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cloud.config import load_config, parse_hostport
    from splitsdk.cloud.daemon import serve, systemd_unit

    host, port = parse_hostport(args.listen, "--listen") if args.listen else (None, None)
    mhost, mport = parse_hostport(args.metrics, "--metrics") if args.metrics else (None, None)
    config = load_config(
        args.config,
        host=host,
        port=port,
        db=args.db,
        metrics_host=mhost,
        metrics_port=mport,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        insecure_plain_tcp=args.insecure_plain_tcp,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
    ).validate()
    if args.print_systemd_unit:
        forwarded = (
            [a for a in sys.argv[sys.argv.index("serve") + 2 :] if a != "--print-systemd-unit"]
            if "serve" in sys.argv
            else []
        )
        print(systemd_unit(args.bundle, forwarded), end="")
        return 0
    return serve(args.bundle, config)
