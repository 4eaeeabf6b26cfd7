"""Silence the C++ and print() chatter of TensorFlow and its converter at the file-descriptor level."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(stdout: bool = True, stderr: bool = True) -> Iterator[None]:
    """Redirect fds 1/2 to /dev/null inside the block (TF logs bypass Python's sys.stdout/stderr)."""
    fds = [fd for fd, on in ((1, stdout), (2, stderr)) if on]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
