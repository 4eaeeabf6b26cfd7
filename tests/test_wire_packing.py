"""Bit packing, LUT requantisation and dequantisation through the cffi binding.

numpy reference implementations are the oracles; hypothesis drives every bit width and odd lengths.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitsdk import wire
from splitsdk.errors import WireError
from splitsdk.wire.packing import requantize_pack


def numpy_pack(codes: np.ndarray, bits: int) -> bytes:
    """Oracle: LSB-first bitstream of the low `bits` bits of each code."""
    flat = codes.reshape(-1).astype(np.uint8)
    bitplanes = ((flat[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bitplanes, bitorder="little").tobytes()


def numpy_lut(in_scale: float, in_zp: int, scale: float, zp: int, bits: int) -> np.ndarray:
    q = (np.arange(256, dtype=np.int64) - 128 - in_zp).astype(np.float64) * np.float64(np.float32(in_scale))
    q = q / np.float64(np.float32(scale))
    rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)
    return np.clip(rounded + zp, 0, 2**bits - 1).astype(np.uint8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bits=st.integers(1, 8), n=st.integers(0, 2000), seed=st.integers(0, 2**32 - 1))
def test_pack_matches_numpy_and_round_trips(bits: int, n: int, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 2**bits, size=n, dtype=np.uint8)
    packed = wire.pack(codes, bits)
    assert len(packed) == wire.packed_size(n, bits) == (n * bits + 7) // 8
    assert packed == numpy_pack(codes, bits)
    np.testing.assert_array_equal(wire.unpack(packed, n, bits), codes)


@pytest.mark.parametrize("bits", range(1, 9))
def test_high_bits_are_masked(bits: int) -> None:
    codes = np.full(17, 0xFF, dtype=np.uint8)
    np.testing.assert_array_equal(wire.unpack(wire.pack(codes, bits), 17, bits), codes & (2**bits - 1))


@pytest.mark.parametrize(
    ("codes", "bits", "expected"),
    [
        ([1, 0, 1, 1, 0, 0, 0, 0, 1], 1, b"\x0d\x01"),
        ([1, 2, 3, 0, 3], 2, b"\x39\x03"),
        ([0x3, 0xA, 0xF], 4, b"\xa3\x0f"),
        ([5, 7, 1], 3, b"\x7d\x00"),
        ([200, 1], 8, b"\xc8\x01"),
    ],
)
def test_known_bitstreams(codes: list[int], bits: int, expected: bytes) -> None:
    assert wire.pack(np.array(codes, dtype=np.uint8), bits) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    bits=st.integers(1, 8),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.integers(1, 17),
    seed=st.integers(0, 2**32 - 1),
)
def test_height_width_layout_is_chw_order(bits: int, h: int, w: int, c: int, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 2**bits, size=(h, w, c), dtype=np.uint8)
    packed = wire.pack_hw(codes, bits)
    assert packed == numpy_pack(np.transpose(codes, (2, 0, 1)), bits)
    np.testing.assert_array_equal(wire.unpack_hw(packed, (h, w, c), bits), codes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    in_scale=st.floats(0.0009765625, 16.0, width=32),
    in_zp=st.integers(-128, 127),
    scale=st.floats(0.0009765625, 16.0, width=32),
    zp=st.integers(0, 255),
    bits=st.integers(1, 8),
)
def test_lut_matches_reference(in_scale: float, in_zp: int, scale: float, zp: int, bits: int) -> None:
    zp = min(zp, 2**bits - 1)
    lut = wire.build_lut(in_scale, in_zp, scale, zp, bits)
    np.testing.assert_array_equal(lut, numpy_lut(in_scale, in_zp, scale, zp, bits))
    values = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    np.testing.assert_array_equal(wire.requantize_lut(values, lut), lut.reshape(16, 16))


def test_lut_round_trip_recovers_values_within_half_a_step() -> None:
    in_scale, in_zp = 0.05, -10
    lut = wire.build_lut(in_scale, in_zp, 0.2, 8, 4)
    values = np.arange(-128, 128, dtype=np.int8)
    real = (values.astype(np.float32) - in_zp) * in_scale
    back = wire.dequantize(wire.requantize_lut(values, lut), 0.2, 8)
    inside = (real >= (0 - 8) * 0.2) & (real <= (15 - 8) * 0.2)
    assert np.all(np.abs(back[inside] - real[inside]) <= 0.1 + 1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    n=st.integers(0, 500),
    zp=st.integers(-300, 300),
    scale=st.floats(0.0009765625, 1024.0, width=32),
    seed=st.integers(0, 2**32 - 1),
)
def test_dequantize_matches_numpy(n: int, zp: int, scale: float, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8)
    expected = (codes.astype(np.float32) - np.float32(zp)) * np.float32(scale)
    np.testing.assert_array_equal(wire.dequantize(codes, scale, zp), expected)


def test_unpack_dequantize_shapes() -> None:
    codes = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5) % 16
    out = wire.unpack_dequantize(wire.pack(codes, 4), (2, 3, 5), 4, 0.5, 3)
    np.testing.assert_array_equal(out, (codes.astype(np.float32) - 3) * 0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: wire.pack(np.zeros(3, np.uint8), 0),
        lambda: wire.pack(np.zeros(3, np.uint8), 9),
        lambda: wire.pack(np.zeros(3, np.int32), 4),
        lambda: wire.unpack(b"\x00", 3, 4),
        lambda: wire.requantize_lut(np.zeros(3, np.int8), np.zeros(255, np.uint8)),
        lambda: wire.requantize_lut(np.zeros(3, np.uint8), np.zeros(256, np.uint8)),
        lambda: wire.build_lut(1.0, 0, 0.0, 0, 4),
        lambda: wire.pack_hw(np.zeros(3, np.uint8), 4),
    ],
)
def test_bad_arguments_raise_wire_error(call: object) -> None:
    with pytest.raises(WireError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(("kind", "bits", "dtype"), [(1, 8, "<i1"), (1, 16, "<i2"), (1, 32, "<i4"), (2, 32, "<f4")])
def test_plain_to_float(kind: int, bits: int, dtype: str) -> None:
    values = np.arange(-6, 6).astype(dtype).reshape(3, 4)
    out = wire.plain_to_float(values.tobytes(), kind, bits, (3, 4), 0.5, 2)
    expected = values.astype(np.float32) if kind == 2 else (values.astype(np.float32) - 2) * 0.5
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(WireError):
        wire.plain_to_float(values.tobytes()[:-1], kind, bits, (3, 4), 0.5, 2)


# ---- vector kernels: every b, odd tails, misaligned starts, fused paths, out=, CRC ----


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bits=st.integers(1, 8), n=st.integers(0, 5000), start=st.integers(0, 63), seed=st.integers(0, 2**32 - 1))
def test_pack_any_length_and_start_matches_numpy(bits: int, n: int, start: int, seed: int) -> None:
    """Unmasked codes at a misaligned start: the vector bulk, the aligning head and the tails all run."""
    buf = np.random.default_rng(seed).integers(0, 256, size=n + start, dtype=np.uint8)
    codes = buf[start:]
    packed = wire.pack(codes, bits)
    assert isinstance(packed, bytes)
    assert packed == numpy_pack(codes & (2**bits - 1), bits)
    np.testing.assert_array_equal(wire.unpack(packed, n, bits), codes & (2**bits - 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bits=st.integers(1, 8), n=st.integers(0, 3000), start=st.integers(0, 15), seed=st.integers(0, 2**32 - 1))
def test_requantize_pack_equals_the_two_steps(bits: int, n: int, start: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-128, 128, size=n + start, dtype=np.int8)[start:]
    lut = rng.integers(0, 2**bits, size=256, dtype=np.uint8)
    assert requantize_pack(values, lut, bits) == numpy_pack(lut[values.astype(np.int16) + 128], bits)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    bits=st.integers(1, 8),
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    zp=st.integers(-300, 300),
    scale=st.floats(0.0009765625, 1024.0, width=32),
    seed=st.integers(0, 2**32 - 1),
)
def test_unpack_dequantize_into_out(bits: int, shape: list[int], zp: int, scale: float, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 2**bits, size=shape, dtype=np.uint8)
    expected = (codes.astype(np.float32) - np.float32(zp)) * np.float32(scale)
    packed = wire.pack(codes, bits)
    np.testing.assert_array_equal(wire.unpack_dequantize(packed, tuple(shape), bits, scale, zp), expected)
    batch = np.full((3, *shape), np.nan, dtype=np.float32)
    got = wire.unpack_dequantize(packed, tuple(shape), bits, scale, zp, out=batch[1])
    assert got is batch[1] or np.shares_memory(got, batch)
    np.testing.assert_array_equal(batch[1], expected)
    assert np.isnan(batch[0]).all() and np.isnan(batch[2]).all()
    into = np.empty(shape, np.float32)
    assert wire.dequantize(codes, scale, zp, out=into) is into
    np.testing.assert_array_equal(into, expected)


@pytest.mark.parametrize(
    "out",
    [
        np.empty((2, 3), np.float64),
        np.empty((3, 2), np.float32),
        np.empty((2, 6), np.float32)[:, ::2],
        np.empty((2, 3), np.float32).T.copy().T,
        [[0.0] * 3] * 2,
    ],
)
def test_bad_out_raises_wire_error(out: object) -> None:
    packed = wire.pack(np.zeros((2, 3), np.uint8), 4)
    with pytest.raises(WireError, match="out must"):
        wire.unpack_dequantize(packed, (2, 3), 4, 1.0, 0, out=out)  # type: ignore[arg-type]


def test_read_only_out_is_refused() -> None:
    out = np.empty((2, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(WireError, match="writeable"):
        wire.dequantize(np.zeros((2, 3), np.uint8), 1.0, 0, out=out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.binary(min_size=0, max_size=4200), start=st.integers(0, 63), crc=st.integers(0, 2**32 - 1))
def test_crc32_equals_zlib_at_any_length_and_start(data: bytes, start: int, crc: int) -> None:
    view = memoryview(data)[min(start, len(data)) :]
    assert wire.crc32(view, crc) == zlib.crc32(view, crc)
    assert wire.crc32(data) == zlib.crc32(data)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 63, 64, 65, 127, 128, 4095, 4096, 1 << 20])
def test_crc32_lengths_around_the_folding_blocks(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, size=n + 3, dtype=np.uint8).tobytes()
    for start in range(4):
        assert wire.crc32(data[start : start + n]) == zlib.crc32(data[start : start + n])
