"""Dynamic input dims are fixed from --input-shape or the calibration data's sample shape, and said so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splitsdk.errors import DynamicShapeError
from splitsdk.inspect import inspect_model


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    inp = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("dyn") / "dyn.keras"
    keras.Model(inp, out).save(path)
    return path


def test_dynamic_dims_without_a_shape_are_refused_naming_the_input(dynamic_model: Path) -> None:
    with pytest.raises(DynamicShapeError, match="dynamic dims.*--input-shape"):
        inspect_model(dynamic_model)


def test_the_calibration_data_fixes_the_dims_and_a_note_says_so(dynamic_model: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.zeros((4, 16, 24, 3), np.float32))
    graph = inspect_model(dynamic_model, calib=calib).graph
    assert graph.tensors[graph.inputs[0]].shape == (16, 24, 3)
    assert any("calibration data" in n for n in graph.notes)


def test_input_shape_flag_fixes_the_dims(dynamic_model: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "inspect", str(dynamic_model), "--input-shape", "8x8x3", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    notes = out["model"]["notes"]
    assert any("fixed to 8, 8" in n for n in notes), notes
