"""`splitsdk convert`: sub-model equivalence, bundles that the receiver's reader accepts, host checks, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from plan_factory import forced_plan, make_plan

from splitsdk.convert import ConvertError, convert_plan
from splitsdk.convert.split import cloud_model, edge_model
from splitsdk.convert.tflite import to_int8_tflite
from splitsdk.errors import PlanError
from splitsdk.graph import build_keras, load_graph
from splitsdk.graph.keras_import import call_outputs
from splitsdk.runtime import match_outputs
from splitsdk.wire.bundle import load_bundle

import model_zoo


@pytest.mark.parametrize("name", sorted(model_zoo.ALL))
def test_float_edge_then_cloud_equals_the_full_model_at_every_split(name: str) -> None:
    model = model_zoo.ALL[name]()
    graph = load_graph(model)
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    full = build_keras(graph).predict(x, verbose=0)
    full = full if isinstance(full, list) else [full]
    for cand in graph.split_candidates():
        edge_layers = list(cand.edge_layers)
        crossing = [c.tensor for c in cand.crossing] or list(graph.outputs)
        sent = edge_model(graph, edge_layers, crossing)([x], training=False)
        sent = sent if isinstance(sent, list | tuple) else [sent]
        got = cloud_model(graph, crossing, edge_layers)([np.asarray(s) for s in sent], training=False)
        got = got if isinstance(got, list | tuple) else [got]
        for a, b in zip(full, got, strict=True):
            np.testing.assert_allclose(np.asarray(b), a, rtol=1e-5, atol=1e-5, err_msg=f"{name} split {cand.index}")


@pytest.fixture(scope="module")
def two_head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "two_head.keras"
    model_zoo.two_head().save(path)
    return path


def test_split_bundle_with_two_crossing_tensors(two_head_file: Path, tmp_path: Path) -> None:
    # split 2 sends c1 (read later by head_b) and c2; c1 at 4 bits through the LUT, c2 at 8
    plan = forced_plan(two_head_file, tmp_path / "plan.json", split=2, crossing_bits={"c1": 4})
    report = convert_plan(plan, two_head_file, tmp_path / "bundle", samples=16)
    bundle = load_bundle(tmp_path / "bundle")
    assert [c.tensor for c in bundle.crossing] == ["c1", "c2"]
    assert [c.bits for c in bundle.crossing] == [4, 8]
    assert [c.shape for c in bundle.crossing] == [(4, 4, 4), (2, 2, 8)]
    assert max(bundle.crossing[0].lut) == 15  # 4-bit codes
    assert bundle.wire_bytes == (64 * 4) // 8 + 32
    assert report.edge_tflite_bytes == (tmp_path / "bundle" / "edge.tflite").stat().st_size
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["plan_sha256"] == bundle.plan_sha256 and manifest["kind"] == "SPLIT"
    # the cloud model takes the crossing tensors in wire order
    import keras

    cloud = keras.models.load_model(bundle.cloud_model, compile=False)
    assert [tuple(i.shape[1:]) for i in cloud.inputs] == [(4, 4, 4), (2, 2, 8)]
    v = report.verification
    assert v is not None and v.samples == 16
    # the stated bound: the real int8 pipeline's output MSE is within twice the plan's float simulation
    # (weights, input and every layer's output on the grids the runtime uses, each sent tensor on its b-bit
    # grid) plus a 1e-6 floor; and the simulation is a prediction, not a loose ceiling: at least half of it
    assert 0.5 * v.simulated_mse <= v.output_mse <= 2 * v.simulated_mse + 1e-6
    assert (tmp_path / "bundle" / "plan.json").read_bytes() == plan.read_bytes()


def test_emulated_low_bit_weights_are_on_their_grid(two_head_file: Path, tmp_path: Path) -> None:
    plan = forced_plan(two_head_file, tmp_path / "plan.json", split=1, wbits=2)
    report = convert_plan(plan, two_head_file, tmp_path / "bundle", samples=8)
    assert report.emulated_layers == ["c1"]
    v = report.verification
    assert v is not None and v.output_mse <= 2 * v.simulated_mse + 1e-6
    from splitsdk.runtime import interpreter

    interp = interpreter((tmp_path / "bundle" / "edge.tflite").read_bytes())
    kernels = [d for d in interp.get_tensor_details() if d["dtype"] == np.int8 and len(d["shape"]) == 4
               and d["shape"][0] == 4]
    assert kernels
    k = interp.get_tensor(kernels[0]["index"])
    for ch in range(k.shape[0]):  # 2-bit symmetric: at most the levels -1, 0, +1 of each channel
        assert len(np.unique(k[ch])) <= 3


def test_cloud_only_and_edge_only_are_bundles_too(two_head_file: Path, tmp_path: Path) -> None:
    n = len(load_graph(two_head_file))
    for split, kind in ((0, "CLOUD_ONLY"), (n, "EDGE_ONLY")):
        plan = forced_plan(two_head_file, tmp_path / f"plan{split}.json", split=split)
        report = convert_plan(plan, two_head_file, tmp_path / f"b{split}", samples=8)
        assert report.kind == kind
        bundle = load_bundle(tmp_path / f"b{split}")
        want = ["img"] if split == 0 else ["head_a", "head_b"]
        assert sorted(c.tensor for c in bundle.crossing) == want
        assert report.verification is not None and report.verification.output_mse < 1e-2


def test_same_plan_twice_gives_byte_identical_bundles(two_head_file: Path, tmp_path: Path) -> None:
    plan = forced_plan(two_head_file, tmp_path / "plan.json", split=2)
    for out in ("a", "b"):
        convert_plan(plan, two_head_file, tmp_path / out, samples=8, verify=False)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["cloud.keras", "cloud.tflite", "edge.tflite", "manifest.json", "plan.json"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_outputs_are_matched_by_value_not_assumed_in_order() -> None:
    # The converter orders outputs its own way, not the Keras model's: matching by value finds the
    # permutation instead of trusting positions (or the signature).
    import keras

    from splitsdk.runtime import io_details, run_tflite

    x = keras.Input((6,), name="x")
    a = keras.layers.Dense(4, name="a")(x)
    b = keras.layers.Dense(4, name="b")(x)
    data = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    orders = {}
    for name, model in (("ab", keras.Model(x, [a, b])), ("ba", keras.Model(x, [b, a]))):
        content = to_int8_tflite(model, [data])
        want = call_outputs(model, [data[:4]])
        order = match_outputs(want, content, [data[:4]])
        orders[name] = order
        got = run_tflite(content, [data[:4]])
        _, outs = io_details(content)
        for k, idx in enumerate(order):
            deq = (got[idx].astype(np.float32) - outs[idx].zero_point) * outs[idx].scale
            np.testing.assert_allclose(deq, want[k], atol=3 * outs[idx].scale)
    assert sorted(orders["ab"]) == sorted(orders["ba"]) == [0, 1]
    # the converter really did reorder (at least one model's outputs are not in Keras order)
    assert orders["ab"] != [0, 1] or orders["ba"] != [0, 1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitsdk", *args], capture_output=True, text=True, timeout=600)


def test_bad_plans_give_one_line_errors_and_no_bundle(two_head_file: Path, tmp_path: Path) -> None:
    plan = make_plan(two_head_file, tmp_path / "plan.json")
    other = tmp_path / "other.keras"
    model_zoo.chain().save(other)
    with pytest.raises(PlanError, match="model.sha256"):
        convert_plan(plan, other, tmp_path / "x")

    data = json.loads(plan.read_text())
    data["solution"]["edge_layers"] = data["layers"][:1]
    data["layers"][0] = data["solution"]["edge_layers"][0] = "ghost"
    data["solution"].update(kind="SPLIT", split_index=1, weight_bits={"ghost": 8}, activation_bits={"ghost": 8},
                            crossing=[{"tensor": "ghost", "shape": [4], "bits": 8}])
    (tmp_path / "ghost.json").write_text(json.dumps(data))
    with pytest.raises(PlanError, match="'ghost'"):
        convert_plan(tmp_path / "ghost.json", two_head_file, tmp_path / "x")

    one_bit = forced_plan(two_head_file, tmp_path / "onebit.json", split=1, wbits=1)
    with pytest.raises(ConvertError, match="'c1'.*1-bit weights"):
        convert_plan(one_bit, two_head_file, tmp_path / "x")

    for bad in (one_bit, tmp_path / "ghost.json"):
        proc = _cli("convert", str(bad), "--model", str(two_head_file), "-o", str(tmp_path / "x"))
        assert proc.returncode != 0
        lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("splitsdk: warning")]
        assert len(lines) == 1 and lines[0].startswith("splitsdk: error:"), proc.stderr
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.")]


def test_onnx_model_is_split_on_the_onnx_graph(tmp_path: Path) -> None:
    import onnx_zoo

    path = onnx_zoo.chain(tmp_path / "chain.onnx")
    # split 2: conv1(+BN+ReLU) and pool on the edge; 'pool' (4x4x4, NHWC) crosses at 6 bits
    plan = forced_plan(path, tmp_path / "plan.json", split=2, crossing_bits={"pool": 6})
    report = convert_plan(plan, path, tmp_path / "bundle", samples=8)
    bundle = load_bundle(tmp_path / "bundle")
    assert [(c.tensor, c.shape, c.bits) for c in bundle.crossing] == [("pool", (4, 4, 4), 6)]
    assert bundle.cloud_model.name == "cloud.tflite"
    v = report.verification
    assert v is not None and v.samples == 8
    # 6-bit transmission of a random-weight chain: the pipeline stays close to the float ONNX model
    assert v.output_rel_mse < 1e-2
    assert v.agreement >= 0.75
    # CLOUD-ONLY: the edge quantises the frame, the whole ONNX model runs in the cloud
    plan0 = forced_plan(path, tmp_path / "plan0.json", split=0)
    report0 = convert_plan(plan0, path, tmp_path / "bundle0", samples=8)
    b0 = load_bundle(tmp_path / "bundle0")
    assert [(c.tensor, c.shape, c.bits) for c in b0.crossing] == [("img", (8, 8, 3), 8)]
    assert report0.verification is not None and report0.verification.output_rel_mse < 1e-2


def test_plan_predicts_the_real_edge_file_size(tmp_path: Path) -> None:
    # the planner's edge bytes model the TFLite file (kernels, per-channel biases and quantisation
    # parameters, layer records: the target's quant.model_file): the shipped file agrees within 5%
    from splitsdk.examples import camera_net

    path = tmp_path / "camera_net.keras"
    camera_net.build().save(path)
    for memory in (300_000, 600_000):  # two different splits
        plan = tmp_path / f"plan{memory}.json"
        from splitsdk.plan import Constraints, plan_model, save_plan
        from splitsdk.profile.types import Link

        save_plan(plan_model(str(path), "cortex-a7", Link(3.0, 10.0), Constraints(memory_bytes=memory), exact=None),
                  plan)
        report = convert_plan(plan, path, tmp_path / f"b{memory}", samples=4, verify=False)
        assert report.kind != "CLOUD_ONLY"
        assert abs(report.size_ratio - 1.0) <= 0.05, (report.edge_tflite_bytes, report.predicted_edge_weight_bytes)


def test_simulation_knows_the_runtimes_fixed_softmax_range(tmp_path: Path) -> None:
    # TFLite's int8 softmax output has scale 1/256 whatever the data: 40 classes near 1/40 each lose most of
    # their precision. The simulation rounds them the same way, so it still predicts the measured error.
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3), name="img")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    y = keras.layers.Dense(40, activation="softmax", name="probs")(keras.layers.Flatten(name="flat")(h))
    path = tmp_path / "softmax.keras"
    keras.Model(x, y).save(path)
    n = len(load_graph(path))
    plan = forced_plan(path, tmp_path / "plan.json", split=n)  # EDGE-ONLY: the probabilities are sent
    report = convert_plan(plan, path, tmp_path / "bundle", samples=16)
    v = report.verification
    assert v is not None and v.output_mse > 1e-6  # coarse: steps of 1/256 on values near 1/40
    assert 0.5 * v.simulated_mse <= v.output_mse <= 2 * v.simulated_mse + 1e-6
