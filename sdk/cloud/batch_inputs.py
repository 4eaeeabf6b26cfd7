"""A frame's crossing tensors on their way to the cloud model, dequantised straight into the batch.

The event loop only checks a FRAME and keeps its packed codes (`PackedInput`: a view of the received
bytes, no copy); the batch thread dequantises every frame of a batch into one preallocated float32
tensor per crossing tensor (`BatchTensors`), row by row, with the shared C (`unpack_dequantize(out=)`).
No per-frame float array is allocated and no batch is stacked; the buffers are reused batch after batch
(their pages stay mapped), so a 288 KB frame costs the receiver one pass of C over its codes.

A packed tensor's values are (code - zero_point) * scale with codes in [0, 2^bits): whether they are all
finite is known from the two extreme codes (`PackedInput.extremes`), without dequantising anything.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from splitsdk.wire import TensorKind, WireTensor
from splitsdk.wire.packing import unpack_dequantize

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PackedInput:
    """One crossing tensor of one frame as received: b-bit codes (a view of the frame) and their dequantisation."""

    payload: bytes | memoryview
    bits: int
    scale: float
    zero_point: int

    @classmethod
    def of(cls, tensor: WireTensor) -> PackedInput:
        assert tensor.kind == TensorKind.PACKED
        return cls(tensor.payload, tensor.bits, tensor.scale, tensor.zero_point)

    def extremes(self) -> F32:
        """The dequantised values of the extreme codes, 0 and 2^bits - 1: every value is finite exactly when
        these are (|code - zero_point| is largest at one of them), so checking them checks the tensor."""
        return _extremes(self.bits, self.scale, self.zero_point)

    def dequantize_into(self, out: F32) -> None:
        unpack_dequantize(self.payload, out.shape, self.bits, self.scale, self.zero_point, out=out)


@functools.lru_cache(maxsize=256)  # a camera sends the bundle's scale and zero point frame after frame
def _extremes(bits: int, scale: float, zero_point: int) -> F32:
    with np.errstate(over="ignore", invalid="ignore"):  # as the C computes it, in float32
        ends = (np.array([0, (1 << bits) - 1], np.float32) - np.float32(zero_point)) * np.float32(scale)
    ends.flags.writeable = False
    return ends


Input = PackedInput | np.ndarray  # packed codes, dequantised on the batch thread; or float values already


class BatchTensors:
    """One float32 tensor per crossing tensor with room for `max_batch` frames, reused for every batch.

    Used by one thread (the batch thread): `fill` overwrites the rows of the previous batch, so what it
    returns is valid until the next `fill`.
    """

    def __init__(self, shapes: Sequence[tuple[int, ...]], max_batch: int) -> None:
        self.shapes = [tuple(s) for s in shapes]
        self._bufs: list[F32] = []
        self._capacity = 0
        self._reserve(max(1, max_batch))

    def _reserve(self, rows: int) -> None:
        if rows > self._capacity:  # np.empty: pages are mapped when first written, then stay
            self._bufs = [np.empty((rows, *s), np.float32) for s in self.shapes]
            self._capacity = rows

    def fill(self, frames: Sequence[Sequence[Input]]) -> list[F32]:
        """The batched inputs of `frames` (each: its crossing tensors in wire order), views of the buffers."""
        self._reserve(len(frames))
        for k, buf in enumerate(self._bufs):
            for row, inputs in enumerate(frames):
                x = inputs[k]
                if isinstance(x, PackedInput):
                    x.dequantize_into(buf[row])
                else:
                    buf[row] = x
        return [buf[: len(frames)] for buf in self._bufs]
