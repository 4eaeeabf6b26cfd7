"""TensorFlow imported on first use, with its start-up chatter silenced.

TF prints C++ start-up logs on import that no setting turns off, and the CLI's contract is one clear line
on stderr per error. Importing it up front cost every command seconds, error paths and `--help` included;
this import hook instead silences stderr around the one moment TF is really imported, by whichever
library function first needs it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from splitsdk.quiet import quiet

LOUD_MODULES = frozenset({"tensorflow"})
log = logging.getLogger("splitsdk.cli")


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's module code with stderr redirected to /dev/null."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        start = time.perf_counter()
        with quiet(stdout=False):
            self._inner.exec_module(module)
        log.debug("imported %s in %.1f s (its start-up logs silenced)", module.__name__, time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:  # get_data, is_package, resource readers...
        return getattr(self._inner, name)


class QuietImports(importlib.abc.MetaPathFinder):
    """A meta-path finder that wraps the loader of LOUD_MODULES (top-level names) in `_QuietLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in LOUD_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Silence the first import of TensorFlow in this process (idempotent; no-op once it is imported)."""
    if any(isinstance(f, QuietImports) for f in sys.meta_path) or LOUD_MODULES <= set(sys.modules):
        return
    sys.meta_path.insert(0, QuietImports())
