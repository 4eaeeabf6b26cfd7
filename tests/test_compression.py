"""Feature compression (zstd) end to end: the C codec through Python for every bit width, bounded
decompression (bombs refused with their code), a real receiver process serving compressed and
uncompressed cameras alike, edge-sim compressing as the manifest says, and the planner's measured ratios.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_receiver_process import ServeProcess
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.cloud.certs import make_certs
from splitsdk.errors import DataError
from splitsdk.plan.compression import DEFAULT_LEVEL, compress_ms, crossing_ratios, wire_codes, zstd_ns_per_byte
from splitsdk.target import load_target
from splitsdk.wire import Codec, DecodeStatus, ErrorCode, FrameError, TensorKind, WireTensor
from splitsdk.wire.bundle import Bundle, load_bundle, write_manifest
from splitsdk.wire.client import ReceiverRefused, WireClient, client_tls_context
from splitsdk.wire.edge import EdgeModel, frame_from_edge_outputs

CAMERAS = ["plain-cam", "zstd-cam", "bad-cam"]


def _relu_codes(n: int, bits: int, seed: int) -> np.ndarray:
    """Codes like a ReLU activation's: most at the zero code."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.7, 0, rng.integers(0, 1 << bits, n)).astype(np.uint8)


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_bit_width_round_trips_through_frame_and_codec(bits: int) -> None:
    codes = _relu_codes(30 * 50, bits, bits)
    tensor = WireTensor(TensorKind.PACKED, bits, 0.25, 1, (30, 50), wire.pack(codes, bits))
    small = wire.deflate(tensor)
    assert small.codec == Codec.ZSTD and small.raw_size == len(tensor.payload)
    assert len(small.payload) < len(tensor.payload)  # mostly one code: zstd pays at every width
    msg, used = wire.decode(wire.encode(wire.Frame(3, 4, (small,))))
    assert isinstance(msg, wire.Frame) and msg.tensors == (small,)
    back = wire.inflate(msg.tensors[0])
    assert back == tensor
    np.testing.assert_array_equal(wire.unpack(back.payload, codes.size, bits), codes)
    want = wire.tensor_to_float(tensor, (30, 50))
    np.testing.assert_array_equal(wire.tensor_to_float(msg.tensors[0], (30, 50)), want)
    assert wire.decompress(wire.compress(tensor.payload, 1), len(tensor.payload)) == tensor.payload


def _lying_bomb(actual: int, declared: int) -> bytes:
    """A zstd frame of `actual` zero bytes whose header declares `declared` (both 32..255: one size byte)."""
    z = bytearray(wire.compress(bytes(actual)))
    assert z[4] == 0x20 and z[5] == actual  # single segment, 1-byte content size
    z[5] = declared
    return bytes(z)


def test_bombs_and_corrupt_frames_are_refused_with_their_code() -> None:
    payload = bytes(100)
    big = wire.compress(bytes(10_000))  # declares 10,000 bytes where 100 are implied
    with pytest.raises(FrameError) as info:
        wire.decompress(big, len(payload))
    assert info.value.status == DecodeStatus.INFLATE
    with pytest.raises(FrameError) as info:  # declares 100 but expands to 200
        wire.decompress(_lying_bomb(200, 100), 100)
    assert info.value.status == DecodeStatus.INFLATE
    with pytest.raises(FrameError) as info:  # declares 100 and holds 60: short
        wire.decompress(_lying_bomb(60, 100), 100)
    assert info.value.status in (DecodeStatus.INFLATE, DecodeStatus.ZSTD)
    good = wire.compress(payload)
    for bad in (good + good, good[:-1], b"\x00" * 20, b"(\xb5/\xfd"):
        with pytest.raises(FrameError) as info:
            wire.decompress(bad, 100)
        assert info.value.status in (DecodeStatus.ZSTD, DecodeStatus.INFLATE)
    assert "decompress" in str(info.value)
    tensor = WireTensor(TensorKind.PACKED, 8, 1.0, 0, (10, 10), big, Codec.ZSTD)
    with pytest.raises(FrameError) as info:
        wire.inflate(tensor)
    assert info.value.status == DecodeStatus.INFLATE


