"""The one cache directory of splitsdk: sysroots, camera userlands, sensitivities, SCALE-Sim runs.

`$SPLITSDK_CACHE`, else `$XDG_CACHE_HOME/splitsdk`, else `~/.cache/splitsdk`; each user of the cache
owns one sub-folder of it (`cache_dir("sysroot")`). The same rule from a checkout and from a wheel.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The splitsdk cache directory (it may not exist yet)."""
    env = os.environ.get("SPLITSDK_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "splitsdk"


def cache_dir(name: str) -> Path:
    """The sub-folder `name` of the cache, owned by one kind of cached data (it may not exist yet)."""
    return cache_root() / name
