"""A Keras layer that puts a tensor on the grid a runtime stores it on: the plan's float simulation.

Imports Keras at import time: import this module only where a simulation is built.
"""

from __future__ import annotations

from typing import Any

import keras

from splitsdk.quant import fake_quantize


@keras.saving.register_keras_serializable(package="splitsdk")
class FakeQuant(keras.layers.Layer):
    """Round to `bits` bits over [lo, hi]: asymmetric (int8, as TFLite's int8 activations) or symmetric
    around zero (`symmetric`, as TFLite's int16 activations); the grids of `splitsdk.quant.activation_grid`."""

    def __init__(self, lo: float, hi: float, bits: int, symmetric: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lo, self.hi, self.bits, self.symmetric = float(lo), float(hi), int(bits), bool(symmetric)

    def call(self, x: Any) -> Any:
        # Keras marks some tensors sparse (MobileNetV3's hard-sigmoid `x * (1/6)`): a rounding grid is dense
        x = keras.ops.convert_to_tensor(x, sparse=False)
        return fake_quantize(x, self.lo, self.hi, self.bits, self.symmetric, ops=keras.ops)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lo": self.lo, "hi": self.hi, "bits": self.bits, "symmetric": self.symmetric}
