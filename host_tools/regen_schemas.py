#!/usr/bin/env python3
"""Rewrite sdk/schemas/*.schema.json (plan.json, manifest.json) from their dataclasses.

Run after changing `splitsdk.plan.schema.Plan` or `splitsdk.wire.bundle.Manifest`; the test suite fails
while the shipped schemas differ from what the classes give. `--check` only reports the drift (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from splitsdk.schemas import generated

SCHEMAS = Path(__file__).resolve().parent.parent / "sdk" / "schemas"


def drift(folder: Path = SCHEMAS) -> list[str]:
    """The schema files in `folder` that differ from the classes (or are missing)."""
    return sorted(
        name for name, text in generated().items()
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text
    )


def main(argv: list[str]) -> int:
    stale = drift()
    if "--check" in argv:
        for name in stale:
            print(f"sdk/schemas/{name}: out of date: run host_tools/regen_schemas.py", file=sys.stderr)
        return 1 if stale else 0
    for name, text in generated().items():
        if name in stale:
            (SCHEMAS / name).write_text(text, encoding="utf-8")
            print(f"sdk/schemas/{name}: rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
