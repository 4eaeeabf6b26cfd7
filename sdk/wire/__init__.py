"""Wire protocol: b-bit packing and the frame codec (Python side of the shared C in sdk/native).

`pack`/`unpack`/`requantize_lut`/`dequantize` implement the "Bit packing" contract of docs/wire-protocol.md and
`encode`/`decode` its "Frames", `compress`/`decompress` (and `deflate`/`inflate` of a tensor) its
compressed payloads, `encode_jpeg`/`decode_jpeg` its JPEG camera frames; all but JPEG call the same C the
generated edge app compiles (JPEG: Pillow's libjpeg-turbo, which writes the edge app's bytes).
"""

from __future__ import annotations

import warnings

from splitsdk import native as _native_sources
from splitsdk.wire._ext import ffi as _ffi
from splitsdk.wire._ext import lib as _lib
from splitsdk.wire.compression import compress, decode_jpeg, decompress, deflate, encode_jpeg, inflate
from splitsdk.wire.frame import (
    MIN_PROTOCOL_VERSION,
    PREFIX_LEN,
    PROTOCOL_VERSION,
    Codec,
    DecodeStatus,
    Error,
    ErrorCode,
    Frame,
    FrameError,
    Hello,
    Limits,
    Message,
    MsgType,
    Result,
    Stats,
    TensorKind,
    WireTensor,
    crc32,
    decode,
    encode,
    peek,
    tensor_to_float,
)
from splitsdk.wire.packing import (
    build_lut,
    dequantize,
    pack,
    pack_hw,
    packed_size,
    plain_to_float,
    requantize_lut,
    unpack,
    unpack_dequantize,
    unpack_hw,
)


def _check_extension_is_current() -> None:
    """Warn when the compiled extension is older than the C sources (an editable install not rebuilt)."""
    built = _ffi.string(_lib.splitsdk_native_hash()).decode()
    try:
        current = _native_sources.source_hash()
    except OSError:  # sources not shipped next to the package: nothing to compare
        return
    if current != built:
        warnings.warn(
            "splitsdk._native was built from other C sources than sdk/native holds now: rebuild it with "
            "`pip install --no-deps --no-build-isolation -e .` (make setup)",
            RuntimeWarning,
            stacklevel=3,
        )


_check_extension_is_current()

# The names the codec is also known by.
encode_frame = encode
decode_frame = decode

__all__ = [
    "MIN_PROTOCOL_VERSION",
    "PREFIX_LEN",
    "PROTOCOL_VERSION",
    "Codec",
    "DecodeStatus",
    "Error",
    "ErrorCode",
    "Frame",
    "FrameError",
    "Hello",
    "Limits",
    "Message",
    "MsgType",
    "Result",
    "Stats",
    "TensorKind",
    "WireTensor",
    "build_lut",
    "compress",
    "crc32",
    "decode",
    "decode_frame",
    "decode_jpeg",
    "decompress",
    "deflate",
    "dequantize",
    "encode",
    "encode_frame",
    "encode_jpeg",
    "inflate",
    "pack",
    "pack_hw",
    "packed_size",
    "peek",
    "plain_to_float",
    "requantize_lut",
    "tensor_to_float",
    "unpack",
    "unpack_dequantize",
    "unpack_hw",
]
