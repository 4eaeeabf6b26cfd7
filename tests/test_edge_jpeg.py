"""CLOUD-ONLY+JPEG end to end: the wire's JPEG codec (C validation, Python codec), the receiver's bounded
decode (header checked against the manifest's dims before a pixel is decoded; a mismatched, corrupt,
progressive or oversized JPEG ends that camera only), convert's JPEG bundle (manifest codec jpeg + quality),
the Python camera's JPEG frames, and the generated edge app encoding with the sysroot's libjpeg-turbo
(host and cortex-a7 under qemu-arm against a real `splitsdk serve`): bytes identical to Pillow's, results
equal to the Python pipeline's."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from plan_factory import forced_plan

from splitsdk import wire
from splitsdk.codec import CodecError
from splitsdk.convert import convert_plan
from splitsdk.plan import load_plan, save_plan
from splitsdk.toolchain.build import load_firmware
from splitsdk.wire import Codec, DecodeStatus, FrameError, TensorKind, WireTensor
from splitsdk.wire.bundle import Bundle, check_manifest, load_bundle
from splitsdk.wire.client import ReceiverRefused, WireClient
from splitsdk.wire.compression import decode_jpeg, encode_jpeg, from_pixels, to_pixels
from splitsdk.wire.edge import EdgeClient, jpeg_frame

SHAPE = (24, 32, 3)
QUALITY = 75


def _pixels(n: int, seed: int = 3, shape: tuple[int, ...] = SHAPE) -> list[np.ndarray]:
    """Smooth-ish frames (gradients plus noise): what a camera sees, so JPEG is far smaller than raw."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = []
    for _ in range(n):
        base = (yy * rng.uniform(2, 6) + xx * rng.uniform(2, 6))[..., None] + rng.uniform(0, 80, shape[-1])
        out.append(np.clip(base + rng.normal(0, 6, shape), 0, 255).astype(np.uint8))
    return out


def _jpeg_tensor(payload: bytes, dims: tuple[int, ...] = SHAPE, bits: int = 8) -> WireTensor:
    return WireTensor(TensorKind.PACKED, bits, 1.0, 0, dims, payload, Codec.JPEG)


# ---- the wire: codec 2 ----


def test_a_jpeg_tensor_round_trips_through_the_c_codec() -> None:
    px = _pixels(1)[0]
    jpeg = encode_jpeg(px, QUALITY)
    frame = wire.Frame(7, 1234, (_jpeg_tensor(jpeg),))
    back = wire.decode(wire.encode(frame))[0]
    assert back == frame and back.tensors[0].codec == Codec.JPEG
    plain = wire.inflate(back.tensors[0])
    assert plain.codec == Codec.NONE and plain.payload == decode_jpeg(jpeg, SHAPE).tobytes()
    assert len(jpeg) < px.size  # what it is for: fewer bytes than the raw frame


@pytest.mark.parametrize(
    ("tensor", "status"),
    [
        (WireTensor(TensorKind.PACKED, 4, 1.0, 0, SHAPE, b"\xff\xd8", Codec.JPEG), DecodeStatus.BITS),
        (WireTensor(TensorKind.INT, 8, 1.0, 0, SHAPE, b"\xff\xd8", Codec.JPEG), DecodeStatus.BITS),
        (WireTensor(TensorKind.PACKED, 8, 1.0, 0, (24, 32), b"\xff\xd8", Codec.JPEG), DecodeStatus.DIMS),
        (WireTensor(TensorKind.PACKED, 8, 1.0, 0, (24, 32, 4), b"\xff\xd8", Codec.JPEG), DecodeStatus.DIMS),
        (WireTensor(TensorKind.PACKED, 8, 1.0, 0, SHAPE, b"", Codec.JPEG), DecodeStatus.PAYLOAD),
    ],
)
def test_the_c_decoder_refuses_a_jpeg_that_is_not_an_image_tensor(tensor: WireTensor, status: DecodeStatus) -> None:
    good = wire.encode(wire.Frame(1, 2, (_jpeg_tensor(b"\xff\xd8\xff"),)))
    # splice the bad tensor's fixed fields into a valid frame by re-encoding through the codec's own
    # validation: encode refuses it (ARG), and a hand-made frame with those fields is refused on decode
    with pytest.raises(Exception):  # noqa: B017 - encode refuses with WireError or FrameError
        wire.encode(wire.Frame(1, 2, (tensor,)))
    raw = bytearray(good)
    off = 28 + 4  # prefix, tensor count + split
    dims = tensor.dims
    body = struct.pack("<BBBBfi", int(tensor.kind), tensor.bits, len(dims), 2, 1.0, 0)
    body += b"".join(struct.pack("<I", d) for d in dims) + struct.pack("<I", len(tensor.payload)) + tensor.payload
    raw = raw[:off] + body
    raw[8:12] = struct.pack("<I", len(raw) + 4)
    raw += struct.pack("<I", wire.crc32(bytes(raw)))
    with pytest.raises(FrameError) as info:
        wire.decode(bytes(raw))
    assert info.value.status == status


