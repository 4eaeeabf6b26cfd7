"""`splitsdk edge-sim BUNDLE --server HOST:PORT --frames DIR`: a camera in software.

Runs the bundle's edge.tflite on each frame, requantises and packs the crossing tensors, sends them to
a receiver and prints each RESULT: the same bytes on the wire as the generated edge app.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("edge-sim", help="simulate a camera: run edge.tflite on frames and send them to a receiver")
    p.add_argument("bundle", type=Path, help="bundle directory (manifest.json, edge.tflite)")
    p.add_argument("--server", required=True, help="receiver HOST:PORT")
    p.add_argument("--frames", type=Path, required=True, help="folder of .npy / .png / .jpg frames (sorted by name)")
    p.add_argument("--device-id", default="edge-sim", help="device id (with TLS: the certificate's name)")
    p.add_argument("--ca", type=Path, help="CA certificate of the receiver (turns TLS on)")
    p.add_argument("--cert", type=Path, help="this camera's client certificate")
    p.add_argument("--key", type=Path, help="this camera's client key")
    p.add_argument("--first-seq", type=int, default=0, help="sequence number of the first frame")
    p.add_argument("--json", action="store_true", help="print one JSON object per frame")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cloud.config import parse_hostport
    from splitsdk.errors import WireError
    from splitsdk.wire.bundle import load_bundle
    from splitsdk.wire.client import client_tls_context
    from splitsdk.wire.edge import load_frames, simulate

    host, port = parse_hostport(args.server, "--server")
    bundle = load_bundle(args.bundle)
    frames = load_frames(args.frames, bundle.input.shape)
    tls = client_tls_context(args.ca, args.cert, args.key) if args.ca else None
    try:
        results = simulate(bundle, host, port, frames, args.device_id, tls, args.first_seq)
    except (ConnectionError, OSError) as exc:
        raise WireError(f"{args.server}: {exc}") from None
    for name, result in results:
        body = result.body.decode("utf-8", errors="replace")
        if args.json:
            print(json.dumps({"frame": name, "seq": result.seq, "status": result.status, "result": body}))
        else:
            print(f"{name}\tseq={result.seq}\tstatus={result.status}\t{body}")
    return 0
