"""The digits data: scikit-learn's bundled 8x8 handwritten digits, upscaled to 32x32x1 in [0, 1].

Each 8x8 pixel (0..16) becomes a 4x4 block, then a 3x3 box blur smooths the blocks, so the frames look like a
low-resolution camera's. The split is fixed: a seeded permutation, 1,200 training, 297 validation and 300
test images; `calibration` is the first training images (what the planner calibrates ranges on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
CLASSES = 10
TRAIN, VAL = 1200, 297  # the rest (300) is the test set


def _frames(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, 32, 32, 1) float32 in [0, 1]."""
    up = np.kron(images.astype(np.float32) / 16.0, np.ones((SIZE // 8, SIZE // 8), dtype=np.float32))
    padded = np.pad(up, ((0, 0), (1, 1), (1, 1)), mode="edge")
    blur = sum(padded[:, i : i + SIZE, j : j + SIZE] for i in range(3) for j in range(3)) / 9.0
    return np.asarray(blur, dtype=np.float32)[..., None]


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of "train", "val" or "test": x (N, 32, 32, 1) float32, y (N,) int class indices."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.images))
    x, y = _frames(bunch.images[order]), bunch.target[order].astype(np.int64)
    parts = {"train": slice(0, TRAIN), "val": slice(TRAIN, TRAIN + VAL), "test": slice(TRAIN + VAL, None)}
    if split not in parts:
        raise ValueError(f"unknown digits split {split!r} (known: {', '.join(parts)})")
    return x[parts[split]], y[parts[split]]


def calibration(samples: int = 64) -> np.ndarray:
    """The first `samples` training images: the planner's calibration inputs."""
    return load("train")[0][:samples]


def save_npz(path: str | Path, split: str, samples: int | None = None, labels: bool = True) -> Path:
    """Write a split as the planner's .npz (`x`, and `y` when `labels`)."""
    x, y = load(split)
    n = len(x) if samples is None else samples
    if labels:
        np.savez(path, x=x[:n], y=y[:n])
    else:
        np.savez(path, x=x[:n])
    return Path(path)
