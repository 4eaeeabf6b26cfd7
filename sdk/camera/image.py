"""`splitsdk image [FIRMWARE] -o IMAGE`: a bootable camera image for qemu-system-arm's `virt` board.

IMAGE is a directory:

    vmlinuz        the kernel of the target's [camera] Debian suite (cortex-a7: bookworm's armhf armmp)
    initrd.gz      the root file system (initramfs): busybox, dropbear and its libraries, the kernel
                   modules the board needs (virtio-mmio, -net, -blk, ext4), /init, splitsdk-fw
    data.img       the persistent data area (ext4 on a virtio-blk disk): firmware versions under
                   /data/fw (with `current`/`previous` links), frames, logs, the SSH host key
    id_ed25519     the SSH key the image authorises for root (unless --authorized-key was given)
    image.json     how to boot it (machine, CPU, memory, kernel command line) and what it holds

The root file system is rebuilt at each boot from the initramfs, like a camera's read-only rootfs;
only /data persists. The firmware (if given) is preinstalled as the factory version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from splitsdk.camera import cpio
from splitsdk.camera.debs import Userland, ensure_userland, kernel_version
from splitsdk.camera.errors import CameraError
from splitsdk.camera.modules import load_order
from splitsdk.camera.payload import guest_file, prepare
from splitsdk.target import Camera, Target, camera_targets, load_target
from splitsdk.toolchain.build import needed_libraries
from splitsdk.toolchain.tools import run_tool

IMAGE_FILE = "image.json"
KERNEL_ARGS = "panic=-1 loglevel=4"  # after the target's console: reboot is power-off, quiet boot


@dataclass(frozen=True)
class CameraImage:
    """A built image (`image.json`)."""

    root: Path
    target: str
    kernel_version: str
    machine: str
    cpu: str
    memory_mb: int
    append: str
    firmware_version: str  # "" when built without firmware
    ssh_user: str
    ssh_key: str  # file name in root, or ""
    data_mb: int

    def path(self, name: str) -> Path:
        return self.root / name


def load_image(path: str | Path) -> CameraImage:
    root = Path(path)
    try:
        data = json.loads((root / IMAGE_FILE).read_text())
        return CameraImage(root=root, **data)
    except FileNotFoundError:
        raise CameraError(f"{root / IMAGE_FILE}: no such file (is {root} from `splitsdk image`?)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CameraError(f"{root / IMAGE_FILE}: unreadable: {exc!r}") from None


def _run(cmd: list[str], what: str) -> None:
    run_tool(cmd, what, error=CameraError)


def camera_of(target: Target) -> Camera:
    """The target's [camera] section (the descriptor checks it comes with [qemu] and a sysroot recipe)."""
    if target.camera is None:
        raise CameraError(f"target '{target.name}' ({target.path}) has no [camera] section to build an image from")
    return target.camera


def userland_for(target: Target) -> Userland:
    cam = camera_of(target)
    assert target.qemu is not None and target.toolchain is not None and target.toolchain.sysroot is not None
    sysroot = target.toolchain.sysroot
    return Userland(sysroot.mirror, cam.suite, sysroot.arch, target.qemu.kernel_package, cam.packages)


def default_target() -> str:
    """The target of an image built without firmware or --target: the one shipped camera target."""
    names = camera_targets()
    if len(names) != 1:
        raise CameraError(f"several targets can make a camera image ({', '.join(names)}): pass --target")
    return names[0]


