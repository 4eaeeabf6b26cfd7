"""Dequantising straight into the reused batch tensors gives what the per-frame arrays stacked gave."""

from __future__ import annotations

import numpy as np

from splitsdk import wire
from splitsdk.cloud.batch_inputs import BatchTensors, PackedInput


def packed(rng: np.random.Generator, shape: tuple[int, ...], bits: int, scale: float, zp: int) -> PackedInput:
    codes = rng.integers(0, 1 << bits, size=shape, dtype=np.uint8)
    return PackedInput(memoryview(wire.pack(codes, bits)), bits, scale, zp)


def test_batch_tensors_equal_stacked_dequantised_frames_and_are_reused() -> None:
    rng = np.random.default_rng(0)
    shapes = [(4, 5, 3), (2, 7)]
    batch = BatchTensors(shapes, max_batch=2)
    for size in (2, 3, 1):  # 3 grows past max_batch; then a smaller batch reuses the buffers
        frames = [[packed(rng, shapes[0], 4, 0.25, 7), rng.random(shapes[1], dtype=np.float32)] for _ in range(size)]
        got = batch.fill(frames)
        want0 = np.stack([wire.unpack_dequantize(f[0].payload, shapes[0], 4, 0.25, 7) for f in frames])
        want1 = np.stack([f[1] for f in frames])
        np.testing.assert_array_equal(got[0], want0)
        np.testing.assert_array_equal(got[1], want1)
        assert got[0].dtype == np.float32 and got[0].shape == (size, *shapes[0])
    again = batch.fill(frames)
    assert np.shares_memory(again[0], got[0])  # the same buffer, not a new array per batch


def test_packed_extremes_are_finite_exactly_when_the_dequantised_tensor_is() -> None:
    rng = np.random.default_rng(1)
    # every code's value is finite exactly when the two extreme codes' are (checked against all 2^bits)
    for bits, scale, zp in [(4, 0.5, 3), (8, 1e36, 0), (8, 2e36, -(2**31)), (1, 3.0e38, 1), (2, 3.0e38, -2)]:
        x = packed(rng, (64,), bits, scale, zp)
        with np.errstate(over="ignore", invalid="ignore"):
            full = wire.unpack_dequantize(x.payload, (64,), bits, scale, zp)
            codes = np.arange(1 << bits, dtype=np.uint8)
            every = wire.dequantize(codes, scale, zp)
        assert bool(np.isfinite(x.extremes()).all()) == bool(np.isfinite(every).all())
        if np.isfinite(x.extremes()).all():
            assert np.isfinite(full).all()
