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

# Downloads that `make setup` (host_tools/build_sysroot.py), the first camera image and the TFLite source
# (toolchain tflite-neon) put in the user's cache: every test's private cache links them, so they are
# shared, while everything a test computes (sensitivities, SCALE-Sim runs) stays its own.
SHARED_CACHE_DIRS = {name: cache_dir(name) for name in ("sysroot", "camera", "tflite")}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own splitsdk cache directory: no state leaks between tests."""
    cache = tmp_path_factory.mktemp("cache")
    for name, shared in SHARED_CACHE_DIRS.items():
        shared.mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("SPLITSDK_CACHE", str(cache))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module's folder for the shared example bundle and its firmware (edge_app_helpers); a test module
    may define its own `base`/`bundle` instead."""
    from edge_app_helpers import shared_dir

    return shared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(base: Path) -> Path:
    """The shared example bundle (edge_app_helpers.shared_bundle)."""
    from edge_app_helpers import shared_bundle

    return shared_bundle(base)
