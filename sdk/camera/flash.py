"""`splitsdk flash FIRMWARE --host user@camera[:port]`: install firmware on a camera over SSH.

The order is what keeps a camera working whatever goes wrong:

1. on the host: the firmware is checked (payload.prepare: sizes, complete ELF files, model);
2. the camera is asked its architecture and free space (wrong machine or too little room: refused);
3. the firmware is streamed as a tar into a staging folder beside the installed versions, and the
   camera re-checks every file's SHA-256 and that the new binary starts (`--help`) with its own
   loader and libraries: a corrupt copy is refused here, before anything is switched;
4. the service stops, one symlink (`current`) is switched by rename, the old one becomes
   `previous`, the service starts;
5. we wait until the app logs a RESULT from the receiver. If it does not (receiver unreachable,
   refused, the app crashed), the links are restored exactly, the old version restarted, and the
   error carries the app's last log lines.

The camera side is `guest/fwctl` (BusyBox sh), uploaded on each run so any BusyBox camera works.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitsdk.camera.errors import CameraError, FlashError
from splitsdk.camera.payload import guest_file, prepare
from splitsdk.camera.ssh import Remote

DEFAULT_ROOT = "/data/fw"
TOOL = ".splitsdk-fw"


@dataclass(frozen=True)
class FlashResult:
    """What a flash or rollback left on the camera."""

    version: str
    previous: str
    connected_s: float  # from service start to the first RESULT in the log
    log: tuple[str, ...] = field(default_factory=tuple)  # the app's log lines since the start


class CameraTool:
    """The camera side of flash: fwctl over SSH."""

    def __init__(self, remote: Remote, root: str) -> None:
        self.remote = remote
        self.root = root

    def fw(self, args: str, stdin: bytes = b"", timeout_s: float = 120.0) -> tuple[int, str, str]:
        rc, out, err = self.remote.run(f"SPLITSDK_FW_ROOT={self.root} sh {self.root}/{TOOL} {args}", stdin, timeout_s)
        if rc == 255:
            raise FlashError(f"cannot reach the camera at {self.remote}: {_last(err) or 'ssh failed'}")
        return rc, out, err

    def info(self) -> dict[str, str]:
        """Upload fwctl (atomically) and read the camera's state."""
        cmd = f"mkdir -p {self.root} && cat > {self.root}/{TOOL}.new && mv {self.root}/{TOOL}.new {self.root}/{TOOL}"
        rc, _, err = self.remote.run(cmd, guest_file("fwctl"), 60)
        if rc == 255:
            raise FlashError(f"cannot reach the camera at {self.remote}: {_last(err) or 'ssh failed'}")
        if rc != 0:
            raise FlashError(f"{self.remote}: cannot write {self.root}/{TOOL}: {_last(err)}")
        return _keyvals(self.checked("info"))

    def checked(self, args: str, stdin: bytes = b"", timeout_s: float = 120.0) -> str:
        rc, out, err = self.fw(args, stdin, timeout_s)
        if rc != 0:
            raise FlashError(f"{self.remote}: splitsdk-fw {args.split()[0]} failed: {_last(err)}")
        return out


def _last(text: str) -> str:
    lines = [ln.removeprefix("splitsdk-fw: ") for ln in text.strip().splitlines()]
    return lines[-1] if lines else ""


