"""Bundle reader, plus `build_bundle`: the tiny real bundles the receiver and client tests serve.

`build_bundle` does what the convert stage will do for a two-part model: a Keras model cut into an
edge part (converted to int8 TFLite with TF's converter) and a float cloud part (saved as .keras),
and a manifest (written through `write_manifest`, the converter's writer) whose crossing tensors carry
the edge int8 and wire b-bit quantisation and the LUT.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitsdk import wire
from splitsdk.errors import BundleError
from splitsdk.wire.bundle import InputSpec, Manifest, ManifestCrossing, load_bundle, wire_quant_params, write_manifest

INPUT_SHAPE = (8, 8, 3)


def build_bundle(
    root: Path,
    *,
    two_crossings: bool = False,
    bits: int = 4,
    seed: int = 0,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    channels: int = 6,
) -> Path:
    """Write a real bundle to `root` and return it. Deterministic for a given seed."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    inp = keras.Input(input_shape)
    a = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(inp)
    outs = [a]
    if two_crossings:
        outs.append(keras.layers.Conv2D(4, 3, strides=2, padding="same")(inp))
    edge = keras.Model(inp, outs if two_crossings else a)

    calib = np.random.default_rng(seed).random((16, *input_shape), dtype=np.float32)

    def representative() -> Any:
        for x in calib:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(edge)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_output_type = tf.int8
    tflite = conv.convert()

    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=tflite).get_output_details()
    # TFLite may reorder outputs: wire order is the TFLite output index order, matched by shape.
    keras_shapes = [tuple(int(d) for d in o.shape[1:]) for o in outs]
    crossing, cloud_inputs = [], []
    for i, det in enumerate(details):
        shape = tuple(int(d) for d in det["shape"][1:])
        k = keras_shapes.index(shape)
        edge_scale, edge_zp = (float(v) for v in det["quantization"])
        scale, zp = wire_quant_params(edge_scale, int(edge_zp), bits)
        lut = wire.build_lut(edge_scale, int(edge_zp), scale, zp, bits)
        crossing.append(
            ManifestCrossing(
                tensor=f"edge_out_{k}",
                shape=shape,
                edge_scale=edge_scale,
                edge_zero_point=int(edge_zp),
                bits=bits,
                scale=scale,
                zero_point=zp,
                lut=tuple(int(v) for v in lut),
                edge_output=i,
            )
        )
        cloud_inputs.append(keras.Input(shape))
    pooled = [keras.layers.GlobalAveragePooling2D()(x) for x in cloud_inputs]
    merged = keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    head = keras.layers.Dense(10, activation="softmax")(merged)
    cloud = keras.Model(cloud_inputs, head)

    root.mkdir(parents=True, exist_ok=True)
    (root / "edge.tflite").write_bytes(tflite)
    cloud.save(root / "cloud.keras")
    manifest = Manifest(
        plan_sha256=hashlib.sha256(f"plan-{seed}-{two_crossings}-{bits}".encode()).hexdigest(),
        kind="SPLIT",
        target="host",
        input=InputSpec(shape=input_shape, dtype="float32", scale=1.0, offset=0.0),
        edge_model="edge.tflite",
        cloud_model="cloud.keras",
        crossing=tuple(crossing),
        postprocess={"kind": "topk", "k": 3},
    )
    write_manifest(root, manifest)
    return root


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), two_crossings=True, bits=3)


