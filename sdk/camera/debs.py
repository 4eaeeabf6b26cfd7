"""Fetch the camera image's Debian packages (kernel, busybox, dropbear) without touching apt's state.

Like the sysroot builder (splitsdk.toolchain.sysroot), a private apt configuration (own sources list,
own lists and archive dirs, an empty dpkg status) talks to the Debian mirror. Two differences: the
camera's userland is the target's [camera] suite (cortex-a7: bookworm, the stable release the armmp
kernel comes from), and the kernel is fetched alone with `apt-get download` (its dependency closure,
initramfs-tools and friends, is of no use to an initramfs we write ourselves), while the [camera]
packages (busybox, dropbear) come with their closure.
Everything is unpacked under `<cache>/camera/<suite>-<arch>-<hash>/root` and reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from splitsdk.cache import cache_dir
from splitsdk.errors import ToolchainError
from splitsdk.toolchain.sysroot import KEYRING
from splitsdk.toolchain.tools import run_tool as _run


@dataclass(frozen=True)
class Userland:
    """What the camera image is made from: a Debian suite/arch, the kernel metapackage, the user packages."""

    mirror: str
    suite: str
    arch: str
    kernel_package: str
    packages: tuple[str, ...]

    @property
    def key(self) -> str:
        data = json.dumps([self.mirror, self.suite, self.arch, self.kernel_package, sorted(self.packages)])
        return f"{self.suite}-{self.arch}-{hashlib.sha256(data.encode()).hexdigest()[:10]}"


def camera_cache() -> Path:
    """Beside the sysroots: `<splitsdk cache>/camera`."""
    return cache_dir("camera")


def _apt_flags(u: Userland, apt: Path) -> list[str]:
    for sub in ("lists/partial", "archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").write_text("")
    (apt / "etc/sources.list").write_text(f"deb [arch={u.arch} signed-by={KEYRING}] {u.mirror} {u.suite} main\n")
    opts = {
        "Dir::Etc": apt / "etc",
        "Dir::Etc::sourcelist": apt / "etc/sources.list",
        "Dir::Etc::sourceparts": "-",
        "Dir::State": apt,
        "Dir::State::Lists": apt / "lists",
        "Dir::State::status": apt / "status",
        "Dir::Cache": apt,
        "Dir::Cache::archives": apt / "archives",
        "APT::Architecture": u.arch,
        "APT::Architectures": u.arch,
        "APT::Install-Recommends": "false",
        "APT::Sandbox::User": "root",
        "Acquire::Check-Valid-Until": "false",
        "Acquire::Languages": "none",
        "Debug::NoLocking": "true",
    }
    return [f"-o{k}={v}" for k, v in opts.items()]


def kernel_version(root: Path) -> str:
    """The single kernel release unpacked in `root` (the name of its lib/modules folder)."""
    found = sorted(p.name for p in (root / "lib/modules").glob("*") if p.is_dir())
    if len(found) != 1:
        raise ToolchainError(f"{root}: expected one kernel in lib/modules, found {found}")
    return found[0]


def ensure_userland(u: Userland, log: bool = False) -> Path:
    """The unpacked packages of `u` (a root directory), downloading them on first use."""
    dest = camera_cache() / u.key
    if (dest / ".complete").is_file():
        return dest / "root"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        flags = _apt_flags(u, work / "apt")
        if log:
            print(f"camera image: fetching {u.kernel_package} and {', '.join(u.packages)} ({u.suite} {u.arch})")
        _run(["apt-get", *flags, "-qq", "update"], "apt-get update (private config)")
        deps = _run(["apt-cache", *flags, "depends", u.kernel_package], f"apt-cache depends {u.kernel_package}")
        real = re.findall(r"Depends: (linux-image-\S+)", deps)
        kernel = real[0] if real else u.kernel_package
        _run(["apt-get", *flags, "-qq", "-y", "--download-only", "install", *u.packages], "apt-get --download-only")
        _run(["apt-get", *flags, "-qq", "download", kernel], f"apt-get download {kernel}", cwd=work / "apt/archives")
        root = work / "root"
        root.mkdir()
        for deb in sorted((work / "apt/archives").glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(root)], f"unpacking {deb.name}")
        kernel_version(root)  # exactly one kernel, or say so now
        out = work / "out"
        out.mkdir()
        root.rename(out / "root")
        (out / ".complete").write_text(json.dumps({"kernel": kernel}) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
    return dest / "root"
