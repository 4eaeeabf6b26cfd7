"""Output folders without losing a user's files.

A folder splitsdk writes as a whole (a bundle, a firmware) carries a marker file of its own. An existing
folder without the marker is someone else's: it is refused unless `force`. A new output is assembled in a
temporary sibling and swapped in by renames, so a failure at any point leaves the old output as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from splitsdk.errors import SplitSdkError


def check_replaceable(dest: Path, marker: str, what: str, error: type[SplitSdkError], force: bool = False) -> None:
    """Refuse (`error`) to replace `dest` when it exists and is not a `what` splitsdk wrote (no `marker` in it),
    unless `force`. An empty folder is free to use."""
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise error(f"{dest}: exists and is not a folder; choose another output")
    if force or (dest / marker).is_file() or not any(dest.iterdir()):
        return
    raise error(
        f"{dest}: folder has files but is not a {what} splitsdk wrote (no {marker}); "
        "choose a new folder, or --force to replace it"
    )


def replace_dir(new: Path, dest: Path) -> None:
    """Put the finished folder `new` at `dest` (same file system), replacing an old `dest`: the old one is
    renamed aside first and deleted only once `new` is in place (restored if that fails)."""
    if not dest.exists():
        os.replace(new, dest)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    old = aside / "old"
    os.replace(dest, old)
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(old, dest)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
