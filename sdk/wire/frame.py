"""The frame codec of the wire protocol: Python messages <-> bytes through the shared C codec.

Messages are frozen dataclasses (`Hello`, `Frame`, `Result`, `Error`, `Stats`); `encode` and `decode` call
sp_encode / sp_decode in sdk/native/splitframe.c, which validate every length and limit before
touching the data. A decode failure raises `FrameError`, whose `status` is the C status code.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from splitsdk.errors import WireError
from splitsdk.wire._ext import ffi, lib

PROTOCOL_VERSION = int(lib.SP_VERSION)  # what encode writes; decode also reads MIN_PROTOCOL_VERSION on
MIN_PROTOCOL_VERSION = int(lib.SP_VERSION_MIN)
PREFIX_LEN = int(lib.SP_PREFIX_LEN)
PLAN_HASH_LEN = int(lib.SP_PLAN_HASH_LEN)
MAX_RANK = int(lib.SP_MAX_RANK)
MAX_DEVICE_ID = int(lib.SP_MAX_DEVICE_ID)


class MsgType(enum.IntEnum):
    HELLO = 1
    FRAME = 2
    RESULT = 3
    ERROR = 4
    STATS = 5


class TensorKind(enum.IntEnum):
    """How a tensor's payload is coded: packed b-bit codes, or plain signed ints / float32."""

    PACKED = 0
    INT = 1
    FLOAT = 2


class Codec(enum.IntEnum):
    """How a tensor's payload is compressed on the wire (protocol version 2; a version 1 frame is NONE)."""

    NONE = 0
    ZSTD = 1  # one zstd frame of the packed payload; decompressed bounded to the size kind/bits/dims imply
    JPEG = 2  # one baseline JPEG of a camera frame's uint8 pixels (PACKED 8-bit, dims H, W, C with C 1 or 3)


class DecodeStatus(enum.IntEnum):
    """The C codec's status codes (sp_status in splitframe.h)."""

    OK = 0
    TRUNCATED = 1
    MAGIC = 2
    VERSION = 3
    TYPE = 4
    TOO_LARGE = 5
    LENGTH = 6
    CRC = 7
    TENSORS = 8
    RANK = 9
    DIMS = 10
    BITS = 11
    PAYLOAD = 12
    SCALE = 13
    DEVICE_ID = 14
    SPACE = 15
    ARG = 16
    CODEC = 17  # a tensor codec this reader does not know
    INFLATE = 18  # a compressed payload that does not decompress to exactly the implied size (a bomb, a lie)
    ZSTD = 19  # a compressed payload that is not one valid zstd frame
    JPEG = 20  # a JPEG payload that is not one baseline JPEG of exactly the tensor's dims (the receiver decodes it)


class ErrorCode(enum.IntEnum):
    """Codes the receiver puts in ERROR messages."""

    BAD_FRAME = 1  # the frame failed to decode (message says why)
    PLAN_MISMATCH = 2  # HELLO's plan hash is not the bundle's
    PROTOCOL = 3  # a message out of order (FRAME before HELLO, ...)
    TENSOR_MISMATCH = 4  # tensors do not match the bundle's crossing tensors
    OVERLOADED = 5  # too many connections
    INTERNAL = 6  # the cloud model or the store failed
    SHUTTING_DOWN = 7


class FrameError(WireError):
    """A frame the codec refused; `status` says why (a DecodeStatus)."""

    def __init__(self, status: int, context: str = "") -> None:
        self.status = DecodeStatus(status) if status in DecodeStatus._value2member_map_ else status
        text = ffi.string(lib.sp_strerror(status)).decode()
        super().__init__(f"{context}: {text}" if context else text)


@dataclass(frozen=True)
class Limits:
    """Decoder limits, all checked before anything is allocated or read past the buffer."""

    max_frame_bytes: int = 64 * 1024 * 1024
    max_tensors: int = 16
    max_rank: int = MAX_RANK
    max_dim: int = 1 << 20
    max_elements: int = 1 << 26

    def to_c(self) -> Any:
        c = ffi.new("sp_limits *")
        c.max_frame_bytes = self.max_frame_bytes
        c.max_tensors = self.max_tensors
        c.max_rank = self.max_rank
        c.max_dim = self.max_dim
        c.max_elements = self.max_elements
        return c


