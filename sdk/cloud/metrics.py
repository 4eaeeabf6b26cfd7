"""Prometheus text-format metrics and the tiny HTTP endpoint serving them with `/healthz`.

A handful of counters, gauges and histograms is all the receiver needs, so this is written out
rather than pulling in a client library; the exposition format is Prometheus 0.0.4 text.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable
from typing import TypeVar

M = TypeVar("M", bound="Metric")

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self.samples())


class Counter(Metric):
    """A monotonically increasing count, optionally split by one set of labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[tuple[tuple[str, str], ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def total(self) -> float:
        """Sum over every label set."""
        with self._lock:
            return sum(self._values.values())

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items()) or [((), 0.0)]
        return [f"{self.name}{_labels(dict(k))} {v:g}" for k, v in items]


class Gauge(Metric):
    """A value read at scrape time from a callable (queue depth, open connections)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self._read = read

    def samples(self) -> list[str]:
        return [f"{self.name} {self._read():g}"]


class Histogram(Metric):
    """Latency histogram (seconds), one series per `stage` label."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        super().__init__(name, help_text)
        self.buckets = buckets
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float, stage: str) -> None:
        with self._lock:
            counts, sums = self._series.setdefault(stage, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            sums[0] += seconds

    def count(self, stage: str) -> int:
        with self._lock:
            return sum(self._series[stage][0]) if stage in self._series else 0

    def total(self, stage: str) -> float:
        """Sum of the observed seconds of `stage`."""
        with self._lock:
            return self._series[stage][1][0] if stage in self._series else 0.0

    def samples(self) -> list[str]:
        lines = []
        with self._lock:
            series = sorted((s, (list(c), t[0])) for s, (c, t) in self._series.items())
        for stage, (counts, total) in series:
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'{self.name}_bucket{{stage="{stage}",le="{le}"}} {running}')
            lines.append(f'{self.name}_sum{{stage="{stage}"}} {total:g}')
            lines.append(f'{self.name}_count{{stage="{stage}"}} {running}')
        return lines


class Registry:
    """The receiver's metrics, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[Metric] = []

    def add(self, metric: M) -> M:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        return "".join(m.render() for m in self._metrics)


MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 8192


async def serve_http(
    host: str,
    port: int,
    registry: Registry,
    healthy: Callable[[], bool],
    request_timeout_s: float = 5.0,
    max_connections: int = 16,
) -> asyncio.base_events.Server:
    """Serve GET /metrics and GET /healthz (200 while healthy, 503 while draining).

    A request (its line and headers, at most MAX_HEADER_LINES lines of MAX_LINE_BYTES) must arrive
    within `request_timeout_s` in all, however it trickles in; past `max_connections` open at once a
    new connection is closed unanswered."""
    open_now = 0

    async def read_request(reader: asyncio.StreamReader) -> str:
        async with asyncio.timeout(request_timeout_s):
            request = await reader.readline()
            for _ in range(MAX_HEADER_LINES):
                if (await reader.readline()) in (b"\r\n", b"\n", b""):
                    break
            else:
                raise ValueError("too many header lines")
        parts = request.decode("latin-1").split()
        return parts[1] if len(parts) >= 2 else ""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        if open_now >= max_connections:
            writer.close()
            return
        open_now += 1
        try:
            path = await read_request(reader)
            if path == "/metrics":
                status, ctype, body = "200 OK", "text/plain; version=0.0.4", registry.render().encode()
            elif path == "/healthz":
                ok = healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "text/plain", (b"ok\n" if ok else b"draining\n")
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            async with asyncio.timeout(request_timeout_s):
                await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # ValueError: a line over MAX_LINE_BYTES or too many of them
        finally:
            open_now -= 1
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_LINE_BYTES)
