"""`splitsdk build PROJECT -o FIRMWARE`: cross-compile a generated project into a firmware directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("build", help="cross-compile a generated edge project into a firmware directory")
    p.add_argument("project", type=Path, help="project directory from `splitsdk generate`")
    p.add_argument("-o", "--output", required=True, type=Path, help="firmware directory to write (replaces an old one)")
    p.add_argument("--force", action="store_true", help="replace -o even when it is not a firmware splitsdk built")
    p.add_argument("--tflite-root", type=Path, help="link this TFLite build instead of the sysroot's")
    p.add_argument("--sanitize", action="store_true", help="build with ASan+UBSan (tests; symbols kept)")
    p.add_argument("--build-dir", type=Path, help="CMake build directory (default PROJECT/build/TARGET)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    p.add_argument("--json", action="store_true", help="print the firmware's description as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cli.progress import note, working
    from splitsdk.target import load_target
    from splitsdk.toolchain.build import build_firmware, runtime_warning

    with working(f"build: {args.project} with CMake (first build of a project: ~20 s)", enabled=not args.json):
        fw = build_firmware(
            args.project,
            args.output,
            sanitize=args.sanitize,
            tflite_root=args.tflite_root,
            build_dir=args.build_dir,
            jobs=args.jobs,
            force=args.force,
        )
    warning = runtime_warning(load_target(fw.target_file), fw.runtime)
    if warning:
        note(f"warning: {warning}")
    if args.json:
        print(json.dumps({
            "firmware": str(fw.root), "target": fw.target, "binary_bytes": fw.binary_bytes,
            "firmware_bytes": fw.firmware_bytes, "libraries": list(fw.libraries), "warning": warning or None,
        }, indent=1))
        return 0
    print(
        f"firmware {fw.root} for {fw.target}: binary {fw.binary_bytes / 1024:.1f} KiB (stripped), "
        f"{len(fw.libraries)} libraries, {fw.firmware_bytes / 1e6:.1f} MB in all"
    )
    return 0
