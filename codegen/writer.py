"""The only code of the generator that touches disk: write a rendered project, changed files only.

Unchanged files keep their modification time, so CMake does not rebuild them. Each file is written to
a temporary name and renamed, so an interrupted run never leaves a half-written file.

The listing file `.splitsdk-generated` names every generated file with the SHA-256 of the content
splitsdk wrote (`sha256sum` format, so `sha256sum -c .splitsdk-generated` shows what was edited since).
It protects the user's work: a file whose content differs from what splitsdk last wrote (a hand edit, or a
user's own file at a generated path) is kept and reported, and a folder with files but no listing (not a
project splitsdk generated) is refused, unless `force`. Files an earlier generation wrote that the new
render lacks are removed when unedited; user files beside them are left alone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from splitsdk.errors import GenerateError

LISTING = ".splitsdk-generated"
EXECUTABLE_PREFIXES = ("deploy/S",)  # init scripts


@dataclass
class ProjectWrite:
    """What `write_files` did: paths written or removed, and edited/foreign files it kept (sorted)."""

    changed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def write_project(files: Mapping[str, str | bytes], dest: str | Path, force: bool = False) -> list[str]:
    """Write `files` under `dest`; returns the paths whose content changed (sorted). Files kept because
    they were edited since splitsdk wrote them are reported as a warning (see `write_files`)."""
    result = write_files(files, dest, force)
    if result.kept:
        warnings.warn(kept_message(result.kept), UserWarning, stacklevel=2)
    return result.changed


def kept_message(kept: list[str]) -> str:
    return (
        f"kept {len(kept)} file(s) that differ from what splitsdk last wrote (edited?): {', '.join(kept)}; "
        "--force overwrites them"
    )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_listing(root: Path) -> dict[str, str | None] | None:
    """path -> SHA-256 splitsdk wrote (None in a listing from before hashes); None without a listing."""
    listing = root / LISTING
    if not listing.is_file():
        return None
    recorded: dict[str, str | None] = {}
    for line in listing.read_text().splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            recorded[parts[1].strip()] = parts[0]
        elif parts:
            recorded[parts[0]] = None
    return recorded


def write_files(files: Mapping[str, str | bytes], dest: str | Path, force: bool = False) -> ProjectWrite:
    """Write `files` under `dest` without overwriting the user's work (unless `force`)."""
    root = Path(dest)
    if root.exists() and not root.is_dir():
        raise GenerateError(f"{root}: not a directory")
    recorded = read_listing(root)
    if recorded is None and not force and root.is_dir() and any(root.iterdir()):
        raise GenerateError(
            f"{root}: folder has files but no {LISTING} (not a project splitsdk generated); "
            "choose an empty or new folder, or --force to write into it"
        )
    previous = recorded or {}
    root.mkdir(parents=True, exist_ok=True)
    result = ProjectWrite()
    listed: dict[str, str] = {}
    for rel, content in sorted(files.items()):
        data = content.encode("utf-8") if isinstance(content, str) else content
        listed[rel] = digest(data)
        path = root / rel
        if path.is_file():
            current = path.read_bytes()
            if current == data:
                continue
            if not force and not _ours(rel, current, previous):
                result.kept.append(rel)
                continue
        _write(path, data, rel.startswith(EXECUTABLE_PREFIXES))
        result.changed.append(rel)
    for stale in sorted(set(previous) - set(files)):
        path = root / stale
        if not path.is_file():
            continue
        if force or _ours(stale, path.read_bytes(), previous):
            path.unlink()
            result.changed.append(stale)
        else:
            result.kept.append(stale)
    listing = "".join(f"{h}  {p}\n" for p, h in sorted(listed.items())).encode()
    if not (root / LISTING).is_file() or (root / LISTING).read_bytes() != listing:
        _write(root / LISTING, listing, False)
    result.changed.sort()
    result.kept.sort()
    return result


def _ours(rel: str, current: bytes, recorded: Mapping[str, str | None]) -> bool:
    """Whether the file on disk is what splitsdk last wrote there (a listing without hashes: trusted)."""
    if rel not in recorded:
        return False
    want = recorded[rel]
    return want is None or digest(current) == want


def _write(path: Path, data: bytes, executable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
