"""The hand-written C shared by the cffi binding (`splitsdk._native`) and generated edge projects.

Not Python API beyond `source_files()` and `source_hash()`: code generation copies these files verbatim.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SOURCE_NAMES = ("splitpack.h", "splitpack.c", "splitframe.h", "splitframe.c", "splitcodec.h", "splitcodec.c")


def source_files() -> list[Path]:
    """Paths of the C sources and headers to copy into a generated project."""
    here = Path(__file__).resolve().parent
    return [here / name for name in SOURCE_NAMES]


def source_hash() -> str:
    """SHA-256 over the C sources; the cffi build bakes it in so a stale extension can be detected."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
