"""Entry point of the `splitsdk` console script."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from splitsdk import __version__
from splitsdk.errors import SplitSdkError

# Subcommand modules under splitsdk.cli, in the order `--help` lists them.
COMMANDS = [
    "cmd_inspect",
    "cmd_serve",
    "cmd_certs",
    "cmd_edge_sim",
    "cmd_plan",
    "cmd_report",
    "cmd_convert",
    "cmd_targets",
    "cmd_generate",
    "cmd_build",
    "cmd_emulate",
    "cmd_verify",
    "cmd_image",
    "cmd_camera",
    "cmd_flash",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitsdk",
        description="Split a DNN between an edge camera and the cloud (AUTO-SPLIT), and ship both halves.",
    )
    parser.add_argument("--version", action="version", version=f"splitsdk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"splitsdk.cli.{name}").register(sub)
    return parser


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr silenced: TF 2.21 prints C++ start-up logs no setting turns off,
    and our contract is one clear line on stderr per error."""
    if "tensorflow" in sys.modules:
        return
    from splitsdk.quiet import quiet

    with quiet(stdout=False):
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # commands that need it say so themselves


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "needs_tensorflow", True):
        import_tensorflow_quietly()
    try:
        rc = args.func(args)
    except SplitSdkError as exc:
        if args.verbose:
            raise
        print(f"splitsdk: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("splitsdk: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
