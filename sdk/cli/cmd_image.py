"""`splitsdk image [FIRMWARE] -o IMAGE`: build a bootable emulated-camera image (kernel, initramfs, data disk)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("image", help="build a bootable camera image for qemu-system-arm (optionally with firmware)")
    p.add_argument("firmware", nargs="?", type=Path, help="firmware directory from `splitsdk build` (preinstalled)")
    p.add_argument("-o", "--output", required=True, type=Path, help="image directory to write (replaced)")
    p.add_argument("--target", help="target when no firmware is given (default cortex-a7)")
    p.add_argument("--authorized-key", type=Path, help="SSH public key for root (default: a new key in IMAGE)")
    p.add_argument("--frames", type=Path, help="frames to put in the camera's spool (/var/spool/splitsdk-edge/frames)")
    p.add_argument("--server", help="receiver HOST:PORT for the preinstalled firmware (e.g. 10.0.2.2:7700)")
    p.add_argument("--data-mb", type=int, default=192, help="size of the persistent data disk (default 192)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.camera.image import build_image

    img = build_image(
        args.output,
        args.firmware,
        target=args.target,
        authorized_key=args.authorized_key,
        frames=args.frames,
        server=args.server,
        data_mb=args.data_mb,
        log=True,
    )
    print(f"boot it: splitsdk camera up {img.root}")
    return 0
