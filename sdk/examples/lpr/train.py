"""Train the licence-plate reader from scratch with CTC loss (CPU, a few minutes on 2 cores), deterministically.

    python -m splitsdk.examples.lpr.train --variant small|large [--out DIR]

Generates the train/val/test frames (seeds 0/1/2), trains the logits model (Adam, one-cycle-like warm-up + cosine
decay), then saves the full model (with the Softmax) as `lpr_<variant>.keras` and the script's numbers as
`lpr_<variant>.json` in DIR (default: the package's `weights/`). Accuracy = exact plate match after greedy CTC
decoding; the test set is only read after training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.examples.lpr import WEIGHTS_DIR, data
from splitsdk.examples.lpr.decode import decode
from splitsdk.examples.lpr.model import LSTM_UNITS, TIME_STEPS, build, logits_model


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (saved beside them)."""

    variant: str = "small"
    seed: int = 0
    train_frames: int = 12000
    val_frames: int = 500
    test_frames: int = 1000
    epochs: int = 3
    batch: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100


def frames(seed: int, count: int, cache: Path | None = None, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Frames 0..count-1 of split `seed` (uint8) and their labels (int32 (N, 7)), generated in `workers` processes.

    With `cache`, the arrays are kept there as `.npy` files and reused (the frames depend only on seed and count).
    """
    if cache is not None:
        xp, yp = cache / f"lpr_{seed}_{count}_x.npy", cache / f"lpr_{seed}_{count}_y.npy"
        if xp.exists() and yp.exists():
            return np.load(xp), np.load(yp)
        x, y = frames(seed, count, None, workers)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(yp, y)
        np.save(xp, x)
        return x, y
    chunks = [(seed, min(500, count - s), s) for s in range(0, count, 500)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_chunk, chunks))
    x = np.concatenate([p[0] for p in parts])
    y = np.stack([data.encode(t) for p in parts for t in p[1]])
    return x, y


def _chunk(args: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
    seed, count, start = args
    return data.generate(seed, count, start)


def accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch: int = 64) -> tuple[float, float]:
    """(exact plate match, per-character match at aligned positions) of `model` on uint8 frames `x`."""
    reads: list[str] = []
    for s in range(0, len(x), batch):
        reads += decode(np.asarray(model.predict_on_batch(x[s:s + batch].astype(np.float32) / 255.0)))
    truth = [data.labels_to_text(t) for t in y]
    exact = np.mean([r == t for r, t in zip(reads, truth, strict=True)])
    chars = np.mean([sum(a == b for a, b in zip(r, t, strict=False)) / len(t)
                     for r, t in zip(reads, truth, strict=True)])
    return float(exact), float(chars)


def train(cfg: TrainConfig, out_dir: Path, cache: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Train one variant; write `lpr_<variant>.keras` and `.json` into `out_dir`; return the numbers."""
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    t0 = time.perf_counter()
    x_train, y_train = frames(data.SPLITS["train"], cfg.train_frames, cache)
    x_val, y_val = frames(data.SPLITS["val"], cfg.val_frames, cache)
    log(f"generated {len(x_train)} + {len(x_val)} frames in {time.perf_counter() - t0:.0f} s")

    model = build(cfg.variant, cfg.seed)
    net = logits_model(model)
    steps = cfg.epochs * (cfg.train_frames // cfg.batch)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate / 10, steps - cfg.warmup_steps, alpha=0.02, warmup_target=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps)
    net.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0), loss=ctc_loss)
    ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
          .shuffle(len(x_train), seed=cfg.seed, reshuffle_each_iteration=True)
          .batch(cfg.batch, drop_remainder=True)
          .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y)))
    t1 = time.perf_counter()
    every = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: b % 100 == 0 and log(f"step {b}: loss {logs['loss']:.3f}"),
        on_epoch_end=lambda e, logs: log(f"epoch {e + 1}: val exact/char {accuracy(model, x_val, y_val)}"))
    net.fit(ds, epochs=cfg.epochs, verbose=2, callbacks=[every])
    train_s = time.perf_counter() - t1
    val_exact, val_chars = accuracy(model, x_val, y_val)
    del x_train, y_train
    x_test, y_test = frames(data.SPLITS["test"], cfg.test_frames, cache)
    test_exact, test_chars = accuracy(model, x_test, y_test)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"lpr_{cfg.variant}.keras"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / path.name
        model.save(staged)
        os.chmod(staged, 0o644)
        os.replace(staged, path)
    numbers = {
        "config": asdict(cfg), "lstm_units": LSTM_UNITS[cfg.variant], "params": int(model.count_params()),
        "file_bytes": path.stat().st_size, "train_seconds": round(train_s, 1),
        "val_exact": val_exact, "val_char": round(val_chars, 4),
        "test_exact": test_exact, "test_char": round(test_chars, 4),
        "keras": keras.__version__, "tensorflow": tf.__version__,
    }
    (out_dir / f"lpr_{cfg.variant}.json").write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    log(json.dumps(numbers, sort_keys=True))
    return numbers


def ctc_loss(y_true: Any, logits: Any) -> Any:
    """CTC loss of (N, 7) labels against (N, 64, 34) logits; every plate has 7 characters, blank last."""
    import keras

    n = keras.ops.shape(logits)[0]
    return keras.ops.ctc_loss(keras.ops.cast(y_true, "int32"), logits, keras.ops.full((n,), data.PLATE_LEN, "int32"),
                              keras.ops.full((n,), TIME_STEPS, "int32"), mask_index=data.BLANK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitsdk.examples.lpr.train", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(LSTM_UNITS), default="small")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for lpr_<variant>.keras/.json")
    defaults = TrainConfig()
    for name in ("seed", "train_frames", "epochs", "batch"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--cache", type=Path, help="keep the generated frames here as .npy and reuse them")
    args = parser.parse_args(argv)
    cfg = TrainConfig(variant=args.variant, seed=args.seed, train_frames=args.train_frames, epochs=args.epochs,
                      batch=args.batch, learning_rate=args.learning_rate)
    train(cfg, args.out, args.cache)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
