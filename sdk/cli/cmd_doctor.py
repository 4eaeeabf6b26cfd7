"""`splitsdk doctor [--json] [--fix]`: what is present and missing for each command, with the command that adds it."""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Any

from splitsdk.errors import ToolchainError


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="list the tools, sysroots and Python packages present and missing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--fix", action="store_true",
                   help="install the packages pip cannot install as dependencies (onnx2tf, scalesim) with --no-deps")
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.toolchain import doctor

    if args.fix:
        try:
            cmd = doctor.fix_no_deps()
        except subprocess.CalledProcessError as exc:
            raise ToolchainError(f"doctor --fix: pip failed (exit {exc.returncode}): {' '.join(exc.cmd)}") from None
        print(f"installed: {' '.join(cmd[5:])}")
    checks = doctor.diagnose()
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=2))
        return 0
    for kind, title in (("tool", "host tools"), ("sysroot", "target sysroots"), ("python", "Python packages")):
        print(f"{title}:")
        for c in (c for c in checks if c.kind == kind):
            mark = "ok " if c.present else "-- "
            fix = f"  -> {c.fix}" if c.fix else ""
            print(f"  {mark}{c.name:<26} {c.detail}  ({c.needed_for}){fix}")
    missing = [c for c in checks if not c.present]
    print(f"{len(missing)} missing" if missing else "everything is here")
    return 0
