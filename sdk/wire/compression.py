"""zstd compression of crossing-tensor payloads, through the shared C (sdk/native/splitcodec.c).

`compress`/`decompress` are the raw codec; `deflate`/`inflate` turn a `WireTensor` into its compressed
(codec ZSTD) form and back. Decompression is always bounded: the caller gives the exact size the
payload must decompress to (for a tensor, the size its kind, bits and dims imply), and a frame that
declares or produces anything else is refused with `FrameError` (INFLATE, a decompression bomb or a
lying header; ZSTD, not one valid zstd frame) before more than that size is allocated.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from splitsdk.errors import WireError
from splitsdk.wire._ext import ffi, lib, new_bytes
from splitsdk.wire.frame import Codec, DecodeStatus, FrameError, WireTensor

DEFAULT_LEVEL = int(lib.SP_ZSTD_LEVEL)
_contexts = threading.local()  # one zstd context of each kind per thread, reused (zstd's working memory)


def _cctx() -> Any:
    ctx = getattr(_contexts, "cctx", None)
    if ctx is None:
        ctx = _contexts.cctx = ffi.gc(lib.sp_zstd_cctx_new(), lib.sp_zstd_cctx_free)
    return ctx


def _dctx() -> Any:
    ctx = getattr(_contexts, "dctx", None)
    if ctx is None:
        ctx = _contexts.dctx = ffi.gc(lib.sp_zstd_dctx_new(), lib.sp_zstd_dctx_free)
    return ctx


def compress(data: bytes | bytearray | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """One zstd frame of `data` (its content size declared), at `level` (1..19), as the edge app writes it."""
    view = memoryview(data).cast("B")
    cap = int(lib.sp_compress_bound(len(view)))
    out = bytearray(cap)
    written = ffi.new("size_t *")
    status = lib.sp_compress(_cctx(), ffi.from_buffer(view), len(view), level, ffi.from_buffer(out), cap, written)
    if status == DecodeStatus.ARG:
        raise WireError(f"zstd level {level} is out of range 1..19")
    if status != 0:
        raise FrameError(status, "compress")
    return bytes(memoryview(out)[: written[0]])


def decompress(data: bytes | bytearray | memoryview, size: int) -> bytes:
    """The `size` bytes the zstd frame `data` holds; FrameError (INFLATE or ZSTD) if it holds anything else.

    Nothing larger than `size` is allocated and nothing is written past it, whatever the frame declares."""
    if size <= 0:
        raise WireError(f"decompressed size must be positive, got {size}")
    view = memoryview(data).cast("B")
    out = new_bytes(size)  # filled completely by sp_decompress on success; dropped otherwise
    status = lib.sp_decompress(_dctx(), ffi.from_buffer(view), len(view), ffi.from_buffer("uint8_t[]", out), size)
    if status != 0:
        raise FrameError(status, "decompress")
    return out


def deflate(tensor: WireTensor, level: int = DEFAULT_LEVEL) -> WireTensor:
    """`tensor` with its payload compressed (codec ZSTD); a tensor already compressed is returned as is."""
    if tensor.codec == Codec.ZSTD:
        return tensor
    return dataclasses.replace(tensor, payload=compress(tensor.payload, level), codec=Codec.ZSTD)


def inflate(tensor: WireTensor) -> WireTensor:
    """`tensor` uncompressed (codec NONE): a ZSTD payload decompressed into exactly the size its kind, bits
    and dims imply, or FrameError; an uncompressed tensor is returned as is."""
    if tensor.codec == Codec.NONE:
        return tensor
    size = tensor.raw_size
    if size == 0:
        raise FrameError(DecodeStatus.BITS, "decompress")
    return dataclasses.replace(tensor, payload=decompress(tensor.payload, size), codec=Codec.NONE)