def test_the_documented_compressed_example_decodes() -> None:
    """The wire document's compressed FRAME (whatever zstd version wrote it) inflates to its codes."""
    text = (Path(wire.__file__).resolve().parents[1] / "native" / "wire-protocol.md").read_text()
    block = text.split("### A compressed tensor", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    data = b"".join(bytes.fromhex(line.partition(":")[2]) for line in block.strip().splitlines())
    msg, used = wire.decode(data)
    assert used == len(data) == 77 and isinstance(msg, wire.Frame)
    codes = np.full(64, 8, np.uint8)
    codes[0] = 1
    assert wire.inflate(msg.tensors[0]).payload == wire.pack(codes, 4)


# ---- the planner's ratios on real activations ----


def test_crossing_ratios_are_the_measured_sizes(tmp_path: Path) -> None:
    """Activations of a small real model (a ReLU conv): every ratio is zstd bytes / packed bytes of the
    frames as the camera would send them, and each frame decompresses to its packed codes."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp))
    frames = np.random.default_rng(1).random((6, 16, 16, 3), dtype=np.float32)
    acts = np.asarray(model(frames), np.float32)
    ratios = crossing_ratios({"conv": acts}, [2, 4, 8])
    assert set(ratios) == {"conv"} and set(ratios["conv"]) == {2, 4, 8}
    lo, hi = float(acts.min()), float(acts.max())
    for b, ratio in ratios["conv"].items():
        packed = zstd = 0
        for frame in acts:
            payload = wire.pack(wire_codes(frame.reshape(-1), lo, hi, b), b)
            z = wire.compress(payload, DEFAULT_LEVEL)
            assert wire.decompress(z, len(payload)) == payload
            packed, zstd = packed + len(payload), zstd + len(z)
        assert ratio == zstd / packed and ratio > 0
    with pytest.raises(DataError, match="bits 9"):
        crossing_ratios({"conv": acts}, [9])
    with pytest.raises(DataError, match="NaN"):
        crossing_ratios({"conv": np.full((2, 3), np.nan, np.float32)}, [4])


def test_compress_ms_is_the_target_figure_times_the_bytes() -> None:
    target = load_target("cortex-a7")
    ns, source = zstd_ns_per_byte(target)
    assert ns > 0 and "zstd_ns_per_byte" in source
    assert compress_ms(target, 2_000_000) == pytest.approx(ns * 2.0)
    assert compress_ms(target, 0) == 0.0


# ---- a real receiver process ----


def _zstd_copy(src: Path, dest: Path) -> Path:
    """`src` with every crossing's codec zstd (same plan, so the same plan hash)."""
    dest.mkdir()
    for item in src.iterdir():
        if item.name != "manifest.json":
            (dest / item.name).symlink_to(item)
    manifest = load_bundle(src).manifest
    write_manifest(dest, dataclasses.replace(
        manifest, crossing=tuple(dataclasses.replace(c, codec="zstd") for c in manifest.crossing)
    ))
    return dest


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("zstd")
    plain = build_bundle(root / "bundle", bits=4, seed=5, channels=8, input_shape=(32, 32, 3))
    zstd = _zstd_copy(plain, root / "bundle-zstd")
    make_certs(root / "certs", CAMERAS, ["127.0.0.1"])
    serve = ServeProcess(plain, root / "certs", root / "results.db", root / "serve.log")
    yield {"plain": load_bundle(plain), "zstd": load_bundle(zstd), "zstd_dir": zstd, "certs": root / "certs",
           "serve": serve, "root": root}
    serve.proc.terminate()
    serve.proc.wait(30)


def _client(setup: dict[str, Any], name: str) -> WireClient:
    certs = setup["certs"]
    tls = client_tls_context(certs / "ca.pem", certs / f"{name}.pem", certs / f"{name}.key")
    client = WireClient("127.0.0.1", setup["serve"].port, tls, timeout_s=20)
    client.hello(name, setup["plain"].plan_sha256)
    return client


def _frames(bundle: Bundle, n: int) -> list[wire.Frame]:
    """Frames of the real edge model on a few images (ReLU outputs: compressible)."""
    model = EdgeModel(bundle)
    rng = np.random.default_rng(9)
    images = [rng.random(bundle.input.shape, dtype=np.float32) for _ in range(n)]
    return [frame_from_edge_outputs(bundle, model.run(img), seq, 1000 + seq) for seq, img in enumerate(images)]


def test_compressed_frames_get_the_results_of_uncompressed_ones(setup: dict[str, Any]) -> None:
    plain, zstd = _frames(setup["plain"], 3), _frames(setup["zstd"], 3)
    assert all(t.codec == Codec.NONE for f in plain for t in f.tensors)
    assert all(t.codec == Codec.ZSTD for f in zstd for t in f.tensors)
    assert sum(len(t.payload) for t in zstd[0].tensors) < sum(len(t.payload) for t in plain[0].tensors)
    for f, z in zip(plain, zstd, strict=True):
        assert [wire.inflate(t) for t in z.tensors] == list(f.tensors)
    with _client(setup, "plain-cam") as a, _client(setup, "zstd-cam") as b:
        for f, z in zip(plain, zstd, strict=True):
            ra, rb = a.send_frame(f), b.send_frame(z)
            assert ra.status == rb.status == 0 and ra.seq == rb.seq == f.seq
            assert json.loads(ra.body) == json.loads(rb.body)


def test_a_bomb_or_a_foreign_split_ends_only_that_camera(setup: dict[str, Any]) -> None:
    good = _frames(setup["plain"], 2)
    c = setup["plain"].crossing[0]
    raw = good[0].tensors[0]
    assert raw.raw_size >= 64
    bombs = [
        dataclasses.replace(raw, payload=wire.compress(bytes(raw.raw_size * 4)), codec=Codec.ZSTD),  # too big
        dataclasses.replace(raw, payload=wire.compress(raw.payload)[:-3], codec=Codec.ZSTD),  # cut short
    ]
    with _client(setup, "plain-cam") as other:
        assert other.send_frame(dataclasses.replace(good[0], seq=100)).status == 0
        for i, bomb in enumerate(bombs):
            with _client(setup, "bad-cam") as bad, pytest.raises(ReceiverRefused) as info:
                bad.send_frame(wire.Frame(200 + i, 0, (bomb, *good[0].tensors[1:])))
            assert info.value.error.code == ErrorCode.BAD_FRAME
            assert f"tensor 0 ({c.tensor})" in info.value.error.message and "decompress" in info.value.error.message
            assert other.send_frame(dataclasses.replace(good[1], seq=101 + i)).status == 0  # still served
        with _client(setup, "bad-cam") as bad, pytest.raises(ReceiverRefused) as info:
            bad.send_frame(dataclasses.replace(good[0], seq=300, split=1))
        assert info.value.error.code == ErrorCode.TENSOR_MISMATCH
        assert "split 1" in info.value.error.message and "serves split 0" in info.value.error.message
        assert other.send_frame(dataclasses.replace(good[0], seq=103)).status == 0


def test_a_version_1_camera_is_still_served_in_version_1(setup: dict[str, Any]) -> None:
    """A camera from before protocol version 2 (version 1 HELLO and FRAMEs) gets its answers in version 1,
    which its reader accepts, and the same results as a version 2 camera."""
    frame = _frames(setup["plain"], 1)[0]
    certs = setup["certs"]
    tls = client_tls_context(certs / "ca.pem", certs / "plain-cam.pem", certs / "plain-cam.key")
    with WireClient("127.0.0.1", setup["serve"].port, tls, timeout_s=20) as old:
        old.send(wire.Hello("plain-cam", setup["plain"].plan_sha256, version=1))
        hello = old.receive()
        old.send(dataclasses.replace(frame, seq=400, version=1))
        result = old.receive()
        old.send(wire.Frame(401, 0, frame.tensors[:0], version=1))  # no tensors: refused, in version 1
        error = old.receive()
    assert isinstance(hello, wire.Hello) and hello.version == 1
    assert isinstance(result, wire.Result) and result.version == 1 and result.seq == 400 and result.status == 0
    assert isinstance(error, wire.Error) and error.version == 1 and error.code == ErrorCode.TENSOR_MISMATCH
    with _client(setup, "plain-cam") as new:
        assert json.loads(new.send_frame(dataclasses.replace(frame, seq=402)).body) == json.loads(result.body)


def test_edge_sim_compresses_as_the_manifest_says(setup: dict[str, Any], tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(4)
    for i in range(2):
        np.save(frames / f"{i}.npy", rng.random(setup["zstd"].input.shape, dtype=np.float32))
    certs, server = setup["certs"], f"127.0.0.1:{setup['serve'].port}"
    out: list[Any] = []
    for bundle_dir, seq in ((setup["zstd_dir"], 500), (setup["plain"].root, 600)):
        proc = subprocess.run(
            [sys.executable, "-m", "splitsdk", "edge-sim", str(bundle_dir), "--server", server,
             "--frames", str(frames), "--device-id", "zstd-cam", "--ca", str(certs / "ca.pem"),
             "--cert", str(certs / "zstd-cam.pem"), "--key", str(certs / "zstd-cam.key"),
             "--first-seq", str(seq), "--json"],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.append([json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")])
    assert len(out[0]) == len(out[1]) == 2
    for z, p in zip(*out, strict=True):
        assert {k: v for k, v in z.items() if k not in ("seq", "ms", "latency_ms")} == \
            {k: v for k, v in p.items() if k not in ("seq", "ms", "latency_ms")}


# ---- the generated edge app (host build, and the cortex-a7 build under qemu-arm) ----


@pytest.fixture(scope="module")
def apps(setup: dict[str, Any]) -> dict[str, Any]:
    """The zstd bundle generated and built for the host and for cortex-a7 (once per module)."""
    from splitsdk.codegen import generate
    from splitsdk.toolchain.build import build_firmware, load_firmware

    root: Path = setup["root"]
    built = {}
    for target in ("host", "cortex-a7"):
        generate(setup["zstd_dir"], target, root / f"proj-{target}")
        build_firmware(root / f"proj-{target}", root / f"fw-{target}", build_dir=root / f"build-{target}")
        built[target] = load_firmware(root / f"fw-{target}")
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(12)
    for i in range(3):
        rng.random(setup["plain"].input.shape, dtype=np.float32).tofile(frames / f"frame{i:03d}.f32")
    return {"fw": built, "frames": frames}


@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
@pytest.mark.parametrize("target", ["host", "cortex-a7"])
def test_the_edge_app_sends_compressed_frames_with_the_same_results(
    setup: dict[str, Any], apps: dict[str, Any], target: str, tmp_path: Path
) -> None:
    """The app compresses the zstd crossings (its own `compress` stage), the receiver gets fewer bytes on
    the wire than it decompresses, and every RESULT equals the uncompressed host pipeline's."""
    from test_receiver import ReceiverThread

    from splitsdk.cloud.config import ReceiverConfig
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.toolchain.emulate import app_args, run_app
    from splitsdk.wire.edge import EdgeClient

    fw, frames, plain = apps["fw"][target], apps["frames"], setup["plain"]
    config = ReceiverConfig(listen="127.0.0.1:0", db=str(tmp_path / "r.sqlite"), insecure_plain_tcp=True).validate()
    server = ReceiverThread(plain, config, load_cloud_runner(plain))
    try:
        run = run_app(fw, app_args(fw, frames, server.port))
        tensor_bytes = server.receiver.metrics.tensor_bytes
        on_wire, raw = tensor_bytes.value(form="wire"), tensor_bytes.value(form="raw")
        camera = EdgeClient(plain, "127.0.0.1", server.port, "uncompressed-sim")  # the same images, packed only
        try:
            want = [camera.infer(np.fromfile(p, np.float32).reshape(plain.input.shape)).body
                    for p in sorted(frames.glob("*.f32"))]
        finally:
            camera.close()
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert [r.seq for r in run.results] == [0, 1, 2] and all(r.status == 0 for r in run.results)
    assert run.stages["compress"]["n"] == 3 and run.stages["pack"]["n"] == 3
    assert raw == 3 * plain.wire_bytes and on_wire < raw  # the frames carried zstd payloads
    for got, body in zip(run.results, want, strict=True):
        g, w = json.loads(got.body)["topk"], json.loads(body)["topk"]
        assert [c for c, _ in g] == [c for c, _ in w]
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], atol=1e-4)


def test_convert_copies_each_crossings_codec_from_the_plan(tmp_path: Path) -> None:
    """A plan whose first crossing is zstd gives a schema-2 manifest with that codec, the other left none."""
    from plan_factory import forced_plan

    from splitsdk.convert import convert_plan
    from splitsdk.plan import load_plan, save_plan

    import model_zoo

    model = tmp_path / "two_head.keras"
    model_zoo.two_head().save(model)
    path = forced_plan(model, tmp_path / "plan.json", split=2, crossing_bits={"c1": 4})
    plan = load_plan(path)
    first, *rest = plan.solution.crossing
    zstd = dataclasses.replace(first, codec="zstd", compressed_ratio=0.5)
    save_plan(dataclasses.replace(plan, solution=dataclasses.replace(plan.solution, crossing=(zstd, *rest))), path)
    convert_plan(path, model, tmp_path / "bundle", samples=8, verify=False)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["schema_version"] == 2
    assert [(c["tensor"], c["codec"]) for c in manifest["crossing"]] == [("c1", "zstd"), ("c2", "none")]
    bundle = load_bundle(tmp_path / "bundle")
    image = np.random.default_rng(0).random(bundle.input.shape, dtype=np.float32)
    frame = frame_from_edge_outputs(bundle, EdgeModel(bundle).run(image), 0)
    assert frame.tensors[1].codec == Codec.NONE
