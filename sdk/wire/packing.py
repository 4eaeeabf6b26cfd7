"""Bit packing, requantisation and dequantisation: thin numpy wrappers over the shared C core.

The C (sdk/native/splitpack.c) is the single implementation; these wrappers check arguments, size
the output arrays and hand raw buffers to it, so what the receiver does is exactly what the
generated edge app does. Outputs are never zero-filled or copied: C writes straight into a fresh
`bytes` / `np.empty` array, or into the caller's preallocated `out=` array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from splitsdk.errors import WireError
from splitsdk.wire._ext import ffi, lib, new_bytes

__all__ = [
    "build_lut",
    "dequantize",
    "pack",
    "pack_hw",
    "packed_size",
    "requantize_lut",
    "requantize_pack",
    "unpack",
    "unpack_dequantize",
    "unpack_hw",
]

_PLAIN: dict[tuple[int, int], np.dtype[Any]] = {
    (1, 8): np.dtype("<i1"),
    (1, 16): np.dtype("<i2"),
    (1, 32): np.dtype("<i4"),
    (2, 32): np.dtype("<f4"),
}

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def _check_bits(bits: int) -> None:
    if not 1 <= int(bits) <= 8:
        raise WireError(f"bits must be in 1..8, got {bits}")


def packed_size(n: int, bits: int) -> int:
    """Bytes that `n` codes of `bits` bits occupy on the wire: ceil(n * bits / 8)."""
    _check_bits(bits)
    return int(lib.sp_packed_size(n, bits))


def _codes(codes: npt.ArrayLike) -> U8:
    arr = np.ascontiguousarray(codes)
    if arr.dtype != np.uint8:
        raise WireError(f"codes must be uint8, got {arr.dtype}")
    return arr


def pack(codes: npt.ArrayLike, bits: int) -> bytes:
    """Pack uint8 codes (flattened in C order, i.e. NHWC "channel" layout), LSB-first, to bytes.

    Only the low `bits` bits of each code are kept.
    """
    arr = _codes(codes)
    out = new_bytes(packed_size(arr.size, bits))
    lib.sp_pack(ffi.from_buffer("uint8_t[]", arr), arr.size, bits, ffi.from_buffer("uint8_t[]", out), len(out))
    return out


def unpack(data: bytes | bytearray | memoryview, n: int, bits: int) -> U8:
    """Unpack `n` codes of `bits` bits from `data` into a new flat uint8 array."""
    need = packed_size(n, bits)
    if len(data) < need:
        raise WireError(f"{n} codes of {bits} bits need {need} bytes, got {len(data)}")
    out = np.empty(n, dtype=np.uint8)
    lib.sp_unpack(ffi.from_buffer(data), len(data), n, bits, ffi.from_buffer("uint8_t[]", out))
    return out


def pack_hw(codes: npt.ArrayLike, bits: int) -> bytes:
    """Pack an HWC code tensor in the paper's "height-width" layout (CHW order); benchmark only."""
    arr = _codes(codes)
    if arr.ndim != 3:
        raise WireError(f"height-width packing needs an HWC tensor, got shape {arr.shape}")
    h, w, c = arr.shape
    out = new_bytes(packed_size(arr.size, bits))
    lib.sp_pack_hw(ffi.from_buffer("uint8_t[]", arr), h, w, c, bits, ffi.from_buffer("uint8_t[]", out), len(out))
    return out


def unpack_hw(data: bytes | bytearray | memoryview, shape: tuple[int, int, int], bits: int) -> U8:
    """Inverse of `pack_hw`: returns the HWC code tensor."""
    h, w, c = shape
    need = packed_size(h * w * c, bits)
    if len(data) < need:
        raise WireError(f"{h}x{w}x{c} codes of {bits} bits need {need} bytes, got {len(data)}")
    out = np.empty((h, w, c), dtype=np.uint8)
    lib.sp_unpack_hw(ffi.from_buffer(data), len(data), h, w, c, bits, ffi.from_buffer("uint8_t[]", out))
    return out


def build_lut(in_scale: float, in_zero_point: int, scale: float, zero_point: int, bits: int) -> U8:
    """The 256-entry int8 -> b-bit code table; entry k is the code of int8 value k - 128.

    code = clamp(round_half_away((q - in_zp) * in_scale / scale) + zp, 0, 2^bits - 1).
    """
    _check_bits(bits)
    if not scale > 0:
        raise WireError(f"wire scale must be positive, got {scale}")
    lut = np.empty(256, dtype=np.uint8)
    lib.sp_build_lut(in_scale, in_zero_point, scale, zero_point, bits, ffi.from_buffer("uint8_t[]", lut))
    return lut


