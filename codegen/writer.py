"""The only code of the generator that touches disk: write a rendered project, changed files only.

Unchanged files keep their modification time, so CMake does not rebuild them. Each file is written to
a temporary name and renamed, so an interrupted run never leaves a half-written file. Files that the
project held from an earlier generation but the new render lacks are removed (listed in a manifest
file), user files beside them are left alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

LISTING = ".splitsdk-generated"
EXECUTABLE_PREFIXES = ("deploy/S",)  # init scripts


def write_project(files: Mapping[str, str | bytes], dest: str | Path) -> list[str]:
    """Write `files` under `dest`; returns the paths whose content changed (sorted)."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    changed = [rel for rel, content in sorted(files.items()) if _write_if_changed(root / rel, content, rel)]
    listing = root / LISTING
    previous = set(listing.read_text().split()) if listing.is_file() else set()
    for stale in sorted(previous - set(files)):
        (root / stale).unlink(missing_ok=True)
        changed.append(stale)
    _write_if_changed(listing, "".join(f"{p}\n" for p in sorted(files)), LISTING)
    return sorted(changed)


def _write_if_changed(path: Path, content: str | bytes, rel: str) -> bool:
    data = content.encode("utf-8") if isinstance(content, str) else content
    executable = rel.startswith(EXECUTABLE_PREFIXES)
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        mode = 0o755 if executable else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
