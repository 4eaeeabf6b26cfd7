"""Admission control for the receiver: who may hold a socket, how many bytes may be in flight.

- A connection is first a *handshake* (TLS, then HELLO, under its own short deadline): handshakes
  have their own cap, overall and per source address, apart from the cameras past HELLO, so sockets
  that never say HELLO cannot lock cameras out.
- Every cap is derived from the process's real file-descriptor limit (`RLIMIT_NOFILE`, whose soft
  value is first raised to the hard one where allowed): the receiver refuses a connection cleanly
  (closes it; past HELLO, an OVERLOADED ERROR) long before accept() would fail with EMFILE.
- Frame bytes being read are bounded by one budget for all connections (`reading`); before HELLO only
  a HELLO-sized frame may be declared (`hello_limits`).
- Refusals and accept() failures are logged once per interval with a count, never once each.
- STATS messages are rate-limited per camera (a token bucket: `stats_burst`, then one per
  `stats_interval_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from splitsdk.cloud.config import LimitsConfig
from splitsdk.cloud.logs import event
from splitsdk.cloud.validation import ProtocolViolation
from splitsdk.wire._ext import lib
from splitsdk.wire.frame import MAX_DEVICE_ID, PLAN_HASH_LEN, ErrorCode, Limits, MsgType

# HELLO: header, plan hash, u16 device id length, the id, CRC32: the largest frame allowed before HELLO
HELLO_MAX_BYTES = int(lib.SP_HEADER_LEN) + PLAN_HASH_LEN + 2 + MAX_DEVICE_ID + 4
STATS_OVERHEAD = int(lib.SP_HEADER_LEN) + 8 + 4  # a STATS frame: header, status + length, text, CRC32
FD_SPARE = 32  # descriptors kept free beyond those counted (store, logs, TensorFlow, a refused socket)
LOG_INTERVAL_S = 10.0
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message for EMFILE/ENFILE


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_descriptors() -> int:
    """File descriptors this process has open now (64 where /proc is unavailable)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


@dataclass(frozen=True)
class Caps:
    """The limits in force, after fitting the configured ones into the descriptor limit."""

    nofile: int  # the soft RLIMIT_NOFILE
    cameras: int  # connections past HELLO
    handshakes: int  # connections before HELLO
    per_address: int  # ... of them from one address
    http: int  # /metrics connections
    backlog: int  # listen backlog, also how many sockets asyncio accepts in one go


