"""Entry point of the `splitsdk` console script.

Exit codes: 0 success; 1 bad input or an impossible request (a `SplitSdkError`: one line on stderr naming
the file and field, or the flag); 2 usage errors (argparse: unknown flag, missing argument); 3 a camera that
cannot be reached; 130 interrupted. Heavy modules (NumPy, TensorFlow) load inside the command that needs
them, after its arguments and files were checked, so `--help` and error paths answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from splitsdk import __version__
from splitsdk.errors import SplitSdkError

# Subcommand modules under splitsdk.cli, in the order `--help` lists them.
COMMANDS = [
    "cmd_inspect",
    "cmd_serve",
    "cmd_deploy",
    "cmd_fleet",
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
    "cmd_profile",
    "cmd_toolchain",
    "cmd_doctor",
    "cmd_completion",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
log = logging.getLogger("splitsdk.cli")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (the usage itself is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="splitsdk",
        description="Split a DNN between an edge camera and the cloud (AUTO-SPLIT), and ship both halves.",
        epilog="exit codes: 0 ok, 1 bad input (one line naming the file and field), 2 usage error, "
        "3 camera unreachable, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"splitsdk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors and results only (no progress, no notes)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log level (default info; -v: debug, -q: error)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"splitsdk.cli.{name}").register(sub)
    return parser


class _Formatter(logging.Formatter):
    """`splitsdk: message` for notes, `splitsdk: warning: message` above; the logger's name at debug."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        where = f"{record.name}: " if record.levelno <= logging.DEBUG else ""
        return f"splitsdk: {level}{where}{record.getMessage()}"


class _Stderr(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (main() may run more than once in a process)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(args: argparse.Namespace) -> None:
    """The `splitsdk` loggers (the CLI's notes, the receiver's JSON lines) at the level the flags ask for."""
    name = "debug" if args.verbose else "error" if args.quiet else args.log_level or "info"
    level = getattr(logging, name.upper())
    root = logging.getLogger("splitsdk")
    root.setLevel(level)
    logging.getLogger("splitsdk.cloud").setLevel(level)  # its own JSON handler; keeps a level set here
    if not any(getattr(h, "_splitsdk_cli", False) for h in root.handlers):
        handler = _Stderr()
        handler.setFormatter(_Formatter())
        handler._splitsdk_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False


def _discard_stdout() -> None:
    """The reader of our stdout went away (`splitsdk targets | head`): write nothing more, say nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _optional_package(exc: ModuleNotFoundError) -> str | None:
    """The optional distribution (`doctor.PYTHON_PACKAGES`) whose missing module `exc` reports, if any."""
    from splitsdk.toolchain.doctor import PYTHON_PACKAGES

    module = (exc.name or "").split(".")[0].replace("_", "-").lower()
    return next((d for d in PYTHON_PACKAGES if d.replace("_", "-").lower() == module), None) if module else None


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    from splitsdk.cli.args import join_dash_values

    # usage errors: argparse prints one line and exits 2
    args = parser.parse_args(join_dash_values(parser, sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args)
    from splitsdk.cli.quiet_import import install

    install()
    start = time.perf_counter()
    log.debug("%s: %s", args.command, {k: v for k, v in vars(args).items() if k != "func"})
    try:
        rc = args.func(args)
        sys.stdout.flush()
    except SplitSdkError as exc:
        if args.verbose:
            raise
        print(f"splitsdk: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:  # an optional package (a wheel extra) is not installed: how to add it
        dist = _optional_package(exc)
        if dist is None or args.verbose:
            raise
        from splitsdk.toolchain.doctor import missing_package

        print(f"splitsdk: error: {missing_package(dist, f'`splitsdk {args.command}`')}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _discard_stdout()
        return 141  # as if killed by SIGPIPE, like any other tool in a pipeline
    except OSError as exc:  # a file we could not read or write: the system's reason, one line
        if args.verbose:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"splitsdk: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("splitsdk: interrupted", file=sys.stderr)
        return 130
    log.debug("%s: done in %.2f s", args.command, time.perf_counter() - start)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
