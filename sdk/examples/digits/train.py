"""Train the digits classifier from scratch (CPU, about a minute on 2 cores), deterministically.

    python -m splitsdk.examples.digits.train [--out DIR] [--epochs N]

Adam on the 1,200 training images with small random shifts (up to 2 pixels), the best epoch on the validation
split kept. Saves `digits_cnn.keras` and the script's numbers (`digits_cnn.json`: config, accuracies, size) in DIR
(default: the package's `weights/`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from splitsdk.examples.digits import WEIGHTS_DIR, data
from splitsdk.examples.digits.model import build


def _shifted(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to 2 pixels in each direction (zeros shifted in)."""
    out = np.zeros_like(x)
    for i, (dy, dx) in enumerate(rng.integers(-2, 3, size=(len(x), 2))):
        src = x[i, max(0, -dy) : data.SIZE - max(0, dy), max(0, -dx) : data.SIZE - max(0, dx)]
        out[i, max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def train(out_dir: Path, epochs: int = 40, seed: int = 0) -> dict[str, object]:
    import keras
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    x, y = data.load("train")
    xv, yv = data.load("val")
    model = build(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    best, best_weights = -1.0, model.get_weights()
    for _ in range(epochs):
        model.fit(_shifted(x, rng), y, batch_size=64, epochs=1, verbose=0, shuffle=True)
        acc = float(model.evaluate(xv, yv, verbose=0)[1])
        if acc > best:
            best, best_weights = acc, model.get_weights()
    model.set_weights(best_weights)
    seconds = time.perf_counter() - start
    xt, yt = data.load("test")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "digits_cnn.keras"
    model.save(path)
    report: dict[str, object] = {
        "config": {"epochs": epochs, "seed": seed, "batch": 64, "learning_rate": 3e-3},
        "params": int(model.count_params()),
        "file_bytes": path.stat().st_size,
        "val_accuracy": round(best, 4),
        "test_accuracy": round(float(model.evaluate(xt, yt, verbose=0)[1]), 4),
        "train_seconds": round(seconds, 1),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    (out_dir / "digits_cnn.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    print(json.dumps(train(args.out, args.epochs), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
