"""`splitsdk camera up IMAGE` / `camera down IMAGE` / `camera stats IMAGE`: the emulated camera."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("camera", help="boot or stop an emulated camera image (qemu-system-arm, in the background)")
    csub = p.add_subparsers(dest="camera_command", metavar="ACTION", required=True)
    up = csub.add_parser("up", help="boot IMAGE in the background and wait until its SSH server answers")
    up.add_argument("image", type=Path, help="image directory from `splitsdk image`")
    up.add_argument("--ssh-port", type=int, help="host loopback port forwarded to the camera's SSH (default: free)")
    up.add_argument("--icount", type=int, metavar="N", help="deterministic virtual time: -icount shift=N")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for SSH (default 240)")
    up.set_defaults(func=run_up, needs_tensorflow=False)
    down = csub.add_parser("down", help="power the camera off (clean unmount of its data disk)")
    down.add_argument("image", type=Path, help="image directory the camera was started from")
    down.set_defaults(func=run_down, needs_tensorflow=False)
    stats = csub.add_parser("stats", help="restart the edge app to flush and print its per-stage times")
    stats.add_argument("image", type=Path, help="image directory the camera was started from")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=run_stats, needs_tensorflow=False)


def run_up(args: argparse.Namespace) -> int:
    from splitsdk.camera.qemu import camera_up

    cam = camera_up(args.image, ssh_port=args.ssh_port, icount=args.icount, timeout_s=args.timeout)
    print(f"camera up in {cam.boot_s:.1f} s (pid {cam.pid}); ssh: {cam.host}" + (f" key {cam.key}" if cam.key else ""))
    print(f"flash it: splitsdk flash FIRMWARE --host {cam.host}" + (f" --key {cam.key}" if cam.key else ""))
    return 0


def run_down(args: argparse.Namespace) -> int:
    from splitsdk.camera.qemu import camera_down

    cam = camera_down(args.image)
    print(f"camera {cam.image} (pid {cam.pid}) stopped")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from splitsdk.camera.flash import app_stats
    from splitsdk.camera.qemu import load_state

    stats = app_stats(load_state(args.image).remote())
    if args.json:
        print(json.dumps(stats, indent=1, sort_keys=True))
        return 0
    print(f"{'stage':12s} {'frames':>7s} {'min_ms':>10s} {'mean_ms':>10s} {'max_ms':>10s}")
    for name, s in sorted(stats.get("stages", {}).items()):
        print(f"{name:12s} {s['n']:7d} {s['min_ms']:10.3f} {s['mean_ms']:10.3f} {s['max_ms']:10.3f}")
    print("  ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k != "stages"))
    return 0
