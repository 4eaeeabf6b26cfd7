"""Receiver isolation, input validation and admission control, one test per defect found by fuzzing it.

A real receiver (plain TCP on loopback, the tiny bundle's real cloud model) runs on its own event loop
in a thread; the descriptor-limit test runs `splitsdk serve` in a subprocess with a lowered
RLIMIT_NOFILE. Every load loop is bounded in count and time; subprocesses are ended by their pid.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_receiver import ReceiverThread, make_frame
from test_receiver_process import ServeProcess
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.cli.main import main as cli_main
from splitsdk.cloud.admission import HELLO_MAX_BYTES
from splitsdk.cloud.config import BatchingConfig, LimitsConfig, ReceiverConfig
from splitsdk.cloud.metrics import Registry, serve_http
from splitsdk.cloud.model import load_cloud_runner
from splitsdk.cloud.store import open_store
from splitsdk.cloud.validation import strict_loads
from splitsdk.errors import BundleError
from splitsdk.wire.bundle import Bundle, load_bundle
from splitsdk.wire.client import AsyncWireClient, ReceiverRefused, WireClient
from splitsdk.wire.frame import Stats

POISON_RAISE = 1234.5  # a frame whose first value is this makes the cloud model raise
POISON_NAN = 4321.5  # ... makes it return NaN scores
BYTES_IN_FLIGHT = 4096
STATS_BURST = 3


class FaultyModel:
    """The bundle's real cloud model, failing on marked inputs as a broken model or driver would."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.batches: list[tuple[int, bool]] = []  # (size, held a POISON_RAISE frame)

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        first = inputs[0].reshape(len(inputs[0]), -1)[:, 0]
        raising = bool((first == POISON_RAISE).any())
        self.batches.append((len(first), raising))
        if raising:
            raise ValueError("the cloud model cannot run this input")
        out = [np.array(o, dtype=np.float32) for o in self.real(inputs)]
        out[0][first == POISON_NAN] = np.nan
        return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), two_crossings=True, bits=4)


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> Bundle:
    return load_bundle(bundle_dir)


@pytest.fixture(scope="module")
def model(bundle: Bundle) -> FaultyModel:
    return FaultyModel(load_cloud_runner(bundle))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ReceiverConfig:
    return ReceiverConfig(
        listen="127.0.0.1:0",
        db=str(tmp_path_factory.mktemp("db") / "results.sqlite"),
        metrics="127.0.0.1:0",
        insecure_plain_tcp=True,
        limits=LimitsConfig(
            read_timeout_s=1.0,
            idle_timeout_s=30.0,
            hello_timeout_s=1.0,
            max_frame_bytes=1 << 20,
            max_connections=8,
            max_handshakes=8,
            max_handshakes_per_address=4,
            max_bytes_in_flight=BYTES_IN_FLIGHT,
            stats_burst=STATS_BURST,
            stats_interval_s=3600.0,
        ),
        batching=BatchingConfig(max_batch=16, max_wait_ms=300.0),
    ).validate()


@pytest.fixture(scope="module")
def server(bundle: Bundle, config: ReceiverConfig, model: FaultyModel) -> Iterator[ReceiverThread]:
    srv = ReceiverThread(bundle, config, model)
    try:
        yield srv
    finally:
        srv.stop()


def connect(server: ReceiverThread) -> WireClient:
    return WireClient("127.0.0.1", server.port, timeout_s=20)


def filled_frame(bundle: Bundle, seq: int, value: float, tensor: int = 0) -> wire.Frame:
    """A FLOAT32 frame: tensor `tensor` filled with `value`, the others with 0.5."""
    return wire.Frame(
        seq,
        1000 + seq,
        tuple(
            wire.WireTensor(
                wire.TensorKind.FLOAT,
                32,
                1.0,
                0,
                c.shape,
                np.full(c.shape, value if i == tensor else 0.5, "<f4").tobytes(),
            )
            for i, c in enumerate(bundle.crossing)
        ),
    )


def refusal(client: WireClient, msg: wire.Message | bytes) -> wire.Error:
    """Send `msg`; the receiver must answer an ERROR, then close the connection."""
    client.send(msg)
    reply = client.receive()
    assert isinstance(reply, wire.Error), reply
    with pytest.raises((ConnectionError, OSError)):
        client.receive()
    return reply


