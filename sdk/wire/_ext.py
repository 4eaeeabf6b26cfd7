"""The compiled cffi extension, with a clear message when it has not been built."""

from __future__ import annotations

import ctypes

try:
    from splitsdk._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "splitsdk._native (the C bit packing and frame codec) is not built: run `make setup` or "
        "`pip install --no-deps --no-build-isolation -e .` in the repository"
    ) from exc

__all__ = ["ffi", "lib", "new_bytes"]

_bytes_from_size = ctypes.pythonapi.PyBytes_FromStringAndSize
_bytes_from_size.restype = ctypes.py_object
_bytes_from_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def new_bytes(size: int) -> bytes:
    """A fresh, uninitialised `bytes` of `size` bytes, for C to fill before anyone else sees it.

    CPython's own idiom for building a bytes object in place (PyBytes_FromStringAndSize(NULL, n)):
    no zero-filling and no copy out of a scratch buffer. The caller must write every byte.
    """
    return bytes(_bytes_from_size(None, size))
