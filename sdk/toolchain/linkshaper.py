"""A link shaper on real loopback sockets, for tests, demos and benchmarks.

A TCP proxy: it listens on 127.0.0.1:PORT and forwards every connection to the receiver. The
camera -> receiver direction goes through a token bucket at the current rate (Mbit/s) and both
directions through a one-way delay of RTT/2, so a camera talking to the proxy sees a link of that rate
and round-trip time (on top of loopback's own, which is negligible). The rate and RTT follow a schedule
of steps (duration, Mbit/s, RTT) that loops or holds its last step, e.g. 20 -> 1 -> 20 Mbit/s:

    python -m splitsdk.toolchain.linkshaper --listen 127.0.0.1:0 --to 127.0.0.1:9000 \\
        --schedule "10s@20mbit/5ms,10s@1mbit/5ms,10s@20mbit/5ms" [--loop] [--duration S]

or as a library::

    with LinkShaper(("127.0.0.1", 9000), parse_schedule("5s@1mbit/20ms")) as shaper:
        host, port = shaper.address          # point the camera here
        ...
        shaper.connections                   # per-connection byte counters

Shaping is user-space: packets of at most `PACKET` bytes leave the bucket one by one (a chunk the
sender wrote at once is not delivered as one burst) and a burst of `burst_bytes` (default 0: a serial
link, every byte waits for its own transmission time). Threads: one acceptor, and per connection one
reader and one delayed writer per direction; stop() (or the end of `--duration`) closes every socket
and joins them all.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType

from splitsdk.errors import LinkError
from splitsdk.profile.link import parse_rate

PACKET = 1500  # bytes the bucket releases at a time (an Ethernet MTU)
READ = 65536  # bytes read from a socket at a time
MAX_IN_FLIGHT = 4 << 20  # bytes a delay line holds before its reader waits (the unshaped direction)
_STEP = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*@\s*([^/]+?)\s*/\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$", re.I)
_SLICE_S = 0.05  # the longest a shaping wait sleeps before it looks at the schedule and stop() again


class ScheduleError(LinkError):
    """A schedule that cannot be parsed (one line: the step and what is wrong)."""


@dataclass(frozen=True)
class Step:
    """One step of a schedule: `duration_s` seconds at `mbit_s` with round-trip time `rtt_ms`."""

    duration_s: float
    mbit_s: float
    rtt_ms: float


def parse_schedule(text: str) -> tuple[Step, ...]:
    """`DURATION@RATE/RTT[,...]`, e.g. "10s@20mbit/5ms,10s@1mbit/5ms" (durations and RTTs in s or ms,
    rates as `splitsdk plan --uplink` takes them)."""
    if not text.strip():
        raise ScheduleError("empty schedule: expected DURATION@RATE/RTT[,...], e.g. 10s@20mbit/5ms")
    steps = []
    for i, part in enumerate(text.split(","), 1):
        m = _STEP.match(part)
        if m is None:
            raise ScheduleError(f"schedule step {i} {part.strip()!r}: expected DURATION@RATE/RTT, e.g. 10s@20mbit/5ms")
        duration = float(m[1]) * (1e-3 if m[2].lower() == "ms" else 1.0)
        rtt = float(m[4]) * (1.0 if m[5].lower() == "ms" else 1e3)
        try:
            rate = parse_rate(m[3])
        except LinkError as exc:
            raise ScheduleError(f"schedule step {i} {part.strip()!r}: {exc}") from None
        if duration <= 0:
            raise ScheduleError(f"schedule step {i} {part.strip()!r}: the duration must be positive")
        steps.append(Step(duration, rate, rtt))
    return tuple(steps)


def step_at(schedule: Sequence[Step], t: float, loop: bool = False) -> Step:
    """The step in force `t` seconds after the start: the schedule repeats with `loop`, else its last
    step holds."""
    total = sum(s.duration_s for s in schedule)
    if loop:
        t %= total
    for s in schedule:
        if t < s.duration_s:
            return s
        t -= s.duration_s
    return schedule[-1]


@dataclass
class ConnectionCounters:
    """Bytes one connection delivered in each direction (up: camera -> receiver)."""

    peer: str
    up_bytes: int = 0
    down_bytes: int = 0
    open: bool = True


class _DelayLine:
    """Packets that leave at their due time, in order; the writer thread sends them to `dest`."""

    def __init__(self) -> None:
        self._items: collections.deque[tuple[float, bytes]] = collections.deque()
        self._bytes = 0
        self._closed = False  # the source ended: deliver what is left, then half-close
        self._cv = threading.Condition()

    def put(self, due: float, data: bytes, stopping: threading.Event) -> None:
        with self._cv:
            while self._bytes >= MAX_IN_FLIGHT and not stopping.is_set():
                self._cv.wait(_SLICE_S)
            if self._items:
                due = max(due, self._items[-1][0])  # no packet overtakes another
            self._items.append((due, data))
            self._bytes += len(data)
            self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def get(self, stopping: threading.Event) -> bytes | None:
        """The next packet at its due time, or None at the end (source closed and drained, or stop)."""
        with self._cv:
            while not stopping.is_set():
                if self._items:
                    wait = self._items[0][0] - time.monotonic()
                    if wait <= 0:
                        data = self._items.popleft()[1]
                        self._bytes -= len(data)
                        self._cv.notify_all()
                        return data
                    self._cv.wait(min(wait, _SLICE_S))
                elif self._closed:
                    return None
                else:
                    self._cv.wait(_SLICE_S)
            return None


class LinkShaper:
    """A shaping TCP proxy to `to` (host, port) on `listen`; see the module docstring."""

    def __init__(
        self,
        to: tuple[str, int],
        schedule: Sequence[Step],
        listen: tuple[str, int] = ("127.0.0.1", 0),
        loop: bool = False,
        burst_bytes: int = 0,
    ) -> None:
        if not schedule:
            raise ScheduleError("empty schedule: expected at least one step")
        if burst_bytes < 0:
            raise ScheduleError(f"burst_bytes must be >= 0, got {burst_bytes}")
        self.to = to
        self.schedule = tuple(schedule)
        self.loop = loop
        self.burst_bytes = burst_bytes
        self._listen = listen
        self._server: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._t0 = 0.0
        self.connections: list[ConnectionCounters] = []

    @property
    def address(self) -> tuple[str, int]:
        """Where cameras connect (the bound port when `listen` asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the link shaper is not started")
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    def step(self) -> Step:
        """The step in force now."""
        return step_at(self.schedule, time.monotonic() - self._t0, self.loop)

    def start(self) -> LinkShaper:
        server = socket.create_server(self._listen)
        server.settimeout(_SLICE_S)
        self._server = server
        self._t0 = time.monotonic()
        self._acceptor = self._spawn(self._accept_loop, "linkshaper-accept")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the listener and every connection, and join every thread."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        if self._acceptor is not None:
            self._acceptor.join(timeout_s)  # no connection starts after this
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for s in sockets:
            s.close()
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> LinkShaper:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- internals ----

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]  # finished connections' threads
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                client, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.to, timeout=10)
            except OSError:
                client.close()  # the receiver is not there: the camera sees its connection closed
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(client, upstream, ConnectionCounters(f"{peer[0]}:{peer[1]}"))
            with self._lock:
                self._sockets += [client, upstream]
                self.connections.append(conn.counters)
                n = len(self.connections)
            up, down = _DelayLine(), _DelayLine()
            self._spawn(self._read, f"linkshaper-{n}-up-read", client, up, True)
            self._spawn(self._write, f"linkshaper-{n}-up-write", up, conn, True)
            self._spawn(self._read, f"linkshaper-{n}-down-read", upstream, down, False)
            self._spawn(self._write, f"linkshaper-{n}-down-write", down, conn, False)

    def _read(self, src: socket.socket, line: _DelayLine, shaped: bool) -> None:
        """Read from `src`, pace the up direction through the token bucket, queue packets with their delay."""
        tokens = float(self.burst_bytes)
        last = time.monotonic()
        try:
            while not self._stopping.is_set():
                data = src.recv(READ)
                if not data:
                    break
                for i in range(0, len(data), PACKET):
                    packet = data[i : i + PACKET]
                    if shaped:
                        tokens, last = self._take(tokens, last, len(packet))
                        if self._stopping.is_set():
                            return
                    line.put(time.monotonic() + self.step().rtt_ms / 2e3, packet, self._stopping)
        except OSError:
            pass
        finally:
            line.close()

    def _take(self, tokens: float, last: float, n: int) -> tuple[float, float]:
        """Spend `n` bytes of tokens, waiting (in slices, so a new step's rate applies) until the bucket
        is out of debt; tokens refill at the current rate up to `burst_bytes`."""
        now = time.monotonic()
        tokens = min(float(self.burst_bytes), tokens + (now - last) * self.step().mbit_s * 125e3) - n
        last = now
        while tokens < 0 and not self._stopping.is_set():
            time.sleep(min(-tokens / (self.step().mbit_s * 125e3), _SLICE_S))
            now = time.monotonic()
            tokens += (now - last) * self.step().mbit_s * 125e3
            last = now
        return tokens, last

    def _write(self, line: _DelayLine, conn: _Connection, up: bool) -> None:
        dest = conn.upstream if up else conn.client
        try:
            while (data := line.get(self._stopping)) is not None:
                dest.sendall(data)
                if up:
                    conn.counters.up_bytes += len(data)
                else:
                    conn.counters.down_bytes += len(data)
            dest.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        except OSError:
            conn.shutdown()  # one end went away: end the other direction too
        finally:
            if conn.writer_done():
                with self._lock:
                    self._sockets = [s for s in self._sockets if s not in (conn.client, conn.upstream)]
                conn.close()


