"""The licence-plate reader: a YOLO-like convolutional backbone (where the split is expected) and a BiLSTM + CTC
recogniser (which stays in the cloud), in a "small" (64 LSTM units) and a "large" (256 units) variant.

Backbone: conv3x3 + BN + ReLU blocks with max-pool downsampling (YOLO-tiny style), 128x256x3 -> 4x64x96; pooling
stops halving the width after /4 so the recogniser gets 64 time steps (CTC needs more steps than the 7 characters
plus the blanks between repeats). A max over the remaining 4 rows makes the reading independent of where the
plate sits vertically; the 64 columns x 96 channels go to a bidirectional LSTM over the width, then a Dense
layer to the 33 characters + blank and a Softmax. Plain Keras 3 functional layers only, so splitsdk's graph
importer, planner and converter take it as is.
"""

from __future__ import annotations

from typing import Any

from splitsdk.examples.lpr.data import CHANNELS, HEIGHT, NUM_CLASSES, WIDTH

LSTM_UNITS = {"small": 64, "large": 256}
# (filters, pool after the block: (rows, cols) or None)
BACKBONE = ((32, (2, 1)), (48, (2, 1)), (64, (2, 1)), (96, None))
TIME_STEPS = WIDTH // 4


def _block(L: Any, x: Any, filters: int, name: str, stride: int = 1) -> Any:
    x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def build(variant: str = "small", seed: int = 0) -> Any:
    """The reader with fresh weights (deterministic for `seed`); output (batch, 64, 34) softmax, blank last."""
    import keras

    if variant not in LSTM_UNITS:
        raise ValueError(f"unknown LPR variant '{variant}' (known: {', '.join(LSTM_UNITS)})")
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((HEIGHT, WIDTH, CHANNELS), name="frame")
    x = _block(L, inp, 24, "stem", stride=2)  # 64x128
    x = L.MaxPooling2D(2, name="pool0")(x)  # 32x64: the width stays at 64 from here
    for i, (filters, pool) in enumerate(BACKBONE):
        x = _block(L, x, filters, f"b{i + 1}")
        if pool is not None:
            x = L.MaxPooling2D(pool, name=f"pool{i + 1}")(x)
    rows, cols, channels = (int(d) for d in x.shape[1:])
    x = L.MaxPooling2D((rows, 1), name="rows_max")(x)  # 1 x 64 x C: where the plate is vertically does not matter
    x = L.Reshape((cols, channels), name="columns")(x)
    units = LSTM_UNITS[variant]
    x = L.Bidirectional(L.LSTM(units, return_sequences=True, name="lstm"), name="bilstm")(x)
    x = L.Dense(NUM_CLASSES, name="logits")(x)
    out = L.Softmax(name="chars")(x)
    return keras.Model(inp, out, name=f"lpr_{variant}")


def logits_model(model: Any) -> Any:
    """The same layers without the final Softmax (what the CTC loss trains on)."""
    import keras

    return keras.Model(model.input, model.get_layer("logits").output, name=f"{model.name}_logits")
