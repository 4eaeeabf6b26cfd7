"""Calibration / evaluation data: an .npz file, a folder of images, or random inputs (said loudly)."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import DataError, DynamicShapeError, first_line
from splitsdk.graph.model import LayerGraph

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm"}


@dataclass
class Dataset:
    """Model inputs `x` (N, *input_shape) float32, optional labels `y`, and where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    origin: str
    synthetic: bool = False

    @property
    def sha256(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()

    def batches(self, size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self.x), size):
            yield self.x[i : i + size]


def load_dataset(
    path: str | Path | None,
    input_shape: tuple[int, ...],
    samples: int = 32,
    seed: int = 0,
    image_scale: float = 1.0 / 255.0,
) -> Dataset:
    """Load inputs shaped like the model's input (without batch).

    `.npz`: arrays `x` (or the first array) and optional `y`. A folder: images resized to the
    input's height and width, scaled by `image_scale`. None: `samples` standard-normal inputs, with
    a warning on stderr, since sensitivities on random data say little about real accuracy.
    """
    if path is None:
        print(
            f"splitsdk: warning: no calibration data given; using {samples} RANDOM inputs "
            "(sensitivities are only a rough guide)",
            file=sys.stderr,
        )
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((samples, *input_shape)).astype(np.float32)
        return Dataset(x, None, "random", synthetic=True)
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_dir():
        return _load_images(p, input_shape, samples, image_scale)
    if p.suffix != ".npz":
        raise DataError(f"{p}: unknown data format (expected .npz or a folder of images)")
    try:
        with np.load(p) as data:
            keys = list(data.keys())
            if not keys:
                raise DataError(f"{p}: empty .npz")
            x = np.asarray(data["x"] if "x" in data else data[keys[0]], dtype=np.float32)
            y = np.asarray(data["y"]) if "y" in data else None
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: cannot read .npz: {first_line(exc)}") from exc
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"{p}: field 'x' has sample shape {tuple(x.shape[1:])}, the model expects {input_shape}")
    if y is not None and len(y) != len(x):
        raise DataError(f"{p}: field 'y' has {len(y)} labels for {len(x)} samples")
    return Dataset(x, y, str(p))


def sample_shape(path: str | Path | None) -> tuple[int, ...] | None:
    """The per-sample shape of an .npz's inputs (array `x`, else its first array), without loading them;
    None for a folder of images, no data, or a file that is not an .npz (`load_dataset` says what is wrong)."""
    if path is None or Path(path).suffix != ".npz" or not Path(path).is_file():
        return None
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            name = "x.npy" if "x.npy" in names else (names[0] if names else None)
            if name is None:
                return None
            with zf.open(name) as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, _ = read(fh)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(int(d) for d in shape[1:])


def load_graph_for_data(
    model: Any, calib: str | Path | None, input_shape: tuple[int, ...] | None = None, optimize_graph: bool = True
) -> LayerGraph:
    """`load_graph` for a model that will see `calib`: dynamic input dims are fixed from `input_shape`, else
    from the calibration data's sample shape (a note on the graph says so); a fixed-shape model loads as is."""
    from splitsdk.graph import load_graph

    if input_shape is not None:
        return load_graph(model, optimize_graph, input_shape=input_shape)
    try:
        return load_graph(model, optimize_graph)
    except DynamicShapeError:
        shape = sample_shape(calib)
        if shape is None:
            raise
        graph = load_graph(model, optimize_graph, input_shape=shape)
        graph.notes.append(f"input shape {shape} taken from the calibration data {calib}")
        return graph


def parse_shape(text: str, what: str = "--input-shape") -> tuple[int, ...]:
    """`96,96,3` or `96x96x3` -> (96, 96, 3): a per-sample shape as a user types it."""
    parts = [t for t in re.split(r"[x,\s]+", text.strip()) if t]
    if not parts or not all(t.isdigit() and int(t) > 0 for t in parts):
        raise DataError(f"{what}: expected positive dimensions like 96,96,3, got {text!r}")
    return tuple(int(t) for t in parts)


def _load_images(folder: Path, input_shape: tuple[int, ...], limit: int, scale: float) -> Dataset:
    from PIL import Image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(input_shape) != 3:
        raise DataError(f"{folder}: images need a model input of shape (H, W, C), not {input_shape}")
    h, w, c = input_shape
    out = np.empty((len(files), h, w, c), np.float32)
    for i, f in enumerate(files):
        try:
            img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h))
        except Exception as exc:
            raise DataError(f"{f}: cannot read image: {exc}") from exc
        arr = np.asarray(img, np.float32).reshape(h, w, c)
        out[i] = arr * scale
    return Dataset(out, None, str(folder))
