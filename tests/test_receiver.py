"""A real receiver (TLS on, loopback) against real clients, in this process.

The receiver runs on its own event loop in a thread with the real cloud model of a tiny bundle;
clients are the library's blocking and asyncio clients. Each abuse case runs while a well-behaved
camera keeps sending frames, and that camera must keep getting results.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.cloud.batcher import DynamicBatcher
from splitsdk.cloud.certs import make_certs
from splitsdk.cloud.config import BatchingConfig, LimitsConfig, ReceiverConfig, TlsConfig, load_config
from splitsdk.cloud.model import load_cloud_runner
from splitsdk.cloud.postprocess import resolve, topk
from splitsdk.cloud.server import Receiver
from splitsdk.cloud.store import open_store
from splitsdk.errors import BundleError, ReceiverError
from splitsdk.wire.bundle import Bundle, load_bundle
from splitsdk.wire.client import AsyncWireClient, ReceiverRefused, WireClient, client_tls_context
from splitsdk.wire.edge import frame_from_edge_outputs
from splitsdk.wire.frame import Stats

N_CAMERAS = 200


def edge_outputs(bundle: Bundle, device: str, seq: int) -> list[np.ndarray]:
    """Deterministic stand-in for the edge model's int8 outputs of frame `seq` of `device`."""
    rng = np.random.default_rng(zlib.crc32(f"{device}/{seq}".encode()))
    return [rng.integers(-128, 128, size=c.shape, dtype=np.int8) for c in bundle.crossing]


def make_frame(bundle: Bundle, device: str, seq: int) -> wire.Frame:
    return frame_from_edge_outputs(bundle, edge_outputs(bundle, device, seq), seq, timestamp_us=1000 + seq)


def reference_result(bundle: Bundle, runner: Any, device: str, seq: int) -> dict[str, Any]:
    """What the receiver must answer: dequantise exactly as the wire does, cloud model, top-k."""
    frame = make_frame(bundle, device, seq)
    inputs = [
        wire.unpack_dequantize(t.payload, c.shape, c.bits, t.scale, t.zero_point)[None]
        for t, c in zip(frame.tensors, bundle.crossing, strict=True)
    ]
    return json.loads(topk(runner(inputs), bundle.postprocess))


def assert_same_result(got: bytes, want: dict[str, Any]) -> None:
    top = json.loads(got)["topk"]
    assert [c for c, _ in top] == [c for c, _ in want["topk"]]
    np.testing.assert_allclose([s for _, s in top], [s for _, s in want["topk"]], atol=1e-5)


