"""The hand-written C shared by the cffi binding (`splitsdk._native`) and generated edge projects.

Not Python API beyond `source_files()`: code generation copies these files verbatim.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_NAMES = ("splitpack.h", "splitpack.c", "splitframe.h", "splitframe.c")


def source_files() -> list[Path]:
    """Paths of the C sources and headers to copy into a generated project."""
    here = Path(__file__).resolve().parent
    return [here / name for name in SOURCE_NAMES]
