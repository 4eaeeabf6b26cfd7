"""Small Keras models with hand-checkable split tables, shared by the graph, quant and convert tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def _keras() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras


def randomize_batchnorm(model: Any, seed: int = 1) -> Any:
    """Give every BN layer non-trivial statistics so that folding is really exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c)
            ])
    return model


def chain() -> Any:
    """img(8,8,3) -> conv+BN+ReLU (8,8,4) -> maxpool (4,4,4) -> conv relu (4,4,8) -> GAP (8) -> dense (10)."""
    keras = _keras()
    L = keras.layers
    x = inp = keras.Input((8, 8, 3), name="img")
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(10, name="fc")(x)
    return randomize_batchnorm(keras.Model(inp, x, name="chain"))


def residual() -> Any:
    """x(4,4,2) -> c1 relu -> c2 -> add(c2, x) -> GAP -> dense(3): the skip tensor x stays alive."""
    keras = _keras()
    L = keras.layers
    x = keras.Input((4, 4, 2), name="x")
    c1 = L.Conv2D(2, 1, activation="relu", name="c1")(x)
    c2 = L.Conv2D(2, 1, name="c2")(c1)
    a = L.Add(name="add")([c2, x])
    g = L.GlobalAveragePooling2D(name="gap")(a)
    return keras.Model(x, L.Dense(3, name="fc")(g), name="residual")


def inception() -> Any:
    """x(4,4,4) -> three branches (1x1; 1x1 -> 3x3; maxpool -> 1x1) -> concat (4,4,6)."""
    keras = _keras()
    L = keras.layers
    x = keras.Input((4, 4, 4), name="x")
    b1 = L.Conv2D(2, 1, name="b1")(x)
    b2 = L.Conv2D(2, 3, padding="same", name="b2b")(L.Conv2D(2, 1, name="b2a")(x))
    b3 = L.Conv2D(2, 1, name="b3b")(L.MaxPooling2D(3, strides=1, padding="same", name="b3a")(x))
    return keras.Model(x, L.Concatenate(name="concat")([b1, b2, b3]), name="inception")


def shared_layer() -> Any:
    """x(4) -> d -> d (the same Dense called twice) -> out(2)."""
    keras = _keras()
    L = keras.layers
    x = keras.Input((4,), name="x")
    d = L.Dense(4, activation="relu", name="d")
    return keras.Model(x, L.Dense(2, name="out")(d(d(x))), name="shared")


def late_input() -> Any:
    """x(8) -> h1 -> h2 -> concat(h2, x) -> out(2): the model input is read deep in the graph."""
    keras = _keras()
    L = keras.layers
    x = keras.Input((8,), name="x")
    h = L.Dense(8, activation="relu", name="h1")(x)
    h = L.Dense(8, activation="relu", name="h2")(h)
    c = L.Concatenate(name="cat")([h, x])
    return keras.Model(x, L.Dense(2, name="out")(c), name="late_input")


def two_head() -> Any:
    """img(8,8,3) -> c1 s2 (4,4,4) -> c2 s2 (2,2,8) -> head_a(2,2,2); head_b reads c1 -> (4,4,2)."""
    keras = _keras()
    L = keras.layers
    x = keras.Input((8, 8, 3), name="img")
    c1 = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    c2 = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(c1)
    ha = L.Conv2D(2, 1, name="head_a")(c2)
    hb = L.Conv2D(2, 1, name="head_b")(c1)
    return keras.Model(x, [ha, hb], name="two_head")


def mixed_net() -> Any:
    """For per-layer precision mixes: c2 is sent and also read by the edge's c3; c4 is sent too.

    img(16,16,3) -> c1 -> c2 -> c3 (depthwise) -> add(c3, c1) -> c4 | cloud: concat(c4, c2) -> conv -> pool -> dense
    """
    keras = _keras()
    L = keras.layers
    x = keras.Input((16, 16, 3), name="img")
    c1 = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    c2 = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(c1)
    c3 = L.DepthwiseConv2D(3, padding="same", name="c3")(c2)
    add = L.Add(name="add")([c3, c1])
    c4 = L.Conv2D(4, 1, name="c4")(add)
    cat = L.Concatenate(name="cat")([c4, c2])
    h = L.Conv2D(8, 3, strides=2, activation="relu", name="h")(cat)
    return keras.Model(x, L.Dense(5, name="out")(L.GlobalAveragePooling2D(name="gap")(h)), name="mixed_net")


def nested() -> Any:
    """An outer model calling a nested functional block and a nested Sequential."""
    keras = _keras()
    L = keras.layers
    bi = keras.Input((4, 4, 4))
    block = keras.Model(bi, L.Add(name="add")([L.Conv2D(4, 1, activation="relu", name="conv2d")(bi), bi]), name="block")
    seq = keras.Sequential([keras.Input((4, 4, 4)), L.Conv2D(2, 1, name="sq")], name="seq")
    x = keras.Input((4, 4, 3), name="x")
    y = L.Conv2D(4, 1, name="stem")(x)
    return keras.Model(x, seq(block(block(y))), name="nested")


ALL = {
    "chain": chain,
    "residual": residual,
    "inception": inception,
    "shared_layer": shared_layer,
    "late_input": late_input,
    "two_head": two_head,
    "nested": nested,
}