def _keyvals(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _tar_dir(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            info = tarfile.TarInfo(f.name)
            info.size, info.mode, info.mtime = f.stat().st_size, 0o644, 0
            with f.open("rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def wait_connected(cam: CameraTool, offset: int, timeout_s: float) -> tuple[float, list[str]]:
    """Poll the app's log (from byte `offset`) until it shows a RESULT; FlashError with the last lines if not."""
    start = time.monotonic()
    lines: list[str] = []
    while True:
        _, out, _ = cam.fw(f"log {offset}", timeout_s=60)
        body = _keyvals(out.splitlines()[-1]) if out.strip() else {}
        lines = [ln for ln in out.splitlines() if ln and not ln.startswith("running=")]
        if any(ln.startswith("result seq=") for ln in lines):
            return time.monotonic() - start, lines
        errors = [ln for ln in lines if ln.startswith("splitsdk-edge: error:")]
        if errors:
            why = errors[-1].removeprefix("splitsdk-edge: error: ")
            if why.startswith("cannot reach"):  # the config's max_retry_s ran out
                raise FlashError(f"the app cannot reach the receiver ({why})")
            raise FlashError(f"the app stopped: {why}")
        if body.get("running", "none") == "none" and time.monotonic() - start > 5:
            raise FlashError(f"the app is not running; its last log lines: {' | '.join(lines[-4:]) or '(none)'}")
        if time.monotonic() - start > timeout_s:
            if any("unreachable" in ln for ln in lines):
                why = next(ln for ln in reversed(lines) if "unreachable" in ln).removeprefix("splitsdk-edge: ")
                raise FlashError(f"the app cannot reach the receiver ({why})")
            raise FlashError(
                f"no result from the receiver within {timeout_s:.0f} s; last log lines: "
                f"{' | '.join(lines[-4:]) or '(none)'}"
            )
        time.sleep(1.0)


def _activate(cam: CameraTool, cmd: str, old: dict[str, str], new_version: str, timeout_s: float) -> FlashResult:
    """Run fwctl `cmd` (activate/rollback), wait for the app to connect, restore `old` exactly if it does not."""
    rc, out, err = cam.fw(cmd, timeout_s=120)
    try:
        if rc != 0:
            raise FlashError(f"switching to {new_version} failed: {_last(err)}")
        connected_s, lines = wait_connected(cam, int(_keyvals(out).get("log_size", "0")), timeout_s)
    except FlashError as exc:
        cur, prev = old.get("current", "none"), old.get("previous", "none")
        try:
            cam.checked(f"restore {cur} {prev} {new_version}")
            kept = f"the camera runs {cur} again" if cur != "none" else "no version was installed before"
        except CameraError as undo:
            kept = f"restoring {cur} failed too: {undo}"
        raise FlashError(f"{new_version} on {cam.remote}: {exc}; rolled back: {kept}") from None
    info = cam.info()
    return FlashResult(
        info.get("current", new_version), info.get("previous", "none"), round(connected_s, 2), tuple(lines)
    )


def flash(
    firmware: str | Path,
    remote: Remote,
    *,
    server: str | None = None,
    frames: Path | None = None,
    root: str = DEFAULT_ROOT,
    timeout_s: float = 180.0,
    progress: Callable[[str], None] | None = None,
) -> FlashResult:
    """Install `firmware` on the camera and switch to it; FlashError (the old version running) if anything fails.

    `progress` receives one line per step (the CLI prints them)."""
    say = progress or (lambda _msg: None)
    payload = prepare(firmware, server)
    say(f"firmware {payload.version}: {len(payload.files)} files, {payload.size / 1e6:.1f} MB, checked")
    cam = CameraTool(remote, root)
    old = cam.info()
    say(f"camera {remote}: {old.get('arch')}, runs {old.get('current')}, {int(old.get('avail_kb', 0)) // 1024} MB free")
    keeps = f"the camera keeps running {old.get('current', 'none')}"
    arch = old.get("arch", "?")
    if not payload.elf.runs_on(arch):
        raise FlashError(
            f"{payload.firmware.binary} is a {payload.elf.bits}-bit {payload.elf.machine_name} executable but the "
            f"camera at {remote} is {arch}: refusing; {keeps}"
        )
    avail = int(old.get("avail_kb", "0")) * 1024
    need = payload.size + (1 << 20)
    if payload.version != old.get("current") and avail < need:
        raise FlashError(
            f"the camera's {root} has {avail / 1e6:.1f} MB free, firmware {payload.version} needs "
            f"{need / 1e6:.1f} MB: refusing; {keeps}"
        )
    if payload.version != old.get("current"):
        say(f"copying {payload.version}")
        rc, _, err = cam.fw(f"receive {payload.version}", payload.tar(), timeout_s=300)
        if rc == 4:
            raise FlashError(
                f"the camera's {root} is full ({_last(err)}): firmware {payload.version} not installed; {keeps}"
            )
        if rc != 0:
            raise FlashError(f"copying {payload.version} failed: {_last(err)}; {keeps}")
        say("verifying on the camera (SHA-256 of every file, the binary starts)")
        rc, _, err = cam.fw(f"check {payload.version}", timeout_s=120)
        if rc != 0:
            raise FlashError(f"the camera refused {payload.version}: {_last(err)}; {keeps}")
    if frames is not None:
        cam.checked("frames", _tar_dir(frames), timeout_s=300)
    say(f"switching to {payload.version}, waiting for the app's first result (up to {timeout_s:.0f} s)")
    result = _activate(cam, f"activate {payload.version}", old, payload.version, timeout_s)
    cam.checked("prune")
    return result


def rollback(remote: Remote, *, root: str = DEFAULT_ROOT, timeout_s: float = 180.0) -> FlashResult:
    """Switch back to the previous version (the current one becomes `previous`) and wait for it to connect;
    if it does not, the links are restored and the current version restarted."""
    cam = CameraTool(remote, root)
    old = cam.info()
    prev = old.get("previous", "none")
    if prev == "none":
        raise FlashError(
            f"the camera at {remote} has no previous version to roll back to (it runs {old.get('current', 'none')})"
        )
    return _activate(cam, "rollback", old, prev, timeout_s)


def app_stats(remote: Remote, *, root: str = DEFAULT_ROOT, timeout_s: float = 60.0) -> dict[str, Any]:
    """Restart the app (SIGTERM makes it print its per-stage times) and return its last `stats:` record."""
    cam = CameraTool(remote, root)
    cam.info()
    offset = int(_keyvals(cam.checked("restart")).get("log_size", "0"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = cam.checked(f"log {offset}")
        records = [ln.removeprefix("stats: ") for ln in out.splitlines() if ln.startswith("stats: ")]
        if records:
            try:
                record = json.loads(records[-1])
            except ValueError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("stages", {}), dict):
                raise FlashError(f"the app on {remote} printed a malformed stats record: {records[-1][:120]}")
            return record
        time.sleep(1.0)
    raise FlashError(f"the app on {remote} printed no stats within {timeout_s:.0f} s")