class GoodCamera(threading.Thread):
    """Sends frames until stopped (at most 30 s); every reply must be a RESULT."""

    def __init__(self, server: ReceiverThread, bundle: Bundle, name: str) -> None:
        super().__init__(daemon=True)
        self.server, self.bundle, self.name_ = server, bundle, name
        self.stop = threading.Event()
        self.results: list[wire.Result] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 30
        try:
            with connect(self.server) as client:
                client.hello(self.name_, self.bundle.plan_sha256)
                seq = 0
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self.results.append(client.send_frame(make_frame(self.bundle, self.name_, seq)))
                    seq += 1
        except BaseException as exc:  # surfaced by finish()
            self.failure = exc

    def finish(self, more: int = 3) -> None:
        """Wait for `more` further results, stop, and check that every frame got one."""
        want = len(self.results) + more
        deadline = time.monotonic() + 20
        while len(self.results) < want and self.failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stop.set()
        self.join(30)
        assert self.failure is None, self.failure
        assert len(self.results) >= want and all(r.status == 0 for r in self.results)


# ---- 1. one camera's bad input fails other cameras ----


@pytest.mark.parametrize(
    ("device_id", "problem"),
    [
        ("cam-\udcff\udcfe", "is not valid UTF-8"),
        ("cam\x00one", "control character U+0000"),
        ("cam\x1b[2J", "control character U+001B"),
        ("c" * 100, "100 characters long, over 64"),
    ],
)
def test_bad_device_id_at_hello_does_not_fail_other_cameras(
    server: ReceiverThread, bundle: Bundle, device_id: str, problem: str
) -> None:
    good = GoodCamera(server, bundle, "well-behaved")
    good.start()
    with connect(server) as bad:
        reply = refusal(bad, wire.Hello(device_id, bundle.plan_sha256))
    assert reply.code == wire.ErrorCode.PROTOCOL and problem in reply.message
    good.finish()


def test_a_failing_frame_fails_alone_in_its_batch(server: ReceiverThread, bundle: Bundle, model: FaultyModel) -> None:
    """A batch whose model run raises is rerun frame by frame: the others get their results."""

    async def round_(r: int) -> tuple[list[Any], bool]:
        clients = []
        for i in range(5):  # one after the other: at most 4 handshakes per address
            clients.append(await AsyncWireClient.connect("127.0.0.1", server.port))
            await clients[-1].hello(f"batch-{i}", bundle.plan_sha256)
        frames = [make_frame(bundle, f"batch-{i}", r) for i in range(4)] + [filled_frame(bundle, r, POISON_RAISE)]
        seen = len(model.batches)
        replies = await asyncio.gather(
            *(c.send_frame(f) for c, f in zip(clients, frames, strict=True)), return_exceptions=True
        )
        for c in clients:
            await c.close()
        return list(replies), any(size > 1 and bad for size, bad in model.batches[seen:])

    for r in range(5):  # until the poisoned frame shared a batch with good ones (almost always the first)
        replies, mixed = asyncio.run(asyncio.wait_for(round_(r), 60))
        assert all(isinstance(x, wire.Result) and x.status == 0 for x in replies[:4]), replies
        assert isinstance(replies[4], ReceiverRefused) and replies[4].error.code == wire.ErrorCode.INTERNAL
        assert "cannot run this input" in replies[4].error.message
        if mixed:
            break
    assert mixed


# ---- 2. deeply nested, huge or many STATS ----


def test_deeply_nested_stats_gets_an_error_not_a_recursion_error(server: ReceiverThread, bundle: Bundle) -> None:
    good = GoodCamera(server, bundle, "well-behaved")
    good.start()
    with connect(server) as bad:
        bad.hello("nester", bundle.plan_sha256)
        reply = refusal(bad, Stats("[" * 20000 + "]" * 20000))
    assert reply.code == wire.ErrorCode.BAD_FRAME and "nests 20000 deep, over the limit of 32" in reply.message
    good.finish()


def test_oversized_stats_is_refused_before_it_is_read(server: ReceiverThread, bundle: Bundle) -> None:
    data = wire.encode(Stats(json.dumps({"pad": "x" * (200 << 10)})))
    with connect(server) as bad:
        bad.hello("bloater", bundle.plan_sha256)
        reply = refusal(bad, data[: wire.PREFIX_LEN])  # the prefix alone declares it too large
    assert reply.code == wire.ErrorCode.BAD_FRAME and "over 65536" in reply.message


def test_stats_flood_is_rate_limited_per_camera(server: ReceiverThread, bundle: Bundle, config: ReceiverConfig) -> None:
    dropped = server.receiver.metrics.stats_dropped.value()
    with connect(server) as cam:
        cam.hello("chatty", bundle.plan_sha256)
        for i in range(20):
            cam.send(Stats(json.dumps({"stages": {}, "n": i})))
        assert cam.send_frame(make_frame(bundle, "chatty", 0)).status == 0  # still served
    store = open_store(config.db)
    try:
        rows = store.stats("chatty")
    finally:
        store.close()
    assert [json.loads(text)["n"] for _, text in rows] == list(range(STATS_BURST))
    assert server.receiver.metrics.stats_dropped.value() - dropped == 20 - STATS_BURST


