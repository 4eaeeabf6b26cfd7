"""`splitsdk edge-sim BUNDLE --server HOST:PORT --frames DIR`: a camera in software.

Runs the bundle's edge.tflite on each frame, requantises and packs the crossing tensors, sends them to
a receiver and prints each RESULT: the same bytes on the wire as the generated edge app. A multi-split
bundle's camera runs its segment chain up to one member's cut: the member chosen per frame from the uplink
it measures (`splitsdk.wire.edge.AdaptiveCamera`), or the one `--split` names; each line then names its split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("edge-sim", help="simulate a camera: run edge.tflite on frames and send them to a receiver")
    p.add_argument("bundle", type=Path, help="bundle directory (manifest.json, edge.tflite)")
    p.add_argument(
        "--server", required=True, action="append", help="receiver HOST:PORT (repeat: fail over to the next)"
    )
    p.add_argument("--frames", type=Path, required=True, help="folder of .npy / .png / .jpg frames (sorted by name)")
    p.add_argument("--device-id", default="edge-sim", help="device id (with TLS: the certificate's name)")
    p.add_argument("--ca", type=Path, help="CA certificate of the receiver (turns TLS on)")
    p.add_argument("--cert", type=Path, help="this camera's client certificate")
    p.add_argument("--key", type=Path, help="this camera's client key")
    p.add_argument("--first-seq", type=int, default=0, help="sequence number of the first frame")
    p.add_argument(
        "--split", type=int, help="a multi-split bundle: send every frame at this member's split (default: adaptive, "
        "choosing the member per frame from the uplink measured on the first --server)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per frame")
    p.set_defaults(func=run)


def _value(body: str) -> Any:
    """A RESULT body as a JSON value: the receiver's JSON object as an object, other text as a string."""
    try:
        return json.loads(body)
    except ValueError:
        return body


def _speaks_tls(host: str, port: int) -> bool:
    """Whether the receiver answers a TLS handshake (a plain-TCP camera only sees it hang up)."""
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=3) as raw, ctx.wrap_socket(raw):
            return True
    except ssl.SSLError as exc:  # an alert (certificate required...) is TLS talking; garbage is not
        return "ALERT" in str(exc.reason or "")
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from splitsdk.address import parse_hostport
    from splitsdk.errors import BundleError, WireError
    from splitsdk.wire.bundle import load_bundle
    from splitsdk.wire.client import client_tls_context, simulate_failover
    from splitsdk.wire.edge import load_frames

    servers = [parse_hostport(s, "--server") for s in args.server]
    bundle = load_bundle(args.bundle)
    frames = load_frames(args.frames, bundle.input.shape)
    tls = client_tls_context(args.ca, args.cert, args.key) if args.ca else None
    splits: list[int | None] = []
    try:
        if args.split is not None and args.split not in bundle.split_indices:
            raise BundleError(f"--split: {args.split} is not a split of {args.bundle} ({list(bundle.split_indices)})")
        if bundle.manifest.splits and args.split is None:
            splits, results = _adaptive(bundle, servers[0], frames, args.device_id, tls, args.first_seq)
        else:
            results = simulate_failover(bundle, servers, frames, args.device_id, tls, args.first_seq, args.split)
            splits = [args.split if args.split is not None else bundle.split_indices[-1]] * len(results)
    except (ConnectionError, OSError) as exc:
        host, port = servers[-1]
        if tls is None and _speaks_tls(host, port):
            raise WireError(
                f"{host}:{port}: the receiver expects TLS: give --ca (and --cert, --key when it checks cameras)"
            ) from None
        raise WireError(f"{host}:{port}: {exc}") from None
    multi = bool(bundle.manifest.splits)
    for (name, result), split in zip(results, splits, strict=True):
        body = result.body.decode("utf-8", errors="replace")
        if args.json:
            row = {"frame": name, "seq": result.seq, "status": result.status, "result": _value(body)}
            print(json.dumps({**row, "split": split} if multi else row))
        else:
            where = f"split={split}\t" if multi else ""
            print(f"{name}\tseq={result.seq}\t{where}status={result.status}\t{body}")
    return 0


def _adaptive(bundle: Any, server: tuple[str, int], frames: list[tuple[str, Any]], device_id: str, tls: Any,
              first_seq: int) -> tuple[list[int | None], list[tuple[str, Any]]]:
    """Every frame through one adaptive camera (`splitsdk.wire.edge.AdaptiveCamera`); the splits it chose."""
    from splitsdk.wire.edge import AdaptiveCamera

    camera = AdaptiveCamera(bundle, *server, device_id, tls, first_seq=first_seq)
    try:
        records = [camera.infer(image) for _, image in frames]
    finally:
        camera.close()
    return [r.split for r in records], [(name, r.result) for (name, _), r in zip(frames, records, strict=True)]
