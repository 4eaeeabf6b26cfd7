"""Frame codec: round trips of every message type, and a decoder that never crashes on garbage."""

from __future__ import annotations

import dataclasses
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitsdk import wire
from splitsdk.wire import Codec, DecodeStatus, FrameError, TensorKind, WireTensor
from splitsdk.wire.frame import MsgType, Stats

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
scales = st.floats(2.0**-100, 2.0**100, width=32)


@st.composite
def tensors(draw: st.DrawFn) -> WireTensor:
    kind = draw(st.sampled_from(list(TensorKind)))
    bits = {
        TensorKind.PACKED: draw(st.integers(1, 8)),
        TensorKind.INT: draw(st.sampled_from([8, 16, 32])),
        TensorKind.FLOAT: 32,
    }[kind]
    dims = tuple(draw(st.lists(st.integers(1, 7), max_size=4)))
    n = 1
    for d in dims:
        n *= d
    size = (n * bits + 7) // 8 if kind == TensorKind.PACKED else n * bits // 8
    codec = draw(st.sampled_from(list(Codec)))
    if codec == Codec.JPEG:  # an image's pixels: PACKED 8-bit, dims H, W, C with C 1 or 3
        kind, bits = TensorKind.PACKED, 8
        dims = (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.sampled_from([1, 3])))
    # a compressed payload is any non-empty bytes to the frame codec (splitcodec checks its content)
    sizes = (size, size) if codec == Codec.NONE else (1, 40)
    payload = draw(st.binary(min_size=sizes[0], max_size=sizes[1]))
    return WireTensor(kind, bits, draw(scales), draw(st.integers(-(2**31), 2**31 - 1)), dims, payload, codec)


messages = st.one_of(
    st.builds(wire.Hello, st.text(max_size=20), st.binary(min_size=32, max_size=32).map(bytes.hex), u64, i64),
    st.builds(wire.Frame, u64, i64, st.lists(tensors(), max_size=4).map(tuple), st.integers(0, 65535)),
    st.builds(wire.Result, u64, st.integers(0, 65535), st.binary(max_size=64), i64),
    st.builds(wire.Error, u64, st.integers(0, 65535), st.text(max_size=40), i64),
    st.builds(Stats, st.text(max_size=40), u64, i64),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(msg=messages)
def test_codec_round_trip(msg: wire.Message) -> None:
    data = wire.encode(msg)
    back, consumed = wire.decode(data + b"trailing bytes of the next frame")
    assert consumed == len(data)
    assert back == msg
    assert int.from_bytes(data[-4:], "little") == zlib.crc32(data[:-4]) == wire.crc32(data[:-4])
    length, mtype = wire.peek(data[: wire.PREFIX_LEN])
    assert length == len(data) and mtype.name == type(msg).__name__.upper()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.binary(max_size=300))
def test_decoder_never_crashes_on_random_bytes(data: bytes) -> None:
    try:
        wire.decode(data)
    except FrameError:
        pass


def _refresh_crc(data: bytearray) -> bytes:
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    msg=messages,
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    fix_crc=st.booleans(),
)
def test_decoder_never_crashes_on_mutated_frames(
    msg: wire.Message, edits: list[tuple[int, int]], fix_crc: bool
) -> None:
    data = bytearray(wire.encode(msg))
    for pos, val in edits:
        data[pos % len(data)] = val
    blob = _refresh_crc(data) if fix_crc else bytes(data)
    try:
        back, consumed = wire.decode(blob)
    except FrameError:
        return
    # whatever decodes must re-encode to a frame of the same length
    assert len(wire.encode(back)) == consumed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(msg=messages, cut=st.integers(0, 10_000))
def test_every_truncation_is_refused(msg: wire.Message, cut: int) -> None:
    data = wire.encode(msg)
    with pytest.raises(FrameError):
        wire.decode(data[: cut % len(data)])