class ReceiverThread:
    """A Receiver on its own event loop in a daemon thread."""

    def __init__(self, bundle: Bundle, config: ReceiverConfig, runner: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.receiver = Receiver(bundle, config, runner)
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.receiver.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert started.wait(30)
        self.port = self.receiver.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.drain(5), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return load_bundle(build_bundle(tmp_path_factory.mktemp("bundle"), two_crossings=True, bits=4))


@pytest.fixture(scope="module")
def runner(bundle: Bundle) -> Any:
    return load_cloud_runner(bundle)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    make_certs(out, [f"cam-{i}" for i in range(N_CAMERAS)] + ["good", "bad", "other"], ["localhost", "127.0.0.1"])
    make_certs(out / "rogue", ["good"], ["localhost"])  # same names, another CA
    return out


@pytest.fixture(scope="module")
def config(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> ReceiverConfig:
    return ReceiverConfig(
        listen="127.0.0.1:0",
        db=tmp_path_factory.mktemp("db") / "results.sqlite",
        metrics="127.0.0.1:0",
        tls=TlsConfig(cert=certs / "server.pem", key=certs / "server.key", client_ca=certs / "ca.pem"),
        limits=LimitsConfig(read_timeout_s=1.0, idle_timeout_s=30.0, max_frame_bytes=1 << 20),
        batching=BatchingConfig(max_batch=16, max_wait_ms=5.0),
    ).validate()


@pytest.fixture(scope="module")
def server(bundle: Bundle, config: ReceiverConfig, runner: Any) -> Iterator[ReceiverThread]:
    srv = ReceiverThread(bundle, config, runner)
    yield srv
    srv.stop()


def tls_for(certs: Path, name: str, ca_dir: Path | None = None) -> ssl.SSLContext:
    base = ca_dir or certs
    return client_tls_context(certs / "ca.pem", base / f"{name}.pem", base / f"{name}.key")


def connect(server: ReceiverThread, certs: Path, name: str) -> WireClient:
    return WireClient("127.0.0.1", server.port, tls_for(certs, name), timeout_s=20)


def test_correct_results_over_tls(
    server: ReceiverThread, certs: Path, bundle: Bundle, runner: Any, config: ReceiverConfig
) -> None:
    with connect(server, certs, "good") as client:
        hello = client.hello("good", bundle.plan_sha256)
        assert hello.plan_hash == bundle.plan_sha256
        for seq in range(5):
            result = client.send_frame(make_frame(bundle, "good", seq))
            assert result.seq == seq and result.status == 0 and result.timestamp_us == 1000 + seq
            assert_same_result(result.body, reference_result(bundle, runner, "good", seq))
    store = open_store(config.db)
    stored = store.get("good", 3)
    store.close()
    assert stored is not None and stored.capture_us == 1003
    assert_same_result(stored.result, reference_result(bundle, runner, "good", 3))


def test_resent_frame_is_answered_from_the_store(server: ReceiverThread, certs: Path, bundle: Bundle) -> None:
    with connect(server, certs, "other") as client:
        client.hello("other", bundle.plan_sha256)
        first = client.send_frame(make_frame(bundle, "other", 7))
        again = client.send_frame(make_frame(bundle, "other", 7))
    assert first.body == again.body
    assert server.receiver.metrics.duplicates.value() >= 1


def test_plain_float_and_int_tensors_give_the_packed_result(
    server: ReceiverThread, certs: Path, bundle: Bundle, runner: Any
) -> None:
    """The uncompressed fallbacks (FLOAT 32, INT 8/16) carry the same values as the packed frame."""
    packed = make_frame(bundle, "good", 42)
    values = [wire.tensor_to_float(t, c.shape) for t, c in zip(packed.tensors, bundle.crossing, strict=True)]
    as_float = replace(
        packed,
        tensors=tuple(
            wire.WireTensor(wire.TensorKind.FLOAT, 32, 1.0, 0, c.shape, v.astype("<f4").tobytes())
            for v, c in zip(values, bundle.crossing, strict=True)
        ),
    )
    codes = [wire.unpack(t.payload, c.elements, c.bits) for t, c in zip(packed.tensors, bundle.crossing, strict=True)]
    as_int16 = replace(
        packed,
        tensors=tuple(
            wire.WireTensor(wire.TensorKind.INT, 16, t.scale, t.zero_point, c.shape, k.astype("<i2").tobytes())
            for k, t, c in zip(codes, packed.tensors, bundle.crossing, strict=True)
        ),
    )
    want = reference_result(bundle, runner, "good", 42)
    with connect(server, certs, "good") as client:
        client.hello("good", bundle.plan_sha256)
        for seq, frame in ((2000, as_float), (2001, as_int16)):
            assert_same_result(client.send_frame(replace(frame, seq=seq)).body, want)


def test_200_concurrent_clients(server: ReceiverThread, certs: Path, bundle: Bundle, runner: Any) -> None:
    frames_each = 3
    expected = {seq: reference_result(bundle, runner, "cam-0", seq) for seq in range(frames_each)}
    batches_before = server.receiver.metrics.batches.value()

    async def camera(i: int) -> list[wire.Result]:
        client = await AsyncWireClient.connect("127.0.0.1", server.port, tls_for(certs, f"cam-{i}"))
        await client.hello(f"cam-{i}", bundle.plan_sha256)
        results = [await client.send_frame(make_frame(bundle, f"cam-{i}", s)) for s in range(frames_each)]
        await client.close()
        return results

    async def all_cameras() -> list[list[wire.Result]]:
        return await asyncio.wait_for(asyncio.gather(*(camera(i) for i in range(N_CAMERAS))), 240)

    results = asyncio.run(all_cameras())
    assert len(results) == N_CAMERAS
    for res in results[:5]:
        for r in res:
            assert r.status == 0
    # camera 0's frames, batched with everyone else's, still give the batch-1 answer
    for r in results[0]:
        assert_same_result(r.body, expected[r.seq])
    batches = server.receiver.metrics.batches.value() - batches_before
    assert 0 < batches <= N_CAMERAS * frames_each


def test_client_without_valid_cert_is_refused(server: ReceiverThread, certs: Path, bundle: Bundle) -> None:
    no_cert = client_tls_context(certs / "ca.pem", None, None)
    rogue = tls_for(certs, "good", ca_dir=certs / "rogue")
    for ctx in (no_cert, rogue):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            c = WireClient("127.0.0.1", server.port, ctx, timeout_s=10)
            c.hello("good", bundle.plan_sha256)
    # a camera may not claim another camera's device id
    with connect(server, certs, "bad") as client, pytest.raises(ReceiverRefused, match="certificate"):
        client.hello("good", bundle.plan_sha256)
    with connect(server, certs, "good") as client:
        client.hello("good", bundle.plan_sha256)
        assert client.send_frame(make_frame(bundle, "good", 100)).status == 0


def test_plan_hash_mismatch_gets_an_error_saying_so(server: ReceiverThread, certs: Path) -> None:
    with connect(server, certs, "good") as client, pytest.raises(ReceiverRefused, match="plan hash mismatch") as info:
        client.hello("good", "00" * 32)
    assert info.value.error.code == wire.ErrorCode.PLAN_MISMATCH


def _with_crc(data: bytes) -> bytes:
    out = bytearray(data)
    out[-4:] = zlib.crc32(bytes(out[:-4])).to_bytes(4, "little")
    return bytes(out)


def _abuse(kind: str, bundle: Bundle) -> tuple[bytes, float]:
    """Bytes the bad camera sends after its HELLO, and how long it then stalls before reading."""
    good = wire.encode(make_frame(bundle, "bad", 0))
    if kind == "crc":
        return good[:-1] + bytes([good[-1] ^ 0xFF]), 0
    if kind == "huge_dims":
        out = bytearray(good)
        out[32 + 12 : 32 + 16] = (1 << 30).to_bytes(4, "little")  # first dim of the first tensor
        return _with_crc(bytes(out)), 0
    if kind == "over_max_frame_bytes":
        out = bytearray(good)
        out[8:12] = (1 << 30).to_bytes(4, "little")
        return bytes(out[:12]), 0
    if kind == "wrong_version":
        return good[:4] + b"\x07" + good[5:], 0
    if kind == "frame_before_hello":
        return good, 0
    if kind == "garbage":
        return b"GET / HTTP/1.1\r\n\r\n", 0
    if kind == "wrong_tensors":
        frame = make_frame(bundle, "bad", 0)
        return wire.encode(replace(frame, tensors=frame.tensors[:1])), 0
    if kind == "stats_not_json":
        return wire.encode(Stats("stages: capture 1.5 ms", 1, 0)), 0
    if kind == "slow_loris":
        return good[:20], 3.0
    if kind == "truncated":
        return good[: len(good) // 2], -1  # then half-close the connection
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "crc",
        "truncated",
        "huge_dims",
        "slow_loris",
        "over_max_frame_bytes",
        "garbage",
        "wrong_tensors",
        "wrong_version",
        "frame_before_hello",
        "stats_not_json",
    ],
)
def test_bad_client_is_dropped_while_a_good_one_keeps_going(
    server: ReceiverThread, certs: Path, bundle: Bundle, kind: str
) -> None:
    stop = threading.Event()
    good_results: list[wire.Result] = []
    failures: list[BaseException] = []

    def good_camera() -> None:
        try:
            with connect(server, certs, "good") as client:
                client.hello("good", bundle.plan_sha256)
                seq = 1000
                while not stop.is_set():
                    good_results.append(client.send_frame(make_frame(bundle, "good", seq)))
                    seq += 1
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    worker = threading.Thread(target=good_camera)
    worker.start()
    errors_before = server.receiver.metrics.errors.total()
    try:
        payload, stall = _abuse(kind, bundle)
        with connect(server, certs, "bad") as bad:
            if kind != "frame_before_hello":
                bad.hello("bad", bundle.plan_sha256)
            bad.send(payload)
            if stall < 0:
                bad.sock.shutdown(socket.SHUT_WR)
            elif stall:
                time.sleep(stall)  # longer than the receiver's 1 s read timeout
            try:
                reply: wire.Message | None = bad.receive()
            except (ConnectionError, OSError):
                reply = None  # the receiver hung up without a word (truncated: nothing to answer)
            if kind != "truncated":
                assert isinstance(reply, wire.Error), reply
                assert reply.code in (wire.ErrorCode.BAD_FRAME, wire.ErrorCode.PROTOCOL, wire.ErrorCode.TENSOR_MISMATCH)
            with pytest.raises((ConnectionError, OSError)):  # and the connection is closed
                bad.send(payload)
                bad.receive()
        count_at_abuse_end = len(good_results)
        deadline = time.monotonic() + 20
        while len(good_results) < count_at_abuse_end + 3 and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(30)
    assert not failures, failures
    assert len(good_results) >= count_at_abuse_end + 3 and all(r.status == 0 for r in good_results)
    if kind != "truncated":
        assert server.receiver.metrics.errors.total() > errors_before


def test_stats_message_is_stored_and_frames_go_on(
    server: ReceiverThread, certs: Path, bundle: Bundle, config: ReceiverConfig
) -> None:
    """A camera's STATS (stage timings, JSON) lands in device_stats; it gets no answer, and the
    connection keeps serving frames with the camera's own sequence numbers."""
    stats = {"stages": {"capture": {"n": 2, "mean_ms": 1.25}, "infer": {"n": 2, "mean_ms": 9.5}}, "sent": 2}
    before = server.receiver.metrics.device_stats.value()
    with connect(server, certs, "cam-1") as client:
        client.hello("cam-1", bundle.plan_sha256)
        assert client.send_frame(make_frame(bundle, "cam-1", 0)).seq == 0
        client.send(Stats(json.dumps(stats), 1, 4242))
        result = client.send_frame(make_frame(bundle, "cam-1", 1))  # the next reply is this frame's RESULT
        assert result.seq == 1 and result.status == 0
    assert server.receiver.metrics.device_stats.value() == before + 1
    store = open_store(config.db)
    rows = store.stats("cam-1")
    store.close()
    assert len(rows) == 1 and json.loads(rows[0][1]) == stats
    assert abs(rows[0][0] / 1e6 - time.time()) < 300
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.receiver.metrics_port}/metrics", timeout=5).read()
    assert b"splitsdk_device_stats_total" in text


