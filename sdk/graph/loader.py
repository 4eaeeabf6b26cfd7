"""Load a model from a file, a directory or memory, whatever its format, into a LayerGraph."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from splitsdk.errors import ModelError, SplitSdkError, first_line
from splitsdk.graph.keras_import import InputShape, import_keras
from splitsdk.graph.model import LayerGraph
from splitsdk.graph.optimize import optimize

MODEL_SUFFIXES = (".keras", ".h5", ".onnx")


def model_sha256(src: Any) -> str:
    """Hash identifying a model: the file bytes (all files of a directory), or the weights in memory."""
    h = hashlib.sha256()
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            h.update(f.read_bytes())
        return h.hexdigest()
    for w in getattr(src, "weights", []):
        h.update(w.path.encode() if hasattr(w, "path") else b"")
        h.update(bytes(memoryview(w.numpy())))
    h.update(getattr(src, "name", "").encode())
    return h.hexdigest()


def load_keras_model(path: Path) -> Any:
    """Load a .keras/.h5 file or a tf-keras SavedModel directory as a Keras 3 model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load_savedmodel(path)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a valid .keras archive (corrupt or truncated)")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except SplitSdkError:
        raise
    except Exception as exc:  # Keras raises many types for unreadable files
        reason = _unloadable_layer(path) if path.suffix == ".keras" else None
        raise ModelError(f"{path}: {reason or 'cannot load Keras model: ' + first_line(exc)}") from exc


def _unloadable_layer(path: Path) -> str | None:
    """Why a .keras archive does not load, when a layer is to blame: a Lambda (its code is not loaded)
    or a custom class this process has not registered; None otherwise."""
    import json

    import keras

    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    todo: list[Any] = [config]
    while todo:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        todo.extend(item.values())
        cls, module = item.get("class_name"), str(item.get("module") or "")
        name = item.get("config", {}).get("name") if isinstance(item.get("config"), dict) else None
        if not isinstance(cls, str) or name is None:
            continue
        if cls == "Lambda":
            return (f"layer '{name}' is a Lambda: its Python code is not loaded from a file; replace it with built-in "
                    "layers or a custom layer class registered with @keras.saving.register_keras_serializable()")
        registered = item.get("registered_name") or cls
        if not module.startswith("keras") and keras.saving.get_registered_object(registered) is None:
            return (f"layer '{name}' (class {cls}, registered as '{registered}') "
                    "is a custom layer this process does not know: import the module that defines it with "
                    "@keras.saving.register_keras_serializable() before loading")
    return None


def _load_savedmodel(path: Path) -> Any:
    """SavedModels written by tf-keras carry their layer graph: load with tf-keras, hand over as .h5."""
    if not (path / "saved_model.pb").exists():
        raise ModelError(f"{path}: directory is not a SavedModel (no saved_model.pb)")
    if not (path / "keras_metadata.pb").exists():
        raise ModelError(
            f"{path}: SavedModel has no Keras layer graph (keras_metadata.pb); export the model as .keras or .onnx"
        )
    import keras
    import tf_keras

    try:
        legacy = tf_keras.models.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as tmp:
            h5 = Path(tmp) / "model.h5"
            legacy.save(h5)
            return keras.models.load_model(h5, compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load SavedModel: {first_line(exc)}") from exc


def load_graph(
    src: Any,
    optimize_graph: bool = True,
    input_shape: InputShape | None = None,
    input_layout: str | None = None,
) -> LayerGraph:
    """Import a model (.keras, .h5, SavedModel directory, .onnx, or an in-memory keras.Model).

    With `optimize_graph` (the default) inference optimisations are applied: no-ops removed,
    batch norm folded, activations fused. `input_shape` fixes the dynamic dims of the (first, or each
    named) input: the per-sample shape as the graph reports it (channels-last for images), i.e. the
    shape of one calibration sample. `input_layout` ("NCHW" or "NHWC") overrides the layout an ONNX
    graph's input is read as. What the importer decided is in `graph.notes`.
    """
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        if not path.exists():
            raise ModelError(f"{path}: no such file or directory")
        if path.suffix == ".onnx":
            from splitsdk.graph.onnx_import import import_onnx

            graph = import_onnx(path, input_shape=input_shape, input_layout=input_layout)
        elif path.is_dir() or path.suffix in (".keras", ".h5"):
            graph = import_keras(load_keras_model(path), origin=str(path), input_shape=input_shape)
        else:
            raise ModelError(
                f"{path}: unknown model format '{path.suffix or 'no suffix'}' "
                f"(expected {', '.join(MODEL_SUFFIXES)} or a SavedModel directory)"
            )
    else:
        origin = f"<{type(src).__name__} {getattr(src, 'name', '')}>"
        graph = import_keras(src, origin=origin, input_shape=input_shape)
    return optimize(graph) if optimize_graph else graph
