"""splitsdk.toolchain.linkshaper: the shaping TCP proxy on loopback. Bytes pass through unchanged in both
directions on many connections at once, the schedule parser takes the documented steps and refuses the
rest in one line, the shaped direction is no faster than its rate and the delay no shorter than its RTT
(lower bounds only: a loaded machine may be slower), and stop() leaves no thread behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from splitsdk.toolchain.linkshaper import LinkShaper, ScheduleError, Step, parse_schedule, step_at


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """A real TCP server on loopback that sends back every byte it gets, one thread per connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(30)
            t = threading.Thread(target=serve, args=(conn,), daemon=True)
            threads.append(t)
            t.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[:2]
    finally:
        stop.set()
        acceptor.join(5)
        for t in threads:
            t.join(5)
        server.close()


def exchange(address: tuple[str, int], payload: bytes) -> bytes:
    """Send `payload`, half-close, and read the echo to its end."""
    with socket.create_connection(address, timeout=30) as s:
        received = bytearray()
        reader = threading.Thread(target=lambda: _read_all(s, received))
        reader.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        reader.join(30)
    return bytes(received)


def _read_all(s: socket.socket, into: bytearray) -> None:
    while data := s.recv(65536):
        into += data


def test_bytes_pass_unchanged_both_ways_on_many_connections() -> None:
    payloads = [os.urandom(n) for n in (1, 1499, 1500, 1501, 70_000, 300_000, 5, 123_457)]
    results: dict[int, bytes] = {}
    with echo_server() as target, LinkShaper(target, parse_schedule("1s@200mbit/2ms")) as shaper:
        threads = [
            threading.Thread(target=lambda i=i, p=p: results.__setitem__(i, exchange(shaper.address, p)))
            for i, p in enumerate(payloads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        deadline = time.monotonic() + 10
        while any(c.open for c in shaper.connections) and time.monotonic() < deadline:
            time.sleep(0.01)
        counters = sorted((c.up_bytes, c.down_bytes, c.open) for c in shaper.connections)
    assert [results[i] == p for i, p in enumerate(payloads)] == [True] * len(payloads)
    assert counters == sorted((len(p), len(p), False) for p in payloads)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("10s@20mbit/5ms", (Step(10, 20, 5),)),
        ("10s@20mbit/5ms,10s@1mbit/5ms,10s@20mbit/5ms", (Step(10, 20, 5), Step(10, 1, 5), Step(10, 20, 5))),
        (" 500ms @ 500kbit / 0.1s ", (Step(0.5, 0.5, 100),)),
        ("2.5s@3/0ms", (Step(2.5, 3, 0),)),
        ("1s@1gbit/40ms", (Step(1, 1000, 40),)),
    ],
)
def test_schedule_parser_takes_the_documented_steps(text: str, steps: tuple[Step, ...]) -> None:
    assert parse_schedule(text) == steps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty schedule"),
        ("10s@20mbit", "schedule step 1 '10s@20mbit': expected DURATION@RATE/RTT"),
        ("10s@20mbit/5ms,", "schedule step 2 '': expected DURATION@RATE/RTT"),
        ("10@20mbit/5ms", "expected DURATION@RATE/RTT"),
        ("10s@20MB/5ms", "schedule step 1 '10s@20MB/5ms': bad link rate '20MB'"),
        ("10s@0mbit/5ms", "must be a positive number of Mbit/s"),
        ("0s@1mbit/5ms", "the duration must be positive"),
        ("10s@1mbit/-5ms", "expected DURATION@RATE/RTT"),
    ],
)
def test_bad_schedule_is_one_line_error(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedule(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_schedule_loops_or_holds_its_last_step() -> None:
    schedule = parse_schedule("1s@20mbit/5ms,2s@1mbit/50ms")
    assert [step_at(schedule, t).mbit_s for t in (0, 0.99, 1.0, 2.9, 3.0, 100)] == [20, 20, 1, 1, 1, 1]
    assert [step_at(schedule, t, loop=True).mbit_s for t in (0, 2.9, 3.0, 4.5, 6.5)] == [20, 1, 20, 1, 20]


def test_a_transfer_takes_at_least_its_bytes_over_the_rate() -> None:
    """N bytes at R Mbit/s: no sooner than 0.9 x N x 8 / R (only the up direction is shaped)."""
    n, mbit = 200_000, 4.0
    payload = os.urandom(n)
    with echo_server() as target, LinkShaper(target, parse_schedule(f"1s@{mbit}mbit/0ms")) as shaper:
        start = time.monotonic()
        echoed = exchange(shaper.address, payload)
        elapsed = time.monotonic() - start
    assert echoed == payload
    assert elapsed >= 0.9 * n * 8 / (mbit * 1e6)


def test_a_round_trip_takes_at_least_the_rtt() -> None:
    with echo_server() as target, LinkShaper(target, parse_schedule("1s@100mbit/120ms")) as shaper:
        with socket.create_connection(shaper.address, timeout=30) as s:
            times = []
            for _ in range(3):
                start = time.monotonic()
                s.sendall(b"ping")
                assert s.recv(16) == b"ping"
                times.append(time.monotonic() - start)
    assert min(times) >= 0.9 * 0.120


def test_a_new_step_applies_its_rate() -> None:
    """The second step is 20x slower: the bytes sent in it take at least their time at that rate."""
    with echo_server() as target, LinkShaper(target, parse_schedule("0.2s@100mbit/0ms,1s@2mbit/0ms")) as shaper:
        with socket.create_connection(shaper.address, timeout=30) as s:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            time.sleep(max(0.0, 0.25 - (time.monotonic() - shaper._t0)))  # into the 2 Mbit/s step
            assert shaper.step().mbit_s == 2
            start = time.monotonic()
            got = bytearray()
            s.sendall(bytes(50_000))
            while len(got) < 50_000:
                got += s.recv(65536)
            elapsed = time.monotonic() - start
    assert elapsed >= 0.9 * 50_000 * 8 / 2e6


def test_stop_ends_every_thread_and_connection() -> None:
    with echo_server() as target:
        shaper = LinkShaper(target, parse_schedule("1s@1mbit/10ms")).start()
        idle = socket.create_connection(shaper.address, timeout=30)  # left open: stop() must end it
        idle.sendall(b"hello")
        assert idle.recv(5) == b"hello"
        shaper.stop()
        assert idle.recv(5) == b""  # closed by the shaper
        idle.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("linkshaper")] == []
    assert [c.open for c in shaper.connections] == [False]


def test_an_absent_receiver_closes_the_camera_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[:2]  # bound, not listening: connections are refused
        with LinkShaper(dead, parse_schedule("1s@1mbit/0ms")) as shaper:
            with socket.create_connection(shaper.address, timeout=30) as camera:
                assert camera.recv(1) == b""
            assert shaper.connections == []


def test_cli_forwards_and_stops_by_itself() -> None:
    with echo_server() as (host, port):
        proc = subprocess.Popen(
            [sys.executable, "-m", "splitsdk.toolchain.linkshaper", "--to", f"{host}:{port}"]
            + ["--schedule", "1s@50mbit/2ms", "--duration", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("linkshaper: listening on 127.0.0.1:"), line
            listen_port = int(line.split()[3].rsplit(":", 1)[1])
            assert exchange(("127.0.0.1", listen_port), b"through the cli") == b"through the cli"
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "up 15 B, down 15 B" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "127.0.0.1:9", "--schedule", "10s@fast/5ms"], "linkshaper: error: schedule step 1"),
        (
            ["--to", "127.0.0.1:9", "--schedule", "10s@1mbit/5ms", "--burst", "-1"],
            "linkshaper: error: burst_bytes must be >= 0",
        ),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk.toolchain.linkshaper", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
