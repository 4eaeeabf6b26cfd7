"""zstd compression of crossing-tensor payloads, through the shared C (sdk/native/splitcodec.c).

`compress`/`decompress` are the raw codec; `deflate`/`inflate` turn a `WireTensor` into its compressed
(codec ZSTD) form and back. Decompression is always bounded: the caller gives the exact size the
payload must decompress to (for a tensor, the size its kind, bits and dims imply), and a frame that
declares or produces anything else is refused with `FrameError` (INFLATE, a decompression bomb or a
lying header; ZSTD, not one valid zstd frame) before more than that size is allocated.

A camera frame may also cross as a JPEG (codec JPEG, CLOUD_ONLY bundles): `encode_jpeg` writes it as the edge
app's libjpeg-turbo does (baseline, libjpeg's default Huffman tables, 4:2:0 colour or 1x1 greyscale; Pillow's
libjpeg-turbo gives the same bytes), `decode_jpeg` reads it back bounded: the header is read first and must
declare exactly the tensor's height, width and components, baseline, before any pixel is decoded, so the
pixels never take more than the dims imply (JPEG: a corrupt, truncated, progressive or mismatched JPEG).
`to_pixels`/`from_pixels` are the edge app's mapping between 8-bit pixels and the model input
(real = pixel * scale + offset, the bundle's `InputSpec`).
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from splitsdk.errors import WireError
from splitsdk.wire._ext import ffi, lib, new_bytes
from splitsdk.wire.frame import Codec, DecodeStatus, FrameError, TensorKind, WireTensor

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
    and dims imply, a JPEG payload decoded into its H x W x C pixels (8-bit codes, `decode_jpeg`), or
    FrameError; an uncompressed tensor is returned as is."""
    if tensor.codec == Codec.NONE:
        return tensor
    if tensor.codec == Codec.JPEG:
        if tensor.kind != TensorKind.PACKED or tensor.bits != 8:
            raise FrameError(DecodeStatus.BITS, "JPEG")
        return dataclasses.replace(tensor, payload=decode_jpeg(tensor.payload, tensor.dims).tobytes(),
                                   codec=Codec.NONE)
    size = tensor.raw_size
    if size == 0:
        raise FrameError(DecodeStatus.BITS, "decompress")
    return dataclasses.replace(tensor, payload=decompress(tensor.payload, size), codec=Codec.NONE)


# ---- JPEG camera frames ----

JPEG_CHANNELS = (1, 3)
_SUBSAMPLING_420 = 2  # Pillow's code for 4:2:0
_MODES = {1: "L", 3: "RGB"}


def encode_jpeg(pixels: npt.NDArray[np.uint8], quality: int) -> bytes:
    """One HWC uint8 frame (1 or 3 channels) as a baseline JPEG at `quality` 1..100: 4:2:0 colour, greyscale
    sampled 1x1 (libjpeg's defaults, as the edge app's encoder uses them), no Huffman optimisation."""
    from PIL import Image

    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] not in JPEG_CHANNELS:
        raise WireError(f"JPEG frames are HxWx1 or HxWx3 uint8 pixels, got {pixels.dtype}{list(pixels.shape)}")
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise WireError(f"JPEG quality must be an integer 1..100, got {quality!r}")
    buf = io.BytesIO()
    if pixels.shape[-1] == 1:  # libjpeg's greyscale default: one component sampled 1x1 (Pillow's 4:2:0 writes 2x2)
        Image.fromarray(pixels[..., 0], "L").save(buf, "JPEG", quality=int(quality), optimize=False,
                                                  progressive=False)
    else:
        Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=int(quality), subsampling=_SUBSAMPLING_420,
                                            optimize=False, progressive=False)
    return buf.getvalue()


def decode_jpeg(data: bytes | bytearray | memoryview, dims: Sequence[int]) -> npt.NDArray[np.uint8]:
    """The H x W x C uint8 pixels of the baseline JPEG `data`, `dims` = (H, W, C) with C 1 or 3; FrameError (JPEG)
    for anything else. The header is checked against `dims` before a pixel is decoded (Pillow opens lazily), so
    no more than H*W*C bytes of pixels are ever allocated; a truncated or corrupt scan is refused too."""
    from PIL import Image, UnidentifiedImageError

    if len(dims) != 3 or dims[2] not in JPEG_CHANNELS:
        raise FrameError(DecodeStatus.DIMS, "JPEG")
    height, width, channels = (int(d) for d in dims)
    try:
        with Image.open(io.BytesIO(bytes(data)), formats=["JPEG"]) as image:
            if (image.format != "JPEG" or image.size != (width, height) or image.mode != _MODES[channels]
                    or "progressive" in image.info or "progression" in image.info):
                got = f"{image.size[1]}x{image.size[0]} {image.mode}" + (
                    " progressive" if "progressive" in image.info else "")
                raise _JpegRefused(f"a {got} JPEG where {height}x{width} {_MODES[channels]} baseline is expected")
            image.load()
            pixels = np.asarray(image, dtype=np.uint8)
    except _JpegRefused as exc:
        raise FrameError(DecodeStatus.JPEG, f"JPEG: {exc}") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise FrameError(DecodeStatus.JPEG, f"JPEG: {exc}") from None
    if pixels.shape[:2] != (height, width):  # Pillow already guarantees it; the bound must not rest on that alone
        raise FrameError(DecodeStatus.JPEG, "JPEG")
    return pixels.reshape(height, width, channels)


class _JpegRefused(Exception):
    """A JPEG header that does not declare the tensor's image."""


def to_pixels(real: npt.ArrayLike, scale: float, offset: float) -> npt.NDArray[np.uint8]:
    """The 8-bit pixels the edge app maps to the model input `real` (the inverse of `from_pixels`: rounded to
    nearest in float64, clipped to 0..255; the edge app computes it the same way)."""
    px = np.rint((np.asarray(real, dtype=np.float64) - offset) / scale)
    return np.clip(px, 0, 255).astype(np.uint8)


def from_pixels(pixels: npt.NDArray[np.uint8], scale: float, offset: float) -> npt.NDArray[np.float32]:
    """The model input the edge app makes from 8-bit pixels: pixel * scale + offset, in float32."""
    return (pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)
