"""A Keras layer that puts a tensor on the grid a runtime stores it on: the plan's float simulation.

Imports Keras at import time: import this module only where a simulation is built.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from splitsdk.quant import minmax_grid


@keras.saving.register_keras_serializable(package="splitsdk")
class FakeQuant(keras.layers.Layer):
    """Round to `bits` bits over [lo, hi]: asymmetric (int8, as TFLite's int8 activations) or symmetric
    around zero (`symmetric`, as TFLite's int16 activations)."""

    def __init__(self, lo: float, hi: float, bits: int, symmetric: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lo, self.hi, self.bits, self.symmetric = float(lo), float(hi), int(bits), bool(symmetric)

    def call(self, x: Any) -> Any:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        if self.symmetric:
            top = 2 ** (self.bits - 1) - 1
            scale = max(-lo, hi) / top or 1.0
            return ops.clip(ops.round(x / scale), -top, top) * scale
        scale, zp = minmax_grid(lo, hi, self.bits)
        return (ops.clip(ops.round(x / scale) + zp, 0, 2**self.bits - 1) - zp) * scale

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lo": self.lo, "hi": self.hi, "bits": self.bits, "symmetric": self.symmetric}
