"""Model formats (ONNX, SavedModel, .keras files) and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splitsdk.errors import ModelError, UnsupportedLayerError
from splitsdk.graph import load_graph

import model_zoo
import onnx_zoo


def _table(graph) -> list[tuple[int, int, int, list[tuple[int, ...]]]]:  # type: ignore[no-untyped-def]
    return [
        (c.transmit_elements, c.edge_weights, c.peak_activation_elements, [x.shape for x in c.crossing])
        for c in graph.split_candidates()
    ]


@pytest.mark.parametrize("name", ["chain", "residual"])
def test_onnx_gives_the_same_split_table_as_keras(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    path = getattr(onnx_zoo, name)(tmp_path / f"{name}.onnx")
    onnx_graph = load_graph(path)
    keras_graph = load_graph(model_zoo.ALL[name]())
    assert [lay.op for lay in onnx_graph.layers()] == [lay.op for lay in keras_graph.layers()]
    assert _table(onnx_graph) == _table(keras_graph)
    assert [lay.macs for lay in onnx_graph.layers()] == [lay.macs for lay in keras_graph.layers()]
    # the ONNX model is a real, runnable model
    sess = ort.InferenceSession(str(path))
    shape = sess.get_inputs()[0].shape
    assert sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})[0].shape[0] == 1


def test_keras_file_and_savedmodel_directory(tmp_path: Path) -> None:
    import tf_keras

    model = model_zoo.residual()
    model.save(tmp_path / "residual.keras")
    from_file = load_graph(tmp_path / "residual.keras")
    assert _table(from_file) == _table(load_graph(model))

    # a SavedModel written by tf-keras carries its layer graph
    L = tf_keras.layers
    x = tf_keras.Input((4, 4, 2), name="x")
    c1 = L.Conv2D(2, 1, activation="relu", name="c1")(x)
    a = L.Add(name="add")([L.Conv2D(2, 1, name="c2")(c1), x])
    legacy = tf_keras.Model(x, L.Dense(3, name="fc")(L.GlobalAveragePooling2D(name="gap")(a)))
    legacy.save(tmp_path / "sm", save_format="tf")
    from_sm = load_graph(tmp_path / "sm")
    assert from_sm.topological_order() == ["c1", "c2", "add", "gap", "fc"]
    assert _table(from_sm) == _table(from_file)


def test_custom_layer_is_unsupported_and_named() -> None:
    import keras

    class Scale(keras.layers.Layer):
        def build(self, shape):  # type: ignore[no-untyped-def]
            self.w = self.add_weight(shape=(shape[-1],))

        def call(self, x):  # type: ignore[no-untyped-def]
            return x * self.w

    x = keras.Input((4,))
    model = keras.Model(x, Scale(name="my_scale")(keras.layers.Dense(4)(x)))
    with pytest.raises(UnsupportedLayerError, match="my_scale"):
        load_graph(model)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.keras", "no such file"),
        (lambda d: (d / "corrupt.keras").write_bytes(b"not a zip at all") and d / "corrupt.keras", "corrupt"),
        (lambda d: (d / "model.txt").write_text("x") and d / "model.txt", "unknown model format"),
        (lambda d: (d / "bad.onnx").write_bytes(b"\x00garbage") and d / "bad.onnx", "cannot read ONNX"),
        (lambda d: (d / "empty_dir").mkdir() or d / "empty_dir", "not a SavedModel"),
    ],
)
def test_bad_model_files_give_one_line_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(ModelError, match=message):
        load_graph(path)
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "inspect", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitsdk: error:") and str(path) in err[0], proc.stderr
    assert "Traceback" not in proc.stderr