def test_a_version_1_frame_cannot_carry_a_jpeg() -> None:
    with pytest.raises(Exception, match="version|argument"):
        wire.encode(wire.Frame(1, 2, (_jpeg_tensor(encode_jpeg(_pixels(1)[0], 50)),), version=1))


def _progressive(px: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(px, "RGB").save(buf, "JPEG", quality=75, progressive=True)
    return buf.getvalue()


def _huge_header(height: int, width: int) -> bytes:
    """A JPEG whose SOF declares height x width (a decompression bomb's header) over a tiny frame's data."""
    data = bytearray(encode_jpeg(_pixels(1)[0], 50))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (lambda px: encode_jpeg(px[:16], 75), "16x32 RGB"),  # another frame size
        (lambda px: encode_jpeg(px[..., :1], 75), "24x32 L"),  # greyscale where colour is expected
        (lambda px: _progressive(px), "progressive"),  # not baseline
        (lambda px: _huge_header(8000, 8000), "8000x8000"),  # a bomb (under Pillow's own limit): its header
        (lambda px: encode_jpeg(px, 75)[:-200], "Truncated"),  # the scan cut short
        (lambda px: b"\xff\xd8" + bytes(100), "JPEG"),  # not a JPEG at all
    ],
)
def test_the_bounded_decoder_refuses_what_is_not_the_manifests_frame(payload: object, why: str) -> None:
    px = _pixels(1)[0]
    with pytest.raises(FrameError) as info:
        decode_jpeg(payload(px), SHAPE)  # type: ignore[operator]
    assert info.value.status == DecodeStatus.JPEG and why in str(info.value)


def test_pixels_map_to_the_model_input_and_back_exactly() -> None:
    px = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    for scale, offset in ((1 / 255, 0.0), (2 / 255, -1.0), (1.0, 0.0)):
        real = from_pixels(px, scale, offset)
        assert real.dtype == np.float32
        assert np.array_equal(to_pixels(real, scale, offset), px)


# ---- convert: a CLOUD_ONLY+JPEG bundle ----


def _tiny_model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input(SHAPE, name="img")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    keras.Model(inp, out).save(path)
    return path


def jpeg_plan(model: Path, out: Path, quality: int = QUALITY) -> Path:
    """The planner's plan forced onto CLOUD_ONLY with the frame sent as a JPEG at `quality`."""
    forced_plan(model, out, split=0)
    plan = load_plan(out)
    (c,) = plan.solution.crossing
    jc = dataclasses.replace(c, codec="jpeg", jpeg_quality=quality, compressed_ratio=0.1)
    save_plan(dataclasses.replace(plan, solution=dataclasses.replace(plan.solution, crossing=(jc,))), out)
    return out


@pytest.fixture(scope="module")
def jpeg_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jpeg")
    model = _tiny_model(root / "tiny.keras")
    calib = root / "calib.npz"
    np.savez(calib, x=np.stack([from_pixels(p, 1 / 255, 0.0) for p in _pixels(16, seed=5)]))
    plan = jpeg_plan(model, root / "plan.json")
    convert_plan(plan, model, root / "bundle", calib=calib, samples=8, verify=False)
    return root / "bundle"