# ---- 3. NaN / Inf ----


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_tensor_is_refused_naming_the_tensor(server: ReceiverThread, bundle: Bundle, value: float) -> None:
    with connect(server) as cam:
        cam.hello("nan-cam", bundle.plan_sha256)
        reply = refusal(cam, filled_frame(bundle, 1, value, tensor=1))
    assert reply.code == wire.ErrorCode.BAD_FRAME
    assert f"tensor 1 ({bundle.crossing[1].tensor}) holds non-finite values" in reply.message


def test_a_scale_that_overflows_is_refused(server: ReceiverThread, bundle: Bundle) -> None:
    packed = make_frame(bundle, "scale-cam", 0)
    huge = replace(packed, tensors=(replace(packed.tensors[0], scale=3e38), *packed.tensors[1:]))
    with connect(server) as cam:
        cam.hello("scale-cam", bundle.plan_sha256)
        reply = refusal(cam, huge)
    assert reply.code == wire.ErrorCode.BAD_FRAME and "tensor 0" in reply.message and "non-finite" in reply.message


def test_nan_scores_are_never_stored_or_sent(server: ReceiverThread, bundle: Bundle, config: ReceiverConfig) -> None:
    with connect(server) as cam:
        cam.hello("nan-scores", bundle.plan_sha256)
        reply = refusal(cam, filled_frame(bundle, 7, POISON_NAN))
    assert reply.code == wire.ErrorCode.INTERNAL and "not valid JSON" in reply.message
    store = open_store(config.db)
    try:
        assert store.get("nan-scores", 7) is None
    finally:
        store.close()
    with connect(server) as cam:  # a finite frame of the same camera is answered with strict JSON
        cam.hello("nan-scores", bundle.plan_sha256)
        strict_loads(cam.send_frame(filled_frame(bundle, 8, 0.25)).body)


# ---- 4. the bundle's plan ----


