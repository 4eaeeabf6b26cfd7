"""The receiver as a separate process, as systemd runs it: `splitsdk serve` with TLS.

SIGTERM drains and exits 0; `kill -9` under load followed by a restart loses no acknowledged result
and duplicates nothing, because RESULT is only sent after the SQLite commit and a camera resends the
frame it got no RESULT for with the same sequence number.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_receiver import make_frame
from test_wire_bundle import build_bundle

from splitsdk.cli.main import main as cli_main
from splitsdk.cloud.certs import make_certs
from splitsdk.wire.bundle import Bundle, load_bundle
from splitsdk.wire.client import WireClient, client_tls_context

CAMERAS = [f"cam-{i}" for i in range(6)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Bundle, Path]:
    root = tmp_path_factory.mktemp("proc")
    bundle_dir = build_bundle(root / "bundle", bits=5, seed=3)
    make_certs(root / "certs", CAMERAS, ["127.0.0.1"])
    return bundle_dir, load_bundle(bundle_dir), root / "certs"


class ServeProcess:
    """`splitsdk serve` in a subprocess; the port comes from its JSON `listening` log line."""

    def __init__(self, bundle_dir: Path, certs: Path, db: Path, log: Path, port: int = 0) -> None:
        self.log = log
        cmd = [
            sys.executable,
            "-m",
            "splitsdk",
            "serve",
            str(bundle_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(db),
            *_tls_flags(certs),
            "--max-batch",
            "8",
            "--max-wait-ms",
            "2",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        self.port = self._wait_listening()

    def _events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for ev in self._events():
                if ev.get("event") == "listening":
                    return int(ev["port"])
            if self.proc.poll() is not None:
                raise AssertionError(f"receiver exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError("receiver did not start")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self._events() if e.get("event") == name]


class Camera(threading.Thread):
    """Sends frames seq 0.. until `stop`; on a broken connection reconnects and resends the frame
    that got no RESULT, with the same seq. Records every RESULT it receives."""

    def __init__(
        self, name: str, bundle: Bundle, certs: Path, port: list[int], stop: threading.Event, n_frames: int
    ) -> None:
        super().__init__(daemon=True)
        self.name_, self.bundle, self.port, self.stop, self.n_frames = name, bundle, port, stop, n_frames
        self.tls = client_tls_context(certs / "ca.pem", certs / f"{name}.pem", certs / f"{name}.key")
        self.results: dict[int, bytes] = {}
        self.reconnects = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        seq = 0
        deadline = time.monotonic() + 150
        try:
            while seq < self.n_frames and time.monotonic() < deadline:
                try:
                    with WireClient("127.0.0.1", self.port[0], self.tls, timeout_s=20) as client:
                        client.hello(self.name_, self.bundle.plan_sha256)
                        while seq < self.n_frames:
                            result = client.send_frame(make_frame(self.bundle, self.name_, seq))
                            assert result.seq == seq and result.status == 0
                            self.results[seq] = result.body
                            seq += 1
                except (ConnectionError, OSError):
                    self.reconnects += 1
                    time.sleep(0.2)
            assert seq == self.n_frames, f"{self.name_} stopped at {seq}"
        except BaseException as exc:
            self.error = exc


def db_rows(db: Path) -> list[tuple[str, int, bytes]]:
    with sqlite3.connect(db) as con:
        return [(d, s, bytes(r)) for d, s, r in con.execute("SELECT device_id, seq, result FROM results")]


def test_kill_9_under_load_then_restart_loses_and_duplicates_nothing(setup: Any, tmp_path: Path) -> None:
    bundle_dir, bundle, certs = setup
    db = tmp_path / "results.sqlite"
    first = ServeProcess(bundle_dir, certs, db, tmp_path / "run1.log")
    port = [first.port]
    stop = threading.Event()
    cams = [Camera(name, bundle, certs, port, stop, n_frames=60) for name in CAMERAS]
    for cam in cams:
        cam.start()
    deadline = time.monotonic() + 60
    while sum(len(c.results) for c in cams) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    acked_before_kill = sum(len(c.results) for c in cams)
    first.proc.send_signal(signal.SIGKILL)  # mid-load: frames are in flight
    first.proc.wait(10)
    assert 0 < acked_before_kill < 60 * len(CAMERAS)
    second = ServeProcess(bundle_dir, certs, db, tmp_path / "run2.log", port=first.port)
    try:
        for cam in cams:
            cam.join(160)
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(30) == 0
    for cam in cams:
        assert cam.error is None, cam.error
        assert sorted(cam.results) == list(range(60))
    assert sum(c.reconnects for c in cams) >= len(CAMERAS) - 1  # (almost) every camera saw the crash
    rows = db_rows(db)
    keys = [(d, s) for d, s, _ in rows]
    assert len(keys) == len(set(keys)) == 60 * len(CAMERAS)  # nothing lost, nothing twice
    stored = {(d, s): r for d, s, r in rows}
    for cam in cams:
        for seq, body in cam.results.items():
            assert stored[(cam.name_, seq)] == body  # every RESULT received is the stored one
    assert second.events("stopped")


def test_sigterm_drains_and_exits_cleanly(setup: Any, tmp_path: Path) -> None:
    bundle_dir, bundle, certs = setup
    db = tmp_path / "results.sqlite"
    srv = ServeProcess(bundle_dir, certs, db, tmp_path / "run.log")
    tls = client_tls_context(certs / "ca.pem", certs / "cam-0.pem", certs / "cam-0.key")
    with WireClient("127.0.0.1", srv.port, tls) as client:
        client.hello("cam-0", bundle.plan_sha256)
        for seq in range(3):
            client.send_frame(make_frame(bundle, "cam-0", seq))
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
    assert [e["frames"] for e in srv.events("stopped")] == [3]
    assert len(db_rows(db)) == 3
    assert srv.events("draining")


def test_print_systemd_unit(setup: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bundle_dir, _, certs = setup
    argv = [
        "serve",
        str(bundle_dir),
        "--listen",
        "0.0.0.0:7700",
        *_tls_flags(certs),
        "--print-systemd-unit",
    ]
    monkeypatch.setattr(sys, "argv", ["splitsdk", *argv])
    assert cli_main(argv) == 0
    unit = capsys.readouterr().out
    assert "[Service]" in unit and "KillSignal=SIGTERM" in unit
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert " serve " in exec_line and "--listen 0.0.0.0:7700" in exec_line and "--print-systemd-unit" not in exec_line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "{bundle}"], "no TLS configured"),
        (
            ["serve", "{bundle}", "--insecure-plain-tcp", "--listen", "nowhere"],
            "line: listen (--listen): expected HOST:PORT",
        ),
        (
            ["serve", "{bundle}", "--tls-cert", "{certs}/server.pem"],
            "tls: needs all of tls.cert (--tls-cert), tls.key (--tls-key) and tls.client_ca (--client-ca)",
        ),
        (["serve", "{tmp}", "--insecure-plain-tcp"], "manifest.json: no such file"),
        (["serve", "{bundle}", "--insecure-plain-tcp", "--config", "{tmp}/bad.toml"], "bad.toml: colour: unknown key"),
    ],
)
def test_serve_errors_are_one_line(
    setup: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    bundle_dir, _, certs = setup
    (tmp_path / "bad.toml").write_text('colour = "blue"\n')
    args = [a.format(bundle=bundle_dir, certs=certs, tmp=tmp_path) for a in argv]
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitsdk: error:") and message in err[0]


def test_certs_command_issues_a_working_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ssl

    assert cli_main(["certs", "--out", str(tmp_path), "--camera", "door-1", "--server-name", "127.0.0.1"]) == 0
    assert "door-1" in capsys.readouterr().out
    assert oct(os.stat(tmp_path / "door-1.key").st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    ctx.load_cert_chain(str(tmp_path / "door-1.pem"), str(tmp_path / "door-1.key"))
    ca_before = (tmp_path / "ca.pem").read_bytes()
    assert cli_main(["certs", "--out", str(tmp_path), "--camera", "door-2"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() == ca_before  # the CA is reused, not replaced


def _tls_flags(certs: Path) -> list[str]:
    """`splitsdk serve`'s TLS flags for the certificates `splitsdk certs` wrote into `certs`."""
    return ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
            "--client-ca", str(certs / "ca.pem")]
