"""The cloud half of the split model, loaded from a bundle and run on batches.

`load_cloud_runner` returns a function from batched crossing tensors (wire order, float32) to the
model's batched outputs; it checks that the Keras model's inputs are the bundle's crossing tensors.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.errors import BundleError, ConvertError, first_line
from splitsdk.wire.bundle import Bundle

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]


def load_cloud_runner(bundle: Bundle) -> Runner:
    """Load `cloud.keras` (TensorFlow imported here, lazily) and check its inputs against the manifest."""
    if bundle.cloud_model.suffix == ".tflite":
        return _tflite_runner(bundle)
    problem = keras_archive_problem(bundle.cloud_model)
    if problem is not None:  # keras itself says "File not found" for a file that is there but corrupt
        raise BundleError(f"{bundle.cloud_model}: cannot load the cloud model: {problem}")
    import keras

    try:
        model: Any = keras.saving.load_model(bundle.cloud_model, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise BundleError(f"{bundle.cloud_model}: cannot load the cloud model: {first_line(exc)}") from None
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    want = [c.shape for c in bundle.crossing]
    if shapes != want:
        raise BundleError(
            f"{bundle.cloud_model}: model inputs {shapes} do not match manifest.json crossing shapes {want}"
        )

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = model.predict_on_batch(inputs if len(inputs) > 1 else inputs[0])
        return [np.asarray(o) for o in out] if isinstance(out, list | tuple) else [np.asarray(out)]

    return run


def keras_archive_problem(path: Path) -> str | None:
    """What is wrong with a `.keras` file as an archive (missing, not a zip, a bad CRC, no config.json),
    or None when it is a sound one."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except FileNotFoundError:
        return "no such file"
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"not a .keras archive (truncated or corrupt?): {first_line(exc)}"
    if bad is not None:
        return f"the archive is corrupt: bad CRC-32 in {bad}"
    if "config.json" not in names:
        return "not a Keras model archive: it has no config.json"
    return None


def _tflite_runner(bundle: Bundle) -> Runner:
    """A float TFLite cloud model (ONNX-sourced bundles), run sample by sample."""
    from splitsdk.runtime import bind_inputs, io_details, output_order, run_tflite

    content = bundle.cloud_model.read_bytes()
    try:
        ins, _ = io_details(content)
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"{bundle.cloud_model}: cannot load the cloud model: {exc}") from None
    want = [c.shape for c in bundle.crossing]
    got = [i.shape for i in ins]
    if sorted(got) != sorted(want):  # the converter may reorder inputs: they are bound by name or shape
        raise BundleError(f"{bundle.cloud_model}: model inputs {got} do not match manifest.json crossing shapes {want}")
    names = [c.tensor for c in bundle.crossing]
    outputs = bundle.manifest.outputs
    try:
        bind_inputs([{"name": i.name, "shape": (1, *i.shape)} for i in ins], want, names)
        # the model's outputs in the source model's order (the converter may reorder them; by name, else shape)
        order = output_order(content, [o.shape for o in outputs], [o.name for o in outputs]) if outputs else None
    except ConvertError as exc:
        raise BundleError(f"{bundle.cloud_model}: {exc}") from None

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        got = run_tflite(content, [np.asarray(x, np.float32) for x in inputs], names)
        return got if order is None else [got[i] for i in order]

    return run


def null_runner(n_classes: int = 10) -> Runner:
    """A stand-in cloud model returning uniform scores: benchmarks use it to exclude the model."""

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.full((inputs[0].shape[0], n_classes), 1.0 / n_classes, dtype=np.float32)]

    return run
