"""`splitsdk convert` with per-layer precision mixes: int8, int16 activations x int8 weights, dynamic-range
int8 and float layers in one edge model (ai-edge-quantizer), checked in the file, on the host and on the
target's TFLite 2.14.1 under QEMU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from plan_factory import forced_plan

from splitsdk.convert import ConvertError, convert_plan
from splitsdk.convert.mixed import Precision, executed_precisions, to_mixed_tflite
from splitsdk.convert.tflite import to_float_tflite
from splitsdk.graph.keras_import import call_outputs
from splitsdk.runtime import interpreter, io_details, match_outputs, run_tflite
from splitsdk.wire.bundle import load_bundle

import model_zoo

# mixed_net split 5: c1..c4 on the edge; c2 (int16, also read by the edge's c3) and c4 (dynamic int8,
# float output) are sent
SPLIT = 5
MIX = {"c1": (8, 8), "c2": (8, 16), "c3": (32, 32), "add": (8, 16), "c4": (8, 32)}
WANT = {"c1": "int8", "c2": "int16x8", "c3": "float32", "add": "int16x8", "c4": "dynamic_int8"}


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "mixed_net.keras"
    model_zoo.mixed_net().save(path)
    return path


@pytest.fixture(scope="module")
def mixed_bundle(mixed_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("mixed")
    plan = forced_plan(mixed_file, root / "plan.json", split=SPLIT, layer_bits=MIX, crossing_bits={"c2": 8, "c4": 4})
    report = convert_plan(plan, mixed_file, root / "bundle", samples=16)
    return root / "bundle", report


def _dtype_of(content: bytes, name: str) -> str:
    interp = interpreter(content)
    (d,) = [d for d in interp.get_tensor_details() if d["name"] == name]
    return np.dtype(d["dtype"]).name


def test_each_layer_executes_the_precision_the_plan_asks(mixed_bundle: tuple[Path, object]) -> None:
    bundle_dir, report = mixed_bundle
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["precision"]["layers"] == WANT
    assert "ai-edge-quantizer" in manifest["precision"]["edge_runtime"]
    content = (bundle_dir / "edge.tflite").read_bytes()
    ins, outs = io_details(content)
    assert [o.dtype for o in outs] == ["int8", "int8"]  # what the app packs, whatever the producer ran in
    assert ins[0].dtype == "int8"
    interp = interpreter(content)
    types = {np.dtype(d["dtype"]).name for d in interp.get_tensor_details()}
    assert {"int8", "int16", "float32"} <= types
    # the crossing tensors: c2 goes out as int8 although its op runs int16; 4-bit c4 through the LUT
    bundle = load_bundle(bundle_dir)
    assert [(c.tensor, c.bits) for c in bundle.crossing] == [("c2", 8), ("c4", 4)]
    assert max(bundle.crossing[1].lut) == 15
    v = report.verification  # type: ignore[attr-defined]
    # the stated bound, as for int8 plans: within twice the plan's float simulation (int16 layers on the
    # int16 grid, float layers as is) plus a 1e-6 floor, and at least half of it
    assert v is not None and 0.5 * v.simulated_mse <= v.output_mse <= 2 * v.simulated_mse + 1e-6


def test_the_file_holds_int16_float_and_dynamic_layers(mixed_file: Path, tmp_path: Path) -> None:
    from splitsdk.convert.split import edge_with_probe
    from splitsdk.graph import load_graph

    graph = load_graph(mixed_file)
    layers = list(MIX)
    edge, probe = edge_with_probe(graph, layers, ["c2", "c4"])
    want = {n: Precision(w if graph.layer(n).quantizable else 0, a) for n, (w, a) in MIX.items()}
    calib = np.random.default_rng(0).random((8, 16, 16, 3)).astype(np.float32)
    mixed = to_mixed_tflite(to_float_tflite(edge) or b"", lambda x: call_outputs(probe, [x]), layers, want, calib)
    assert set(mixed.ops) == set(layers)  # every plan layer was found among the TFLite ops by value
    assert {n: p.name for n, p in mixed.executed.items()} == WANT
    # the op tensors' dtypes in the file: int16 for c2 and add, float for c3 and c4's output, int8 for c1
    got = {n: _dtype_of(mixed.content, t) for n, t in mixed.ops.items()}
    assert got == {"c1": "int8", "c2": "int16", "c3": "float32", "add": "int16", "c4": "float32"}
    assert executed_precisions(mixed.content, mixed.ops) == mixed.executed
    # more precision than int8 on the same layers: the edge outputs are at least as close to float
    x = np.random.default_rng(1).random((8, 16, 16, 3)).astype(np.float32)
    ref = call_outputs(edge, [x])
    from splitsdk.convert.tflite import to_int8_tflite

    int8 = to_int8_tflite(edge, [calib])

    def err(content: bytes) -> list[float]:
        order = match_outputs(ref, content, [x])
        _, outs = io_details(content)
        got = run_tflite(content, [x])
        return [
            float(np.mean(((got[i].astype(np.float32) - outs[i].zero_point) * outs[i].scale - r) ** 2))
            for i, r in zip(order, ref, strict=True)
        ]

    for mixed_err, int8_err in zip(err(mixed.content), err(int8), strict=True):
        assert mixed_err <= int8_err * 1.05


def test_quantizer_output_signature_issue_is_worked_around(tmp_path: Path) -> None:
    # an edge output that also feeds a later quantised layer: ai-edge-quantizer rewires it and leaves the
    # signature on a stale tensor (and, with both layers at int16, writes a model that fails to prepare)
    import keras
    from ai_edge_quantizer import quantizer

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3), name="img")
    a = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", name="c2")(a)
    edge = keras.Model(x, [b, a], name="edge")
    flat = to_float_tflite(edge)
    assert flat is not None
    calib = np.random.default_rng(0).random((8, 8, 8, 3)).astype(np.float32)
    details = interpreter(flat).get_output_details()
    names = {str(d["name"]) for d in details}
    a_name = next(n for n in names if n.endswith(":1"))  # the output that c2 also reads (Keras output 1)

    q = quantizer.Quantizer(flat)
    q.add_static_config(regex=".*", operation_name="*", activation_num_bits=8, weight_num_bits=8)
    q.add_static_config(regex=f"^{a_name};$", operation_name="*", activation_num_bits=16, weight_num_bits=8)
    raw = bytes(q.quantize(q.calibrate({"serving_default": [{"img": calib[i : i + 1]} for i in range(8)]}))
                .quantized_model)
    interp = interpreter(raw)
    by_index = {d["index"] for d in interp.get_output_details()}
    by_signature = set(interp._get_full_signature_list()["serving_default"]["outputs"].values())  # noqa: SLF001
    assert by_signature != by_index  # the quirk is real: the signature names a tensor that is not an output

    def probe(v: np.ndarray) -> list[np.ndarray]:
        return call_outputs(keras.Model(x, [a, b]), [v])

    for c1_bits in (16, 8):
        want = {"c1": Precision(8, c1_bits), "c2": Precision(8, 16)}
        mixed = to_mixed_tflite(flat, probe, ["c1", "c2"], want, calib)
        ours = interpreter(mixed.content)  # prepares (the quantiser's own output for 16/16 does not)
        outs = ours.get_output_details()
        assert [np.dtype(d["dtype"]).name for d in outs] == ["int8", "int8"]
        sig = ours._get_full_signature_list()["serving_default"]["outputs"]  # noqa: SLF001
        assert set(sig.values()) == {d["index"] for d in outs}
        # outputs are read by index and their order is checked by value against the float model
        ref = call_outputs(edge, [calib[:4]])
        order = match_outputs(ref, mixed.content, [calib[:4]])
        got = run_tflite(mixed.content, [calib[:4]])
        for i, r in zip(order, ref, strict=True):
            o = outs[i]
            deq = (got[i].astype(np.float32) - o["quantization"][1]) * o["quantization"][0]
            assert np.max(np.abs(deq - r)) <= 2 * o["quantization"][0] + 1e-3 * np.max(np.abs(r))


def test_mixed_bundles_are_byte_identical_across_runs(mixed_file: Path, tmp_path: Path) -> None:
    plan = forced_plan(mixed_file, tmp_path / "plan.json", split=SPLIT, layer_bits=MIX)
    convert_plan(plan, mixed_file, tmp_path / "a", samples=8, verify=False)
    # the second time through the CLI, which names each layer's precision
    proc = subprocess.run([sys.executable, "-m", "splitsdk", "convert", str(plan), "--model", str(mixed_file),
                           "--samples", "8", "--no-verify", "-o", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "per-layer precision: dynamic_int8: c4; float32: c3; int16x8: c2, add; int8: c1" in proc.stdout
    for f in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_onnx_models_get_per_layer_precisions_too(tmp_path: Path) -> None:
    import onnx_zoo

    path = onnx_zoo.chain(tmp_path / "chain.onnx")
    # split 3: conv1 (+BN+ReLU) int16x8, pool int16, conv2 float; the float conv2 output is sent as int8
    mix = {"conv1": (8, 16), "pool": (8, 16), "conv2": (32, 32)}
    plan = forced_plan(path, tmp_path / "plan.json", split=3, layer_bits=mix, crossing_bits={"conv2": 8})
    report = convert_plan(plan, path, tmp_path / "bundle", samples=8)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["precision"]["layers"] == {"conv1": "int16x8", "pool": "int16x8", "conv2": "float32"}
    _, outs = io_details((tmp_path / "bundle" / "edge.tflite").read_bytes())
    assert [o.dtype for o in outs] == ["int8"]
    v = report.verification
    # (ONNX bundles have no float simulation: the same closeness as the int8 ONNX test)
    assert v is not None and v.output_rel_mse < 1e-2 and v.agreement >= 0.75


def test_a_precision_the_target_cannot_run_is_a_one_line_error(mixed_file: Path, tmp_path: Path) -> None:
    # 16-bit weights: the narrowest cortex-a7 mode that holds them is float32, which runs (and is reported)
    plan = forced_plan(mixed_file, tmp_path / "w16.json", split=1, layer_bits={"c1": (16, 8)})
    convert_plan(plan, mixed_file, tmp_path / "w16", samples=8, verify=False)
    assert json.loads((tmp_path / "w16" / "manifest.json").read_text())["precision"]["layers"] == {"c1": "float32"}
    # 1-bit weights are not among the widths cortex-a7's runtime holds (emulated 2/4/6, native 8)
    plan = forced_plan(mixed_file, tmp_path / "w1.json", split=2, layer_bits={"c1": (8, 16), "c2": (1, 16)})
    with pytest.raises(ConvertError, match=r"'c2': 1-bit weights cannot run on cortex-a7"):
        convert_plan(plan, mixed_file, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_planners_own_16_bit_plan_converts(mixed_file: Path, tmp_path: Path) -> None:
    # a camera descriptor whose candidate bits include 16 (a user's own file): under a tight error limit the
    # planner gives layers 16 bits, which the runtime executes as int16x8 (no weights) or float32 (16-bit
    # weights need the float container); convert builds exactly that and the file matches the plan's bytes
    from splitsdk.plan import Constraints, plan_model, save_plan
    from splitsdk.profile.types import Link
    from splitsdk.target import builtin_targets_dir

    text = (builtin_targets_dir() / "cortex-a7.toml").read_text()
    text = text.replace('name = "cortex-a7"', 'name = "a7-16"').replace("candidate_bits = [2, 4, 6, 8]",
                        "candidate_bits = [2, 4, 8, 16]").replace("emulated_bits = [2, 4, 6]", "emulated_bits = [2, 4]")
    target = tmp_path / "a7-16.toml"
    target.write_text(text)
    plan = plan_model(str(mixed_file), str(target), Link(0.5, 10.0), Constraints(max_error=1e-6), exact=None)
    assert plan.target == str(target.resolve())  # a descriptor file is recorded by path, for convert to find
    sol = plan.solution
    assert 16 in sol.activation_bits.values()
    save_plan(plan, tmp_path / "plan.json")
    report = convert_plan(tmp_path / "plan.json", mixed_file, tmp_path / "bundle", samples=8)
    layers = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["precision"]["layers"]
    for name in sol.edge_layers:
        w, a = sol.weight_bits.get(name, 8), sol.activation_bits[name]
        expect = "float32" if w > 8 else "int16x8" if a > 8 else "int8"
        assert layers[name].split(" ")[0] == expect, name
    assert abs(report.size_ratio - 1.0) <= 0.05, (report.edge_tflite_bytes, report.predicted_edge_weight_bytes)
    v = report.verification
    assert v is not None and v.output_mse <= 2 * v.simulated_mse + 1e-6


def test_a_mix_over_256_kib_of_weights_converts(tmp_path: Path) -> None:
    # above 256 KiB of constants the quantiser writes buffers after the flatbuffer (offset/size); the
    # outputs' rewiring must carry them over (a ResNet-50 mix once failed to load: "out of range offset")
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((4, 4, 128), name="feat")
    a = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="big")(x)  # 294,912 weights
    b = keras.layers.Conv2D(16, 1, name="small")(a)
    model = keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(b)))
    path = tmp_path / "big.keras"
    model.save(path)
    plan = forced_plan(path, tmp_path / "plan.json", split=2, layer_bits={"big": (8, 8), "small": (8, 16)})
    report = convert_plan(plan, path, tmp_path / "bundle", samples=4)
    assert report.edge_tflite_bytes > 256 * 1024
    assert report.precisions == {"big": "int8", "small": "int16x8"}
    v = report.verification
    assert v is not None and v.output_mse <= 2 * v.simulated_mse + 1e-6

@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
@pytest.mark.slow
def test_mixed_edge_model_runs_on_the_targets_tflite_under_qemu(
    mixed_bundle: tuple[Path, object], tmp_path: Path
) -> None:
    # Debian's armhf TFLite 2.14.1 (the camera's runtime) against the host's ai-edge-litert, output by output
    from splitsdk.codegen import generate
    from splitsdk.toolchain.build import build_firmware
    from splitsdk.toolchain.verify import verify

    bundle_dir, _ = mixed_bundle
    generate(bundle_dir, "cortex-a7", tmp_path / "proj")
    fw = build_firmware(tmp_path / "proj", tmp_path / "fw", build_dir=tmp_path / "build")
    checks = verify(fw.root, bundle_dir, samples=4)
    assert [c.crossing for c in checks] == ["c2", "c4"]
    assert all(c.ok and c.dtype == "int8" and c.max_abs_diff <= 1 for c in checks)


def test_planner_accounting_predicts_a_mixed_edge_file(tmp_path: Path) -> None:
    # float kernels at 4 bytes, int16x8 layers, and the quantiser's precision-boundary ops: the shipped
    # file still agrees with the planner's edge bytes (weight sets + model-file records) within 5%
    from splitsdk.examples import camera_net
    from splitsdk.graph import load_graph
    from splitsdk.plan.problem import edge_file_bytes
    from splitsdk.plan.schema import load_plan
    from splitsdk.target import load_target

    path = tmp_path / "camera_net.keras"
    camera_net.build().save(path)
    graph = load_graph(path)
    split = 11  # everything up to the global pooling
    edge = list(graph.split_candidates()[split].edge_layers)
    mix = {"pool1": (8, 16), "b1_conv": (32, 32), "res1": (8, 16), "squeeze": (8, 16), "gap": (8, 16)}
    assert set(mix) <= set(edge)
    plan = forced_plan(path, tmp_path / "plan.json", split=split, layer_bits=mix)
    report = convert_plan(plan, path, tmp_path / "bundle", samples=8, verify=False)
    layers = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["precision"]["layers"]
    assert layers["b1_conv"] == "float32" and layers["res1"] == "int16x8" and layers["stem_conv"] == "int8"
    sol = load_plan(plan).solution
    quant = load_target("cortex-a7").quant
    crossing = [c.tensor for c in sol.crossing]
    predicted = edge_file_bytes(graph, sol.edge_layers, sol.weight_bits, sol.activation_bits, crossing, quant)
    assert abs(report.edge_tflite_bytes / predicted - 1.0) <= 0.05, (report.edge_tflite_bytes, predicted)


def test_planner_counts_the_conversion_ops_the_mixed_file_holds(
    mixed_file: Path, mixed_bundle: tuple[Path, object]
) -> None:
    import dataclasses

    from ai_edge_litert.tools import flatbuffer_utils as fb

    from splitsdk.graph import load_graph
    from splitsdk.plan.problem import precision_mix_bytes
    from splitsdk.target import load_target

    graph = load_graph(mixed_file)
    one_byte_each = dataclasses.replace(load_target("cortex-a7").quant.model_file, per_conversion_bytes=1.0,
                                        wide_bias_bytes=0.0)
    wbits = {n: w for n, (w, _) in MIX.items() if graph.layer(n).quantizable}
    abits = {n: a for n, (_, a) in MIX.items()}
    predicted_ops = precision_mix_bytes(graph, list(MIX), ["c2", "c4"], wbits, abits, one_byte_each)
    model = fb.read_model(str(mixed_bundle[0] / "edge.tflite"))
    names = [fb.opcode_to_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]
    assert predicted_ops == sum(n in ("QUANTIZE", "DEQUANTIZE") for n in names) == 7
    # a plan at 8 bits or fewer adds nothing
    assert precision_mix_bytes(graph, list(MIX), ["c2", "c4"], dict.fromkeys(wbits, 4),
                               dict.fromkeys(abits, 8), one_byte_each) == 0
