"""Wire protocol: b-bit packing and the frame codec (Python side of the shared C in sdk/native).

`pack`/`unpack`/`requantize_lut`/`dequantize` implement DESIGN.md's "Bit packing" contract and
`encode`/`decode` its "Wire protocol"; both call the same C the generated edge app compiles.
"""

from __future__ import annotations

from splitsdk.wire.frame import (
    PREFIX_LEN,
    PROTOCOL_VERSION,
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
    TensorKind,
    WireTensor,
    crc32,
    decode,
    encode,
    peek,
)
from splitsdk.wire.packing import (
    build_lut,
    dequantize,
    pack,
    pack_hw,
    packed_size,
    requantize_lut,
    unpack,
    unpack_dequantize,
    unpack_hw,
)

# The names the brief uses for the codec.
encode_frame = encode
decode_frame = decode

__all__ = [
    "PREFIX_LEN",
    "PROTOCOL_VERSION",
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
    "TensorKind",
    "WireTensor",
    "build_lut",
    "crc32",
    "decode",
    "decode_frame",
    "dequantize",
    "encode",
    "encode_frame",
    "pack",
    "pack_hw",
    "packed_size",
    "peek",
    "requantize_lut",
    "unpack",
    "unpack_dequantize",
    "unpack_hw",
]
