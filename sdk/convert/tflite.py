"""Keras edge sub-model -> TFLite for the target's runtime (running it: `splitsdk.runtime`).

Full-integer int8 (the precision every edge layer of a {2,4,6,8}-bit plan executes on TFLite):
float input (the app feeds preprocessed pixels), int8 outputs for the transmitted tensors, a
representative dataset from the calibration data. Outputs are read by index, never by signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from splitsdk.errors import ConvertError, first_line
from splitsdk.quiet import quiet


def to_int8_tflite(model: Any, calib: list[np.ndarray]) -> bytes:
    """Convert a Keras model with full-integer int8 kernels; `calib` holds one array per input (N, ...)."""
    import tensorflow as tf

    return convert_int8(tf.lite.TFLiteConverter.from_keras_model(model), calib, f"'{model.name}'")


def convert_int8(conv: Any, calib: list[np.ndarray], what: str) -> bytes:
    """Run a TFLite converter as full-integer int8 (float input, int8 outputs) on representative data."""
    import tensorflow as tf

    n = len(calib[0])

    def representative() -> Iterator[list[np.ndarray]]:
        for i in range(n):
            yield [x[i : i + 1].astype(np.float32) for x in calib]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_output_type = tf.int8
    return run_converter(conv, what)


def run_converter(conv: Any, what: str) -> bytes:
    try:
        with quiet():
            return bytes(conv.convert())
    except Exception as exc:
        raise ConvertError(f"TFLite conversion of {what} failed: {first_line(exc, 300)}") from exc


def to_float_tflite(model: Any) -> bytes | None:
    """Float TFLite of the cloud model, or None where an op does not convert."""
    import tensorflow as tf

    try:
        with quiet():
            return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    except Exception:
        return None