def derive_caps(limits: LimitsConfig, nofile: int, in_use: int) -> Caps:
    """Caps so that cameras + handshakes + HTTP + one accept burst + `in_use` stay under `nofile`.

    When the configured caps do not fit, handshakes get at most a quarter of what is left and cameras
    the rest: a flood of sockets that never say HELLO cannot take a camera's descriptor."""
    backlog = max(8, min(1024, nofile // 16))
    http = max(1, min(limits.http_max_connections, nofile // 64))
    room = max(2, nofile - in_use - FD_SPARE - backlog - http)
    fits = limits.max_connections + limits.max_handshakes <= room
    handshakes = max(1, min(limits.max_handshakes, room if fits else room // 4))
    cameras = max(1, min(limits.max_connections, room - handshakes))
    per_address = min(limits.max_handshakes_per_address, handshakes)
    return Caps(nofile, cameras, handshakes, per_address, http, backlog)


def hello_limits(frame: Limits) -> Limits:
    """The decoder limits before HELLO: nothing larger than a HELLO may even be declared."""
    return replace(frame, max_frame_bytes=min(frame.max_frame_bytes, HELLO_MAX_BYTES))


class Ticket:
    """One accepted connection's place: a handshake until `Admission.promote`, then a camera."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.camera = False
        self.released = False


class RateLimitedLog:
    """Logs an event at most once per `interval_s` per name, with how many were not logged."""

    def __init__(self, log: logging.Logger, interval_s: float = LOG_INTERVAL_S) -> None:
        self.log = log
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def __call__(self, name: str, **fields: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(name, -self.interval_s) < self.interval_s:
            self._quiet[name] = self._quiet.get(name, 0) + 1
            return
        self._last[name] = now
        event(self.log, name, logging.WARNING, not_logged_since=self._quiet.pop(name, 0), **fields)


class Admission:
    """The receiver's counts of handshakes, cameras, bytes in flight and STATS tokens (event loop only)."""

    def __init__(self, limits: LimitsConfig, log: logging.Logger) -> None:
        self.limits = limits
        self.hello_limits = hello_limits(limits.frame)
        self.caps = derive_caps(limits, raise_nofile_limit(), open_descriptors())
        self.note = RateLimitedLog(log)
        self.handshakes = 0
        self.cameras = 0
        self._by_address: dict[str, int] = {}
        self.bytes_in_flight = 0
        self._freed = asyncio.Event()
        self._stats_tokens: dict[str, tuple[float, float]] = {}  # device -> (tokens, when)

    # ---- connections ----

    def admit(self, address: str, draining: bool) -> Ticket | str:
        """A Ticket for a new connection, or why it is refused (counted and logged once per interval)."""
        reason = None
        if draining:
            reason = "receiver is shutting down"
        elif self.handshakes >= self.caps.handshakes:
            reason = f"{self.handshakes} connections are already in their handshake"
        elif self.cameras >= self.caps.cameras:
            reason = "receiver at max connections"
        elif self._by_address.get(address, 0) >= self.caps.per_address:
            reason = f"{self.caps.per_address} connections from {address} are already in their handshake"
        elif self.handshakes + self.cameras >= self.caps.handshakes + self.caps.cameras:
            reason = "receiver at its file-descriptor limit"
        if reason is not None:
            self.note("connections_refused", reason=reason, address=address)
            return reason
        self.handshakes += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return Ticket(address)

    def _end_handshake(self, ticket: Ticket) -> None:
        self.handshakes -= 1
        left = self._by_address[ticket.address] - 1
        if left:
            self._by_address[ticket.address] = left
        else:
            del self._by_address[ticket.address]

    def promote(self, ticket: Ticket) -> bool:
        """The connection said a good HELLO: it becomes a camera, unless cameras are at their cap."""
        if self.cameras >= self.caps.cameras:
            self.note("connections_refused", reason="receiver at max connections", address=ticket.address)
            return False
        self._end_handshake(ticket)
        ticket.camera = True
        self.cameras += 1
        return True

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        if ticket.camera:
            self.cameras -= 1
        else:
            self._end_handshake(ticket)

    # ---- bytes in flight ----

    def check_declared(self, kind: MsgType, length: int) -> None:
        """Refuse, from its prefix alone, a STATS frame declaring more than `max_stats_bytes` of text."""
        if kind == MsgType.STATS and length > self.limits.max_stats_bytes + STATS_OVERHEAD:
            size, limit = length - STATS_OVERHEAD, self.limits.max_stats_bytes
            raise ProtocolViolation(ErrorCode.BAD_FRAME, f"bad frame: STATS of {size} bytes, over {limit}")

    @contextlib.asynccontextmanager
    async def reading(self, nbytes: int) -> AsyncIterator[None]:
        """Hold `nbytes` of the in-flight budget while a frame is read; waits while the budget is spent."""
        n = min(nbytes, self.limits.max_bytes_in_flight)
        while self.bytes_in_flight + n > self.limits.max_bytes_in_flight:
            self._freed.clear()
            await self._freed.wait()
        self.bytes_in_flight += n
        try:
            yield
        finally:
            self.bytes_in_flight -= n
            self._freed.set()

    # ---- STATS ----

    def stats_allowed(self, device_id: str) -> bool:
        """Take one STATS token of `device_id` (False: over its rate; the message is dropped)."""
        now = time.monotonic()
        burst, interval = float(self.limits.stats_burst), self.limits.stats_interval_s
        tokens, when = self._stats_tokens.get(device_id, (burst, now))
        tokens = min(burst, tokens + (now - when) / interval)
        if len(self._stats_tokens) > 4 * (self.caps.cameras + self.caps.handshakes):
            self._forget_full_buckets(now)
        if tokens < 1.0:
            self._stats_tokens[device_id] = (tokens, now)
            self.note("stats_dropped", device=device_id, reason="over the per-camera STATS rate")
            return False
        self._stats_tokens[device_id] = (tokens - 1.0, now)
        return True

    def _forget_full_buckets(self, now: float) -> None:
        burst, interval = self.limits.stats_burst, self.limits.stats_interval_s
        for device, (tokens, when) in list(self._stats_tokens.items()):
            if tokens + (now - when) / interval >= burst:
                del self._stats_tokens[device]

    # ---- the event loop's accept() failures ----

    def quiet_accept_failures(self, loop: asyncio.AbstractEventLoop) -> None:
        """Log asyncio's accept() EMFILE/ENFILE errors once per interval instead of a traceback each."""
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_FAILED:
                self.note("accept_failed", error=str(context.get("exception")))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