def test_metrics_and_healthz(server: ReceiverThread, certs: Path, bundle: Bundle) -> None:
    with connect(server, certs, "good") as client:
        client.hello("good", bundle.plan_sha256)
        client.send_frame(make_frame(bundle, "good", 5000))
    base = f"http://127.0.0.1:{server.receiver.metrics_port}"
    assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    for name in (
        "splitsdk_frames_total",
        "splitsdk_bytes_received_total",
        "splitsdk_errors_total",
        "splitsdk_queue_depth",
        'splitsdk_stage_seconds_bucket{stage="model"',
        'stage="store"',
    ):
        assert name in text


def test_max_connections_and_plain_tcp(bundle: Bundle, runner: Any, tmp_path: Path) -> None:
    cfg = ReceiverConfig(
        listen="127.0.0.1:0", db=tmp_path / "r.sqlite", insecure_plain_tcp=True, limits=LimitsConfig(max_connections=2)
    ).validate()
    srv = ReceiverThread(bundle, cfg, runner)
    try:
        held = [WireClient("127.0.0.1", srv.port) for _ in range(2)]
        for i, c in enumerate(held):
            c.hello(f"plain-{i}", bundle.plan_sha256)
        with WireClient("127.0.0.1", srv.port) as extra:
            reply = extra.receive()
            assert isinstance(reply, wire.Error) and reply.code == wire.ErrorCode.OVERLOADED
        assert held[0].send_frame(make_frame(bundle, "plain-0", 0)).status == 0
        for c in held:
            c.close()
    finally:
        srv.stop()


