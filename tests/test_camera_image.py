"""Camera image and flash building blocks that need no boot: the initramfs writer, the kernel-module
closure, ELF checks, the firmware payload (refusals name the file), `--host` parsing, the CLI's errors.

A tiny fake firmware is made from real ELF files (the cross compiler's output and the host's own
binaries) so the checks run on real headers; the full firmware is tested on a booted camera in
test_camera_flash.py.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from splitsdk.camera import cpio
from splitsdk.camera.debs import Userland
from splitsdk.camera.errors import CameraError, FlashError
from splitsdk.camera.image import default_target, load_image, userland_for
from splitsdk.camera.modules import load_order
from splitsdk.camera.payload import elf_info, prepare
from splitsdk.camera.ssh import Remote
from splitsdk.target import builtin_targets_dir, load_target

TFLITE_STUB = b"\x1c\x00\x00\x00TFL3" + bytes(24)


def _parse_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    out, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = pos + 110
        name = data[name_at : name_at + namesize - 1].decode()
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, data[body_at : body_at + size]))
        pos = body_at + size + (-size % 4)


def test_initramfs_is_newc_root_owned_sorted_and_deterministic() -> None:
    entries = [
        cpio.file("init", b"#!/bin/sh\n", 0o755),
        cpio.directory("etc"),
        cpio.symlink("var/log", "/data/log"),
        cpio.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ]
    archive = cpio.initramfs(entries)
    assert archive == cpio.initramfs(list(reversed(entries)))  # same bytes whatever the order
    parsed = _parse_newc(gzip.decompress(archive))
    assert [n for n, _, _ in parsed] == ["etc", "etc/passwd", "init", "var/log"]
    by_name = {n: (m, d) for n, m, d in parsed}
    assert stat.S_ISDIR(by_name["etc"][0]) and by_name["init"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    assert stat.S_ISLNK(by_name["var/log"][0]) and by_name["var/log"][1] == b"/data/log"


def _module(folder: Path, name: str, depends: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.ko").write_bytes(b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=x\0")


def test_module_closure_loads_dependencies_first(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    _module(kernel / "fs", "ext4", "mbcache,jbd2,crc16")
    _module(kernel / "fs", "jbd2", "")
    _module(kernel / "fs", "mbcache", "")
    _module(kernel / "lib", "crc16", "")
    _module(kernel / "net", "virtio_net", "net_failover")
    _module(kernel / "net", "net_failover", "failover")
    _module(kernel / "net", "failover", "")
    order = [p.stem for p in load_order(tmp_path, ["virtio_net", "ext4"])]
    assert order == ["failover", "net_failover", "virtio_net", "crc16", "jbd2", "mbcache", "ext4"]
    with pytest.raises(CameraError, match=r"kernel module nope \(needed by ext4\)"):
        _module(kernel / "fs", "ext4", "nope")
        load_order(tmp_path, ["ext4"])


def test_cortex_a7_image_recipe_is_bookworm_armhf_armmp() -> None:
    u = userland_for(load_target("cortex-a7"))
    assert (u.suite, u.arch, u.kernel_package) == ("bookworm", "armhf", "linux-image-armmp")
    assert "dropbear-bin" in u.packages and "busybox-static" in u.packages
    assert u.key != Userland(u.mirror, "trixie", u.arch, u.kernel_package, u.packages).key
    with pytest.raises(CameraError, match=r"target 'host' \(.*host.toml\) has no \[camera\] section"):
        userland_for(load_target("host"))


def test_image_facts_come_from_the_target_file(tmp_path: Path) -> None:
    """Suite, packages, console, modules: a copied target with other [camera] values is another image recipe."""
    assert default_target() == "cortex-a7"  # the one shipped target with a [camera] section
    text = (builtin_targets_dir() / "cortex-a7.toml").read_text()
    mine = tmp_path / "my-cam.toml"
    mine.write_text(text.replace('suite = "bookworm"', 'suite = "trixie"').replace('"dropbear-bin"]', '"dropbear"]'))
    u = userland_for(load_target(mine))
    assert (u.suite, u.packages) == ("trixie", ("busybox-static", "dropbear"))
    cam = load_target(mine).camera
    assert cam is not None and cam.console == "ttyAMA0" and "ext4" in cam.storage_modules


@pytest.fixture(scope="module")
def arm_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real armhf executable (the cross compiler's), standing in for splitsdk-edge."""
    out = tmp_path_factory.mktemp("arm") / "hello"
    src = out.with_suffix(".c")
    src.write_text('#include <stdio.h>\nint main(void) { puts("usage: splitsdk-edge"); return 0; }\n')
    subprocess.run(["arm-linux-gnueabihf-gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def fake_firmware(root: Path, binary: Path, lib: Path) -> Path:
    """A firmware directory shaped like `splitsdk build`'s, around the given ELF files."""
    for sub in ("bin", "lib", "share/splitsdk-edge", "etc/init.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(binary, root / "bin/splitsdk-edge")
    (root / "bin/splitsdk-edge").chmod(0o755)
    shutil.copyfile(lib, root / "lib" / lib.name)
    (root / "share/splitsdk-edge/edge.tflite").write_bytes(TFLITE_STUB)
    (root / "etc/splitsdk-edge.conf").write_text("server = 127.0.0.1:7700\ndevice_id = cam\n")
    (root / "etc/init.d/S90splitsdk-edge").write_text("#!/bin/sh\n")
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "firmware.json"]
    record = {
        "target": "cortex-a7",
        "plan_sha256": "ab" * 32,
        "binary_bytes": (root / "bin/splitsdk-edge").stat().st_size,
        "firmware_bytes": sum(p.stat().st_size for p in files),
        "libraries": [lib.name],
        "sanitized": False,
    }
    (root / "firmware.json").write_text(json.dumps(record))
    return root


def test_elf_info_reads_machine_and_catches_truncation(arm_binary: Path, tmp_path: Path) -> None:
    arm = elf_info(arm_binary)
    assert (arm.machine_name, arm.bits) == ("ARM", 32) and arm.runs_on("armv7l") and not arm.runs_on("x86_64")
    host = elf_info(Path(sys.executable).resolve())
    assert host.machine_name == "x86-64" and host.runs_on("x86_64") and not host.runs_on("armv7l")
    cut = tmp_path / "cut"
    cut.write_bytes(arm_binary.read_bytes()[:1000])
    with pytest.raises(FlashError, match="truncated ELF"):
        elf_info(cut)
    (tmp_path / "text").write_text("#!/bin/sh\n")
    with pytest.raises(FlashError, match="not an ELF"):
        elf_info(tmp_path / "text")


def test_payload_is_deterministic_and_server_is_part_of_the_version(arm_binary: Path, tmp_path: Path) -> None:
    fw = fake_firmware(tmp_path / "fw", arm_binary, arm_binary.with_name("hello"))
    a, b = prepare(fw), prepare(fw)
    assert a.version == b.version and a.tar() == b.tar() and a.version.startswith("abababab-")
    moved = prepare(fw, server="10.0.2.2:7711")
    assert moved.version != a.version
    with tarfile.open(fileobj=io.BytesIO(moved.tar())) as tar:
        names = tar.getnames()
        conf = tar.extractfile("etc/splitsdk-edge.conf").read().decode()  # type: ignore[union-attr]
        manifest = tar.extractfile(".splitsdk/manifest.sha256").read().decode()  # type: ignore[union-attr]
    assert "server = 10.0.2.2:7711" in conf and "device_id = cam" in conf
    assert {".splitsdk/launch", ".splitsdk/fwctl", "bin/splitsdk-edge", "firmware.json"} <= set(names)
    assert "  bin/splitsdk-edge\n" in manifest and ".splitsdk/" not in manifest
    with pytest.raises(FlashError, match="--server must be HOST:PORT"):
        prepare(fw, server="10.0.2.2")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate_binary", r"bin/splitsdk-edge has \d+ bytes, firmware.json says"),
        ("drop_library", r"lib/hello \(listed in firmware.json\) is missing"),
        ("truncate_model", r"its files hold \d+ bytes, firmware.json says"),
        ("bad_model", r"share/splitsdk-edge/edge.tflite is not a TFLite model"),
        ("no_record", r"firmware.json: no such file"),
    ],
)
def test_corrupt_firmware_is_refused_on_the_host(arm_binary: Path, tmp_path: Path, damage: str, message: str) -> None:
    fw = fake_firmware(tmp_path / "fw", arm_binary, arm_binary.with_name("hello"))
    if damage == "truncate_binary":
        (fw / "bin/splitsdk-edge").write_bytes((fw / "bin/splitsdk-edge").read_bytes()[:-100])
    elif damage == "drop_library":
        (fw / "lib/hello").unlink()
    elif damage == "truncate_model":
        (fw / "share/splitsdk-edge/edge.tflite").write_bytes(TFLITE_STUB[:-4])
    elif damage == "bad_model":
        (fw / "share/splitsdk-edge/edge.tflite").write_bytes(bytes(len(TFLITE_STUB)))
    else:
        (fw / "firmware.json").unlink()
    with pytest.raises(FlashError, match=message):
        prepare(fw)


