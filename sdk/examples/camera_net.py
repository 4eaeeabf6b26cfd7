"""A small camera network: a YOLO-like convolutional backbone (where a split pays off) and a classifier head.

`python -m splitsdk.examples.camera_net OUT.keras` writes it with deterministic random weights.
The licence-plate model of the case study replaces it once trained weights are checked in.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def _block(L: Any, x: Any, filters: int, name: str, stride: int = 1) -> Any:
    x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def build(input_shape: tuple[int, int, int] = (128, 256, 3), classes: int = 36, seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input(input_shape, name="frame")
    x = _block(L, inp, 16, "stem", stride=2)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = _block(L, x, 32, "b1")
    skip = x
    x = _block(L, x, 32, "b2")
    x = L.Add(name="res1")([x, skip])
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = _block(L, x, 64, "b3")
    x = L.Conv2D(16, 1, activation="relu", name="squeeze")(x)
    x = L.MaxPooling2D(2, name="pool3")(x)
    x = _block(L, x, 128, "b4")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(128, activation="relu", name="fc1")(x)
    out = L.Dense(classes, activation="softmax", name="classes")(x)
    return keras.Model(inp, out, name="camera_net")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m splitsdk.examples.camera_net OUT.keras", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    build().save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
