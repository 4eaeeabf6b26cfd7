"""The model graph: crossing sets, sizes and peak working sets against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from splitsdk.graph import build_keras, load_graph

import model_zoo

# (index -> (crossing tensors, transmit elements, edge weights, peak working set)), computed by hand:
# weights = kernel + bias (BN folded into conv1 leaves a bias), peak = inputs + outputs of the running
# layer + everything still to be read later or to be sent.
EXPECTED = {
    "chain": (
        ["conv1", "pool", "conv2", "gap", "fc"],
        {0: (["img"], 192, 0, 0), 1: (["relu1"], 256, 112, 192 + 256), 2: (["pool"], 64, 112, 448),
         3: (["conv2"], 128, 112 + 296, 448), 4: (["gap"], 8, 408, 448), 5: ([], 0, 408 + 90, 448)},
    ),
    "residual": (
        ["c1", "c2", "add", "gap", "fc"],
        # the skip tensor x stays alive while c2 runs: 32 (x) + 32 (c1) + 32 (c2) = 96, not 64 as in a chain
        {0: (["x"], 32, 0, 0), 1: (["x", "c1"], 64, 6, 64), 2: (["x", "c2"], 64, 12, 96),
         3: (["add"], 32, 12, 96), 4: (["gap"], 2, 12, 96), 5: ([], 0, 21, 96)},
    ),
    "inception": (
        ["b3a", "b2a", "b1", "b2b", "b3b", "concat"],
        {1: (["x", "b3a"], 128, 0, 128), 2: (["x", "b3a", "b2a"], 160, 10, 160),
         3: (["b3a", "b2a", "b1"], 128, 20, 64 + 64 + 32 + 32), 4: (["b3a", "b1", "b2b"], 128, 58, 192),
         5: (["b1", "b2b", "b3b"], 96, 68, 192), 6: ([], 0, 68, 192)},
    ),
    "shared_layer": (
        ["d", "d@1", "out"],
        # the Dense called twice holds its 20 weights once
        {1: (["d"], 4, 20, 8), 2: (["d@1"], 4, 20, 8), 3: ([], 0, 30, 8)},
    ),
    "late_input": (
        ["h1", "h2", "cat", "out"],
        {1: (["x", "h1"], 16, 72, 16), 2: (["x", "h2"], 16, 144, 24), 3: (["cat"], 16, 144, 32)},
    ),
    "two_head": (
        ["c1", "c2", "head_b", "head_a"],
        # head_b reads the early map c1, so c1 crosses until head_b runs; head_b is an output and crosses
        {1: (["c1"], 64, 112, 256), 2: (["c1", "c2"], 96, 408, 256), 3: (["c2", "head_b"], 64, 418, 256),
         4: ([], 0, 436, 256)},
    ),
    "nested": (
        ["stem", "block/conv2d", "block/add", "block@1/conv2d", "block@1/add", "seq/sq"],
        # the nested block is called twice: its 20 weights count once
        {2: (["stem", "block/conv2d"], 128, 36, 128), 4: (["block/add", "block@1/conv2d"], 128, 36, 192),
         6: ([], 0, 46, 192)},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_split_table_matches_hand_computed(name: str) -> None:
    order, table = EXPECTED[name]
    graph = load_graph(model_zoo.ALL[name]())
    assert graph.topological_order() == order
    cands = graph.split_candidates()
    assert len(cands) == len(order) + 1
    assert cands[0].edge_layers == () and [c.tensor for c in cands[0].crossing] == graph.inputs
    for idx, (crossing, transmit, weights, peak) in table.items():
        c = cands[idx]
        assert [x.tensor for x in c.crossing] == crossing, idx
        assert c.transmit_elements == transmit, idx
        assert c.edge_weights == weights, idx
        assert c.peak_activation_elements == peak, idx
        assert c.edge_layers == tuple(order[:idx])


def test_live_sets_follow_liveness() -> None:
    graph = load_graph(model_zoo.residual())
    steps = graph.live_sets(2)
    assert steps == [{"x": 32, "c1": 32}, {"x": 32, "c1": 32, "c2": 32}]
    assert graph.live_sets(0) == []


@pytest.mark.parametrize("name", sorted(model_zoo.ALL))
def test_optimised_graph_computes_the_same_function(name: str) -> None:
    model = model_zoo.ALL[name]()
    graph = load_graph(model)
    rebuilt = build_keras(graph)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, *model.input_shape[1:])).astype("float32")
    want = model.predict(x, verbose=0)
    got = rebuilt.predict(x, verbose=0)
    for a, b in zip(want if isinstance(want, list) else [want], got if isinstance(got, list) else [got],
                    strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_batchnorm_folding_is_exact_and_removes_the_bn() -> None:
    model = model_zoo.chain()
    raw = load_graph(model, optimize_graph=False)
    opt = load_graph(model)
    assert "bn1" in raw and "relu1" in raw
    assert "bn1" not in opt and "relu1" not in opt
    conv = opt.layer("conv1")
    assert conv.folded == ["bn1", "relu1"] and conv.activation == "relu"
    assert conv.weights == 3 * 3 * 3 * 4 + 4  # kernel + the bias the fold creates
    # the folded kernel really differs from the original (the BN had non-trivial statistics)
    folded = conv.source.replacement.kernel.numpy()
    assert not np.allclose(folded, model.get_layer("conv1").kernel.numpy())
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(build_keras(opt).predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_layer_facts() -> None:
    graph = load_graph(model_zoo.chain(), optimize_graph=False)
    conv2 = graph.layer("conv2")
    assert conv2.op == "Conv2D" and conv2.weights == 3 * 3 * 4 * 8 + 8
    assert conv2.macs == 4 * 4 * 8 * (3 * 3 * 4) + 4 * 4 * 8  # the built-in ReLU costs one op per element
    assert conv2.attrs["kernel"] == (3, 3) and conv2.attrs["filters"] == 8
    assert graph.layer("fc").macs == 8 * 10
    assert graph.tensors["conv2"].shape == (4, 4, 8)
    assert graph.input_elements == 192


def test_dropout_is_removed_at_inference() -> None:
    import keras

    x = keras.Input((4,), name="x")
    y = keras.layers.Dense(2, name="d2")(keras.layers.Dropout(0.5, name="drop")(keras.layers.Dense(3, name="d1")(x)))
    graph = load_graph(keras.Model(x, y))
    assert graph.topological_order() == ["d1", "d2"]
    assert graph.layer("d2").inputs == ["d1"]


def test_multi_input_model() -> None:
    import keras

    img = keras.Input((4, 4, 2), name="img")
    meta = keras.Input((3,), name="meta")
    f = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Conv2D(4, 1, name="conv")(img))
    m = keras.layers.Dense(4, name="mdense")(meta)
    out = keras.layers.Dense(2, name="out")(keras.layers.Concatenate(name="cat")([f, m]))
    graph = load_graph(keras.Model([img, meta], out, name="two_inputs"))
    assert graph.inputs == ["img", "meta"] and graph.input_elements == 32 + 3
    assert graph.topological_order() == ["conv", "gap", "mdense", "cat", "out"]
    # the second input crosses until mdense reads it on the edge; while conv runs, img (32), meta (3, to be
    # sent) and conv's output (64) are live together
    table = [([x.tensor for x in c.crossing], c.peak_activation_elements) for c in graph.split_candidates()]
    assert table == [(["img", "meta"], 0), (["meta", "conv"], 99), (["meta", "gap"], 99), (["gap", "mdense"], 99),
                     (["cat"], 99), ([], 99)]
    x = [np.ones((1, 4, 4, 2), np.float32), np.ones((1, 3), np.float32)]
    model = keras.Model([img, meta], out)
    np.testing.assert_allclose(build_keras(graph)(x), model(x), rtol=1e-5, atol=1e-6)
