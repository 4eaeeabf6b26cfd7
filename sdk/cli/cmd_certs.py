"""`splitsdk certs`: a camera CA, the receiver's server certificate and one certificate per camera."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("certs", help="create a CA, a receiver certificate and per-camera client certificates")
    p.add_argument("--out", type=Path, required=True, help="directory for ca.pem, server.pem, <camera>.pem (+ .key)")
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="DEVICE_ID",
        help="issue a client certificate whose name is this device id (repeatable)",
    )
    p.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="NAME",
        help="DNS name or IP of the receiver (repeatable; default localhost and 127.0.0.1)",
    )
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cloud.certs import make_certs

    files = make_certs(args.out, args.camera, args.server_name or ["localhost", "127.0.0.1"], days=args.days)
    print(f"CA:      {files.ca_cert} (key {files.ca_key}: keep it off the receiver)")
    print(f"server:  {files.server_cert} {files.server_key}")
    for cam, (cert, key) in sorted(files.cameras.items()):
        print(f"camera:  {cam}: {cert} {key}")
    return 0