@dataclass(frozen=True)
class WireTensor:
    """One crossing tensor on the wire: `payload` holds packed codes (PACKED) or plain LE values, or
    with `codec` ZSTD one zstd frame of them (`splitsdk.wire.inflate` gives the tensor uncompressed), with
    `codec` JPEG one baseline JPEG of a frame's pixels (`splitsdk.wire.decode_jpeg` decodes it, bounded)."""

    kind: TensorKind
    bits: int
    scale: float
    zero_point: int
    dims: tuple[int, ...]
    payload: bytes | memoryview  # bytes; a view of the received frame when decoded with copy=False
    codec: Codec = Codec.NONE

    @property
    def raw_size(self) -> int:
        """Bytes of the uncompressed payload, as kind, bits and dims imply (sp_payload_size); 0 if invalid."""
        c = ffi.new("sp_tensor *")
        if len(self.dims) > MAX_RANK:
            return 0
        c.kind, c.bits, c.rank = int(self.kind), self.bits, len(self.dims)
        for d, dim in enumerate(self.dims):
            c.dims[d] = dim
        return int(lib.sp_tensor_raw_size(c))


@dataclass(frozen=True)
class Hello:
    device_id: str
    plan_hash: str  # SHA-256 hex of the plan, as in the bundle manifest
    seq: int = 0
    timestamp_us: int = 0
    version: int = field(default=PROTOCOL_VERSION, compare=False)  # as decoded; what encode writes (1 or 2)


@dataclass(frozen=True)
class Frame:
    seq: int
    timestamp_us: int
    tensors: tuple[WireTensor, ...] = field(default_factory=tuple)
    split: int = 0  # which split of the bundle the tensors cross; 0 for a single-split bundle
    version: int = field(default=PROTOCOL_VERSION, compare=False)  # as decoded; what encode writes (1 or 2)


@dataclass(frozen=True)
class Result:
    seq: int
    status: int
    body: bytes
    timestamp_us: int = 0
    version: int = field(default=PROTOCOL_VERSION, compare=False)  # as decoded; what encode writes (1 or 2)


@dataclass(frozen=True)
class Error:
    seq: int
    code: int
    message: str
    timestamp_us: int = 0
    version: int = field(default=PROTOCOL_VERSION, compare=False)  # as decoded; what encode writes (1 or 2)


@dataclass(frozen=True)
class Stats:
    """The edge app's per-stage timings and counters as JSON text, sent once before it disconnects.

    The body has ERROR's layout with code 0; the codec does not parse the text (the receiver does).
    """

    json_text: str
    seq: int = 0
    timestamp_us: int = 0
    version: int = field(default=PROTOCOL_VERSION, compare=False)  # as decoded; what encode writes (1 or 2)

    def data(self) -> Any:
        """The parsed JSON; raises ValueError (json.JSONDecodeError) when the text is not JSON."""
        return json.loads(self.json_text)


Message = Hello | Frame | Result | Error | Stats
# Every message's `version` is the protocol version of its frame: decode sets it, encode writes it. It takes
# no part in equality. A receiver answers in the version of the camera's HELLO (replies have the same layout
# in both versions), so a camera that speaks version 1 keeps working; a version 1 FRAME has no split or codec.


def _fill_header(c: Any, msg: Message) -> None:
    if not MIN_PROTOCOL_VERSION <= msg.version <= PROTOCOL_VERSION:
        raise WireError(f"protocol version {msg.version} is not one this codec writes "
                        f"({MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION})")
    c.version = msg.version
    c.seq = msg.seq
    c.timestamp_us = msg.timestamp_us


