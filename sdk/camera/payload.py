"""The firmware as it travels to a camera: integrity checks, a checksum manifest, a tar stream.

A firmware directory from `splitsdk build` (firmware.json + bin/ lib/ share/ etc/) is checked on the
host before anything is sent: the files firmware.json promises exist with the promised sizes, the
binary and the libraries are complete ELF files for one machine, the model is a TFLite flatbuffer.
What passes gets a `.splitsdk/` folder (the SHA-256 manifest the camera re-checks after the copy,
the launcher, the camera-side tool) and a version name derived from the content.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from splitsdk.camera.errors import FlashError
from splitsdk.errors import SplitSdkError
from splitsdk.toolchain.build import FIRMWARE_FILE, Firmware, load_firmware

# e_machine values and the `uname -m` prefixes of the CPUs that execute them
MACHINES = {3: "x86", 40: "ARM", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}
UNAME = {40: ("arm",), 62: ("x86_64",), 183: ("aarch64", "arm64"), 3: ("i386", "i486", "i586", "i686")}
META = ".splitsdk"


def guest_file(name: str) -> bytes:
    """A camera-side script shipped in the package (splitsdk/camera/guest/)."""
    return (resources.files("splitsdk.camera") / "guest" / name).read_bytes()


@dataclass(frozen=True)
class ElfInfo:
    machine: int
    bits: int

    @property
    def machine_name(self) -> str:
        return MACHINES.get(self.machine, f"machine {self.machine}")

    def runs_on(self, uname_m: str) -> bool:
        return uname_m.startswith(UNAME.get(self.machine, ("\0",)))


def elf_info(path: Path) -> ElfInfo:
    """Read an ELF header and check the file is complete (program and section tables, loaded segments)."""
    data = path.read_bytes()
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise FlashError(f"{path}: not an ELF file")
    cls, endian = data[4], data[5]
    if cls not in (1, 2) or endian != 1:
        raise FlashError(f"{path}: unsupported ELF class/byte order ({cls}, {endian})")
    if cls == 1:
        (machine,) = struct.unpack_from("<H", data, 18)
        phoff, shoff = struct.unpack_from("<II", data, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 42)
        phdr, off_fmt = "<IIIIII", (1, 4)  # p_type, p_offset, ..., p_filesz at index 4
    else:
        if len(data) < 64:
            raise FlashError(f"{path}: truncated ELF header")
        (machine,) = struct.unpack_from("<H", data, 18)
        phoff, shoff = struct.unpack_from("<QQ", data, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
        phdr, off_fmt = "<IIQQQQ", (2, 5)  # p_type, p_flags, p_offset, ..., p_filesz at index 5
    size = len(data)
    if phoff + phnum * phentsize > size or shoff + shnum * shentsize > size:
        raise FlashError(f"{path}: truncated ELF file ({size} bytes; its tables end beyond that)")
    for i in range(phnum):
        fields = struct.unpack_from(phdr, data, phoff + i * phentsize)
        if fields[0] == 1 and fields[off_fmt[0]] + fields[off_fmt[1]] > size:  # PT_LOAD
            raise FlashError(f"{path}: truncated ELF file (segment {i} ends beyond its {size} bytes)")
    return ElfInfo(machine=machine, bits=32 if cls == 1 else 64)


@dataclass(frozen=True)
class Payload:
    """A checked firmware, ready to send: version name, ELF machine, and each file (path, mode, content)."""

    firmware: Firmware
    version: str
    elf: ElfInfo
    files: tuple[tuple[str, int, bytes], ...]  # sorted by path; config overrides applied

    @property
    def size(self) -> int:
        return sum(len(data) for _, _, data in self.files)

    def manifest_text(self) -> str:
        return "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n" for rel, _, data in self.files)

    def all_files(self) -> list[tuple[str, int, bytes]]:
        """The version directory on the camera: the firmware plus `.splitsdk/` (manifest, launcher, fwctl)."""
        meta = [
            (f"{META}/fwctl", 0o755, guest_file("fwctl")),
            (f"{META}/launch", 0o755, guest_file("launch")),
            (f"{META}/manifest.sha256", 0o644, self.manifest_text().encode()),
        ]
        return [*self.files, *meta]

    def tar(self) -> bytes:
        """The version directory as an uncompressed tar (deterministic: sorted, mtime 0, root-owned)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for rel, mode, data in self.all_files():
                info = tarfile.TarInfo(rel)
                info.size, info.mode, info.mtime = len(data), mode, 0
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def write_tree(self, dest: Path) -> None:
        """Write the version directory (as the camera would hold it) to `dest` (the image builder's path)."""
        for rel, mode, data in self.all_files():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
            (dest / rel).chmod(mode)


def _set_server(text: bytes, server: str) -> bytes:
    """The config file with its `server =` line replaced (the receiver as the camera reaches it)."""
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", server):
        raise FlashError(f"--server must be HOST:PORT, got '{server}'")
    return re.sub(rb"(?m)^server *=.*$", f"server = {server}".encode(), text)


def prepare(firmware_dir: str | Path, server: str | None = None) -> Payload:
    """Check a firmware directory and describe it for the camera; FlashError names what is wrong.

    `server` rewrites the receiver address in etc/*.conf; it is part of the content, so the same firmware
    pointed at another receiver is another version (versions on the camera are never edited in place).
    """
    try:
        fw = load_firmware(firmware_dir)
    except SplitSdkError as exc:
        raise FlashError(f"corrupt firmware: {exc}") from None
    root = fw.root
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    if any(p.relative_to(root).parts[0] == META for p in paths):
        raise FlashError(f"{root}: holds a {META}/ folder (reserved for the camera's copy)")
    total = sum(p.stat().st_size for p in paths if p != root / FIRMWARE_FILE)
    if not fw.binary.is_file():
        raise FlashError(f"corrupt firmware {root}: {fw.binary.relative_to(root)} is missing")
    if fw.binary.stat().st_size != fw.binary_bytes:
        raise FlashError(
            f"corrupt firmware {root}: {fw.binary.relative_to(root)} has {fw.binary.stat().st_size} bytes, "
            f"firmware.json says {fw.binary_bytes}"
        )
    for name in fw.libraries:
        if not (root / "lib" / name).is_file():
            raise FlashError(f"corrupt firmware {root}: lib/{name} (listed in firmware.json) is missing")
    if total != fw.firmware_bytes:
        raise FlashError(
            f"corrupt firmware {root}: its files hold {total} bytes, firmware.json says {fw.firmware_bytes}"
        )
    elf = elf_info(fw.binary)
    for name in fw.libraries:
        lib = elf_info(root / "lib" / name)
        if lib.machine != elf.machine:
            raise FlashError(
                f"corrupt firmware {root}: lib/{name} is {lib.machine_name}, the binary {elf.machine_name}"
            )
    model = fw.model.read_bytes() if fw.model.is_file() else b""
    if model[4:8] != b"TFL3":
        raise FlashError(f"corrupt firmware {root}: {fw.model.relative_to(root)} is not a TFLite model")
    files = []
    for p in paths:
        rel, data = str(p.relative_to(root)), p.read_bytes()
        if server is not None and p.parent == root / "etc" and p.suffix == ".conf":
            data = _set_server(data, server)
        files.append((rel, p.stat().st_mode & 0o777, data))
    digest = hashlib.sha256()
    for rel, _, data in files:
        digest.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    version = f"{fw.plan_sha256[:8]}-{digest.hexdigest()[:8]}"
    return Payload(firmware=fw, version=version, elf=elf, files=tuple(files))
