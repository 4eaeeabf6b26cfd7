"""`splitsdk camera up IMAGE` / `camera down`: the camera image under qemu-system-arm, in the background.

User-mode networking: the guest is the target's [camera] guest_address (10.0.2.15), the host's
loopback is its [qemu] host_address (10.0.2.2) from inside, and the camera's SSH port is forwarded to
a loopback port of the host. `up` returns once dropbear answers (its banner is read, since QEMU's
forwarder accepts connections before the guest listens) and writes a state file (pid, port, console
log) that `down` reads. `-icount shift=N` makes the guest's clock count instructions (2^N ns each),
so times measured inside the guest are deterministic virtual times.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from splitsdk.camera.errors import CameraError
from splitsdk.camera.image import CameraImage, load_image
from splitsdk.camera.ssh import Remote
from splitsdk.target import load_target

STATE_FILE = "camera.json"


@dataclass(frozen=True)
class Camera:
    """A running emulated camera (the state file's content)."""

    image: str
    pid: int
    ssh_port: int
    console: str
    icount: int | None
    boot_s: float
    key: str

    def remote(self, known_hosts: Path | None = None) -> Remote:
        return Remote("127.0.0.1", "root", self.ssh_port, Path(self.key) if self.key else None, known_hosts)

    @property
    def host(self) -> str:
        return f"root@127.0.0.1:{self.ssh_port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state_path(image: CameraImage) -> Path:
    return image.root / "run" / STATE_FILE


def qemu_command(image: CameraImage, ssh_port: int, console: Path, icount: int | None) -> list[str]:
    target = load_target(image.target)
    assert target.qemu is not None
    cmd = [target.qemu.system_binary, "-M", image.machine, "-cpu", image.cpu, "-m", str(image.memory_mb), "-smp", "1"]
    cmd += ["-kernel", str(image.path("vmlinuz")), "-initrd", str(image.path("initrd.gz")), "-append", image.append]
    cmd += [
        "-drive",
        f"if=none,file={image.path('data.img')},format=raw,id=data",
        "-device",
        "virtio-blk-device,drive=data",
    ]
    cmd += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22", "-device", "virtio-net-device,netdev=n0"]
    cmd += ["-display", "none", "-monitor", "none", "-serial", f"file:{console}", "-no-reboot"]
    if icount is not None:
        cmd += ["-icount", f"shift={icount}"]
    return cmd


def _ssh_banner(port: int, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no console output)"


def load_state(image_dir: str | Path) -> Camera:
    path = state_path(load_image(image_dir))
    try:
        return Camera(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise CameraError(
            f"{path}: no such file (no camera started from {image_dir}; `splitsdk camera up` it)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise CameraError(f"{path}: unreadable camera state: {exc!r}") from None


def camera_up(
    image_dir: str | Path, ssh_port: int | None = None, icount: int | None = None, timeout_s: float = 240.0
) -> Camera:
    """Boot the image in the background and wait until its SSH server answers."""
    image = load_image(image_dir)
    state = state_path(image)
    if state.is_file():
        old = load_state(image_dir)
        if _alive(old.pid):
            raise CameraError(
                f"a camera from {image.root} is already running (pid {old.pid}, ssh port "
                f"{old.ssh_port}); `splitsdk camera down {image.root}` first"
            )
        state.unlink()
    state.parent.mkdir(exist_ok=True)
    port = ssh_port or _free_port()
    console = state.parent / "console.log"
    cmd = qemu_command(image, port, console, icount)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    except FileNotFoundError:
        raise CameraError(f"'{cmd[0]}' is not installed (run `make setup`)") from None
    deadline = start + timeout_s
    while not _ssh_banner(port):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise CameraError(f"qemu exited ({proc.returncode}) while booting {image.root}: {err or _tail(console)}")
        if time.monotonic() > deadline:
            _kill(proc.pid)
            raise CameraError(f"the camera did not answer SSH within {timeout_s:.0f} s; console: {_tail(console)}")
        time.sleep(0.5)
    if proc.stderr is not None:
        proc.stderr.close()
    key = str(image.path(image.ssh_key).resolve()) if image.ssh_key else ""
    cam = Camera(
        str(image.root.resolve()),
        proc.pid,
        port,
        str(console.resolve()),
        icount,
        round(time.monotonic() - start, 2),
        key,
    )
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(cam), indent=1, sort_keys=True) + "\n")
    os.replace(tmp, state)
    return cam


def _kill(pid: int, grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll
                if not _alive(pid):
                    return
            time.sleep(0.2)


def camera_down(image_dir: str | Path, timeout_s: float = 60.0) -> Camera:
    """Power the camera off cleanly (`poweroff` over SSH, so /data is unmounted), else stop QEMU."""
    cam = load_state(image_dir)
    if _alive(cam.pid):
        try:
            cam.remote(known_hosts=Path(os.devnull)).run("poweroff", timeout_s=20)
        except CameraError:
            pass
        deadline = time.monotonic() + timeout_s
        while _alive(cam.pid) and time.monotonic() < deadline:
            try:
                os.waitpid(cam.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.3)
        _kill(cam.pid)
    state_path(load_image(image_dir)).unlink(missing_ok=True)
    return cam
