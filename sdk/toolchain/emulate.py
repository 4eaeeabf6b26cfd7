"""`splitsdk emulate FIRMWARE --bundle B --frames DIR`: the firmware's binary under QEMU against a real receiver.

The binary runs with the firmware's own libraries as its root (`qemu-arm -cpu cortex-a7 -L FIRMWARE`;
on a target without QEMU, the firmware's dynamic loader with `--library-path FIRMWARE/lib`), so the
run also proves the firmware carries every library it needs. The receiver is a real `splitsdk serve`
subprocess on 127.0.0.1 with a throw-away result database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from splitsdk.errors import ToolchainError
from splitsdk.target import load_target
from splitsdk.toolchain.build import BINARY, Firmware, load_firmware
from splitsdk.toolchain.tools import missing_tool, run_tool
from splitsdk.wire.bundle import Bundle

_RESULT = re.compile(r"^result seq=(\d+) frame=(\S+) status=(\d+) ms=([\d.]+) body=(.*)$")


@dataclass(frozen=True)
class FrameResult:
    seq: int
    frame: str
    status: int
    ms: float
    body: str


@dataclass
class AppRun:
    """What one run of the edge app printed, parsed."""

    returncode: int
    results: list[FrameResult] = field(default_factory=list)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    stderr: str = ""

    @property
    def error(self) -> str:
        """The app's own error line, if it printed one."""
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("splitsdk-edge: error:")]
        return lines[-1].removeprefix("splitsdk-edge: error: ") if lines else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _interpreter(binary: Path) -> str:
    """The ELF's PT_INTERP (its dynamic loader), as `readelf -l` prints it."""
    out = run_tool(["readelf", "-l", str(binary)], f"reading {binary.name}'s program headers")
    m = re.search(r"Requesting program interpreter: (\S+)\]", out)
    if m is None:
        raise ToolchainError(f"{binary}: no program interpreter (not a dynamic executable?)")
    return m.group(1)


def as_firmware(firmware: Firmware | str | Path) -> Firmware:
    """A Firmware as given, or the one its directory holds."""
    return firmware if isinstance(firmware, Firmware) else load_firmware(firmware)


def app_command(firmware: Firmware, args: Sequence[str]) -> list[str]:
    """The command line that runs the firmware's binary on this machine, with `args`."""
    target = load_target(firmware.target_file)
    root = firmware.root.resolve()
    binary = root / "bin" / BINARY
    if target.qemu is not None:
        if shutil.which(target.qemu.user_binary) is None:
            raise ToolchainError(missing_tool(target.qemu.user_binary, f"emulating {target.name}"))
        return [target.qemu.user_binary, "-cpu", target.qemu.user_cpu, "-L", str(root), str(binary), *args]
    loader = root / "lib" / Path(_interpreter(binary)).name
    return [str(loader), "--library-path", str(root / "lib"), str(binary), *args]


def parse_app_output(returncode: int, stdout: str, stderr: str) -> AppRun:
    run = AppRun(returncode=returncode, stderr=stderr)
    for line in stdout.splitlines():
        m = _RESULT.match(line)
        if m:
            run.results.append(FrameResult(int(m[1]), m[2], int(m[3]), float(m[4]), m[5]))
        elif line.startswith("stats: "):
            data = json.loads(line.removeprefix("stats: "))
            run.stages = data.pop("stages")
            run.counters = {k: int(v) for k, v in data.items() if not isinstance(v, dict)}  # "splits": an object
    return run


def run_app(
    firmware: Firmware, args: Sequence[str], timeout_s: float = 300.0, env: dict[str, str] | None = None
) -> AppRun:
    """Run the edge app to completion (it stops after the frames or -n N) and parse what it printed."""
    cmd = app_command(firmware, args)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **(env or {})}, check=False
        )
    except FileNotFoundError:
        raise ToolchainError(missing_tool(cmd[0], "running the edge app")) from None
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"the edge app did not finish within {timeout_s:.0f} s") from None
    return parse_app_output(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class ServerTls:
    """The receiver's TLS files (`splitsdk certs` writes them): certificate, key, the cameras' CA."""

    cert: Path
    key: Path
    client_ca: Path


class ReceiverProcess:
    """A real `splitsdk serve BUNDLE` *subprocess* on 127.0.0.1 (temporary database), as a context manager.

    The harness of emulated runs: unlike splitsdk.cloud.Receiver (the asyncio server, in this process),
    it tests the receiver as deployed, command line and all. Plain TCP unless `tls` is given.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        port: int | None = None,
        db: Path | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self.bundle = bundle.root if isinstance(bundle, Bundle) else Path(bundle)
        self.tls = tls
        self.port = port or free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.db = db
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self, timeout_s: float = 180.0) -> ReceiverProcess:
        if self.db is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="splitsdk-emulate-")
            self.db = Path(self._tmp.name) / "results.sqlite"
        cmd = [sys.executable, "-m", "splitsdk", "serve", str(self.bundle), "--listen", f"127.0.0.1:{self.port}"]
        cmd += ["--db", str(self.db)]
        if self.tls is None:
            cmd.append("--insecure-plain-tcp")
        else:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
            cmd += ["--client-ca", str(self.tls.client_ca)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + timeout_s
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break  # the receiver exited
            self.log.append(line.rstrip())
            if '"event": "listening"' in line:
                return self
        self.stop()
        raise ToolchainError(f"the receiver for {self.bundle} did not start: {' | '.join(self.log[-3:])}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def app_args(
    firmware: Firmware, frames: str | Path, port: int, n: int | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """Flags for an emulated run: the firmware's model, the frames, the loopback receiver."""
    args = ["--model", str(firmware.model.resolve()), "--frames", str(Path(frames).resolve())]
    args += ["--server", f"127.0.0.1:{port}", "--max-retry-s", "60"]
    if n is not None:
        args += ["-n", str(n)]
    return [*args, *extra]


def emulate(
    firmware: Firmware | str | Path, bundle: Bundle | str | Path, frames: str | Path, n: int | None = None
) -> AppRun:
    """Run the firmware (a Firmware or its directory) on `frames` against a fresh receiver serving `bundle`
    (a Bundle or its directory); raise if the app failed."""
    fw = as_firmware(firmware)
    if not Path(frames).is_dir():
        raise ToolchainError(f"{frames}: not a directory of frames")
    with ReceiverProcess(bundle) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port, n))
    if run.returncode != 0:
        raise ToolchainError(f"edge app exited with {run.returncode}: {run.error or run.stderr.strip()[-300:]}")
    return run