def _frame(dims: tuple[int, ...], bits: int = 4) -> bytes:
    n = 1
    for d in dims:
        n *= d
    return wire.encode(
        wire.Frame(1, 2, (WireTensor(TensorKind.PACKED, bits, 0.1, 3, dims, bytes((n * bits + 7) // 8)),))
    )


def _set(data: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    return _refresh_crc(out)


# Offsets in a one-tensor FRAME: header 28, count 2, split 2, then kind, bits, rank, codec, scale, zp, dims.
T0 = 32


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda d: d[:10], DecodeStatus.TRUNCATED),
        (lambda d: b"XXXX" + d[4:], DecodeStatus.MAGIC),
        (lambda d: _set(d, 4, b"\x03"), DecodeStatus.VERSION),
        (lambda d: _set(d, 4, b"\x00"), DecodeStatus.VERSION),
        (lambda d: _set(d, T0 + 3, b"\x03"), DecodeStatus.CODEC),
        (lambda d: _set(_set(d, T0 + 3, b"\x01"), T0 + 24, bytes(4)), DecodeStatus.PAYLOAD),  # empty zstd
        (lambda d: d[:5] + b"\x09" + d[6:], DecodeStatus.TYPE),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), DecodeStatus.CRC),
        (lambda d: _set(d, 8, (2**31).to_bytes(4, "little")), DecodeStatus.TOO_LARGE),
        (lambda d: _set(d, T0 + 2, b"\x09"), DecodeStatus.RANK),
        (lambda d: _set(d, T0 + 12, (2**30).to_bytes(4, "little")), DecodeStatus.DIMS),
        (lambda d: _set(d, T0 + 12, (0).to_bytes(4, "little")), DecodeStatus.DIMS),
        (lambda d: _set(d, T0 + 1, b"\x09"), DecodeStatus.BITS),
        (lambda d: _set(d, T0 + 1, b"\x05"), DecodeStatus.PAYLOAD),
        (lambda d: _set(d, T0 + 4, b"\x00\x00\xc0\x7f"), DecodeStatus.SCALE),
        (lambda d: _set(d, 28, b"\x20\x00"), DecodeStatus.TENSORS),
        (lambda d: _set(d + b"\0\0\0\0", 8, (len(d) + 4).to_bytes(4, "little")), DecodeStatus.LENGTH),
    ],
)
def test_each_malformation_gets_its_status(mutate: object, status: DecodeStatus) -> None:
    data = mutate(_frame((2, 3, 5)))  # type: ignore[operator]
    with pytest.raises(FrameError) as info:
        wire.decode(data)
    assert info.value.status == status


def test_limits_are_enforced_from_the_prefix() -> None:
    data = _frame((4, 4, 4))
    with pytest.raises(FrameError) as info:
        wire.peek(data[: wire.PREFIX_LEN], wire.Limits(max_frame_bytes=40))
    assert info.value.status == DecodeStatus.TOO_LARGE
    with pytest.raises(FrameError) as info:
        wire.decode(data, wire.Limits(max_elements=63))
    assert info.value.status == DecodeStatus.DIMS
    with pytest.raises(FrameError) as info:
        wire.decode(data, wire.Limits(max_rank=2))
    assert info.value.status == DecodeStatus.RANK


@pytest.mark.parametrize(
    "msg",
    [
        wire.Hello("x" * 200, "ab" * 32),
        wire.Hello("cam", "abcd"),
        wire.Frame(1, 2, (WireTensor(TensorKind.PACKED, 4, 0.1, 0, (3,), b"\0"),)),
        wire.Frame(1, 2, (WireTensor(TensorKind.INT, 12, 0.1, 0, (3,), b"\0" * 5),)),
        wire.Frame(1, 2, (WireTensor(TensorKind.FLOAT, 32, -1.0, 0, (1,), b"\0" * 4),)),
        wire.Frame(-1, 2),
    ],
)
def test_invalid_messages_are_not_encoded(msg: wire.Message) -> None:
    with pytest.raises(wire.FrameError.__mro__[1]):
        wire.encode(msg)


def test_stats_round_trip_and_layout() -> None:
    """STATS has ERROR's body layout with code 0: u16 code, u16 reserved, u32 length, UTF-8 text."""
    text = '{"stages": {"capture": {"n": 2, "mean_ms": 1.5}}, "sent": 2}'
    data = wire.encode(Stats(text, 7, 1234))
    assert data[5] == MsgType.STATS == 5
    assert data[28:32] == b"\0\0\0\0"
    assert int.from_bytes(data[32:36], "little") == len(text)
    msg, used = wire.decode(data)
    assert used == len(data)
    assert msg == Stats(text, 7, 1234)
    assert isinstance(msg, Stats) and msg.data()["stages"]["capture"]["n"] == 2
    assert wire.peek(data[: wire.PREFIX_LEN]) == (len(data), MsgType.STATS)
    # a text length past the frame's end is refused before anything is read
    with pytest.raises(FrameError) as info:
        wire.decode(_set(data, 32, (len(text) + 1).to_bytes(4, "little")))
    assert info.value.status == DecodeStatus.LENGTH
    with pytest.raises(FrameError) as info:
        wire.decode(_set(data, 5, b"\x06"))
    assert info.value.status == DecodeStatus.TYPE


