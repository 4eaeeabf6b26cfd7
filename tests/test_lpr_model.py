"""The licence-plate reader: the checked-in trained weights read plates, and splitsdk's importer takes the model."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from typing import Any

import numpy as np
import pytest

from splitsdk.examples.lpr import VARIANTS, data, weights_path
from splitsdk.examples.lpr.decode import decode
from splitsdk.examples.lpr.model import LSTM_UNITS, build
from splitsdk.examples.lpr.train import column_targets

# Exact-match accuracy on test frames 0..63, a little below what the checked-in weights reach there.
SLICE_THRESHOLD = {"small": 0.875, "large": 0.9}  # measured: 60/64 and 64/64


@cache
def _test_slice() -> tuple[np.ndarray, list[str]]:
    return data.generate(data.SPLITS["test"], 64)


@cache
def _model(variant: str) -> Any:
    import keras

    return keras.models.load_model(weights_path(variant))


@pytest.mark.parametrize("variant", VARIANTS)
def test_checked_in_weights_read_the_test_slice(variant: str) -> None:
    frames, texts = _test_slice()
    reads = decode(np.asarray(_model(variant).predict(frames.astype(np.float32) / 255.0, verbose=0)))
    exact = np.mean([r == t for r, t in zip(reads, texts, strict=True)])
    assert exact >= SLICE_THRESHOLD[variant], list(zip(reads, texts, strict=True))


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_numbers_are_checked_in_and_meet_the_goal(variant: str) -> None:
    numbers = json.loads(weights_path(variant).with_suffix(".json").read_text())
    assert numbers["config"]["variant"] == variant and numbers["lstm_units"] == LSTM_UNITS[variant]
    assert numbers["test_exact"] >= 0.9 and numbers["val_exact"] >= 0.9
    assert numbers["file_bytes"] == weights_path(variant).stat().st_size
    assert numbers["params"] == _model(variant).count_params()


def test_variants_differ_only_in_the_lstm() -> None:
    small, large = build("small"), build("large")
    assert small.output_shape == large.output_shape == (None, 64, data.NUM_CLASSES)
    assert small.get_layer("bilstm").output.shape[-1] == 2 * LSTM_UNITS["small"] == 128
    assert large.get_layer("bilstm").output.shape[-1] == 2 * LSTM_UNITS["large"] == 512
    conv = [layer.name for layer in small.layers if "lstm" not in layer.name]
    assert conv == [layer.name for layer in large.layers if "lstm" not in layer.name]
    with pytest.raises(ValueError, match="unknown LPR variant"):
        build("medium")


def test_graph_import_puts_a_small_cut_after_the_backbone() -> None:
    from splitsdk.graph.loader import load_graph

    graph = load_graph(weights_path("small"))
    ops = {layer.name: layer.op for layer in (graph.layer(n) for n in graph.topological_order())}
    assert ops["bilstm"] == "Bidirectional" and ops["chars"] == "Softmax"
    cuts = {c.last_layer: c.transmit_elements for c in graph.split_candidates()}
    assert cuts[None] == graph.input_elements == 128 * 256 * 3
    assert cuts["rows_max"] == 64 * 96  # 16x fewer elements than the frame


def test_inspect_cli_profiles_it_for_the_camera() -> None:
    proc = subprocess.run([sys.executable, "-m", "splitsdk", "inspect", str(weights_path("small")), "--target",
                           "cortex-a7", "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {row["layer"]: row for row in out["splits"]}
    assert rows["rows_max"]["transmit_elements"] == 6144 and rows["rows_max"]["edge_ms"] > 0
    assert out["model"]["name"] == "lpr_small"


def test_column_targets_put_each_character_under_its_centre() -> None:
    labels = data.encode("AB123CD")[None]
    centres = np.stack([np.array([10.0, 20, 30, 40, 50, 60, 255.9]), np.full(7, 64.0)], axis=-1)[None]
    targets = column_targets(labels, centres)
    assert targets.shape == (1, 64)
    assert [int(targets[0, c]) for c in (2, 5, 7, 10, 12, 15, 63)] == list(labels[0])
    assert int((targets != data.BLANK).sum()) == 7
