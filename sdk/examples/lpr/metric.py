"""Exact plate match: the case study's accuracy (the planner's `--metric lpr_exact`, the table's column).

A frame counts as read only if the greedy CTC decoding of the reader's outputs equals its whole plate string;
a per-class argmax over time steps (top-1) says nothing about plates, so the planner looks this metric up by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from splitsdk.examples.lpr.decode import decode
from splitsdk.examples.lpr.plate import labels_to_text


def label_strings(labels: np.ndarray) -> list[str]:
    """(N, 7) class indices (the .npz's `y`) -> plate strings."""
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f"plate labels must be (N, 7) class indices, got shape {y.shape}")
    return [labels_to_text(row) for row in y]


def exact_rate(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Fraction (0..1) of frames whose read plate equals the true one; lengths must match."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} labels")
    if not truth:
        return 0.0
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def lpr_exact(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Exact plate match in percent: the reader's (N, T, 34) outputs against (N, 7) class-index labels."""
    return exact_rate(decode(outputs), label_strings(labels)) * 100.0
