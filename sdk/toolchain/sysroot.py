"""Build the target sysroot the edge app compiles against and runs on (under QEMU), from Debian .debs.

Toolchain facts: Debian sid has the armhf/amd64 TFLite C++ library; bookworm has none.
We never touch the machine's apt state: a private apt configuration (its own sources list, an empty
dpkg status file so apt resolves the whole dependency closure, its own cache dirs) downloads the
recipe's packages, and `dpkg -x` unpacks each into the sysroot. Then the recipe's symlinks fix the
merged-/usr and `libstdc++.so` pitfalls. The result is cached under `<cache>/sysroot/<target>-<recipe
hash>` (splitsdk.cache says where the cache is) and reused; a half-built sysroot is never visible
(built in a temporary directory, then renamed).

This lives in the package (not only in host_tools/) because `splitsdk build` and `emulate` need it
from an installed wheel; `splitsdk toolchain install TARGET` builds it ahead (`make setup` runs it).
The recipe pins each package's version (`name=version`): a mirror that moved on is an error, not a
different sysroot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from splitsdk.cache import cache_dir
from splitsdk.errors import ToolchainError, first_line
from splitsdk.target import SysrootRecipe, Target
from splitsdk.toolchain.tools import last_error_line, run_tool

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

Tick = Callable[[str, int, int], None]  # (stage, done, total), as splitsdk.cli.progress draws it


def sysroot_cache() -> Path:
    """Where sysroots live: `<splitsdk cache>/sysroot` (splitsdk.cache says where the cache is)."""
    return cache_dir("sysroot")


def recipe_hash(recipe: SysrootRecipe) -> str:
    """A short hash of everything that changes the sysroot's content."""
    data = json.dumps(
        {
            "mirror": recipe.mirror,
            "suite": recipe.suite,
            "arch": recipe.arch,
            "packages": sorted(recipe.packages),
            "symlinks": [list(s) for s in recipe.symlinks],
        },
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def _recipe(target: Target, extra: tuple[str, ...] = ()) -> SysrootRecipe:
    """The target's sysroot recipe; `extra` packages (a build's own dependencies) join its list."""
    if target.toolchain is None or target.toolchain.sysroot is None:
        raise ToolchainError(f"target '{target.name}' ({target.path}) has no [toolchain.sysroot] recipe")
    recipe = target.toolchain.sysroot
    return dataclasses.replace(recipe, packages=recipe.packages + extra) if extra else recipe


def sysroot_path(target: Target, extra: tuple[str, ...] = ()) -> Path:
    """The cached sysroot directory for `target` (it may not exist yet), with `extra` packages if given."""
    return sysroot_cache() / f"{target.name}-{recipe_hash(_recipe(target, extra))}"


@dataclass(frozen=True)
class Deb:
    """One Debian package of a sysroot's closure, as apt resolved it."""

    name: str
    version: str
    arch: str
    size: int  # bytes to download
    url: str


@dataclass(frozen=True)
class SysrootPlan:
    """What installing a target's sysroot downloads (the recipe's packages and their whole closure) and where."""

    target: str
    dest: Path
    pins: tuple[str, ...]  # the recipe's packages as written (`name=version`)
    debs: tuple[Deb, ...]

    @property
    def download_bytes(self) -> int:
        return sum(d.size for d in self.debs)


def is_installed(target: Target) -> bool:
    """Whether the target's sysroot is built and cached."""
    return (sysroot_path(target) / ".complete").is_file()


def plan_sysroot(target: Target) -> SysrootPlan:
    """Resolve the recipe against the mirror (apt update in a private configuration) without downloading."""
    with tempfile.TemporaryDirectory(prefix="splitsdk-apt-") as tmp:
        return _resolve(target, _apt_flags(_recipe(target), Path(tmp)))


def ensure_sysroot(
    target: Target, announce: bool = True, tick: Tick | None = None, extra: tuple[str, ...] = ()
) -> Path:
    """Return the target's sysroot, building it first if it is not cached.

    `extra` packages join the recipe's (a separate cached sysroot: a build's own dependencies, e.g. the
    libraries TFLite compiles against for `splitsdk toolchain tflite-neon`).

    `tick(stage, done, total)` follows the download (bytes) and the unpacking (packages). Building it
    says so on stderr in one line (unless the caller has, `announce=False`): it downloads into the cache.
    """
    dest = sysroot_path(target, extra)
    if (dest / ".complete").is_file():
        return dest
    recipe = _recipe(target, extra)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        flags = _apt_flags(recipe, work / "apt")
        plan = _resolve(target, flags, extra)
        if announce:
            print(
                f"splitsdk: installing the {target.name} sysroot ({len(plan.debs)} Debian packages, "
                f"{plan.download_bytes / 1e6:.1f} MB) into {dest} (`splitsdk toolchain install {target.name}` "
                "does this ahead)",
                file=sys.stderr,
            )
        debs = _download(plan, flags, work / "apt", tick)
        root = work / "root"
        root.mkdir()
        for i, deb in enumerate(debs):
            run_tool(["dpkg", "-x", str(deb), str(root)], f"unpacking {deb.name}")
            if tick:
                tick("unpack", i + 1, len(debs))
        _fix_links(root, recipe)
        (root / ".complete").write_text(json.dumps({"target": target.name, "recipe": recipe_hash(recipe)}) + "\n")
        if dest.exists() and not (dest / ".complete").is_file():
            shutil.rmtree(dest)  # a leftover of an interrupted older layout
        try:
            root.rename(dest)
        except OSError:
            if not (dest / ".complete").is_file():
                raise
            # another process finished the same sysroot first: keep its copy, ours goes with `tmp`
    return dest


def _apt_flags(recipe: SysrootRecipe, apt: Path, sources: bool = False) -> list[str]:
    """apt-get options for a private configuration under `apt` (its own sources, state, cache); with
    `sources`, a `deb-src` line too (`apt-get source` resolves and checks source packages)."""
    for sub in ("lists/partial", "archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").write_text("")
    # Signed by the Debian archive keys the build machine already trusts (debian-archive-keyring).
    source = f"deb [arch={recipe.arch} signed-by={KEYRING}] {recipe.mirror} {recipe.suite} main\n"
    if sources:
        source += f"deb-src [signed-by={KEYRING}] {recipe.mirror} {recipe.suite} main\n"
    (apt / "etc/sources.list").write_text(source)
    opts = {
        "Dir::Etc": str(apt / "etc"),
        "Dir::Etc::sourcelist": str(apt / "etc/sources.list"),
        "Dir::Etc::sourceparts": "-",
        "Dir::State": str(apt),
        "Dir::State::Lists": str(apt / "lists"),
        "Dir::State::status": str(apt / "status"),
        "Dir::Cache": str(apt),
        "Dir::Cache::archives": str(apt / "archives"),
        "APT::Architecture": recipe.arch,
        "APT::Architectures": recipe.arch,
        "APT::Install-Recommends": "false",
        "Acquire::Check-Valid-Until": "false",
        "Acquire::Languages": "none",
        "Debug::NoLocking": "true",
    }
    return [f"-o{k}={v}" for k, v in opts.items()]


_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+)")


