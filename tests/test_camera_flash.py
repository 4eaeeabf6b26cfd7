"""The whole emulated camera: boot the image under qemu-system-arm (-icount), see the factory firmware's
results arrive at a real `splitsdk serve` on the host, flash a second version, roll back, and check the
refusals (corrupt bundle, wrong architecture, full disk, unreachable receiver) leave the running
version untouched. One camera boot serves the whole module; the firmware is issue 6's real build of a
small model (tests/edge_app_helpers.shared_firmware).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_app_helpers import shared_bundle, shared_dir, shared_firmware, write_frames
from test_camera_image import fake_firmware

from splitsdk.camera.errors import CameraError, FlashError
from splitsdk.camera.flash import CameraTool, app_stats, flash, wait_connected
from splitsdk.camera.image import build_image
from splitsdk.camera.payload import prepare
from splitsdk.camera.qemu import Camera, camera_down, camera_up
from splitsdk.camera.ssh import Remote
from splitsdk.toolchain.emulate import ReceiverProcess, free_port

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.requires_qemu, pytest.mark.slow, pytest.mark.timeout(900)]

ICOUNT = 0  # 1 ns per guest instruction: virtual ms = million instructions


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = shared_dir(tmp_path_factory)
    bundle = shared_bundle(base)
    return bundle, shared_firmware(base, bundle, "cortex-a7")


@pytest.fixture(scope="module")
def receiver(firmware: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    rx = ReceiverProcess(firmware[0], db=tmp_path_factory.mktemp("rx") / "results.sqlite")
    with rx:
        yield rx


@pytest.fixture(scope="module")
def camera(
    firmware: tuple[Path, Path], receiver: ReceiverProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Camera]:
    tmp = tmp_path_factory.mktemp("camera")
    frames = write_frames(tmp / "frames", 3, seed=3)
    image = build_image(tmp / "image", firmware[1], frames=frames, server=f"10.0.2.2:{receiver.port}")
    cam = camera_up(image.root, icount=ICOUNT, timeout_s=300)
    print(f"\ncamera booted in {cam.boot_s:.1f} s (wall, -icount shift={ICOUNT})")
    try:
        yield cam
    finally:
        try:
            camera_down(image.root)
        except CameraError:  # already down (a failed reboot test): nothing left to stop
            pass


@pytest.fixture(scope="module")
def remote(camera: Camera, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    return camera.remote(known_hosts=tmp_path_factory.mktemp("ssh") / "known_hosts")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitsdk", *args], capture_output=True, text=True, timeout=300)


def rows(receiver: ReceiverProcess, device: str) -> int:
    assert receiver.db is not None
    with sqlite3.connect(f"file:{receiver.db}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM results WHERE device_id = ?", (device,)).fetchone()[0])


def wait_rows(receiver: ReceiverProcess, device: str, at_least: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while (n := rows(receiver, device)) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
    return n


def variant(src: Path, dest: Path, device_id: str) -> Path:
    """A second firmware version: the same build with another device id in its config."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, symlinks=True)
    conf = dest / "etc/splitsdk-edge.conf"
    conf.write_text(
        "".join(
            f"device_id = {device_id}\n" if ln.startswith("device_id") else ln
            for ln in conf.read_text().splitlines(keepends=True)
        )
    )
    record = json.loads((dest / "firmware.json").read_text())
    record["firmware_bytes"] = sum(
        p.stat().st_size for p in dest.rglob("*") if p.is_file() and p.name != "firmware.json"
    )
    (dest / "firmware.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return dest


def state(remote: Remote) -> dict[str, str]:
    return CameraTool(remote, "/data/fw").info()


def test_factory_firmware_sends_results_to_the_host_receiver(
    camera: Camera, remote: Remote, receiver: ReceiverProcess
) -> None:
    info = state(remote)
    assert info["arch"] == "armv7l" and info["current"] != "none" and info["previous"] == "none"
    assert info["running"] != "none"
    assert wait_rows(receiver, "camera-0", 3) >= 3  # every frame stored by the real receiver


def test_flash_a_second_version_then_roll_back(
    firmware: tuple[Path, Path], camera: Camera, remote: Remote, receiver: ReceiverProcess, tmp_path: Path
) -> None:
    factory = state(remote)["current"]
    server = f"10.0.2.2:{receiver.port}"
    v2 = variant(firmware[1], tmp_path / "fw-v2", "camera-v2")
    result = flash(v2, remote, server=server)
    assert result.version == prepare(v2, server).version != factory and result.previous == factory
    assert any(ln.startswith("result seq=") for ln in result.log)
    assert wait_rows(receiver, "camera-v2", 2) >= 2
    proc = cli(
        "flash", "--rollback", "--host", camera.host, "--key", camera.key, "--known-hosts", str(remote.known_hosts)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"running {factory} (previous {result.version}); first result after" in proc.stdout
    before = rows(receiver, "camera-v2")
    time.sleep(3)
    assert rows(receiver, "camera-v2") == before  # v2 is stopped; the factory version runs
    info = state(remote)
    assert info["current"] == factory and info["running"] != "none"


def unchanged(remote: Remote, before: dict[str, str]) -> None:
    after = state(remote)
    assert {k: after[k] for k in ("current", "previous", "running")} == {
        k: before[k] for k in ("current", "previous", "running")
    }


def test_corrupt_bundle_is_refused_before_anything_is_switched(
    firmware: tuple[Path, Path], remote: Remote, tmp_path: Path
) -> None:
    before = state(remote)
    bad = variant(firmware[1], tmp_path / "fw-bad", "camera-bad")
    lib = bad / "lib/libtensorflow-lite.so.2.14.1"
    lib.write_bytes(lib.read_bytes()[: lib.stat().st_size // 2])
    with pytest.raises(FlashError, match="corrupt firmware"):
        flash(bad, remote)
    unchanged(remote, before)
    # a copy damaged on the way: the camera's own SHA-256 check refuses it and removes the staging folder
    payload = prepare(variant(firmware[1], tmp_path / "fw-v3", "camera-v3"))
    tar = bytearray(payload.tar())
    at = bytes(tar).index(b"\x7fELF", 1024) + 4096
    tar[at] ^= 0xFF
    cam = CameraTool(remote, "/data/fw")
    assert cam.fw(f"receive {payload.version}", bytes(tar))[0] == 0
    rc, _, err = cam.fw(f"check {payload.version}")
    assert rc == 3 and "checksum mismatch" in err
    assert payload.version not in cam.checked("info") + remote.check("ls -a /data/fw")
    unchanged(remote, before)


def test_wrong_architecture_is_refused(remote: Remote, tmp_path: Path) -> None:
    before = state(remote)
    host_elf = Path(sys.executable).resolve()
    x86 = fake_firmware(tmp_path / "fw-x86", host_elf, host_elf)
    with pytest.raises(
        FlashError, match=r"64-bit x86-64 executable but the camera .* is armv7l: refusing; the camera keeps"
    ):
        flash(x86, remote)
    unchanged(remote, before)


def test_full_disk_is_refused_with_the_old_version_running(
    firmware: tuple[Path, Path], remote: Remote, tmp_path: Path
) -> None:
    before = state(remote)
    v4 = variant(firmware[1], tmp_path / "fw-v4", "camera-v4")
    free_kb = int(before["avail_kb"])
    remote.check(f"fallocate -l {(free_kb - 2048) * 1024} /data/fill && sync")
    try:
        with pytest.raises(FlashError, match=r"has \d+\.\d MB free, firmware .* needs .*: refusing"):
            flash(v4, remote)
        unchanged(remote, before)
        # the copy itself running out of space (fwctl receive): a clear error, the staging folder removed
        payload = prepare(v4)
        rc, _, err = CameraTool(remote, "/data/fw").fw(f"receive {payload.version}", payload.tar())
        assert rc == 4 and "no space left" in err
        assert payload.version not in remote.check("ls -a /data/fw")
    finally:
        remote.check("rm -f /data/fill; sync")
    unchanged(remote, before)


def test_unreachable_receiver_rolls_back_to_the_running_version(
    firmware: tuple[Path, Path], remote: Remote, receiver: ReceiverProcess, tmp_path: Path
) -> None:
    before = state(remote)
    v5 = variant(firmware[1], tmp_path / "fw-v5", "camera-v5")
    with pytest.raises(
        FlashError, match=r"cannot reach the receiver .*rolled back: the camera runs " + before["current"]
    ):
        flash(v5, remote, server=f"10.0.2.2:{free_port()}", timeout_s=20)
    after = state(remote)
    assert (after["current"], after["previous"]) == (before["current"], before["previous"])
    assert after["running"] != "none"
    wait_connected(CameraTool(remote, "/data/fw"), 0, 60)  # the old version still reaches its receiver
    assert "camera-v5" not in remote.check("cat /data/fw/*/etc/splitsdk-edge.conf")


def test_icount_per_stage_virtual_times(camera: Camera, remote: Remote) -> None:
    time.sleep(3)  # let a few frames through
    first = app_stats(remote)["stages"]
    proc = cli("camera", "stats", camera.image, "--json")  # the CLI path: restart, read the stats line
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    assert isinstance(first, dict) and {"capture", "infer", "pack", "send_result"} <= set(stages)
    assert all(s["n"] >= 1 and s["mean_ms"] > 0 for s in stages.values())
    print(f"\nper-stage virtual times (ms, -icount shift={ICOUNT}), two runs:")
    for name in sorted(stages):
        a, b = first[name], stages[name]
        print(
            f"  {name:12s} n={a['n']:<4} min={a['min_ms']:.3f} mean={a['mean_ms']:.3f} | "
            f"n={b['n']:<4} min={b['min_ms']:.3f} mean={b['mean_ms']:.3f}"
        )
    assert state(remote)["running"] != "none"  # restarted after printing


def test_installed_firmware_persists_across_a_reboot(camera: Camera, remote: Remote, receiver: ReceiverProcess) -> None:
    before = state(remote)
    camera_down(camera.image)  # poweroff: the data disk is unmounted cleanly
    again = camera_up(camera.image, icount=ICOUNT, timeout_s=300)
    print(f"\nsecond boot (host key already on the data disk) in {again.boot_s:.1f} s")
    tool = CameraTool(again.remote(known_hosts=remote.known_hosts), "/data/fw")
    after = tool.info()
    assert (after["current"], after["previous"]) == (before["current"], before["previous"])
    # started at boot from its init script: a new start banner after the old run, then results
    deadline = time.monotonic() + 120
    log = ""
    while time.monotonic() < deadline:
        log = tool.checked(f"log {before['log_size']}")
        if "): plan " in log and "\nresult seq=" in log.rsplit("): plan ", 1)[1]:
            break
        time.sleep(1)
    assert "): plan " in log and "\nresult seq=" in log.rsplit("): plan ", 1)[1], log[-500:]