def test_convert_writes_a_cloud_only_bundle_that_says_jpeg_and_its_quality(jpeg_bundle: Path) -> None:
    b = load_bundle(jpeg_bundle)
    (c,) = b.crossing
    assert b.manifest.kind == "CLOUD_ONLY" and c.codec == "jpeg" and c.jpeg_quality == QUALITY
    assert c.shape == SHAPE and c.bits == 8 and b.input.shape == SHAPE
    text = json.loads((jpeg_bundle / "manifest.json").read_text())
    assert text["schema_version"] == 2 and text["crossing"][0]["jpeg_quality"] == QUALITY
    with pytest.raises(CodecError, match="jpeg_quality"):  # a quality without codec jpeg, and the reverse
        check_manifest(dataclasses.replace(b.manifest, crossing=(dataclasses.replace(c, codec="none"),)))
    with pytest.raises(CodecError, match="crossing"):  # jpeg is a CLOUD_ONLY bundle's frame
        check_manifest(dataclasses.replace(b.manifest, kind="SPLIT"))


def reference_bodies(bundle: Bundle, images: list[np.ndarray]) -> list[dict[str, object]]:
    """What the receiver must answer: the whole model in the cloud on the JPEG-decoded frames, mapped to
    the model input as the edge app maps pixels (Pillow's own decoder, not the receiver's)."""
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.cloud.postprocess import resolve
    from splitsdk.plan.jpeg import decode

    cloud, post = load_cloud_runner(bundle), resolve(bundle.postprocess)
    out = []
    for img in images:
        px = decode(encode_jpeg(img, QUALITY), SHAPE[-1])
        x = from_pixels(px, bundle.input.scale, bundle.input.offset)[None]
        out.append(json.loads(post([o[0] for o in cloud([x])])))
    return out


def test_the_host_pipeline_of_a_jpeg_bundle_sends_the_jpeg(jpeg_bundle: Path) -> None:
    """`split_pipeline` (convert's verification, the demo's host accuracy) computes what camera and receiver do
    with a JPEG bundle: the JPEG-decoded frame, not the int8 frame of a plain CLOUD_ONLY bundle."""
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.convert import split_pipeline
    from splitsdk.plan.jpeg import decode

    b = load_bundle(jpeg_bundle)
    images = _pixels(3)
    x = np.stack([from_pixels(img, b.input.scale, b.input.offset) for img in images])
    (got,) = split_pipeline(jpeg_bundle, x)
    cloud = load_cloud_runner(b)
    for img, row in zip(images, got, strict=True):
        px = decode(encode_jpeg(img, QUALITY), SHAPE[-1])
        (want,) = cloud([from_pixels(px, b.input.scale, b.input.offset)[None]])
        np.testing.assert_allclose(row, want[0], rtol=1e-5, atol=1e-6)
    # not what the int8 frame of a plain CLOUD_ONLY bundle gives: the JPEG's loss is in it
    (plain,) = cloud([x])
    assert not np.allclose(got, plain, rtol=0, atol=1e-6)


def test_a_real_receiver_serves_jpeg_cameras_and_refuses_a_bad_one_alone(jpeg_bundle: Path) -> None:
    from splitsdk.toolchain.emulate import ReceiverProcess

    bundle = load_bundle(jpeg_bundle)
    images = _pixels(3, seed=8)
    want = reference_bodies(bundle, images)
    with ReceiverProcess(jpeg_bundle) as receiver:
        good = EdgeClient(bundle, "127.0.0.1", receiver.port, "jpeg-cam")
        bad = WireClient("127.0.0.1", receiver.port, timeout_s=30)
        bad.hello("bad-cam", bundle.plan_sha256)
        try:
            frame = jpeg_frame(bundle, images[0], 0, 1000)
            assert frame.tensors[0].payload == encode_jpeg(images[0], QUALITY)  # the Python camera's bytes
            wrong = dataclasses.replace(frame.tensors[0], payload=encode_jpeg(images[0][:, :16].copy(), QUALITY),
                                        dims=SHAPE)
            with pytest.raises(ReceiverRefused) as info:
                bad.send_frame(dataclasses.replace(frame, tensors=(wrong,)))
            assert info.value.error.code == wire.ErrorCode.BAD_FRAME and "JPEG" in info.value.error.message
            got = [json.loads(good.infer(img).body) for img in images]  # the good camera carries on
        finally:
            good.close()
            bad.close()
    assert got == want