def parse_uris(output: str) -> list[Deb]:
    """The packages of `apt-get --print-uris` output (`'url' name_version_arch.deb size hash` lines)."""
    debs = []
    for line in output.splitlines():
        m = _URI.match(line)
        if m is None:
            continue
        name, version, arch = unquote(m["file"]).removesuffix(".deb").split("_")
        debs.append(Deb(name, version, arch, int(m["size"]), m["url"]))
    return debs


def _resolve(target: Target, flags: list[str], extra: tuple[str, ...] = ()) -> SysrootPlan:
    """apt update, then the closure of the recipe's (pinned) packages with their versions and sizes."""
    recipe = _recipe(target, extra)
    where = f"{target.path} [toolchain.sysroot]"
    run_tool(["apt-get", *flags, "-qq", "update"], f"apt-get update for {where} ({recipe.mirror} {recipe.suite})")
    pins = recipe.packages

    def resolve(packages: tuple[str, ...]) -> str:
        cmd = ["apt-get", *flags, "-qq", "-y", "--print-uris", "install", *packages]
        return run_tool(cmd, f"resolving {where} packages")

    try:
        out = resolve(pins)
    except ToolchainError as exc:
        if "was not found" not in str(exc):
            raise
        # sid keeps only its current versions: once a tested one is gone, take the current one and say so
        pins = tuple(p.split("=", 1)[0] for p in recipe.packages)
        print(f"splitsdk: warning: {where}: {recipe.suite} no longer has the tested versions "
              f"({first_line(exc)}); installing its current {', '.join(pins)}", file=sys.stderr)
        out = resolve(pins)
    debs = parse_uris(out)
    if not debs:
        raise ToolchainError(f"{where}: apt resolved nothing for {', '.join(pins)}")
    return SysrootPlan(target.name, sysroot_path(target, extra), pins, tuple(debs))