def double_first(outputs: list[np.ndarray], params: dict[str, Any]) -> bytes:
    """A user post-processing hook, named in a manifest as `test_receiver:double_first`."""
    return json.dumps({"v": float(outputs[0][0]) * params["factor"]}).encode()


def test_postprocess_hooks_by_name() -> None:
    scores = [np.array([0.1, 0.7, 0.2, 0.7])]
    assert json.loads(resolve({"kind": "topk", "k": 2})(scores)) == {"topk": [[1, 0.7], [3, 0.7]]}
    assert json.loads(resolve({"kind": "argmax"})(scores)) == {"class": 1, "score": 0.7}
    assert json.loads(resolve({"kind": "test_receiver:double_first", "factor": 3})(scores)) == {"v": 0.1 * 3}
    for bad in ({"kind": "nope"}, {"kind": "no_such_module:f"}):
        with pytest.raises(BundleError, match="postprocess kind"):
            resolve(bad)


def test_receiver_toml_config(tmp_path: Path) -> None:
    toml = tmp_path / "receiver.toml"
    toml.write_text(
        'listen = "0.0.0.0:7711"\nmetrics = "127.0.0.1:9111"\ndb = "x.sqlite"\n'
        '[tls]\ncert = "s.pem"\nkey = "s.key"\nclient_ca = "ca.pem"\n'
        "[limits]\nmax_frame_bytes = 4096\nread_timeout_s = 2.5\n[batching]\nmax_batch = 3\n"
    )
    cfg = load_config(toml, {"batching.max_batch": 5, "listen": None})
    assert (cfg.host, cfg.port, cfg.metrics_address, cfg.db) == ("0.0.0.0", 7711, ("127.0.0.1", 9111), "x.sqlite")
    assert cfg.tls.cert == Path("s.pem") and cfg.limits.frame.max_frame_bytes == 4096
    assert cfg.limits.read_timeout_s == 2.5
    assert cfg.batching.max_batch == 5  # the command line wins over the file
    toml.write_text("[limits]\nmax_frame = 1\n")
    with pytest.raises(ReceiverError, match=r"receiver.toml: limits.max_frame: unknown key"):
        load_config(toml)