def test_decode_without_copy_gives_views_of_the_frame() -> None:
    t = WireTensor(TensorKind.PACKED, 4, 0.5, 3, (2, 3), bytes(range(3)))
    data = wire.encode(wire.Frame(7, 8, (t, t)))
    copied, _ = wire.decode(data)
    viewed, n = wire.decode(data, copy=False)
    assert n == len(data) and viewed == copied
    payload = viewed.tensors[1].payload
    assert isinstance(payload, memoryview) and payload.obj is data and bytes(payload) == t.payload
    assert isinstance(copied.tensors[0].payload, bytes)


def _as_version_1(data: bytes) -> bytes:
    return _set(data, 4, b"\x01")


def test_version_1_frames_still_decode_as_uncompressed_split_0() -> None:
    """An old camera's frames (version 1: reserved fields where split and codec now are) keep working,
    whatever it wrote in the reserved fields; a writer writes version 2."""
    t = WireTensor(TensorKind.PACKED, 4, 0.5, 8, (2, 3), bytes([0x21, 0x43, 0x65]))
    data = wire.encode(wire.Frame(7, 9, (t,)))
    assert data[4] == wire.PROTOCOL_VERSION == 2 and wire.MIN_PROTOCOL_VERSION == 1
    old = _as_version_1(data)
    assert wire.peek(old[: wire.PREFIX_LEN]) == (len(old), MsgType.FRAME)
    assert wire.decode(old) == (wire.Frame(7, 9, (t,)), len(old))
    # reserved bytes of a version 1 frame are ignored: not read as split 5 and codec 1
    noisy = _set(_set(old, 30, b"\x05\x00"), T0 + 3, b"\x01")
    msg, _ = wire.decode(noisy)
    assert isinstance(msg, wire.Frame) and msg.split == 0 and msg.tensors[0].codec == Codec.NONE
    # the same bytes as version 2 are split 5 with a zstd payload (which the frame codec passes on)
    msg, _ = wire.decode(_set(noisy, 4, b"\x02"))
    assert isinstance(msg, wire.Frame) and msg.split == 5 and msg.tensors[0].codec == Codec.ZSTD


def test_split_and_codec_are_where_the_document_says() -> None:
    t = wire.deflate(WireTensor(TensorKind.PACKED, 8, 1.0, 0, (64,), bytes(64)))
    data = wire.encode(wire.Frame(1, 2, (t,), split=258))
    assert data[30:32] == (258).to_bytes(2, "little") and data[T0 + 3] == Codec.ZSTD
    assert int.from_bytes(data[T0 + 16 : T0 + 20], "little") == len(t.payload) < 64
    msg, _ = wire.decode(data)
    assert isinstance(msg, wire.Frame) and wire.inflate(msg.tensors[0]).payload == bytes(64)
    with pytest.raises(wire.FrameError.__mro__[1]):
        wire.encode(wire.Frame(1, 2, (t,), split=65536))


def test_a_version_1_message_is_written_on_request_and_never_with_version_2_fields() -> None:
    """A receiver answers a version 1 camera in version 1: encode writes the message's version."""
    replies: list[wire.Message] = [wire.Result(3, 0, b"{}", 9, version=1), wire.Hello("cam", "ab" * 32, version=1),
                                   wire.Error(0, 4, "no", version=1), Stats("{}", version=1)]
    for msg in replies:
        data = wire.encode(msg)
        assert data[4] == 1 and wire.decode(data)[0].version == 1
        current = wire.encode(dataclasses.replace(msg, version=2))  # the same layout: only the version differs
        assert current[4] == 2 and current[5:-4] == data[5:-4]
    t = WireTensor(TensorKind.PACKED, 8, 1.0, 0, (4,), bytes(4))
    assert wire.encode(wire.Frame(1, 2, (t,), version=1))[4] == 1
    for bad in (wire.Frame(1, 2, (t,), split=1, version=1), wire.Frame(1, 2, (wire.deflate(t),), version=1),
                wire.Frame(1, 2, (t,), version=3), wire.Hello("cam", "ab" * 32, version=0)):
        with pytest.raises(wire.FrameError.__mro__[1]):
            wire.encode(bad)
