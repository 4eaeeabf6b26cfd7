"""`splitsdk generate --target T --bundle B -o PROJECT`: render the edge app's CMake project."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("generate", help="generate the C++ edge app (CMake project) for a bundle and a target")
    p.add_argument("--target", required=True, help="target name (cortex-a7, host) or a target .toml file")
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory from `splitsdk convert`")
    p.add_argument("-o", "--output", required=True, type=Path, help="project directory to write (created)")
    p.add_argument("--server", help="receiver HOST:PORT compiled in as the default (default 127.0.0.1:7700)")
    p.add_argument("--device-id", help="camera id compiled in as the default (default camera-0)")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.codegen import ServerSettings, generate

    changed = generate(args.bundle, args.target, args.output, ServerSettings.parse(args.server, args.device_id))
    print(f"generated {args.output} for {args.target}: {len(changed)} file(s) changed")
    return 0