def _flat_body(msg: Result | Error | Stats) -> tuple[bytes, MsgType, int]:
    """(body bytes, type, status/code) of the messages that share the status + length + bytes layout."""
    if isinstance(msg, Result):
        return msg.body, MsgType.RESULT, msg.status
    if isinstance(msg, Error):
        return msg.message.encode("utf-8", errors="surrogateescape"), MsgType.ERROR, msg.code
    return msg.json_text.encode("utf-8", errors="surrogateescape"), MsgType.STATS, 0


def encode(msg: Message) -> bytes:
    """Encode one message to a complete frame (header, body, CRC32)."""
    c = ffi.new("sp_message *")
    keep: list[Any] = []  # cffi buffers must outlive the sp_encode call
    try:
        _fill_header(c, msg)
    except OverflowError as exc:
        raise WireError(f"seq or timestamp out of range: {exc}") from None
    if isinstance(msg, Hello):
        c.type = MsgType.HELLO
        raw = bytes.fromhex(msg.plan_hash) if msg.plan_hash else b""
        if len(raw) != PLAN_HASH_LEN:
            raise WireError(f"plan hash must be {PLAN_HASH_LEN} bytes of hex, got {msg.plan_hash!r}")
        ffi.memmove(c.plan_hash, raw, PLAN_HASH_LEN)
        dev = msg.device_id.encode("utf-8", errors="surrogateescape")
        if len(dev) > MAX_DEVICE_ID:
            raise WireError(f"device id longer than {MAX_DEVICE_ID} bytes: {msg.device_id!r}")
        keep.append(ffi.from_buffer(dev))
        c.device_id = keep[-1]
        c.device_id_len = len(dev)
    elif isinstance(msg, Frame):
        c.type = MsgType.FRAME
        ts = ffi.new("sp_tensor[]", max(len(msg.tensors), 1))
        keep.append(ts)
        for i, t in enumerate(msg.tensors):
            if len(t.dims) > MAX_RANK:
                raise WireError(f"tensor {i}: rank {len(t.dims)} over {MAX_RANK}")
            ts[i].kind, ts[i].bits, ts[i].rank, ts[i].codec = int(t.kind), t.bits, len(t.dims), int(t.codec)
            ts[i].scale, ts[i].zero_point = t.scale, t.zero_point
            for d, dim in enumerate(t.dims):
                ts[i].dims[d] = dim
            keep.append(ffi.from_buffer(t.payload))
            ts[i].payload = keep[-1]
            ts[i].payload_len = len(t.payload)
        c.tensors = ts
        c.tensor_count = len(msg.tensors)
        if not 0 <= msg.split <= 0xFFFF:
            raise WireError(f"split {msg.split} out of range 0..65535")
        if msg.version < 2 and (msg.split or any(t.codec != Codec.NONE for t in msg.tensors)):
            raise WireError("a version 1 FRAME has no split and no compressed tensors")
        c.split = msg.split
    else:
        body, c.type, c.status = _flat_body(msg)
        keep.append(ffi.from_buffer(body))
        c.body = keep[-1]
        c.body_len = len(body)
    size = lib.sp_encoded_size(c)
    if size == 0:
        raise WireError(f"cannot encode {type(msg).__name__}: a field is invalid (kind/bits/dims/payload)")
    out = bytearray(size)
    written = ffi.new("size_t *")
    status = lib.sp_encode(c, ffi.from_buffer(out), size, written)
    if status != 0:
        raise FrameError(status, "encode")
    return bytes(out)


def peek(prefix: bytes | bytearray, limits: Limits = Limits()) -> tuple[int, MsgType]:
    """Validate a frame's first PREFIX_LEN bytes; returns (frame length, type) or raises FrameError."""
    flen = ffi.new("uint32_t *")
    mtype = ffi.new("uint8_t *")
    status = lib.sp_frame_peek(ffi.from_buffer(prefix), len(prefix), limits.to_c(), flen, mtype)
    if status != 0:
        raise FrameError(status)
    return int(flen[0]), MsgType(mtype[0])


_C_LIMITS: dict[Limits, Any] = {}  # each Limits' C struct, built once (a receiver decodes with one)


