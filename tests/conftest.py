"""Shared test set-up: quiet TensorFlow, isolate caches, make tests/ importable (model_zoo)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own splitsdk cache directory: no state leaks between tests."""
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path_factory.mktemp("cache")))