@dataclass(frozen=True)
class SourceFile:
    """One file of a Debian source package (`apt-get source --print-uris`), its SHA-256 from the signed index."""

    name: str
    size: int
    sha256: str
    url: str


_SRC = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})")


def source_files(target: Target, package: str) -> tuple[SourceFile, ...]:
    """The tarballs of the Debian source package that builds `package` (a binary or source name, `=version`
    allowed) in the target's suite, resolved in a private apt configuration with a `deb-src` line."""
    recipe = _recipe(target)
    with tempfile.TemporaryDirectory(prefix="splitsdk-apt-") as tmp:
        apt = Path(tmp)
        flags = _apt_flags(recipe, apt, sources=True)
        where = f"{target.path} [toolchain.sysroot]"
        run_tool(["apt-get", *flags, "-qq", "update"], f"apt-get update with deb-src for {where} ({recipe.suite})")
        out = run_tool(["apt-get", *flags, "-qq", "--print-uris", "source", package], f"resolving source of {package}",
                       cwd=apt)
    files = tuple(SourceFile(unquote(m["file"]), int(m["size"]), m["sha"], m["url"])
                  for m in map(_SRC.match, out.splitlines()) if m is not None)
    tarballs = tuple(f for f in files if ".tar." in f.name)  # the .dsc only lists them (and 404s on some mirrors)
    if not tarballs:
        raise ToolchainError(f"{where}: apt found no source tarballs for {package} in {recipe.suite}")
    return tarballs


def download_source(target: Target, package: str, dest: Path) -> list[Path]:
    """Download the source tarballs of `package` into `dest` (kept: a second call finds them), each checked
    against the SHA-256 of the suite's signed Sources index; returns their paths, orig tarball first."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in sorted(source_files(target, package), key=lambda f: ".orig." not in f.name):
        path = dest / f.name
        if not (path.is_file() and _sha256(path) == f.sha256):
            part = dest / f".{f.name}.part"
            try:
                with urllib.request.urlopen(f.url, timeout=60) as resp, part.open("wb") as out:
                    shutil.copyfileobj(resp, out, 1 << 20)
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise ToolchainError(f"downloading {f.url} failed: {first_line(exc)}") from None
            if _sha256(part) != f.sha256:
                part.unlink()
                raise ToolchainError(f"{f.url}: SHA-256 differs from the {_recipe(target).suite} Sources index")
            part.rename(path)
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(plan: SysrootPlan, flags: list[str], apt: Path, tick: Tick | None) -> list[Path]:
    """Download the plan's packages with the private apt configuration (apt checks them against the signed
    index); `tick("download", bytes, total)` follows the files growing in apt's archive folders."""
    archives = apt / "archives"
    cmd = ["apt-get", *flags, "-qq", "-y", "--download-only", "install", *plan.pins]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        while proc.poll() is None:
            if tick:
                tick("download", min(_bytes_in(archives), plan.download_bytes), plan.download_bytes)
            time.sleep(0.2)
        if proc.returncode != 0:
            log.seek(0)
            raise ToolchainError(f"downloading the {plan.target} sysroot failed: {last_error_line(log.read())}")
    if tick:
        tick("download", plan.download_bytes, plan.download_bytes)
    debs = sorted(archives.glob("*.deb"))
    if len(debs) != len(plan.debs):
        got = f"{len(debs)} of the {len(plan.debs)}"
        raise ToolchainError(f"apt downloaded {got} packages of the {plan.target} sysroot")
    return debs


def _bytes_in(archives: Path) -> int:
    return sum(f.stat().st_size for d in (archives, archives / "partial") for f in d.glob("*.deb*") if f.is_file())


def _fix_links(root: Path, recipe: SysrootRecipe) -> None:
    """Apply the recipe's symlinks (link path -> relative target), replacing nothing real."""
    for link, target in recipe.symlinks:
        path = root / link
        if path.is_symlink() or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
