"""The digits classifier: four conv3x3 + BN + ReLU blocks (16, 16, 32, 32 filters, the first three followed by
2x2 max pooling), global average pooling and a Dense softmax over the 10 classes; 32x32x1 in. About 15k weights:
the edge can hold all of it, so where to split is a question of latency and bits, not of memory."""

from __future__ import annotations

from typing import Any

from splitsdk.examples.digits.data import CLASSES, SIZE

BLOCKS = ((16, True), (16, True), (32, True), (32, False))


def build(seed: int = 0) -> Any:
    """The classifier with fresh weights (deterministic for `seed`); output (batch, 10) softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((SIZE, SIZE, 1), name="digit")
    x = inp
    for i, (filters, pool) in enumerate(BLOCKS):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{i}_conv")(x)
        x = L.BatchNormalization(name=f"b{i}_bn")(x)
        x = L.ReLU(name=f"b{i}_relu")(x)
        if pool:
            x = L.MaxPooling2D(2, name=f"b{i}_pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(CLASSES, activation="softmax", name="classes")(x)
    return keras.Model(inp, out, name="digits_cnn")
