"""Protocol clients: a blocking one (`WireClient`, for the edge simulator and users' scripts) and an
asyncio one (`AsyncWireClient`, for load tests and benchmarks). Both read a reply exactly as the
receiver reads a frame: the 12-byte prefix first, validated, then the rest.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from splitsdk.errors import WireError
from splitsdk.wire.frame import PREFIX_LEN, Error, Frame, Hello, Limits, Message, Result, decode, encode, peek

if TYPE_CHECKING:
    import numpy as np

    from splitsdk.wire.bundle import Bundle

T = TypeVar("T")
FAILOVER_ROUNDS = 3  # each receiver is tried this often (with backoff) before giving up
REPLY_LIMITS = Limits(max_frame_bytes=16 * 1024 * 1024)


class ReceiverRefused(WireError):
    """The receiver answered with an ERROR message."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"receiver refused (code {error.code}): {error.message}")
        self.error = error


def client_tls_context(ca: str | Path, cert: str | Path | None, key: str | Path | None) -> ssl.SSLContext:
    """TLS context that trusts the receiver's CA and presents the camera's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


def _expect(msg: Message, kind: type[T]) -> T:
    if isinstance(msg, Error):
        raise ReceiverRefused(msg)
    if not isinstance(msg, kind):
        raise WireError(f"expected {kind.__name__.upper()} from the receiver, got {type(msg).__name__.upper()}")
    return msg


class WireClient:
    """Blocking client: `connect`, `hello`, then `send_frame` -> `Result` per frame."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None, timeout_s: float = 30.0) -> None:
        raw = socket.create_connection((host, port), timeout=timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw

    def _recv_exactly(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise ConnectionError("receiver closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def receive(self) -> Message:
        prefix = self._recv_exactly(PREFIX_LEN)
        length, _ = peek(prefix, REPLY_LIMITS)
        return decode(prefix + self._recv_exactly(length - PREFIX_LEN), REPLY_LIMITS)[0]

    def send(self, msg: Message | bytes) -> None:
        self.sock.sendall(msg if isinstance(msg, bytes) else encode(msg))

    def hello(self, device_id: str, plan_hash: str) -> Hello:
        self.send(Hello(device_id, plan_hash))
        return _expect(self.receive(), Hello)

    def send_frame(self, frame: Frame) -> Result:
        self.send(frame)
        return _expect(self.receive(), Result)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWireClient:
    """asyncio client with the same protocol steps as `WireClient`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, tls: ssl.SSLContext | None = None) -> AsyncWireClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None)
        return cls(reader, writer)

    async def receive(self) -> Message:
        prefix = await self.reader.readexactly(PREFIX_LEN)
        length, _ = peek(prefix, REPLY_LIMITS)
        return decode(prefix + await self.reader.readexactly(length - PREFIX_LEN), REPLY_LIMITS)[0]

    async def send(self, msg: Message | bytes) -> None:
        self.writer.write(msg if isinstance(msg, bytes) else encode(msg))
        await self.writer.drain()

    async def hello(self, device_id: str, plan_hash: str) -> Hello:
        await self.send(Hello(device_id, plan_hash))
        return _expect(await self.receive(), Hello)

    async def send_frame(self, frame: Frame | bytes) -> Result:
        await self.send(frame)
        return _expect(await self.receive(), Result)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def simulate_failover(
    bundle: Bundle,
    servers: list[tuple[str, int]],
    frames: list[tuple[str, np.ndarray]],
    device_id: str,
    tls: ssl.SSLContext | None = None,
    first_seq: int = 0,
    split: int | None = None,
) -> list[tuple[str, Result]]:
    """`splitsdk.wire.edge.simulate` over several receivers (`split`: the member of a multi-split bundle
    every frame goes at; None: its deepest): a connection that fails or breaks, or a
    receiver that refuses as SHUTTING_DOWN/OVERLOADED, moves on to the next one (doubling backoff), and
    the frame that got no RESULT is sent again there. Raises the last error after FAILOVER_ROUNDS rounds."""
    from splitsdk.wire.edge import EdgeClient
    from splitsdk.wire.frame import ErrorCode

    results: list[tuple[str, Result]] = []
    camera: EdgeClient | None = None
    failures, delay = 0, 0.1
    while len(results) < len(frames):
        host, port = servers[failures % len(servers)]
        try:
            if camera is None:
                camera = EdgeClient(bundle, host, port, device_id, tls, first_seq + len(results), split)
            name, image = frames[len(results)]
            results.append((name, camera.infer(image)))
        except (OSError, ReceiverRefused) as exc:
            transient = not isinstance(exc, ReceiverRefused) or exc.error.code in (
                ErrorCode.SHUTTING_DOWN, ErrorCode.OVERLOADED,
            )  # fmt: skip
            if camera is not None:
                camera.close()
                camera = None
            failures += 1
            if not transient or failures >= FAILOVER_ROUNDS * len(servers):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    if camera is not None:
        camera.close()
    return results
