"""CTC greedy decoding in plain numpy (no TensorFlow on the cloud's post-processing path), and the "lpr_ctc" hook.

The reader outputs, per frame, 64 time steps x 34 classes (`ALPHABET` then the blank). Greedy decoding takes the
best class per step, merges runs of the same class and drops blanks: "AA-B--B" -> "ABB".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from splitsdk.examples.lpr.plate import ALPHABET, BLANK, format_plate, is_valid_plate


def best_path(outputs: np.ndarray) -> list[list[int]]:
    """Greedy CTC paths: class indices per frame (repeats merged, blanks dropped), for (N, T, C) or (T, C)."""
    scores = np.asarray(outputs)
    if scores.ndim == 2:
        scores = scores[None]
    if scores.ndim != 3 or scores.shape[-1] != BLANK + 1:
        raise ValueError(f"CTC outputs must be (N, T, {BLANK + 1}) or (T, {BLANK + 1}), got {scores.shape}")
    best = scores.argmax(axis=-1)
    keep = np.ones_like(best, dtype=bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != BLANK
    return [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]


def decode(outputs: np.ndarray) -> list[str]:
    """Plate strings read from the reader's outputs ((N, T, C) or one frame's (T, C)), e.g. ["AB123CD"]."""
    return ["".join(ALPHABET[i] for i in path) for path in best_path(outputs)]


def postprocess(outputs: list[np.ndarray], params: dict[str, Any]) -> bytes:
    """The cloud hook: JSON {"plate", "printed", "valid", "score"} for one frame's outputs.

    `score` is the mean best-class probability over the time steps (a confidence; 1.0 = certain); `valid` says
    whether the string has the plate format. No parameters.
    """
    probs = np.asarray(outputs[0], dtype=np.float64)
    probs = probs.reshape(-1, probs.shape[-1])
    plate = decode(probs)[0]
    valid = is_valid_plate(plate)
    return json.dumps({
        "plate": plate,
        "printed": format_plate(plate) if valid else plate,
        "valid": valid,
        "score": round(float(probs.max(axis=-1).mean()), 6),
    }).encode()
