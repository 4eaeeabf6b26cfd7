"""Receiver durability messages and trust: a full disk, revoked and unprovisioned cameras, a failed
start, draining, a corrupt cloud model, and the systemd unit. Each test is named after the defect it
guards against. Network tests run over loopback with real TLS handshakes; the full-disk tests use a
real small file system (a tmpfs mounted with `size=`, unmounted in a finally block).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_receiver import ReceiverThread, make_frame
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.cli.main import main as cli_main
from splitsdk.cloud.certs import make_certs
from splitsdk.cloud.config import LimitsConfig, ReceiverConfig, TlsConfig, load_config
from splitsdk.cloud.daemon import sd_notify, systemd_unit
from splitsdk.cloud.model import load_cloud_runner
from splitsdk.cloud.server import Receiver
from splitsdk.cloud.store import WAL_SIZE_LIMIT, SqliteStore, StoredResult, StoreError
from splitsdk.errors import BundleError, ReceiverError
from splitsdk.wire import ErrorCode
from splitsdk.wire.bundle import Bundle, load_bundle
from splitsdk.wire.client import ReceiverRefused, WireClient, client_tls_context

CAMERAS = ["good", "revoked", "stranger"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), bits=4, seed=5)


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> Bundle:
    return load_bundle(bundle_dir)


@pytest.fixture(scope="module")
def runner(bundle: Bundle) -> Any:
    return load_cloud_runner(bundle)


def plain_config(db: Path | str, **limits: Any) -> ReceiverConfig:
    return ReceiverConfig(
        listen="127.0.0.1:0", db=str(db), insecure_plain_tcp=True, limits=LimitsConfig(**limits)
    ).validate()


def tls_config(certs: Path, db: Path, **tls: Any) -> ReceiverConfig:
    return ReceiverConfig(
        listen="127.0.0.1:0",
        db=str(db),
        tls=TlsConfig(cert=certs / "server.pem", key=certs / "server.key", client_ca=certs / "ca.pem", **tls),
    ).validate()


def send_one(port: int, bundle: Bundle, device: str, seq: int, tls: ssl.SSLContext | None = None) -> wire.Result:
    with WireClient("127.0.0.1", port, tls, timeout_s=20) as client:
        client.hello(device, bundle.plan_sha256)
        return client.send_frame(make_frame(bundle, device, seq))


# -- 9: a full disk ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (this test suite runs as root); unmounted whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> None:
    """Write `path` until the file system is full."""
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), path.open("wb") as f:
        for _ in range(1 << 16):  # bounded: 4 GiB at most
            f.write(chunk)
            f.flush()


def test_full_disk_refusal_says_disk_full_not_cannot_rollback(bundle: Bundle, runner: Any, tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "mnt", "4m") as mnt:
        db = mnt / "results.sqlite"
        srv = ReceiverThread(bundle, plain_config(db), runner)
        try:
            acked = [send_one(srv.port, bundle, "cam", seq).seq for seq in range(5)]
            fill(mnt / "filler")
            refusal = None
            with WireClient("127.0.0.1", srv.port, None, timeout_s=20) as client:
                client.hello("cam", bundle.plan_sha256)
                for seq in range(5, 2005):  # bounded; the disk is full, so this ends at once
                    try:
                        acked.append(client.send_frame(make_frame(bundle, "cam", seq)).seq)
                    except ReceiverRefused as exc:
                        refusal = exc.error
                        break
            assert refusal is not None and refusal.code == ErrorCode.INTERNAL
            assert "database or disk is full" in refusal.message
            assert "cannot rollback" not in refusal.message
            assert "storing the result failed" in refusal.message and str(db) in refusal.message
            # space is freed: the receiver takes frames again, and the log does not keep the disk
            (mnt / "filler").unlink()
            with WireClient("127.0.0.1", srv.port, None, timeout_s=20) as client:
                client.hello("cam", bundle.plan_sha256)
                for seq in range(10_000, 10_300):
                    acked.append(client.send_frame(make_frame(bundle, "cam", seq)).seq)
            wal = db.with_name(db.name + "-wal")
            assert not wal.exists() or wal.stat().st_size <= WAL_SIZE_LIMIT + 64 * 1024
        finally:
            srv.stop()
        with sqlite3.connect(db) as con:
            stored = {s for (s,) in con.execute("SELECT seq FROM results WHERE device_id='cam'")}
        assert set(acked) <= stored  # nothing acknowledged was lost


def test_full_disk_wal_does_not_keep_the_disk_full_after_space_is_freed(tmp_path: Path) -> None:
    """On a 4 MiB disk whose space is freed after it filled, the store keeps storing until the data
    itself fills the disk (thousands of rows), not for a few frames while its log holds the space."""
    with small_filesystem(tmp_path / "mnt", "4m") as mnt:
        store = SqliteStore(mnt / "r.sqlite")
        (mnt / "filler").write_bytes(b"\0" * (2 << 20))

        def put_until_full(first: int) -> tuple[int, StoreError]:
            seq = first
            for _ in range(10_000):  # bounded
                try:
                    store.put_many([StoredResult("cam", seq + i, 0, 0, b"x" * 200) for i in range(8)])
                except StoreError as exc:
                    return seq, exc
                seq += 8
            raise AssertionError("the disk never filled")

        stored, err = put_until_full(0)
        assert "database or disk is full" in str(err) and "cannot rollback" not in str(err)
        (mnt / "filler").unlink()
        more, err = put_until_full(stored)
        assert "database or disk is full" in str(err)
        assert more - stored > 5000  # 2 MiB freed holds thousands of 200-byte rows
        wal = mnt / "r.sqlite-wal"
        assert wal.stat().st_size <= WAL_SIZE_LIMIT + 64 * 1024
        assert store.count() == more
        store.close()


# -- 10: revocation and provisioning ----------------------------------------------------------------------


@pytest.fixture()
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    make_certs(out, CAMERAS, ["127.0.0.1"])
    return out


def camera_tls(certs: Path, name: str) -> ssl.SSLContext:
    return client_tls_context(certs / "ca.pem", certs / f"{name}.pem", certs / f"{name}.key")


def handshake_refused(port: int, bundle: Bundle, certs: Path, name: str) -> str:
    """Connect as `name` and expect the receiver to end the TLS handshake; returns what the client saw."""
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)) as info:
        send_one(port, bundle, name, 0, camera_tls(certs, name))
    return str(info.value)


@pytest.mark.parametrize("reload", ["file_changed", "sighup"])
def test_revoked_certificate_is_refused_and_the_crl_is_reread(
    bundle: Bundle, runner: Any, certs: Path, tmp_path: Path, reload: str
) -> None:
    served = certs / "crl.pem" if reload == "file_changed" else Path(shutil.copy(certs / "crl.pem", tmp_path))
    srv = ReceiverThread(bundle, tls_config(certs, tmp_path / "r.sqlite", crl=served), runner)
    try:
        assert send_one(srv.port, bundle, "revoked", 0, camera_tls(certs, "revoked")).seq == 0
        assert cli_main(["certs", "--dir", str(certs), "revoke", "revoked"]) == 0
        if reload == "sighup":
            shutil.copy(certs / "crl.pem", served)
            srv.loop.call_soon_threadsafe(srv.receiver.reload_trust)  # what SIGHUP does
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), srv.loop).result(10)  # after the reload ran
        seen = handshake_refused(srv.port, bundle, certs, "revoked")
        assert "revoked" in seen or "reset" in seen.lower() or "closed" in seen.lower()
        assert send_one(srv.port, bundle, "good", 1, camera_tls(certs, "good")).seq == 1
        # a CRL that does not load keeps the previous trust (the revoked camera stays refused)
        served.write_text("not a CRL\n")
        srv.loop.call_soon_threadsafe(srv.receiver.reload_trust)
        handshake_refused(srv.port, bundle, certs, "revoked")
        assert send_one(srv.port, bundle, "good", 2, camera_tls(certs, "good")).seq == 2
    finally:
        srv.stop()


def test_ca_signed_certificate_of_unprovisioned_device_is_refused(
    bundle: Bundle, runner: Any, certs: Path, tmp_path: Path
) -> None:
    allowed = tmp_path / "devices.txt"
    allowed.write_text("# provisioned cameras\ngood\n\nrevoked  # until it is\n")
    srv = ReceiverThread(bundle, tls_config(certs, tmp_path / "r.sqlite", allowed_devices=allowed), runner)
    try:
        assert send_one(srv.port, bundle, "good", 0, camera_tls(certs, "good")).seq == 0
        with pytest.raises(ReceiverRefused) as info:
            send_one(srv.port, bundle, "stranger", 0, camera_tls(certs, "stranger"))
        assert info.value.error.code == ErrorCode.PROTOCOL
        assert "'stranger' is not provisioned" in info.value.error.message
        allowed.write_text("good\nstranger\n")  # provisioning it takes effect for its next connection
        assert send_one(srv.port, bundle, "stranger", 0, camera_tls(certs, "stranger")).seq == 0
    finally:
        srv.stop()


def test_crl_of_another_ca_or_without_tls_is_refused_in_one_line(
    bundle: Bundle, bundle_dir: Path, certs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rogue = tmp_path / "rogue"
    make_certs(rogue, [], ["127.0.0.1"])
    cfg = tls_config(certs, tmp_path / "r.sqlite", crl=rogue / "crl.pem")
    with pytest.raises(ReceiverError, match=r"rogue/crl.pem: the CRL's signature is not the client CA's") as info:
        asyncio.run(Receiver(bundle, cfg, lambda xs: xs).start())
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r.sqlite").exists()
    assert cli_main(["serve", str(bundle_dir), "--insecure-plain-tcp", "--crl", str(certs / "crl.pem")]) != 0
    assert "tls.crl (--crl): needs TLS" in capsys.readouterr().err
    toml = tmp_path / "receiver.toml"
    toml.write_text("insecure_plain_tcp = true\n[tls]\nallowed_devices = 7\n")
    with pytest.raises(ReceiverError, match=r"receiver.toml: tls.allowed_devices: "):
        load_config(toml)


def test_certs_revoke_of_an_unknown_camera_says_which_file(certs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["certs", "--out", str(certs), "revoke", "nobody"]) != 0
    err = capsys.readouterr().err
    assert "nobody.pem: cannot read the certificate to revoke" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["certs", "--out", str(certs), "revoke"]) != 0
    assert "expected `revoke NAME...`" in capsys.readouterr().err


# -- 11: a failed start -----------------------------------------------------------------------------------


def test_failed_start_port_in_use_leaves_no_database(bundle: Bundle, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for listen, metrics in ((f"127.0.0.1:{port}", None), ("127.0.0.1:0", f"127.0.0.1:{port}")):
            db = tmp_path / f"new-{len(listen)}.sqlite"
            cfg = replace(plain_config(db), listen=listen, metrics=metrics)
            receiver = Receiver(bundle, cfg, lambda xs: xs)
            with pytest.raises((ReceiverError, OSError)):
                asyncio.run(receiver.start())
            assert not db.exists() and not db.with_name(db.name + "-wal").exists()


# -- 12: draining and a corrupt model ---------------------------------------------------------------------


def test_camera_sending_while_draining_gets_shutting_down(bundle: Bundle, runner: Any, tmp_path: Path) -> None:
    def slow(inputs: list[np.ndarray]) -> list[np.ndarray]:
        time.sleep(0.5)
        return list(runner(inputs))

    srv = ReceiverThread(bundle, plain_config(tmp_path / "r.sqlite"), slow)
    idle = WireClient("127.0.0.1", srv.port, None, timeout_s=20)
    busy = WireClient("127.0.0.1", srv.port, None, timeout_s=20)
    drained: Any = None
    try:
        idle.hello("idle", bundle.plan_sha256)
        busy.hello("busy", bundle.plan_sha256)
        busy.send(make_frame(bundle, "busy", 0))  # in flight when the drain starts
        deadline = time.monotonic() + 10
        while not any(srv.receiver._conns.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = asyncio.run_coroutine_threadsafe(srv.receiver.drain(10), srv.loop)
        while not srv.receiver.draining and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ReceiverRefused) as info:
            idle.send_frame(make_frame(bundle, "idle", 0))  # a frame sent while the receiver drains
        assert info.value.error.code == ErrorCode.SHUTTING_DOWN
        assert "shutting down" in info.value.error.message
        result = busy.receive()  # the frame in flight is answered, then the camera is told
        assert isinstance(result, wire.Result) and result.seq == 0
        after = busy.receive()
        assert isinstance(after, wire.Error) and after.code == ErrorCode.SHUTTING_DOWN
    finally:
        idle.close()
        busy.close()
        if drained is not None:
            drained.result(30)
            srv.loop.call_soon_threadsafe(srv.loop.stop)
            srv.thread.join(10)
        else:
            srv.stop()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "not a .keras archive (truncated or corrupt?)"),
        ("flip", "the archive is corrupt: bad CRC-32 in"),
        ("garbage", "not a .keras archive"),
    ],
)
def test_corrupt_cloud_keras_is_reported_as_corrupt_not_file_not_found(
    bundle_dir: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    copy = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    model = copy / "cloud.keras"
    data = model.read_bytes()
    if damage == "truncate":
        model.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(flipped))
    else:
        model.write_bytes(b"\x89HDF not a zip" * 50)
    with pytest.raises(BundleError) as info:
        load_cloud_runner(load_bundle(copy))
    message = str(info.value)
    assert message.startswith(f"{model}: cannot load the cloud model: {reason}")
    assert "File not found" not in message and "\n" not in message


# -- 13: the systemd unit ---------------------------------------------------------------------------------


def exposure(unit_text: str, tmp_path: Path) -> float:
    unit = tmp_path / "splitsdk-receiver.service"
    unit.write_text(unit_text)
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match is not None, out[-2000:]
    return float(match.group(1))


def test_systemd_unit_is_hardened_type_notify_with_absolute_paths(
    bundle_dir: Path, certs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "receiver.toml").write_text("[limits]\nmax_connections = 100\n")
    rel = os.path.relpath
    argv = [
        "serve",
        "--listen",  # options before BUNDLE
        "0.0.0.0:7700",
        "--db",
        "data/results.sqlite",
        "--tls-cert",
        rel(certs / "server.pem"),
        "--tls-key",
        rel(certs / "server.key"),
        "--client-ca",
        rel(certs / "ca.pem"),
        "--crl",
        rel(certs / "crl.pem"),
        "--config",
        "receiver.toml",
        rel(bundle_dir),
        "--print-systemd-unit",
    ]
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/splitsdk", *argv])
    assert cli_main(argv) == 0
    unit = capsys.readouterr().out
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = exec_line.removeprefix("ExecStart=").split()
    assert words[:3] == ["/usr/local/bin/splitsdk", "serve", str(bundle_dir.resolve())]
    assert "--print-systemd-unit" not in words
    flags = dict(zip(words[3::2], words[4::2], strict=False))
    assert flags["--listen"] == "0.0.0.0:7700"
    assert flags["--db"] == str(tmp_path / "data/results.sqlite")
    assert flags["--config"] == str(tmp_path / "receiver.toml")
    assert flags["--tls-cert"] == str(certs / "server.pem") and flags["--crl"] == str(certs / "crl.pem")
    assert flags["--tls-key"] == "%d/tls.key" and f"LoadCredential=tls.key:{certs / 'server.key'}" in unit
    for line in (
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=splitsdk-receiver",
        "WorkingDirectory=/var/lib/splitsdk-receiver",
        "LimitNOFILE=65536",
        f"ReadWritePaths={tmp_path / 'data'}",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ):
        assert line in unit.splitlines(), line
    score = exposure(unit, tmp_path)
    assert score < 4.0, f"systemd-analyze security rates the unit {score}"


def test_systemd_unit_low_port_gets_only_the_bind_capability(bundle_dir: Path, tmp_path: Path) -> None:
    cfg = ReceiverConfig(listen="0.0.0.0:443", db="postgresql://u@db/results", insecure_plain_tcp=True)
    unit = systemd_unit(bundle_dir, cfg, flags={"listen": "--listen", "db": "--db"})
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in unit and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit
    assert "--db postgresql://u@db/results" in unit and "ReadWritePaths" not in unit
    assert exposure(unit, tmp_path) < 4.0


def test_serve_notifies_systemd_ready_after_listening_reloads_on_sighup_and_drains(
    bundle_dir: Path, certs: Path, tmp_path: Path
) -> None:
    short = Path(tempfile.mkdtemp(prefix="sdn", dir="/tmp"))  # a unix socket path has at most 107 bytes
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log = tmp_path / "serve.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        notify.bind(str(short / "notify"))
        notify.settimeout(120)
        cmd = [
            sys.executable, "-m", "splitsdk", "serve", str(bundle_dir), "--listen", "127.0.0.1:0",
            "--db", str(tmp_path / "r.sqlite"), "--tls-cert", str(certs / "server.pem"),
            "--tls-key", str(certs / "server.key"), "--client-ca", str(certs / "ca.pem"),
            "--crl", str(certs / "crl.pem"),
        ]  # fmt: skip
        env = {**os.environ, "NOTIFY_SOCKET": str(short / "notify")}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)
        ready = notify.recv(4096).decode()
        assert ready.startswith("READY=1\n") and f"MAINPID={proc.pid}" in ready
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        port = next(int(e["port"]) for e in events if e.get("event") == "listening")  # bound before READY
        bundle = load_bundle(bundle_dir)
        assert send_one(port, bundle, "good", 0, camera_tls(certs, "good")).seq == 0
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "trust_reloaded" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "trust_reloaded" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode().startswith("STOPPING=1")
        assert proc.wait(60) == 0
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        notify.close()
        shutil.rmtree(short, ignore_errors=True)


def test_sd_notify_without_a_socket_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "@splitsdk-test-nobody-listens-here")
    assert sd_notify("READY=1") is False


def test_systemd_unit_escapes_percent_and_dollar(bundle_dir: Path, tmp_path: Path) -> None:
    cfg = ReceiverConfig(listen="127.0.0.1:7700", db=str(tmp_path / "100%$HOME.sqlite"), insecure_plain_tcp=True)
    unit = systemd_unit(bundle_dir, cfg, flags={"db": "--db"})
    assert "100%%$$HOME.sqlite" in unit