def test_load_real_bundle(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    assert len(b.crossing) == 2 and all(c.bits == 3 for c in b.crossing)
    assert {c.shape for c in b.crossing} == {(8, 8, 6), (4, 4, 4)}
    assert b.wire_bytes == sum((c.elements * 3 + 7) // 8 for c in b.crossing)
    for c in b.crossing:
        # the LUT is monotone and spans the b-bit range over the int8 range
        assert np.all(np.diff(c.lut_table.astype(int)) >= 0) and c.lut[0] == 0 and c.lut[-1] == 7


def test_the_manifest_round_trips(bundle_dir: Path, tmp_path: Path) -> None:
    b = load_bundle(bundle_dir)
    for name in ("edge.tflite", "cloud.keras"):
        (tmp_path / name).symlink_to(bundle_dir / name)
    write_manifest(tmp_path, b.manifest)
    assert load_bundle(tmp_path).manifest == b.manifest
    assert (tmp_path / "manifest.json").read_bytes() == (bundle_dir / "manifest.json").read_bytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("plan_sha256"), "manifest.json: plan_sha256: missing"),
        (lambda m: m.update(schema_version=3), "manifest.json: schema_version 3 is not supported"),
        (lambda m: m["crossing"][0].update(codec="lz4"), "manifest.json: crossing[0].codec: must be one of"),
        (
            lambda m: (m.update(schema_version=1), m["crossing"][1].update(codec="zstd")),
            "manifest.json: crossing[1].codec: needs schema_version 2",
        ),
        (lambda m: m.update(plan_sha256="xyz"), "manifest.json: plan_sha256: must be 64 lowercase hex digits"),
        (lambda m: m["crossing"][0].update(bits=9), "manifest.json: crossing[0].bits: must be <= 8, got 9"),
        (lambda m: m["crossing"][1].update(lut=[0] * 255), "manifest.json: crossing[1].lut: must have 256 entries"),
        (lambda m: m["crossing"][1].update(lut=[8] * 256), "crossing[1].lut: codes must be in 0..7 for 3 bits"),
        (lambda m: m["crossing"][0].update(shape=[8, 0]), "manifest.json: crossing[0].shape[1]: must be >= 1"),
        (lambda m: m["crossing"][0].update(scale=0), "manifest.json: crossing[0].scale: must be > 0, got 0"),
        (lambda m: m["crossing"][0].update(edge_output=1), "crossing: two tensors name the same edge_output"),
        (lambda m: m.update(cloud_model="nope.keras"), "manifest.json: cloud_model: names "),
        (lambda m: m.update(cloud_model="../cloud.keras"), "cloud_model: must be a file name inside the bundle"),
        (lambda m: m["input"].update(dtype="int4"), "manifest.json: input.dtype: must be one of 'uint8', 'float32'"),
        (lambda m: m.update(crossing=[]), "manifest.json: crossing: is empty"),
        (lambda m: m.update(postprocess={"k": 3}), "manifest.json: postprocess.kind: must be a non-empty string"),
    ],
)
def test_bad_manifest_names_the_field(bundle_dir: Path, tmp_path: Path, edit: Any, message: str) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    edit(manifest)
    for name in ("edge.tflite", "cloud.keras"):
        (tmp_path / name).symlink_to(bundle_dir / name)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as exc:
        load_bundle(tmp_path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such file"):
        load_bundle(tmp_path / "nothing")


@pytest.mark.parametrize("bits", range(1, 9))
def test_wire_quant_params_cover_int8_range(bits: int) -> None:
    scale, zp = wire_quant_params(0.02, -5, bits)
    lut = wire.build_lut(0.02, -5, scale, zp, bits)
    assert lut[0] == 0 and lut[255] == (1 << bits) - 1
    zero_code = lut[-5 + 128]
    assert abs((int(zero_code) - zp) * scale) <= scale / 2 + 1e-9


def test_a_schema_1_manifest_is_still_read_as_uncompressed(bundle_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["schema_version"] = 1
    for c in manifest["crossing"]:
        c.pop("codec", None)
    for name in ("edge.tflite", "cloud.keras", "plan.json"):
        (tmp_path / name).symlink_to(bundle_dir / name)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_bundle(tmp_path).manifest
    assert loaded.schema_version == 1 and {c.codec for c in loaded.crossing} == {"none"}
    assert load_bundle(bundle_dir).manifest.schema_version == 2
