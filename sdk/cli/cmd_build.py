"""`splitsdk build PROJECT -o FIRMWARE`: cross-compile a generated project into a firmware directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("build", help="cross-compile a generated edge project into a firmware directory")
    p.add_argument("project", type=Path, help="project directory from `splitsdk generate`")
    p.add_argument("-o", "--output", required=True, type=Path, help="firmware directory to write (replaced)")
    p.add_argument("--tflite-root", type=Path, help="link this TFLite build instead of the sysroot's")
    p.add_argument("--sanitize", action="store_true", help="build with ASan+UBSan (tests; symbols kept)")
    p.add_argument("--build-dir", type=Path, help="CMake build directory (default PROJECT/build/TARGET)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    import sys

    from splitsdk.toolchain.build import build_firmware

    print(f"building {args.project} with CMake (first build of a project: ~20 s)...", file=sys.stderr)
    fw = build_firmware(
        args.project,
        args.output,
        sanitize=args.sanitize,
        tflite_root=args.tflite_root,
        build_dir=args.build_dir,
        jobs=args.jobs,
    )
    print(
        f"firmware {fw.root} for {fw.target}: binary {fw.binary_bytes / 1024:.1f} KiB (stripped), "
        f"{len(fw.libraries)} libraries, {fw.firmware_bytes / 1e6:.1f} MB in all"
    )
    return 0