class _Connection:
    """One proxied connection: the camera's socket, the receiver's, and the counters."""

    def __init__(self, client: socket.socket, upstream: socket.socket, counters: ConnectionCounters) -> None:
        self.client, self.upstream, self.counters = client, upstream, counters
        self._writers = 2
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def writer_done(self) -> bool:
        """Count a finished direction; True for the second (the connection is over)."""
        with self._lock:
            self._writers -= 1
            return self._writers == 0

    def close(self) -> None:
        self.shutdown()  # wakes a reader still in recv() before its socket closes
        self.client.close()
        self.upstream.close()
        self.counters.open = False


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="linkshaper", description="A rate/RTT-shaping TCP proxy on loopback (camera -> receiver)."
    )
    p.add_argument("--listen", type=_hostport, default=("127.0.0.1", 0), help="HOST:PORT to listen on (port 0: any)")
    p.add_argument("--to", type=_hostport, required=True, help="the receiver's HOST:PORT")
    p.add_argument("--schedule", required=True, help='steps DURATION@RATE/RTT, e.g. "10s@20mbit/5ms,10s@1mbit/5ms"')
    p.add_argument("--loop", action="store_true", help="repeat the schedule (default: hold its last step)")
    p.add_argument("--burst", type=int, default=0, help="token bucket depth in bytes (default 0: a serial link)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: on a signal)")
    args = p.parse_args(argv)
    try:
        schedule = parse_schedule(args.schedule)
        shaper = LinkShaper(args.to, schedule, args.listen, args.loop, args.burst).start()
    except (LinkError, OSError) as exc:
        print(f"linkshaper: error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    host, port = shaper.address
    print(f"linkshaper: listening on {host}:{port} -> {args.to[0]}:{args.to[1]}", flush=True)
    stop.wait(args.duration if args.duration > 0 else None)
    shaper.stop()
    for c in shaper.connections:
        print(f"linkshaper: connection {c.peer}: up {c.up_bytes} B, down {c.down_bytes} B", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