def test_batcher_fills_batches_up_to_max() -> None:
    sizes: list[int] = []

    async def main() -> list[int]:
        def process(jobs: list[int]) -> list[int]:
            sizes.append(len(jobs))
            return [j * 2 for j in jobs]

        batcher: DynamicBatcher[int, int] = DynamicBatcher(process, max_batch=4, max_wait_s=0.05)
        batcher.start()
        out = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return list(out)

    assert asyncio.run(main()) == [i * 2 for i in range(10)]
    assert sizes == [4, 4, 2]


def test_batcher_reports_failures_to_every_waiter() -> None:
    async def main() -> None:
        def process(jobs: list[int]) -> list[int]:
            raise ValueError("model exploded")

        batcher: DynamicBatcher[int, int] = DynamicBatcher(process, max_batch=4, max_wait_s=0.0)
        batcher.start()
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        assert all(isinstance(o, ValueError) for o in outcomes)
        await batcher.close()

    asyncio.run(main())


def test_batcher_does_not_wait_for_cameras_that_are_not_sending() -> None:
    """With one job in the pipeline the batch closes at once: the 60 s max_wait would trip wait_for."""

    async def main() -> None:
        batcher: DynamicBatcher[int, int] = DynamicBatcher(lambda jobs: jobs, 8, max_wait_s=60.0, in_pipeline=lambda: 1)
        batcher.start()
        assert await asyncio.wait_for(batcher.submit(5), 30) == 5
        await batcher.close()

    asyncio.run(main())


def test_certificate_without_a_common_name_is_refused(
    server: ReceiverThread, certs: Path, bundle: Bundle, tmp_path: Path
) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (tmp_path / "anon.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "anon.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = client_tls_context(certs / "ca.pem", tmp_path / "anon.pem", tmp_path / "anon.key")
    with WireClient("127.0.0.1", server.port, ctx) as client, pytest.raises(ReceiverRefused, match="common name"):
        client.hello("anyone", bundle.plan_sha256)
