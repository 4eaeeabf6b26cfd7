"""`splitsdk flash FIRMWARE --host user@camera[:port]` (or `--rollback`): install firmware on a camera over SSH."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("flash", help="install firmware on a camera over SSH (atomic switch, rollback on failure)")
    p.add_argument("firmware", nargs="?", type=Path, help="firmware directory from `splitsdk build`")
    p.add_argument("--host", required=True, help="the camera: user@host[:port]")
    p.add_argument("--key", type=Path, help="SSH private key (e.g. IMAGE/id_ed25519)")
    p.add_argument("--known-hosts", type=Path, help="known_hosts file (default: ssh's own)")
    p.add_argument("--rollback", action="store_true", help="switch back to the previous version instead")
    p.add_argument("--server", help="receiver HOST:PORT written into the installed config (e.g. 10.0.2.2:7700)")
    p.add_argument(
        "--frames", type=Path, help="replace the camera's frame folder with this one (cameras without a sensor)"
    )
    p.add_argument("--root", default="/data/fw", help="where versions live on the camera (default /data/fw)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the first result (default 180)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.camera.errors import FlashError
    from splitsdk.camera.flash import flash, rollback
    from splitsdk.camera.ssh import Remote

    def progress(msg: str) -> None:
        print(f"flash: {msg}", flush=True)  # stdout: stderr holds only the one-line error

    remote = Remote.parse(args.host, args.key, args.known_hosts)
    if args.rollback:
        if args.firmware is not None:
            raise FlashError("--rollback takes no FIRMWARE")
        r = rollback(remote, root=args.root, timeout_s=args.timeout)
    else:
        if args.firmware is None:
            raise FlashError("FIRMWARE is required (or --rollback)")
        r = flash(
            args.firmware,
            remote,
            server=args.server,
            frames=args.frames,
            root=args.root,
            timeout_s=args.timeout,
            progress=progress,
        )
    first = next((ln for ln in r.log if ln.startswith("result seq=")), "")
    print(f"{remote}: running {r.version} (previous {r.previous}); first result after {r.connected_s:.1f} s: {first}")
    return 0
