"""The compiled cffi extension, with a clear message when it has not been built."""

from __future__ import annotations

try:
    from splitsdk._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "splitsdk._native (the C bit packing and frame codec) is not built: run `make setup` or "
        "`pip install --no-deps --no-build-isolation -e .` in the repository"
    ) from exc

__all__ = ["ffi", "lib"]