def test_mixed_architectures_in_one_firmware_are_refused(arm_binary: Path, tmp_path: Path) -> None:
    fw = fake_firmware(tmp_path / "fw", arm_binary, Path(sys.executable).resolve())
    with pytest.raises(FlashError, match=r"is x86-64, the binary ARM"):
        prepare(fw)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("root@127.0.0.1:2222", ("root", "127.0.0.1", 2222)),
        ("cam.local", ("root", "cam.local", 22)),
        ("admin@[::1]:22", ("admin", "::1", 22)),
    ],
)
def test_host_spec(spec: str, expected: tuple[str, str, int]) -> None:
    r = Remote.parse(spec)
    assert (r.user, r.host, r.port) == expected


@pytest.mark.parametrize("spec", ["root@", "a b", "root@host:0", "root@host:99999"])
def test_bad_host_spec(spec: str) -> None:
    with pytest.raises(CameraError, match="--host"):
        Remote.parse(spec)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitsdk", *args], capture_output=True, text=True, timeout=120)


def test_cli_errors_are_one_line(arm_binary: Path, tmp_path: Path) -> None:
    fw = fake_firmware(tmp_path / "fw", arm_binary, arm_binary.with_name("hello"))
    (fw / "lib/hello").unlink()
    for args, message in [
        (["flash", str(fw), "--host", "root@127.0.0.1:1"], "lib/hello (listed in firmware.json) is missing"),
        (["flash", "--rollback", "--host", "bad host"], "--host must be user@host[:port]"),
        (["camera", "up", str(tmp_path)], "image.json: no such file"),
        (["camera", "down", str(tmp_path)], "image.json: no such file"),
    ]:
        proc = _cli(*args)
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("splitsdk: error: "), proc.stderr
        assert message in proc.stderr


