"""`splitsdk toolchain install TARGET... [--dry-run]`: build a target's sysroot into the cache ahead.

It says what it downloads before it does: the recipe's pinned Debian packages, the resolved closure
with versions and sizes, the total and where it goes; then draws the download and unpacking. A system
package the target's cross build needs and the machine lacks is named with its `apt-get install`.

`splitsdk toolchain tflite-neon TARGET`: cross-build TFLite with the target's NEON flags from Debian's
source package into the cache (splitsdk.toolchain.tflite_neon) and print the prefix for
`splitsdk build --tflite-root`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("toolchain", help="install a target's sysroot (cross build and QEMU runs need it)")
    tsub = p.add_subparsers(dest="toolchain_command", metavar="ACTION", required=True)
    inst = tsub.add_parser("install", help="download and unpack the target's sysroot into the splitsdk cache")
    inst.add_argument("targets", nargs="+", metavar="TARGET", help="a deployable target: cortex-a7, host")
    inst.add_argument("--dry-run", action="store_true", help="resolve and list the packages; download nothing")
    inst.add_argument("--no-progress", action="store_true", help="no progress bar")
    inst.set_defaults(func=run, needs_tensorflow=False)
    neon = tsub.add_parser("tflite-neon", help="cross-build TFLite with NEON into the cache (for build --tflite-root)")
    neon.add_argument("target", metavar="TARGET", help="an ARM target with NEON: cortex-a7")
    neon.add_argument("--ruy-source", type=Path, metavar="DIR",
                      help="a ruy checkout to build (default: Debian's ruy source package)")
    neon.add_argument("--system-ruy", action="store_true",
                      help="link Debian's libruy-dev (baseline ruy kernels; no ruy download)")
    neon.add_argument("--baseline", action="store_true", help="the armhf baseline FPU instead (no NEON), to compare")
    neon.add_argument("--build-dir", type=Path, help="keep the CMake tree here (a second call resumes it)")
    neon.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    neon.add_argument("--no-progress", action="store_true", help="no progress bar")
    neon.set_defaults(func=run_tflite_neon, needs_tensorflow=False)


def run_tflite_neon(args: argparse.Namespace) -> int:
    from splitsdk.cli.progress import progress_bar
    from splitsdk.target import load_target
    from splitsdk.toolchain.build import library_neon
    from splitsdk.toolchain.tflite_neon import ensure_tflite

    target = load_target(args.target)
    with progress_bar(f"TFLite for {target.name}", enabled=not args.no_progress) as tick:
        prefix = ensure_tflite(target, neon=not args.baseline, ruy_source=args.ruy_source,
                               system_ruy=args.system_ruy, jobs=args.jobs, build_dir=args.build_dir, tick=tick)
    _, how = library_neon(target, sorted((prefix / "lib").glob("libtensorflow-lite.so*")))
    print(f"{target.name}: TFLite at {prefix} ({how})", file=sys.stderr)
    print(f"{target.name}: link it with `splitsdk build PROJECT -o FIRMWARE --tflite-root {prefix}`", file=sys.stderr)
    print(prefix)
    return 0


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
