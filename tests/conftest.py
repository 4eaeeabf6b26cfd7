"""Shared test set-up: quiet TensorFlow, isolate caches, make tests/ importable (model_zoo)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from splitsdk.cache import cache_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

# Downloads that `make setup` (host_tools/build_sysroot.py) and the first camera image put in the
# user's cache: every test's private cache links them, so they are shared, while everything a test
# computes (sensitivities, SCALE-Sim runs) stays its own.
SHARED_CACHE_DIRS = {name: cache_dir(name) for name in ("sysroot", "camera")}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own splitsdk cache directory: no state leaks between tests."""
    cache = tmp_path_factory.mktemp("cache")
    for name, shared in SHARED_CACHE_DIRS.items():
        shared.mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("SPLITSDK_CACHE", str(cache))
