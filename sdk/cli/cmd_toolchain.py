"""`splitsdk toolchain install TARGET... [--dry-run]`: build a target's sysroot into the cache ahead.

It says what it downloads before it does: the recipe's pinned Debian packages, the resolved closure
with versions and sizes, the total and where it goes; then draws the download and unpacking. A system
package the target's cross build needs and the machine lacks is named with its `apt-get install`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("toolchain", help="install a target's sysroot (cross build and QEMU runs need it)")
    tsub = p.add_subparsers(dest="toolchain_command", metavar="ACTION", required=True)
    inst = tsub.add_parser("install", help="download and unpack the target's sysroot into the splitsdk cache")
    inst.add_argument("targets", nargs="+", metavar="TARGET", help="a deployable target: cortex-a7, host")
    inst.add_argument("--dry-run", action="store_true", help="resolve and list the packages; download nothing")
    inst.add_argument("--no-progress", action="store_true", help="no progress bar")
    inst.set_defaults(func=run, needs_tensorflow=False)


def run(args: argparse.Namespace) -> int:
    from splitsdk.cli.progress import progress_bar
    from splitsdk.target import load_target
    from splitsdk.toolchain.doctor import missing_system_packages
    from splitsdk.toolchain.sysroot import ensure_sysroot, is_installed, plan_sysroot, sysroot_path

    for name in args.targets:
        target = load_target(name)
        if is_installed(target):
            print(f"{target.name}: sysroot installed at {sysroot_path(target)}")
        else:
            plan = plan_sysroot(target)
            print(f"{target.name}: sysroot from {target.path}, pinned: {' '.join(plan.pins)}")
            width = max(len(d.name) for d in plan.debs)
            vwidth = max(len(d.version) for d in plan.debs)
            for d in plan.debs:
                print(f"  {d.name.ljust(width)}  {d.version.ljust(vwidth)}  {d.size / 1e3:6.0f} kB")
            size = f"{plan.download_bytes / 1e6:.1f} MB"
            print(f"{target.name}: {len(plan.debs)} packages, {size} download -> {plan.dest}")
            if args.dry_run:
                continue
            with progress_bar(f"{target.name} sysroot", enabled=not args.no_progress) as tick:
                dest = ensure_sysroot(target, announce=False, tick=tick)
            print(f"{target.name}: sysroot installed at {dest}")
        missing = missing_system_packages(target)
        if missing:
            print(f"{target.name}: also needs: sudo apt-get install {' '.join(missing)}", file=sys.stderr)
    return 0