def test_swapped_plan_is_refused_when_loading_the_bundle(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    (copy / "plan.json").write_text("plan-0-True-4")  # build_bundle's plan_sha256 is the SHA-256 of this
    assert load_bundle(copy).plan_sha256 == load_bundle(bundle_dir).plan_sha256
    (copy / "plan.json").write_text("plan-0-True-4 swapped")
    with pytest.raises(BundleError, match=r"plan.json: SHA-256 \w{16}\.\.\. is not manifest.json plan_sha256"):
        load_bundle(copy)
    assert cli_main(["serve", str(copy), "--insecure-plain-tcp", "--listen", "127.0.0.1:0"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plan.json: SHA-256" in err[0] and "re-run `splitsdk convert`" in err[0]


# ---- 5. sockets that never say HELLO ----


def test_sockets_without_hello_do_not_lock_out_cameras(server: ReceiverThread, bundle: Bundle) -> None:
    """20 silent sockets from one address (a per-address cap of 4, 8 cameras at most): a camera from
    another address still gets in, and the silent ones are closed at the 1 s HELLO deadline."""
    silent = [socket.create_connection(("127.0.0.1", server.port), 10, ("127.0.0.2", 0)) for _ in range(20)]
    try:
        with connect(server) as cam:
            cam.hello("next-door", bundle.plan_sha256)
            assert cam.send_frame(make_frame(bundle, "next-door", 0)).status == 0
        codes = []
        for s in silent:  # each is refused at once (over the cap) or cut at the deadline
            s.settimeout(10)
            head = s.recv(wire.PREFIX_LEN)
            length, _ = wire.peek(head)
            reply, _ = wire.decode(head + s.recv(length))
            assert isinstance(reply, wire.Error)
            codes.append(reply.code)
        assert codes.count(wire.ErrorCode.OVERLOADED) == 16 and codes.count(wire.ErrorCode.PROTOCOL) == 4
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 10
    while server.receiver.admission.handshakes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.receiver.admission.handshakes == 0


# ---- 6. frames declared before HELLO, bytes in flight ----


def test_before_hello_only_a_hello_sized_frame_may_be_declared(server: ReceiverThread, bundle: Bundle) -> None:
    big = wire.encode(filled_frame(bundle, 0, 0.5))
    assert len(big) > HELLO_MAX_BYTES
    with connect(server) as bad:
        reply = refusal(bad, big[: wire.PREFIX_LEN])
    assert reply.code == wire.ErrorCode.BAD_FRAME and "frame larger than the limit" in reply.message


def test_frames_being_read_share_one_byte_budget(server: ReceiverThread, bundle: Bundle) -> None:
    """Three cameras each start a 1.8 KiB frame and stall: with a 4 KiB budget at most two are read at
    once; the stalled ones are cut by the read timeout and a camera after them is served."""
    frame = wire.encode(filled_frame(bundle, 0, 0.5))
    stalled = [connect(server) for _ in range(3)]
    try:
        for i, s in enumerate(stalled):
            s.hello(f"staller-{i}", bundle.plan_sha256)
            s.send(frame[:64])
        peak = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            peak = max(peak, server.receiver.admission.bytes_in_flight)
            time.sleep(0.005)
        assert peak == 2 * len(frame) <= BYTES_IN_FLIGHT < 3 * len(frame)  # the third waits its turn
        for s in stalled:
            s.sock.settimeout(10)
            with pytest.raises((ConnectionError, OSError)):
                s.receive()  # an ERROR (read timeout), then the close
                s.receive()
    finally:
        for s in stalled:
            s.close()
    assert server.receiver.admission.bytes_in_flight == 0
    with connect(server) as cam:
        cam.hello("after-stall", bundle.plan_sha256)
        assert cam.send_frame(make_frame(bundle, "after-stall", 0)).status == 0


# ---- 7. the file-descriptor limit ----


class LimitedServe(ServeProcess):
    """`splitsdk serve` (plain TCP) in a subprocess whose RLIMIT_NOFILE is (soft, hard)."""

    def __init__(self, bundle_dir: Path, tmp: Path, soft: int, hard: int) -> None:
        self.log = tmp / f"serve-{soft}-{hard}.log"

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        cmd = [sys.executable, "-m", "splitsdk", "serve", str(bundle_dir), "--insecure-plain-tcp"]
        cmd += ["--listen", "127.0.0.1:0", "--db", str(tmp / f"r-{soft}.sqlite")]
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)
        self.port = self._wait_listening()
        self.listening = self.events("listening")[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_at_the_descriptor_limit_new_cameras_are_refused_cleanly(
    bundle_dir: Path, bundle: Bundle, tmp_path: Path
) -> None:
    srv = LimitedServe(bundle_dir, tmp_path, 256, 256)
    held: list[WireClient] = []
    flood: list[socket.socket] = []
    try:
        port, cap = srv.port, int(srv.listening["max_cameras"])
        assert srv.listening["nofile"] == 256 and 0 < cap < 256 - 64
        refused = 0
        for i in range(cap + 20):  # every camera gets an answer: HELLO, or OVERLOADED
            c = WireClient("127.0.0.1", port, timeout_s=20)
            try:
                c.hello(f"cam-{i}", bundle.plan_sha256)
                held.append(c)
            except ReceiverRefused as exc:
                assert exc.error.code == wire.ErrorCode.OVERLOADED
                refused += 1
                c.close()
        assert len(held) == cap and refused == 20
        for _ in range(400):  # more sockets than descriptors: each is refused and closed, none piles up
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), 10))
            except OSError:
                break
        for s in flood:
            s.settimeout(10)
            try:  # an OVERLOADED ERROR, then the close; never a hang (a timeout here)
                while s.recv(1 << 16):
                    pass
            except ConnectionResetError:
                pass
        assert held[0].send_frame(make_frame(bundle, "cam-0", 0)).status == 0
    finally:
        for s in flood:
            s.close()
        for c in held:
            c.close()
        srv.stop()
    log = srv.log.read_text()
    assert "Traceback" not in log and "out of system resource" not in log
    refusals = srv.events("connections_refused")
    assert 1 <= len(refusals) <= 3  # once per 10 s interval (with a count of the others), not once each


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(bundle_dir: Path, tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    srv = LimitedServe(bundle_dir, tmp_path, 256, hard)
    try:
        assert srv.listening["nofile"] == hard and srv.listening["max_cameras"] > 256 - 64
    finally:
        srv.stop()


# ---- 8. /metrics and /healthz ----


def test_http_request_that_trickles_in_is_cut_at_its_deadline() -> None:
    async def main() -> None:
        http = await serve_http("127.0.0.1", 0, Registry(), lambda: True, request_timeout_s=0.5, max_connections=2)
        port = http.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")
        closed = False
        for _ in range(100):  # a header line every 0.1 s for up to 10 s
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                closed = await asyncio.wait_for(reader.read(1), 0.1) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
            if closed:
                break
        assert closed  # before the client had sent its 100 lines
        writer.close()
        http.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_http_connections_are_capped() -> None:
    async def main() -> None:
        http = await serve_http("127.0.0.1", 0, Registry(), lambda: True, request_timeout_s=2.0, max_connections=2)
        port = http.sockets[0].getsockname()[1]
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # over the cap: closed unanswered
        except ConnectionResetError:
            pass
        writer.close()
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"ok\n")
        writer.close()
        http.close()

    asyncio.run(asyncio.wait_for(main(), 30))
