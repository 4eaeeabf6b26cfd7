"""`splitsdk generate BUNDLE --target T -o PROJECT`: render the edge app's CMake project."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splitsdk.cli.args import input_argument, resolve_input


def register(sub: Any) -> None:
    p = sub.add_parser("generate", help="generate the C++ edge app (CMake project) for a bundle and a target")
    input_argument(p, "bundle", "--bundle", help="bundle directory from `splitsdk convert`")
    p.add_argument("--target", required=True, help="target name (cortex-a7, host) or a target .toml file")
    p.add_argument("-o", "--output", required=True, type=Path, help="project directory to write (created)")
    p.add_argument("--server", help="receiver HOST:PORT compiled in as the default (default 127.0.0.1:7700)")
    p.add_argument("--device-id", help="camera id compiled in as the default (default camera-0)")
    p.add_argument(
        "--force", action="store_true",
        help="overwrite files edited since splitsdk wrote them, and write into a folder it did not create",
    )
    p.add_argument("--json", action="store_true", help="print the changed and kept files as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cli.progress import note
    from splitsdk.codegen import ServerSettings, edge_app, render
    from splitsdk.codegen.writer import kept_message, write_files
    from splitsdk.target import load_target
    from splitsdk.wire.bundle import load_bundle

    server = ServerSettings.parse(args.server, args.device_id, what="--server")
    bundle = load_bundle(resolve_input(args, "bundle"))
    written = write_files(render(edge_app(bundle, load_target(args.target), server)), args.output, args.force)
    if written.kept:
        note(f"warning: {args.output}: {kept_message(written.kept)}")
    if args.json:
        print(json.dumps({"project": str(args.output), "target": args.target, "changed": written.changed,
                          "kept": written.kept}, indent=1))
        return 0
    print(f"generated {args.output} for {args.target}: {len(written.changed)} file(s) changed"
          + (f", {len(written.kept)} kept" if written.kept else ""))
    return 0
