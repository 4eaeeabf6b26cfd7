"""A deterministic initramfs writer: the cpio "newc" format the kernel unpacks, gzip with mtime 0.

Written here rather than with the `cpio` tool so that entries are root-owned and dated 0 without
root privileges or fakeroot, and the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # without a leading slash
    mode: int  # full st_mode (type | permissions)
    data: bytes = b""  # file content, or a symlink's target


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def newc(entries: list[Entry]) -> bytes:
    """The archive: parent directories first (sorted by path), then the trailer."""
    out = bytearray()
    for ino, e in enumerate([*sorted(entries, key=lambda e: e.path), Entry("TRAILER!!!", 0)], start=1):
        name = e.path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(e.mode) else 1
        fields = [ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, 0, 0, len(name), 0]
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        out += header + name + _pad(len(header) + len(name)) + e.data + _pad(len(e.data))
    return bytes(out)


def initramfs(entries: list[Entry]) -> bytes:
    return gzip.compress(newc(entries), compresslevel=6, mtime=0)
