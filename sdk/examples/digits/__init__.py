"""A small trained classifier for judging the planner's selection by accuracy: scikit-learn's bundled
handwritten digits (1,797 8x8 images, 10 classes) upscaled to 32x32, and a four-block CNN trained on them.

Modules: `data` (the split and the upscaling, deterministic), `model` (the Keras build), `train`
(`python -m splitsdk.examples.digits.train`, about a minute on 2 cores). The trained model lives in
`weights/` (`weights_path`).
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def weights_path() -> Path:
    """The checked-in trained model: a `.keras` file."""
    return WEIGHTS_DIR / "digits_cnn.keras"
