"""Train the licence-plate reader from scratch (CPU, a few minutes on 2 cores), deterministically.

    python -m splitsdk.examples.lpr.train --variant small|large [--out DIR] [--cache DIR]

Two phases, both on the same generated train frames (seed 0):
1. alignment warm-up: per-column cross-entropy against where the generator drew each character (the column under
   a character's centre is that character, every other column blank). This skips CTC's long "all blanks" plateau,
   which on 2 cores ate the whole budget (1500 CTC-only steps stayed at the label prior);
2. CTC loss (blank last), which the model is then read with (greedy decoding, `decode.py`).
Saves the full model (with the Softmax) as `lpr_<variant>.keras` and the script's numbers as `lpr_<variant>.json`
in DIR (default: the package's `weights/`). Accuracy = exact plate match; the test set (seed 2) is only generated
after training.
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

COLUMN = data.WIDTH // TIME_STEPS  # frame pixels per output time step


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (saved beside them)."""

    variant: str = "small"
    seed: int = 0
    train_frames: int = 12000
    val_frames: int = 500
    test_frames: int = 1000
    align_steps: int = 600
    ctc_steps: int = 2400
    batch: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 100


Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # uint8 frames, (N, 7) labels, (N, 7, 2) character centres


def frames(seed: int, count: int, cache: Path | None = None, workers: int = 2) -> Split:
    """Frames 0..count-1 of split `seed`, their labels and character centres, generated in `workers` processes.

    With `cache`, the arrays are kept there as `.npz` and reused (the frames depend only on seed and count).
    """
    path = cache / f"lpr_{seed}_{count}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return z["x"], z["y"], z["c"]
    chunks = [(seed, min(500, count - s), s) for s in range(0, count, 500)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_chunk, chunks))
    x = np.concatenate([p[0] for p in parts])
    y = np.stack([data.encode(t) for p in parts for t in p[1]])
    c = np.concatenate([p[2] for p in parts])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, y=y, c=c)
    return x, y, c


def _chunk(args: tuple[int, int, int]) -> tuple[np.ndarray, list[str], np.ndarray]:
    return data.generate_annotated(*args)


def column_targets(labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Per-time-step classes for the warm-up: each character at the column under its centre, blank elsewhere."""
    targets = np.full((len(labels), TIME_STEPS), data.BLANK, dtype=np.int32)
    cols = np.clip((centres[..., 0] // COLUMN).astype(np.int64), 0, TIME_STEPS - 1)
    np.put_along_axis(targets, cols, labels, axis=1)
    return targets


def column_loss(y_true: Any, logits: Any) -> Any:
    """Cross-entropy per time step; character columns weigh 4x (they are 7 of 64)."""
    import keras

    y_true = keras.ops.cast(y_true, "int32")
    ce = keras.ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
    weight = 1.0 + 3.0 * keras.ops.cast(keras.ops.not_equal(y_true, data.BLANK), ce.dtype)
    return keras.ops.sum(ce * weight, axis=-1) / TIME_STEPS


def ctc_loss(y_true: Any, logits: Any) -> Any:
    """CTC loss of (N, 7) labels against (N, 64, 34) logits; every plate has 7 characters, blank last."""
    import keras

    n = keras.ops.shape(logits)[0]
    return keras.ops.ctc_loss(keras.ops.cast(y_true, "int32"), logits, keras.ops.full((n,), data.PLATE_LEN, "int32"),
                              keras.ops.full((n,), TIME_STEPS, "int32"), mask_index=data.BLANK)


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


def _phase(net: Any, cfg: TrainConfig, x: np.ndarray, targets: np.ndarray, loss: Any, steps: int,
           callbacks: list[Any]) -> None:
    """`steps` Adam steps (warm-up then cosine decay) on shuffled (frame, target) batches."""
    import keras
    import tensorflow as tf

    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate / 10, steps - cfg.warmup_steps, alpha=0.02, warmup_target=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps)
    net.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0), loss=loss)
    ds = (tf.data.Dataset.from_tensor_slices((x, targets))
          .shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True).repeat()
          .batch(cfg.batch, drop_remainder=True)
          .map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)))
    per_epoch = 300
    net.fit(ds, epochs=max(1, steps // per_epoch), steps_per_epoch=min(steps, per_epoch), verbose=0,
            callbacks=callbacks)


def train(cfg: TrainConfig, out_dir: Path, cache: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Train one variant; write `lpr_<variant>.keras` and `.json` into `out_dir`; return the numbers."""
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    t0 = time.perf_counter()
    x_train, y_train, c_train = frames(data.SPLITS["train"], cfg.train_frames, cache)
    x_val, y_val, _ = frames(data.SPLITS["val"], cfg.val_frames, cache)
    log(f"generated {len(x_train)} + {len(x_val)} frames in {time.perf_counter() - t0:.0f} s")

    model = build(cfg.variant, cfg.seed)
    net = logits_model(model)
    start = time.perf_counter()
    callbacks = [keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: log(f"{time.perf_counter() - start:5.0f} s  loss {logs['loss']:.3f}  "
                                         f"val exact/char {accuracy(model, x_val, y_val)}"))]
    _phase(net, cfg, x_train, column_targets(y_train, c_train), column_loss, cfg.align_steps, callbacks)
    _phase(net, cfg, x_train, y_train, ctc_loss, cfg.ctc_steps, callbacks)
    train_s = time.perf_counter() - start
    val_exact, val_chars = accuracy(model, x_val, y_val)
    del x_train, y_train, c_train
    x_test, y_test, _ = frames(data.SPLITS["test"], cfg.test_frames, cache)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitsdk.examples.lpr.train", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(LSTM_UNITS), default="small")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for lpr_<variant>.keras/.json")
    parser.add_argument("--cache", type=Path, help="keep the generated frames here (.npz) and reuse them")
    defaults = TrainConfig()
    for name in ("seed", "train_frames", "align_steps", "ctc_steps", "batch"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    args = parser.parse_args(argv)
    cfg = TrainConfig(variant=args.variant, seed=args.seed, train_frames=args.train_frames,
                      align_steps=args.align_steps, ctc_steps=args.ctc_steps, batch=args.batch,
                      learning_rate=args.learning_rate)
    train(cfg, args.out, args.cache)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
