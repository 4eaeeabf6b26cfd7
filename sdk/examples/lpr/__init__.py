"""The licence-plate case study (the paper's Table 3): synthetic camera frames, a YOLO-like backbone + BiLSTM/CTC
reader in two sizes, its training script, trained weights and the CTC decoding hook of the cloud side.

Modules: `data` (the frame generator and the plate format), `model` (the Keras builds), `decode` (CTC greedy
decoding in numpy; the cloud's "lpr_ctc" post-processing hook), `train` (`python -m splitsdk.examples.lpr.train`).
The trained models live in `weights/` (see `weights_path`).
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
VARIANTS = ("small", "large")


def weights_path(variant: str) -> Path:
    """The checked-in trained model of one variant ("small" or "large"): a `.keras` file."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LPR variant '{variant}' (known: {', '.join(VARIANTS)})")
    return WEIGHTS_DIR / f"lpr_{variant}.keras"