def test_unreachable_camera_is_a_clear_error(arm_binary: Path, tmp_path: Path) -> None:
    fw = fake_firmware(tmp_path / "fw", arm_binary, arm_binary.with_name("hello"))
    proc = _cli("flash", str(fw), "--host", "root@127.0.0.1:1", "--known-hosts", str(tmp_path / "kh"))
    assert proc.returncode == 3 and "cannot reach the camera at root@127.0.0.1:1" in proc.stderr


def test_load_image_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "image.json").write_text("{")
    with pytest.raises(CameraError, match=r"image.json: unreadable"):
        load_image(tmp_path)


def test_image_initramfs_is_deterministic_and_complete(tmp_path: Path) -> None:
    """Two builds with the same key give the same initramfs bytes; it holds what the camera boots with."""
    from splitsdk.camera.image import build_image

    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    a = build_image(tmp_path / "a", authorized_key=key.with_suffix(".pub"), data_mb=16)
    b = build_image(tmp_path / "b", authorized_key=key.with_suffix(".pub"), data_mb=16)
    assert a.path("initrd.gz").read_bytes() == b.path("initrd.gz").read_bytes()
    assert (a.ssh_key, a.firmware_version, a.machine, a.cpu, a.memory_mb) == ("", "", "virt", "cortex-a7", 512)
    entries = {n: (m, d) for n, m, d in _parse_newc(gzip.decompress(a.path("initrd.gz").read_bytes()))}
    for name in ("init", "bin/busybox", "usr/sbin/dropbear", "usr/sbin/splitsdk-fw", "lib/ld-linux-armhf.so.3"):
        assert name in entries and entries[name][0] & 0o111, name
    assert entries["root/.ssh/authorized_keys"] == (stat.S_IFREG | 0o600, key.with_suffix(".pub").read_bytes())
    order = entries["lib/modules/load.order"][1].decode().split()
    assert order.index("failover.ko") < order.index("net_failover.ko") < order.index("virtio_net.ko")
    assert order.index("jbd2.ko") < order.index("ext4.ko") and "virtio_mmio.ko" in order
    assert a.path("data.img").stat().st_size == 16 << 20
