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
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from splitsdk import wire
from splitsdk.cloud.batcher import DynamicBatcher
from splitsdk.cloud.config import ReceiverConfig
from splitsdk.cloud.logs import event, setup_logging
from splitsdk.cloud.metrics import Counter, Gauge, Histogram, Registry, serve_http
from splitsdk.cloud.model import Runner
from splitsdk.cloud.postprocess import resolve
from splitsdk.cloud.store import ResultStore, StoredResult
from splitsdk.errors import ReceiverError
from splitsdk.wire import ErrorCode, FrameError, TensorKind
from splitsdk.wire.bundle import Bundle
from splitsdk.wire.frame import Stats

RECEIVER_ID = "splitsdk-receiver"


class ProtocolViolation(Exception):
    """A well-formed message the receiver will not accept; ends the connection with an ERROR."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Job:
    device_id: str
    seq: int
    capture_us: int
    inputs: list[np.ndarray]


def tls_context(config: ReceiverConfig) -> ssl.SSLContext:
    """Server TLS context that requires a client certificate signed by the client CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        ctx.load_verify_locations(cafile=str(config.client_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ReceiverError(f"cannot load TLS files ({config.tls_cert}, {config.client_ca}): {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Metrics:
    def __init__(self, depth: Callable[[], float], connections: Callable[[], float]) -> None:
        self.registry = Registry()
        reg = self.registry.add
        self.frames: Counter = reg(Counter("splitsdk_frames_total", "FRAMEs answered with a RESULT"))
        self.bytes: Counter = reg(Counter("splitsdk_bytes_received_total", "Bytes of frames received"))
        self.errors: Counter = reg(Counter("splitsdk_errors_total", "Connections ended by an error, by kind"))
        self.duplicates: Counter = reg(
            Counter("splitsdk_duplicate_frames_total", "Resent frames answered from the store")
        )
        self.batches: Counter = reg(Counter("splitsdk_batches_total", "Batches run by the cloud model"))
        self.device_stats: Counter = reg(
            Counter("splitsdk_device_stats_total", "STATS messages (camera stage timings) stored")
        )
        reg(Gauge("splitsdk_queue_depth", "Frames waiting for or in the cloud model", depth))
        reg(Gauge("splitsdk_connections", "Open camera connections", connections))
        self.latency: Histogram = reg(Histogram("splitsdk_stage_seconds", "Per-stage latency"))


class Receiver:
    """One receiver serving one bundle; `start()` binds, `drain()` stops gracefully."""

    def __init__(self, bundle: Bundle, config: ReceiverConfig, runner: Runner) -> None:
        self.bundle = bundle
        self.config = config
        self.log = setup_logging()
        self._runner = runner
        self._post = resolve(bundle.postprocess)
        self._store = ResultStore(config.db, config.db_synchronous)
        self._conns: dict[asyncio.Task[Any], bool] = {}  # task -> busy (mid-frame)
        self.draining = False
        self.metrics = Metrics(lambda: self.batcher.depth, lambda: len(self._conns))
        self.batcher: DynamicBatcher[Job, StoredResult] = DynamicBatcher(
            self._process_batch,
            config.max_batch,
            config.max_wait_ms / 1000.0,
            self._on_batch,
            in_pipeline=lambda: sum(self._conns.values()),
        )
        self._server: asyncio.base_events.Server | None = None
        self._http: asyncio.base_events.Server | None = None
        self.port = 0
        self.metrics_port = 0

    # ---- the batch thread: model -> post-process -> store, one transaction per batch ----

    def _on_batch(self, size: int, waits: list[float]) -> None:
        self.metrics.batches.inc()
        for w in waits:
            self.metrics.latency.observe(w, "queue")

    def _process_batch(self, jobs: list[Job]) -> list[StoredResult]:
        known = {i: self._store.get(j.device_id, j.seq) for i, j in enumerate(jobs)}
        fresh = [i for i, r in known.items() if r is None]
        rows: list[StoredResult] = []
        if fresh:
            t0 = time.perf_counter()
            batched = [np.stack([jobs[i].inputs[k] for i in fresh]) for k in range(len(self.bundle.crossing))]
            outputs = self._runner(batched)
            t1 = time.perf_counter()
            bodies = [self._post([o[n] for o in outputs]) for n in range(len(fresh))]
            t2 = time.perf_counter()
            rows = self._store.put_many(
                [
                    StoredResult(jobs[i].device_id, jobs[i].seq, jobs[i].capture_us, 0, b)
                    for i, b in zip(fresh, bodies, strict=True)
                ]
            )
            t3 = time.perf_counter()
            self.metrics.latency.observe(t1 - t0, "model")
            self.metrics.latency.observe(t2 - t1, "postprocess")
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

    async def _read_message(self, reader: asyncio.StreamReader, conn: asyncio.Task[Any]) -> tuple[wire.Message, int]:
        first = await asyncio.wait_for(reader.readexactly(1), self.config.idle_timeout_s)
        self._conns[conn] = True
        cfg = self.config
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(cfg.read_timeout_s) as budget:
            prefix = first + await reader.readexactly(wire.PREFIX_LEN - 1)
            length, _ = wire.peek(prefix, cfg.limits)  # limits checked before reading on
            # a large frame on a slow uplink gets time in proportion; a slow-loris still runs out of it
            budget.reschedule(started + cfg.read_timeout_s + length / cfg.min_rate_bytes_s)
            data = prefix + await reader.readexactly(length - wire.PREFIX_LEN)
        self.metrics.bytes.inc(len(data))
        msg, _ = wire.decode(data, self.config.limits)
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
        if not msg.device_id:
            raise ProtocolViolation(ErrorCode.PROTOCOL, "empty device id")
        return msg

    def _to_job(self, device_id: str, msg: wire.Message) -> Job:
        if not isinstance(msg, wire.Frame):
            raise ProtocolViolation(ErrorCode.PROTOCOL, f"expected FRAME, got {type(msg).__name__.upper()}")
        if len(msg.tensors) != len(self.bundle.crossing):
            raise ProtocolViolation(
                ErrorCode.TENSOR_MISMATCH,
                f"frame has {len(msg.tensors)} tensors, the bundle {len(self.bundle.crossing)}",
            )
        inputs = []
        for i, (t, c) in enumerate(zip(msg.tensors, self.bundle.crossing, strict=True)):
            dims = t.dims[1:] if len(t.dims) == len(c.shape) + 1 and t.dims[0] == 1 else t.dims
            # the plan's packed codes, or (an uncompressed fallback) plain ints/floats of the same shape
            if (t.kind == TensorKind.PACKED and t.bits != c.bits) or dims != c.shape:
                raise ProtocolViolation(
                    ErrorCode.TENSOR_MISMATCH,
                    f"tensor {i} ({c.tensor}): got {t.kind.name} {t.bits}-bit {t.dims}, expected "
                    f"PACKED {c.bits}-bit {c.shape}",
                )
            inputs.append(wire.tensor_to_float(t, c.shape))
        return Job(device_id, msg.seq, msg.timestamp_us, inputs)

    async def _store_stats(self, device_id: str, msg: Stats) -> None:
        """Check that a STATS body is a JSON object, store it on the store's thread, and log it."""
        try:
            data = msg.data()
        except ValueError as exc:
            raise ProtocolViolation(ErrorCode.BAD_FRAME, f"bad frame: STATS is not JSON ({exc})") from None
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ProtocolViolation(ErrorCode.BAD_FRAME, f"bad frame: STATS is not a JSON object ({kind})")
        try:
            await self.batcher.run_in_worker(lambda: self._store.put_stats(device_id, msg.json_text))
        except Exception as exc:
            event(self.log, "stats_store_failed", logging.ERROR, device=device_id, error=str(exc))
            raise ProtocolViolation(ErrorCode.INTERNAL, f"storing STATS failed: {exc}") from None
        self.metrics.device_stats.inc()
        stages = data.get("stages")
        event(self.log, "device_stats", device=device_id, stages=sorted(stages) if isinstance(stages, dict) else [])

    async def _send(self, writer: asyncio.StreamWriter, msg: wire.Message) -> None:
        writer.write(wire.encode(msg))
        await writer.drain()

    async def _serve_frames(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: asyncio.Task[Any],
        device_id: str,
    ) -> None:
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
                stored = await self.batcher.submit(job)
            except Exception as exc:
                event(self.log, "inference_failed", logging.ERROR, device=device_id, seq=job.seq, error=str(exc))
                raise ProtocolViolation(ErrorCode.INTERNAL, f"inference failed: {exc}") from None
            await self._send(writer, wire.Result(stored.seq, stored.status, stored.result, stored.capture_us))
            t3 = time.perf_counter()
            self.metrics.frames.inc()
            self.metrics.latency.observe(t2 - t1, "decode")
            self.metrics.latency.observe(t3 - t1, "total")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = asyncio.current_task()
        assert conn is not None
        peer = writer.get_extra_info("peername")
        if self.draining or len(self._conns) >= self.config.max_connections:
            self.metrics.errors.inc(kind="overloaded")
            with contextlib.suppress(Exception):
                await self._send(writer, wire.Error(0, ErrorCode.OVERLOADED, "receiver at max connections"))
            writer.close()
            return
        self._conns[conn] = False
        device = "?"
        try:
            # With TLS the handshake has verified the certificate; its common name is the device id.
            peer_cn = _common_name(writer.get_extra_info("peercert") or {}) if self.config.tls else None
            if self.config.tls and not peer_cn:
                raise ProtocolViolation(ErrorCode.PROTOCOL, "client certificate has no common name (device id)")
            msg, _ = await self._read_message(reader, conn)
            hello = self._check_hello(msg, peer_cn)
            device = hello.device_id
            await self._send(writer, wire.Hello(RECEIVER_ID, self.bundle.plan_sha256))
            event(self.log, "camera_connected", device=device, peer=str(peer))
            await self._serve_frames(reader, writer, conn, device)
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
        finally:
            self._conns.pop(conn, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

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
        ctx = tls_context(cfg) if cfg.tls else None
        if ctx is None:
            event(
                self.log,
                "insecure_plain_tcp",
                logging.WARNING,
                detail="TLS is off: any host that reaches the port can submit frames",
            )
        self.batcher.start()
        try:
            self._server = await asyncio.start_server(
                self._handle,
                cfg.host,
                cfg.port,
                ssl=ctx,
                ssl_handshake_timeout=cfg.handshake_timeout_s if ctx else None,
                backlog=1024,
            )
        except OSError as exc:
            raise ReceiverError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        if cfg.metrics_host is not None:
            self._http = await serve_http(
                cfg.metrics_host, cfg.metrics_port, self.metrics.registry, lambda: not self.draining
            )
            self.metrics_port = self._http.sockets[0].getsockname()[1]
        event(
            self.log,
            "listening",
            host=cfg.host,
            port=self.port,
            metrics_port=self.metrics_port,
            tls=ctx is not None,
            plan=self.bundle.plan_sha256,
            bundle=str(self.bundle.root),
        )

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
        event(self.log, "stopped", frames=int(self.metrics.frames.value()))


def _common_name(cert: dict[str, Any]) -> str | None:
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
