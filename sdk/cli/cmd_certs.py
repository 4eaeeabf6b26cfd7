"""`splitsdk certs`: a camera CA, the receiver's server certificate and one certificate per camera."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from splitsdk.errors import ReceiverError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "certs",
        help="create a CA, a receiver certificate and per-camera client certificates; `revoke NAME` revokes one",
    )
    p.add_argument(
        "action",
        nargs="*",
        metavar="revoke NAME",
        help="`revoke NAME...`: add these cameras' certificates to the CA's crl.pem (the receiver's --crl)",
    )
    p.add_argument(
        "-o",
        "--out",
        "--dir",
        dest="out",
        type=Path,
        required=True,
        help="directory for ca.pem, server.pem, <camera>.pem (+ .key) and crl.pem",
    )
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
    from splitsdk.cloud.certs import make_certs, revoke

    if args.action:
        if args.action[0] != "revoke" or len(args.action) < 2:
            raise ReceiverError(f"certs: expected `revoke NAME...`, got {' '.join(args.action)!r}")
        crl, serials = revoke(args.out, args.action[1:])
        print(f"CRL:     {crl} ({len(serials)} revoked; a receiver serving it with --crl re-reads it)")
        return 0
    files = make_certs(args.out, args.camera, args.server_name or ["localhost", "127.0.0.1"], days=args.days)
    print(f"CA:      {files.ca_cert} (key {files.ca_key}: keep it off the receiver)")
    print(f"server:  {files.server_cert} {files.server_key}")
    for cam, (cert, key) in sorted(files.cameras.items()):
        print(f"camera:  {cam}: {cert} {key}")
    print(f"CRL:     {files.crl} (serve with --crl; `splitsdk certs -o DIR revoke NAME` adds to it)")
    return 0
