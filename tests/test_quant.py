"""Sensitivity: quantisers against hand values, monotone MSE in bits, ONNX == Keras, cache, data errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splitsdk.errors import DataError
from splitsdk.graph import load_graph
from splitsdk.quant import load_dataset, measure_sensitivity, quantize_range, quantize_symmetric, quantize_weights

import model_zoo
import onnx_zoo


def test_symmetric_quantiser_per_channel() -> None:
    w = np.array([[1.0, 0.5], [-0.6, -0.3], [0.25, 0.1]], np.float32)
    q = quantize_symmetric(w, 2)  # levels -1, 0, 1 times max|w| of each channel
    np.testing.assert_allclose(q, [[1.0, 0.5], [-1.0, -0.5], [0.0, 0.0]])
    np.testing.assert_allclose(quantize_symmetric(w, 8), w, atol=1.0 / 127)


def test_range_quantiser_keeps_zero_and_range() -> None:
    x = np.linspace(-1, 3, 9, dtype=np.float32)
    q = quantize_range(x, -1.0, 3.0, 2)  # 4 levels, step 4/3, the grid nudged so that 0 is a level
    np.testing.assert_allclose(np.unique(q), [-4 / 3, 0.0, 4 / 3, 8 / 3], rtol=1e-6)
    assert np.max(np.abs(q - x)) <= 4 / 3 / 2 + 1e-6
    assert quantize_range(np.zeros(3, np.float32), -1.0, 3.0, 3).tolist() == [0.0, 0.0, 0.0]


def test_sensitivity_decreases_with_bits_and_is_cached() -> None:
    model = model_zoo.chain()
    graph = load_graph(model)
    data = load_dataset(None, (8, 8, 3), samples=6)
    assert data.synthetic
    s = measure_sensitivity(graph, data, [2, 4, 8], model_sha256="m1")
    assert set(s.weights) == {"conv1", "conv2", "fc"}
    assert set(s.activations) == set(graph.topological_order())
    for table in [*s.weights.values(), *s.activations.values()]:
        assert table[2] > table[4] > table[8] >= 0
    # the measured weight MSE is the real quantisation error of the folded kernel as it ships in int8
    kernel = graph.layer("conv1").source.replacement.kernel.numpy().reshape(-1, 4)
    want = float(np.mean((kernel - quantize_weights(kernel, 4)) ** 2))
    assert s.weights["conv1"][4] == pytest.approx(want, rel=1e-6)
    again = measure_sensitivity(graph, data, [2, 4, 8], model_sha256="m1")
    assert again == s


def test_onnx_and_keras_agree_on_activation_sensitivity(tmp_path: Path) -> None:
    onnx_graph = load_graph(onnx_zoo.residual(tmp_path / "r.onnx"))
    data = load_dataset(None, (4, 4, 2), samples=4)
    s = measure_sensitivity(onnx_graph, data, [2, 8], use_cache=False)
    assert set(s.weights) == {"c1", "c2", "fc"}
    assert s.activations["add"][2] > s.activations["add"][8] > 0


def test_dataset_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(DataError, match="bad.npz.*'x'"):
        load_dataset(tmp_path / "bad.npz", (8, 8, 3))
    np.savez(tmp_path / "labels.npz", x=np.zeros((2, 8, 8, 3), np.float32), y=np.zeros(3))
    with pytest.raises(DataError, match="'y'"):
        load_dataset(tmp_path / "labels.npz", (8, 8, 3))
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "none.npz", (8, 8, 3))


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    data = load_dataset(tmp_path, (8, 8, 3))
    assert data.x.shape == (3, 8, 8, 3) and not data.synthetic
    assert data.x[2].max() == pytest.approx(100 / 255)