def _c_limits(limits: Limits) -> Any:
    c = _C_LIMITS.get(limits)
    if c is None:
        if len(_C_LIMITS) > 64:
            _C_LIMITS.clear()
        c = _C_LIMITS[limits] = limits.to_c()
    return c


def decode(buf: bytes | bytearray | memoryview, limits: Limits = Limits(), *, copy: bool = True) -> tuple[Message, int]:
    """Decode the frame at the start of `buf`; returns (message, bytes consumed).

    With `copy=False` a FRAME's tensor payloads are memoryviews of `buf` instead of copies (the
    receiver's path: a received frame's codes go to the batch without being copied); `buf` must then
    not change while they are in use (pass `bytes`).
    """
    c = ffi.new("sp_message *")
    cap = max(1, min(limits.max_tensors, 0xFFFF))
    tensors = ffi.new("sp_tensor[]", cap)
    c.tensors = tensors
    c.tensor_capacity = cap
    consumed = ffi.new("size_t *")
    base = ffi.from_buffer(buf)
    status = lib.sp_decode(base, len(buf), _c_limits(limits), c, consumed)
    if status != 0:
        raise FrameError(status)
    view = memoryview(buf).cast("B")
    start = int(ffi.cast("uintptr_t", base))

    def span(ptr: Any, n: int) -> bytes:
        if n == 0:
            return b""
        off = int(ffi.cast("uintptr_t", ptr)) - start
        return bytes(view[off : off + n])

    def payload(ptr: Any, n: int) -> bytes | memoryview:
        if copy:
            return span(ptr, n)
        off = int(ffi.cast("uintptr_t", ptr)) - start
        return view[off : off + n]

    seq, ts, version = int(c.seq), int(c.timestamp_us), int(c.version)
    msg: Message
    if c.type == MsgType.HELLO:
        device = span(c.device_id, c.device_id_len).decode("utf-8", errors="surrogateescape")
        msg = Hello(device, bytes(ffi.buffer(c.plan_hash, PLAN_HASH_LEN)).hex(), seq, ts, version)
    elif c.type == MsgType.FRAME:
        items = []
        for i in range(c.tensor_count):
            t = tensors[i]
            items.append(
                WireTensor(
                    TensorKind(t.kind),
                    int(t.bits),
                    float(t.scale),
                    int(t.zero_point),
                    tuple(t.dims[0 : t.rank]),
                    payload(t.payload, t.payload_len),
                    Codec(t.codec),  # the decoder refuses any other codec (CODEC)
                )
            )
        msg = Frame(seq, ts, tuple(items), int(c.split), version)
    elif c.type == MsgType.RESULT:
        msg = Result(seq, int(c.status), span(c.body, c.body_len), ts, version)
    elif c.type == MsgType.ERROR:
        msg = Error(seq, int(c.status), span(c.body, c.body_len).decode("utf-8", errors="surrogateescape"), ts, version)
    else:
        msg = Stats(span(c.body, c.body_len).decode("utf-8", errors="surrogateescape"), seq, ts, version)
    return msg, int(consumed[0])


def crc32(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The codec's CRC32 (equal to zlib.crc32)."""
    return int(lib.sp_crc32(crc, ffi.from_buffer(data), len(data)))


def tensor_to_float(tensor: WireTensor, shape: tuple[int, ...]) -> Any:
    """A received tensor as float32 of `shape`: packed codes unpacked and dequantised by the C core,
    plain ints dequantised, float32 taken as is; a compressed payload is decompressed first (bounded to
    the size the dims imply). The decoder has already checked the payload size."""
    from splitsdk.wire.compression import inflate
    from splitsdk.wire.packing import plain_to_float, unpack_dequantize

    tensor = inflate(tensor)
    if tensor.kind == TensorKind.PACKED:
        return unpack_dequantize(tensor.payload, shape, tensor.bits, tensor.scale, tensor.zero_point)
    return plain_to_float(tensor.payload, tensor.kind, tensor.bits, shape, tensor.scale, tensor.zero_point)
