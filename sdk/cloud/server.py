"""The cloud receiver: asyncio server speaking the wire protocol to many cameras at once.

Per connection: HELLO (plan hash checked against the bundle; with TLS the device id must be the
client certificate's common name) -> FRAMEs. Each FRAME is read under limits (the 12-byte prefix is
validated before the rest is read), unpacked and dequantised by the shared C, and handed to the
dynamic batcher, whose one worker thread runs the cloud model on the batch, post-processes, and
commits the batch's results to SQLite in one transaction. Only then is RESULT sent. A STATS message
(the camera's per-stage timings, JSON) is stored in `device_stats` on the same worker thread and
logged; it gets no answer. A bad frame (a STATS that is not a JSON object included) gets an ERROR and
its connection is closed; other connections are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splitsdk import wire
from splitsdk.cloud.admission import Admission
from splitsdk.cloud.batch_inputs import BatchTensors, Input, PackedInput
from splitsdk.cloud.batcher import DynamicBatcher
from splitsdk.cloud.config import ReceiverConfig
from splitsdk.cloud.isolation import FrameFailed, contained, unwrap
from splitsdk.cloud.logs import event, setup_logging
from splitsdk.cloud.metrics import Counter, Gauge, Histogram, Registry, serve_http
from splitsdk.cloud.model import Runner, load_cloud_runner
from splitsdk.cloud.postprocess import resolve
from splitsdk.cloud.store import ResultStore, StoredResult, StoreError, UnopenedStore, open_store
from splitsdk.cloud.trust import Trust, build_context
from splitsdk.cloud.validation import (
    ProtocolViolation,
    check_device_id,
    check_split,
    decompressed,
    jpeg_input,
    parse_stats,
    require_finite,
    strict_json,
)
from splitsdk.errors import ReceiverError
from splitsdk.wire import ErrorCode, FrameError, TensorKind
from splitsdk.wire.bundle import Bundle
from splitsdk.wire.frame import Stats

RECEIVER_ID = "splitsdk-receiver"


@dataclass
class Job:
    device_id: str
    seq: int
    capture_us: int
    inputs: list[Input]  # packed codes (views of the frame), dequantised into the batch on the batch thread
    split: int = 0  # the bundle member the frame is for (FRAME.split)


@dataclass
class Member:
    """What the receiver holds per split it serves: the member's single-split view, its cloud half and its
    batch buffers (a single-split bundle: one member, split 0)."""

    bundle: Bundle
    runner: Runner
    tensors: BatchTensors


def tls_context(config: ReceiverConfig) -> ssl.SSLContext:
    """Server TLS context that requires a client certificate signed by the client CA and not revoked
    by `tls.crl` (a snapshot: the receiver itself re-reads the files, see splitsdk.cloud.trust)."""
    return build_context(config.tls)


class Metrics:
    def __init__(self, depth: Callable[[], float], connections: Callable[[], float]) -> None:
        self.registry = Registry()
        reg = self.registry.add
        self.frames: Counter = reg(
            Counter("splitsdk_frames_total", "FRAMEs answered with a RESULT (a multi-split bundle: by split)")
        )
        self.bytes: Counter = reg(Counter("splitsdk_bytes_received_total", "Bytes of frames received"))
        self.tensor_bytes: Counter = reg(
            Counter(
                "splitsdk_tensor_bytes_total",
                "Crossing-tensor payload bytes received: as sent (form=wire) and uncompressed (form=raw)",
            )
        )
        self.errors: Counter = reg(Counter("splitsdk_errors_total", "Connections ended by an error, by kind"))
        self.split_changes: Counter = reg(
            Counter("splitsdk_split_changes_total", "FRAMEs for another split than the camera's previous one")
        )
        self.duplicates: Counter = reg(
            Counter("splitsdk_duplicate_frames_total", "Resent frames answered from the store")
        )
        self.batches: Counter = reg(Counter("splitsdk_batches_total", "Batches run by the cloud model"))
        self.device_stats: Counter = reg(
            Counter("splitsdk_device_stats_total", "STATS messages (camera stage timings) stored")
        )
        self.stats_dropped: Counter = reg(
            Counter("splitsdk_device_stats_dropped_total", "STATS messages over the per-camera rate, not stored")
        )
        reg(Gauge("splitsdk_queue_depth", "Frames waiting for or in the cloud model", depth))
        reg(Gauge("splitsdk_connections", "Open camera connections", connections))
        self.latency: Histogram = reg(Histogram("splitsdk_stage_seconds", "Per-stage latency"))


def engine_runner(bundle: Bundle, config: ReceiverConfig, split: int | None = None) -> Runner:
    """The cloud model (member `split`'s of a multi-split `bundle`) where `[engine]` puts it: in this process,
    or a Ray Serve application (deployed now unless it runs already)."""
    if config.engine.kind == "ray":
        from splitsdk.cloud.engine_ray import RayRunner

        return RayRunner(bundle, config.engine, split)
    return load_cloud_runner(bundle if split is None else bundle.member(split))


class Receiver:
    """One receiver serving one bundle with one ReceiverConfig; `start()` binds, `drain()` stops gracefully.

    `runner` is the cloud model; by default the bundle's own, where `config.engine` runs it (`engine_runner`).
    """

    def __init__(self, bundle: Bundle, config: ReceiverConfig, runner: Runner | None = None) -> None:
        self.bundle = bundle
        self.config = config
        self.log = setup_logging()
        # one cloud half per split (on Ray Serve: one application each); frames are batched per split
        self._multi = bool(bundle.manifest.splits)
        self.members = {k: self._member(bundle, k if self._multi else None, runner) for k in bundle.split_indices}
        self._post = strict_json(resolve(bundle.postprocess))  # a NaN score is refused, never stored
        self._store: ResultStore = UnopenedStore(config.db)  # opened by start(), once the ports are bound
        self._trust: Trust | None = None
        self._conns: dict[asyncio.Task[Any], bool] = {}  # task -> busy (mid-frame)
        self._versions: dict[asyncio.StreamWriter, int] = {}  # protocol version of each camera's HELLO
        self.admission = Admission(config.limits, self.log)
        self._tls: ssl.SSLContext | None = None
        self.draining = False
        self.metrics = Metrics(lambda: self.batcher.depth, lambda: len(self._conns))
        self.batcher: DynamicBatcher[Job, StoredResult | FrameFailed] = DynamicBatcher(
            contained(self._process_batch),  # a failing batch is rerun frame by frame: one frame fails alone
            config.batching.max_batch,
            config.batching.max_wait_ms / 1000.0,
            self._on_batch,
            in_pipeline=lambda: sum(self._conns.values()),
        )
        self._server: asyncio.base_events.Server | None = None
        self._http: asyncio.base_events.Server | None = None
        self.port = 0
        self.metrics_port = 0

    # ---- the batch thread: model -> post-process -> store, one transaction per batch ----

    def _member(self, bundle: Bundle, split: int | None, runner: Runner | None) -> Member:
        """Member `split`'s single-split view (the bundle's own for None) with its cloud half (`runner` when
        given) and batch buffers."""
        member = bundle if split is None else bundle.member(split)
        run = runner if runner is not None else engine_runner(bundle, self.config, split)
        return Member(member, run, BatchTensors([c.shape for c in member.crossing], self.config.batching.max_batch))

    def _on_batch(self, size: int, waits: list[float]) -> None:
        self.metrics.batches.inc()
        for w in waits:
            self.metrics.latency.observe(w, "queue")

    def _process_batch(self, jobs: list[Job]) -> list[StoredResult]:
        known = {i: self._store.get(j.device_id, j.seq) for i, j in enumerate(jobs)}
        fresh = [i for i, r in known.items() if r is None]
        rows: list[StoredResult] = []
        if fresh:
            bodies: dict[int, bytes] = {}
            model_s = post_s = 0.0
            for split in sorted({jobs[i].split for i in fresh}):  # one model run per split in the batch
                member = self.members[split]
                group = [i for i in fresh if jobs[i].split == split]
                t0 = time.perf_counter()
                outputs = member.runner(member.tensors.fill([jobs[i].inputs for i in group]))  # no per-batch stack
                t1 = time.perf_counter()
                bodies.update((i, self._post([o[n] for o in outputs])) for n, i in enumerate(group))
                model_s, post_s = model_s + t1 - t0, post_s + time.perf_counter() - t1
            t2 = time.perf_counter()
            rows = self._store.put_many(
                [StoredResult(jobs[i].device_id, jobs[i].seq, jobs[i].capture_us, 0, bodies[i], jobs[i].split)
                 for i in fresh]
            )
            t3 = time.perf_counter()
            self.metrics.latency.observe(model_s, "model")
            self.metrics.latency.observe(post_s, "postprocess")
            self.metrics.latency.observe(t3 - t2, "store")
        by_index = dict(zip(fresh, rows, strict=True))
        out = []
        for i in range(len(jobs)):
            stored = known[i]
            if stored is not None:
                self.metrics.duplicates.inc()
                out.append(stored)
            else:
                out.append(by_index[i])
        return out

    # ---- connections ----

    async def _read_message(
        self, reader: asyncio.StreamReader, conn: asyncio.Task[Any], greeted: bool = True
    ) -> tuple[wire.Message, int]:
        first = await asyncio.wait_for(reader.readexactly(1), self.config.limits.idle_timeout_s)
        self._conns[conn] = True
        cfg = self.config
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(cfg.limits.read_timeout_s) as budget:
            prefix = first + await reader.readexactly(wire.PREFIX_LEN - 1)
            # limits checked before reading on; before HELLO nothing larger than a HELLO may be declared
            length, kind = wire.peek(prefix, cfg.limits.frame if greeted else self.admission.hello_limits)
            self.admission.check_declared(kind, length)
            if greeted:
                # a large frame on a slow uplink gets time in proportion; a slow-loris still runs out of it
                budget.reschedule(started + cfg.limits.read_timeout_s + length / cfg.limits.min_rate_bytes_s)
            async with self.admission.reading(length):  # one budget of bytes being read, all connections
                data = prefix + await reader.readexactly(length - wire.PREFIX_LEN)
        self.metrics.bytes.inc(len(data))
        msg, _ = wire.decode(data, self.config.limits.frame, copy=False)  # payloads stay views of `data`
        return msg, len(data)

    def _check_hello(self, msg: wire.Message, peer_cn: str | None) -> wire.Hello:
        if not isinstance(msg, wire.Hello):
            raise ProtocolViolation(ErrorCode.PROTOCOL, f"expected HELLO first, got {type(msg).__name__.upper()}")
        if msg.plan_hash != self.bundle.plan_sha256:
            raise ProtocolViolation(
                ErrorCode.PLAN_MISMATCH,
                f"plan hash mismatch: camera runs plan {msg.plan_hash[:16]}..., this receiver serves "
                f"{self.bundle.plan_sha256[:16]}... (redeploy the camera or serve its bundle)",
            )
        if peer_cn is not None and msg.device_id != peer_cn:
            raise ProtocolViolation(
                ErrorCode.PROTOCOL, f"device id {msg.device_id!r} is not the certificate's name {peer_cn!r}"
            )
        check_device_id(msg.device_id)
        refusal = self._trust.refusal(msg.device_id) if self._trust is not None else None
        if refusal is not None:  # a CA-signed certificate of a device that is not provisioned here
            raise ProtocolViolation(ErrorCode.PROTOCOL, refusal)
        return msg

    def _to_job(self, device_id: str, msg: wire.Message) -> Job:
        if not isinstance(msg, wire.Frame):
            raise ProtocolViolation(ErrorCode.PROTOCOL, f"expected FRAME, got {type(msg).__name__.upper()}")
        check_split(msg.split, self.bundle.split_indices)
        crossing = self.members[msg.split].bundle.crossing
        if len(msg.tensors) != len(crossing):
            raise ProtocolViolation(
                ErrorCode.TENSOR_MISMATCH,
                f"frame has {len(msg.tensors)} tensors, the bundle {len(crossing)}"
                + (f" (split {msg.split})" if self._multi else ""),
            )
        inputs: list[Input] = []
        for i, (t, c) in enumerate(zip(msg.tensors, crossing, strict=True)):
            dims = t.dims[1:] if len(t.dims) == len(c.shape) + 1 and t.dims[0] == 1 else t.dims
            # the plan's packed codes, or (an uncompressed fallback) plain ints/floats of the same shape
            if (t.kind == TensorKind.PACKED and t.bits != c.bits) or dims != c.shape:
                raise ProtocolViolation(
                    ErrorCode.TENSOR_MISMATCH,
                    f"tensor {i} ({c.tensor}): got {t.kind.name} {t.bits}-bit {t.dims}, expected "
                    f"PACKED {c.bits}-bit {c.shape}",
                )
            jpeg = t.codec == wire.Codec.JPEG
            if jpeg and c.codec != "jpeg":
                raise ProtocolViolation(
                    ErrorCode.TENSOR_MISMATCH, f"tensor {i} ({c.tensor}): a JPEG, but the bundle sends it {c.codec}"
                )
            self.metrics.tensor_bytes.inc(len(t.payload), form="wire")
            t = decompressed(t, i, c)  # after the dims check: the bundle's shape bounds the size
            self.metrics.tensor_bytes.inc(len(t.payload), form="raw")
            if jpeg:  # the frame's pixels, mapped to the model input as the edge app maps them
                inputs.append(jpeg_input(t, self.bundle.input))
            else:
                inputs.append(PackedInput.of(t) if t.kind == TensorKind.PACKED else wire.tensor_to_float(t, c.shape))
        # packed codes are finite when their extreme codes are: nothing is dequantised on the event loop
        require_finite([x.extremes() if isinstance(x, PackedInput) else x for x in inputs], crossing)
        return Job(device_id, msg.seq, msg.timestamp_us, inputs, msg.split)

    async def _store_stats(self, device_id: str, msg: Stats) -> None:
        """Check a STATS body (size, nesting, a JSON object) off the event loop, store it on the store's
        thread unless the camera is over its STATS rate (then it is dropped), and log it."""
        lim = self.config.limits
        data = await asyncio.get_running_loop().run_in_executor(
            None, parse_stats, msg.json_text, lim.max_stats_bytes, lim.max_stats_depth
        )
        if not self.admission.stats_allowed(device_id):
            self.metrics.stats_dropped.inc()
            return
        try:
            await self.batcher.run_in_worker(lambda: self._store.put_stats(device_id, msg.json_text))
        except Exception as exc:
            event(self.log, "stats_store_failed", logging.ERROR, device=device_id, error=str(exc))
            raise ProtocolViolation(ErrorCode.INTERNAL, f"storing STATS failed: {exc}") from None
        self.metrics.device_stats.inc()
        stages = data.get("stages")
        event(self.log, "device_stats", device=device_id, stages=sorted(stages) if isinstance(stages, dict) else [])

    async def _send(self, writer: asyncio.StreamWriter, msg: wire.Message) -> None:
        version = self._versions.get(writer, msg.version)
        if version != msg.version:  # a camera is answered in the version it spoke (a version 1 camera)
            msg = dataclasses.replace(msg, version=version)
        writer.write(wire.encode(msg))
        await writer.drain()

    async def _serve_frames(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: asyncio.Task[Any],
        device_id: str,
    ) -> None:
        last_split: int | None = None
        while not self.draining:
            self._conns[conn] = False
            msg, _ = await self._read_message(reader, conn)
            if isinstance(msg, Stats):
                await self._store_stats(device_id, msg)
                continue
            t1 = time.perf_counter()
            job = self._to_job(device_id, msg)
            t2 = time.perf_counter()
            try:
                stored = unwrap(await self.batcher.submit(job))  # this frame's own failure only
            except Exception as exc:
                event(self.log, "inference_failed", logging.ERROR, device=device_id, seq=job.seq, error=str(exc))
                what = "storing the result failed" if isinstance(exc, StoreError) else "inference failed"
                raise ProtocolViolation(ErrorCode.INTERNAL, f"{what}: {exc}") from None
            await self._send(writer, wire.Result(stored.seq, stored.status, stored.result, stored.capture_us))
            t3 = time.perf_counter()
            if self._multi:  # a multi-split bundle's frames are counted per split, and the camera's switches
                self.metrics.frames.inc(split=str(job.split))
                if last_split is not None and job.split != last_split:
                    self.metrics.split_changes.inc()
                last_split = job.split
            else:
                self.metrics.frames.inc()
            self.metrics.latency.observe(t2 - t1, "decode")
            self.metrics.latency.observe(t3 - t1, "total")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = asyncio.current_task()
        assert conn is not None
        peer = writer.get_extra_info("peername")
        ticket = self.admission.admit(str(peer[0]) if isinstance(peer, tuple) else str(peer), self.draining)
        if isinstance(ticket, str):
            self.metrics.errors.inc(kind="overloaded")
            if self._tls is None:  # before its TLS handshake a TLS camera could not read an ERROR
                with contextlib.suppress(Exception):
                    code = ErrorCode.SHUTTING_DOWN if self.draining else ErrorCode.OVERLOADED
                    await asyncio.wait_for(self._send(writer, wire.Error(0, code, ticket)), 1.0)
            writer.close()
            return
        self._conns[conn] = False
        device = "?"
        try:
            if self._tls is not None and not await self._start_tls(writer):
                return
            # With TLS the handshake has verified the certificate; its common name is the device id.
            peer_cn = _common_name(writer.get_extra_info("peercert") or {}) if self.config.tls.enabled else None
            if self.config.tls.enabled and not peer_cn:
                raise ProtocolViolation(ErrorCode.PROTOCOL, "client certificate has no common name (device id)")
            async with asyncio.timeout(self.config.limits.hello_timeout_s):  # the handshake's own deadline
                msg, _ = await self._read_message(reader, conn, greeted=False)
            self._versions[writer] = msg.version
            hello = self._check_hello(msg, peer_cn)
            if not self.admission.promote(ticket):
                raise ProtocolViolation(ErrorCode.OVERLOADED, "receiver at max connections")
            device = hello.device_id
            await self._send(writer, wire.Hello(RECEIVER_ID, self.bundle.plan_sha256))
            event(self.log, "camera_connected", device=device, peer=str(peer))
            await self._serve_frames(reader, writer, conn, device)
            await self._shutting_down(writer)  # it returns when the receiver drains
        except FrameError as exc:
            await self._refuse(writer, "bad_frame", ErrorCode.BAD_FRAME, f"bad frame: {exc}", device, peer)
        except ProtocolViolation as exc:
            await self._refuse(writer, exc.code.name.lower(), exc.code, str(exc), device, peer)
        except TimeoutError:
            await self._refuse(writer, "timeout", ErrorCode.PROTOCOL, "read timeout", device, peer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the camera went away; nothing to answer
        except asyncio.CancelledError:
            if not self.draining:
                raise
            await self._shutting_down(writer)
        finally:
            self.admission.release(ticket)
            self._conns.pop(conn, None)
            self._versions.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _start_tls(self, writer: asyncio.StreamWriter) -> bool:
        """TLS on an accepted connection (counted as a handshake from accept on); False if it failed."""
        assert self._tls is not None
        try:
            await writer.start_tls(self._tls, ssl_handshake_timeout=self.config.limits.handshake_timeout_s)
        except (OSError, ssl.SSLError, TimeoutError):
            return False
        return True

    async def _shutting_down(self, writer: asyncio.StreamWriter) -> None:
        """Tell a camera the receiver is stopping (it reconnects later and resends what got no RESULT)."""
        with contextlib.suppress(Exception):
            message = "receiver is shutting down: reconnect and resend unanswered frames"
            await asyncio.wait_for(self._send(writer, wire.Error(0, ErrorCode.SHUTTING_DOWN, message)), 1.0)

    def reload_trust(self) -> None:
        """Re-read the CRL, the device allow-list and the certificates for new connections (SIGHUP)."""
        if self._trust is not None:
            self._trust.reload("SIGHUP")

    async def _refuse(
        self, writer: asyncio.StreamWriter, kind: str, code: ErrorCode, message: str, device: str, peer: Any
    ) -> None:
        self.metrics.errors.inc(kind=kind)
        event(
            self.log,
            "connection_refused",
            logging.WARNING,
            device=device,
            peer=str(peer),
            kind=kind,
            reason=message,
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send(writer, wire.Error(0, code, message)), 1.0)

    # ---- lifecycle ----

    async def start(self) -> None:
        cfg = self.config
        self._trust = Trust(cfg.tls, self.log) if cfg.tls.enabled else None
        ctx = self._trust.server_context if self._trust is not None else None  # each handshake: the newest
        if ctx is None:
            event(
                self.log,
                "insecure_plain_tcp",
                logging.WARNING,
                detail="TLS is off: any host that reaches the port can submit frames",
            )
        self._tls = ctx  # the handshake runs in _handle, where it counts against the handshake caps
        caps = self.admission.caps
        self.admission.quiet_accept_failures(asyncio.get_running_loop())
        try:
            self._server = await asyncio.start_server(
                self._handle, cfg.host, cfg.port, backlog=caps.backlog, start_serving=False
            )
        except OSError as exc:
            raise ReceiverError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        if cfg.metrics_address is not None:
            try:
                self._http = await serve_http(
                    *cfg.metrics_address,
                    self.metrics.registry,
                    lambda: not self.draining,
                    request_timeout_s=cfg.limits.http_timeout_s,
                    max_connections=caps.http,
                )
            except OSError as exc:
                self._server.close()
                host, port = cfg.metrics_address
                raise ReceiverError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            self.metrics_port = self._http.sockets[0].getsockname()[1]
        await self._open_store_and_serve()
        event(
            self.log,
            "listening",
            host=cfg.host,
            port=self.port,
            metrics_port=self.metrics_port,
            tls=ctx is not None,
            nofile=caps.nofile,
            max_cameras=caps.cameras,
            max_handshakes=caps.handshakes,
            plan=self.bundle.plan_sha256,
            bundle=str(self.bundle.root),
        )

    async def _open_store_and_serve(self) -> None:
        """Open the database only now that the ports are bound (a failed start leaves no new database),
        then start the batcher and accept cameras."""
        assert self._server is not None
        try:
            self._store = open_store(self.config.db, self.config.db_synchronous)
        except BaseException:
            for server in (self._server, self._http):
                if server is not None:
                    server.close()
            raise
        self.batcher.start()
        await self._server.start_serving()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, let every connection finish the frame it is in, store, then close."""
        self.draining = True
        event(self.log, "draining", connections=len(self._conns), queued=self.batcher.depth)
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._conns.items()):
            if not busy:
                task.cancel()
        deadline = time.monotonic() + timeout_s
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self._conns):
            task.cancel()
        await self.batcher.close()
        if self._http is not None:
            self._http.close()
        self._store.close()
        event(self.log, "stopped", frames=int(self.metrics.frames.total()))


def _common_name(cert: dict[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
