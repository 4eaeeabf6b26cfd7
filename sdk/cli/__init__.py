"""The `splitsdk` command line. Not API: import from `splitsdk` instead.

Each subcommand is a module here with `register(subparsers)`; it parses and calls one library
function. Add a subcommand by adding its module name to `COMMANDS` in main.py.
"""