# ---- the generated edge app: libjpeg-turbo from the target's sysroot ----


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jpeg-app")


def _frame_files(folder: Path, images: list[np.ndarray], bundle: Bundle) -> list[str]:
    """The camera's 8-bit frames, alternately as .raw files (HxWxC bytes: the app keeps the pixels) and as .f32
    model inputs (the app inverts the input mapping); their names in the app's (name) order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, img in enumerate(images):
        if i % 2 == 0:
            names.append(f"frame{i:03d}.raw")
            (folder / names[-1]).write_bytes(img.tobytes())
        else:
            names.append(f"frame{i:03d}.f32")
            from_pixels(img, bundle.input.scale, bundle.input.offset).tofile(folder / names[-1])
    return names


def test_the_generated_project_encodes_only_for_a_jpeg_bundle(jpeg_bundle: Path) -> None:
    from splitsdk.codegen import edge_app, render
    from splitsdk.target import load_target

    files = render(edge_app(load_bundle(jpeg_bundle), load_target("cortex-a7")))
    assert f"constexpr int kJpegQuality = {QUALITY};" in files["src/config.h"]
    assert "SP_CODEC_JPEG" in str(files["src/config.h"]) and 'stats.add("encode"' in str(files["src/main.cpp"])
    assert "find_library(JPEG_LIBRARY NAMES libjpeg.a jpeg)" in str(files["CMakeLists.txt"])


@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
@pytest.mark.slow
@pytest.mark.parametrize("target", ["host", "cortex-a7"])
def test_the_edge_app_sends_pillows_jpeg_and_gets_the_python_results(
    jpeg_bundle: Path, app_dir: Path, target: str, tmp_path: Path
) -> None:
    from edge_app_helpers import shared_firmware

    from splitsdk.toolchain.emulate import ReceiverProcess, app_args, run_app

    fw = load_firmware(shared_firmware(app_dir, jpeg_bundle, target))
    assert not [lib for lib in fw.libraries if "jpeg" in lib]  # libjpeg-turbo linked statically, as libzstd
    bundle = load_bundle(jpeg_bundle)
    images = _pixels(4, seed=21)
    names = _frame_files(tmp_path / "frames", images, bundle)
    frames = tmp_path / "frames"
    dump = tmp_path / "dump"
    dump.mkdir()
    with ReceiverProcess(jpeg_bundle) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port, n=len(images), extra=["--dump", str(dump)]))
    assert run.returncode == 0, run.error or run.stderr[-500:]
    for name, img in zip(names, images, strict=True):  # the sysroot's libjpeg-turbo wrote Pillow's bytes
        assert (dump / f"{name}.jpg").read_bytes() == encode_jpeg(img, QUALITY), name
    assert [json.loads(r.body) for r in run.results] == reference_bodies(bundle, images)
    assert "encode" in run.stages and "infer" not in run.stages and run.counters["results"] == len(images)


@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
@pytest.mark.slow
def test_verify_still_checks_a_jpeg_firmwares_edge_model(jpeg_bundle: Path, app_dir: Path) -> None:
    """`splitsdk verify` compares the target's TFLite with the host's on the edge model's dumped outputs: a JPEG
    app dumps them too (with --dump it runs its quantise-only model besides encoding)."""
    from edge_app_helpers import shared_firmware

    from splitsdk.toolchain.verify import verify

    checks = verify(shared_firmware(app_dir, jpeg_bundle, "cortex-a7"), jpeg_bundle, samples=3)
    assert checks and all(c.ok for c in checks)
