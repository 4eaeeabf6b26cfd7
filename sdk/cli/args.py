"""Argument conventions shared by the subcommands: inputs are positional, outputs `-o`; an older spelling
of an input (`--bundle B`) stays accepted as a hidden alias."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from splitsdk.errors import SplitSdkError, UsageError

_DASH_VALUE = re.compile(r"^-\.?\d")  # -1mbit, -0.5, -.5: a value, not a flag


def input_argument(p: argparse.ArgumentParser, name: str, alias: str, help: str,
                   type: Callable[[str], Any] = Path) -> None:
    """Positional input NAME, also accepted as the hidden flag `alias` (the older spelling)."""
    p.add_argument(name, nargs="?", type=type, metavar=name.upper(), help=help)
    p.add_argument(alias, dest=f"{name}_alias", type=type, help=argparse.SUPPRESS)


def resolve_input(args: argparse.Namespace, name: str) -> Any:
    """The positional input NAME or its alias flag's value; one of them is required."""
    given, alias = getattr(args, name), getattr(args, f"{name}_alias")
    if given is not None and alias is not None and given != alias:
        raise UsageError(f"{name.upper()} given twice ({given} and {alias})")
    value = given if given is not None else alias
    if value is None:
        raise UsageError(f"the following arguments are required: {name.upper()}")
    return value


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings (of the parser and its subcommands) that take one value."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _value_options(sub)
        elif action.option_strings and action.nargs is None:
            found.update(action.option_strings)
    return found


def join_dash_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`--uplink -1mbit` -> `--uplink=-1mbit`: argparse takes a value starting with a dash for a flag
    (`expected one argument`); joined, the flag gets it and its own check names the flag."""
    options = _value_options(parser)
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in options and i + 1 < len(argv) and _DASH_VALUE.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}" if arg.startswith("--") else f"{arg}{argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def check_output_file(path: str | Path, error: type[SplitSdkError], flag: str = "-o") -> None:
    """An output file's folder must exist (nothing is created behind the user's back), and the path must
    not be a folder."""
    out = Path(path)
    parent = out.parent
    if not parent.is_dir():
        raise error(f"{flag} {out}: no such folder {parent}/ (create it first)")
    if out.is_dir():
        raise error(f"{flag} {out}: is a folder; give a file name")


def input_shape(text: str) -> tuple[int, ...]:
    """argparse type of `--input-shape`: `96,96,3` or `96x96x3` (a ValueError is argparse's usage error)."""
    from splitsdk.quant.calib import parse_shape

    try:
        return parse_shape(text)
    except SplitSdkError as exc:
        raise ValueError(str(exc)) from None


# receiver config field (dotted) -> (argparse dest, flag); each command that overrides the config passes its table
ConfigFlags = dict[str, tuple[str, str]]


def with_flags(message: str, flags: ConfigFlags) -> str:
    """The library names config fields; on the command line, say which flag sets each one too."""
    for field, (_, flag) in flags.items():
        message = re.sub(rf"(?<![\w.-]){re.escape(field)}(?![\w.-])", f"{field} ({flag})", message, count=1)
    return message


def receiver_config(args: argparse.Namespace, flags: ConfigFlags) -> Any:
    """`--config` with the command's flags on top (None: not given). A file's errors name its fields; the flags'
    errors ("command line: ...") name each field's flag too."""
    from splitsdk.cloud.config import load_config
    from splitsdk.errors import ReceiverError

    try:
        return load_config(args.config, {field: getattr(args, dest) for field, (dest, _) in flags.items()})
    except ReceiverError as exc:
        text = str(exc)
        raise ReceiverError(with_flags(text, flags) if text.startswith("command line:") else text) from None