def _values_and_lut(values: npt.ArrayLike, lut: npt.ArrayLike) -> tuple[npt.NDArray[np.int8], U8]:
    arr = np.ascontiguousarray(values)
    if arr.dtype != np.int8:
        raise WireError(f"values must be int8, got {arr.dtype}")
    table = np.ascontiguousarray(lut, dtype=np.uint8)
    if table.shape != (256,):
        raise WireError(f"the LUT must have 256 entries, got shape {table.shape}")
    return arr, table


def requantize_lut(values: npt.ArrayLike, lut: npt.ArrayLike) -> U8:
    """Map int8 values to codes through a 256-entry LUT (same shape as `values`)."""
    arr, table = _values_and_lut(values, lut)
    out = np.empty(arr.shape, dtype=np.uint8)
    lib.sp_requantize_lut(
        ffi.from_buffer("int8_t[]", arr),
        arr.size,
        ffi.from_buffer("uint8_t[]", table),
        ffi.from_buffer("uint8_t[]", out),
    )
    return out


def requantize_pack(values: npt.ArrayLike, lut: npt.ArrayLike, bits: int) -> bytes:
    """`pack(requantize_lut(values, lut), bits)` in one pass, without the intermediate codes (the edge's path)."""
    arr, table = _values_and_lut(values, lut)
    out = new_bytes(packed_size(arr.size, bits))
    lib.sp_requantize_pack(
        ffi.from_buffer("int8_t[]", arr),
        arr.size,
        ffi.from_buffer("uint8_t[]", table),
        bits,
        ffi.from_buffer("uint8_t[]", out),
        len(out),
    )
    return out


def _float_out(out: F32 | None, shape: tuple[int, ...]) -> F32:
    """A new float32 array of `shape`, or the caller's `out` once checked to be one C can write."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != tuple(shape):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise WireError(f"out must be a float32 array of shape {tuple(shape)}, got {got}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise WireError("out must be C-contiguous and writeable")
    return out


def dequantize(codes: npt.ArrayLike, scale: float, zero_point: int, out: F32 | None = None) -> F32:
    """float32 (code - zero_point) * scale, same shape as `codes`; written into `out` when given."""
    arr = _codes(codes)
    dest = _float_out(out, arr.shape)
    lib.sp_dequantize(ffi.from_buffer("uint8_t[]", arr), arr.size, zero_point, scale, ffi.from_buffer("float[]", dest))
    return dest


def unpack_dequantize(
    data: bytes | bytearray | memoryview,
    shape: tuple[int, ...],
    bits: int,
    scale: float,
    zero_point: int,
    out: F32 | None = None,
) -> F32:
    """Unpack a packed tensor of `shape` and dequantise it in one pass (the receiver's path).

    With `out` (a C-contiguous float32 array of `shape`, e.g. a row of a preallocated batch) the
    values are written there and `out` is returned; nothing else is allocated.
    """
    n = int(np.prod(shape, dtype=np.int64))
    need = packed_size(n, bits)
    if len(data) < need:
        raise WireError(f"{n} codes of {bits} bits need {need} bytes, got {len(data)}")
    dest = _float_out(out, tuple(shape))
    lib.sp_unpack_dequantize(
        ffi.from_buffer(data), len(data), n, bits, zero_point, scale, ffi.from_buffer("float[]", dest)
    )
    return dest


def plain_to_float(
    payload: bytes | bytearray | memoryview, kind: int, bits: int, shape: tuple[int, ...], scale: float, zero_point: int
) -> F32:
    """Plain little-endian ints ((v - zero_point) * scale) or float32 values (as is) -> float32 array."""
    dtype = _PLAIN.get((int(kind), int(bits)))
    if dtype is None:
        raise WireError(f"no plain encoding for kind {kind} with {bits} bits")
    n = int(np.prod(shape, dtype=np.int64))
    if len(payload) != n * dtype.itemsize:
        raise WireError(f"{n} values of {bits} bits need {n * dtype.itemsize} bytes, got {len(payload)}")
    values = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if dtype.kind == "f":
        return values.astype(np.float32)
    return ((values.astype(np.float64) - zero_point) * np.float32(scale)).astype(np.float32)