def _rootfs(target: Target, land: Path, kver: str, authorized_keys: str, hostname: str) -> list[cpio.Entry]:
    """The initramfs entries: busybox, dropbear + libraries (in /lib), modules, /init, /etc."""
    assert target.qemu is not None and target.toolchain is not None
    cam = camera_of(target)
    e: list[cpio.Entry] = [
        cpio.directory(d)
        for d in (
            "bin",
            "sbin",
            "usr",
            "usr/bin",
            "usr/sbin",
            "usr/share",
            "lib",
            "lib/modules",
            "etc",
            "etc/init.d",
            "proc",
            "sys",
            "dev",
            "tmp",
            "run",
            "var",
            "var/run",
            "data",
            "mnt",
        )
    ]
    e += [cpio.directory("root", 0o700), cpio.directory("root/.ssh", 0o700)]
    e.append(cpio.file("root/.ssh/authorized_keys", authorized_keys.encode(), 0o600))
    e.append(cpio.file("init", guest_file("init"), 0o755))
    e.append(cpio.file("bin/busybox", (land / "bin/busybox").read_bytes(), 0o755))
    e.append(cpio.file("usr/sbin/dropbear", (land / "usr/sbin/dropbear").read_bytes(), 0o755))
    e.append(cpio.file("usr/bin/dropbearkey", (land / "usr/bin/dropbearkey").read_bytes(), 0o755))
    e.append(cpio.file("usr/sbin/splitsdk-fw", guest_file("fwctl"), 0o755))
    triple = target.toolchain.triple  # Debian's multiarch library folder
    libdirs = [land / "lib" / triple, land / "usr/lib" / triple]
    libdirs = [d for d in libdirs if d.is_dir()] or [land / "lib"]
    for lib in needed_libraries(land / "usr/sbin/dropbear", libdirs[0], libdirs[1:]):
        e.append(cpio.file(f"lib/{lib.name}", lib.resolve().read_bytes(), 0o755))
    modules = load_order(land / "lib/modules" / kver, [*target.qemu.modules, *cam.storage_modules])
    for ko in modules:
        e.append(cpio.file(f"lib/modules/{ko.name}", ko.read_bytes()))
    e.append(cpio.file("lib/modules/load.order", "".join(f"{ko.name}\n" for ko in modules).encode()))
    gw = target.qemu.host_address
    conf = f"CAMERA_HOSTNAME={hostname}\nCAMERA_ADDRESS={cam.guest_address}\nCAMERA_GATEWAY={gw}\n"
    e += [
        cpio.file("etc/camera.conf", conf.encode()),
        cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        cpio.file("etc/group", b"root:x:0:\n"),
        cpio.file("etc/shells", b"/bin/sh\n"),
        cpio.file("etc/hosts", f"127.0.0.1 localhost {hostname}\n{gw} host\n".encode()),
        cpio.file("etc/inittab", guest_file("inittab")),
        cpio.file("etc/init.d/rcK", guest_file("rcK"), 0o755),
        cpio.symlink("var/log", "/data/log"),
        cpio.symlink("var/spool", "/data/spool"),
    ]
    return e


def _data_disk(
    dest: Path, firmware: str | Path | None, server: str | None, frames: Path | None, size_mb: int, work: Path
) -> str:
    """mkfs.ext4 -d: the data area, with the factory firmware installed as `current`. Returns its version."""
    tree = work / "data"
    for sub in ("fw", "log", "spool/splitsdk-edge/frames", "etc/dropbear"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    version = ""
    if firmware is not None:
        payload = prepare(firmware, server)
        version = payload.version
        payload.write_tree(tree / "fw" / version)
        (tree / "fw/current").symlink_to(version)
    if frames is not None:
        for f in sorted(p for p in Path(frames).iterdir() if p.is_file()):
            shutil.copyfile(f, tree / "spool/splitsdk-edge/frames" / f.name)
    _run(
        # -m 0: no blocks reserved for root (the only user), so `df` tells flash the real free space
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "camdata", "-E", "root_owner=0:0", "-d", str(tree), str(dest)]
        + [f"{size_mb}M"],
        "mkfs.ext4 (data disk)",
    )
    return version


def build_image(
    out: str | Path,
    firmware: str | Path | None = None,
    *,
    target: str | None = None,
    authorized_key: Path | None = None,
    frames: Path | None = None,
    server: str | None = None,
    data_mb: int = 192,
    hostname: str = "camera",
    log: bool = False,
) -> CameraImage:
    """Build the camera image directory `out` (replaced whole).

    `server` points the factory firmware at a receiver (as the camera sees it, e.g. 10.0.2.2:PORT).
    """
    # the firmware carries the descriptor it was built for: a custom target file works too
    tgt = load_target(prepare(firmware).firmware.target_file if firmware is not None else target or default_target())
    land = ensure_userland(userland_for(tgt), log=log)
    kver = kernel_version(land)
    assert tgt.qemu is not None
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        img = work / "image"
        img.mkdir()
        key_name = ""
        if authorized_key is None:
            key_name = "id_ed25519"
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"splitsdk@{hostname}",
                    "-f",
                    str(img / key_name),
                ],
                "ssh-keygen",
            )
            authorized_key = img / f"{key_name}.pub"
        try:
            keys = Path(authorized_key).read_text()
        except OSError as exc:
            raise CameraError(f"{authorized_key}: cannot read the public key: {exc.strerror}") from None
        shutil.copyfile(land / "boot" / f"vmlinuz-{kver}", img / "vmlinuz")
        (img / "initrd.gz").write_bytes(cpio.initramfs(_rootfs(tgt, land, kver, keys, hostname)))
        version = _data_disk(img / "data.img", firmware, server, frames, data_mb, work)
        info = CameraImage(
            root=dest,
            target=tgt.name,
            kernel_version=kver,
            machine=tgt.qemu.system_machine,
            cpu=tgt.qemu.system_cpu,
            memory_mb=tgt.qemu.system_memory_mb,
            append=f"console={camera_of(tgt).console} {KERNEL_ARGS}",
            firmware_version=version,
            ssh_user="root",
            ssh_key=key_name,
            data_mb=data_mb,
        )
        record = {k: v for k, v in asdict(info).items() if k != "root"}
        (img / IMAGE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(img, dest)
    if log:
        print(f"camera image {dest}: kernel {kver}, data disk {data_mb} MB, firmware {version or 'none'}")
    return load_image(dest)
