"""`splitsdk completion bash`: a bash completion script (`eval "$(splitsdk completion bash)"`)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

SCRIPT = """# bash completion for splitsdk: eval "$(splitsdk completion bash)" (or save it under
# /etc/bash_completion.d/splitsdk)
_splitsdk() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$w" in -*) ;; *) cmd="$w"; break ;; esac
    done
    local words
    case "$cmd" in
{cases}
    esac
    if [[ -z "$cmd" || "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}}
complete -o default -F _splitsdk splitsdk
"""


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash)")
    p.add_argument("shell", choices=["bash"], help="the shell (bash; zsh reads it after `bashcompinit`)")
    p.set_defaults(func=run)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> str:
    """A parser's subcommands, then its long options (hidden aliases left out)."""
    options = sorted(
        s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings if s.startswith("--")
    )
    return shlex.quote(" ".join(sorted(_subcommands(parser)) + options))


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The completion script for `parser`: subcommands first, then each one's long options."""
    cases = [f'        "") words={_words(parser)} ;;']
    cases += [f"        {name}) words={_words(sub)} ;;" for name, sub in sorted(_subcommands(parser).items())]
    return SCRIPT.format(cases="\n".join(cases))


def run(args: argparse.Namespace) -> int:
    from splitsdk.cli.main import build_parser

    print(bash_script(build_parser()), end="")
    return 0
