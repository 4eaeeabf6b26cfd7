"""Build the target sysroot the edge app compiles against and runs on (under QEMU), from Debian .debs.

DESIGN.md "Toolchain facts": Debian sid has the armhf/amd64 TFLite C++ library; bookworm has none.
We never touch the machine's apt state: a private apt configuration (its own sources list, an empty
dpkg status file so apt resolves the whole dependency closure, its own cache dirs) downloads the
recipe's packages, and `dpkg -x` unpacks each into the sysroot. Then the recipe's symlinks fix the
merged-/usr and `libstdc++.so` pitfalls. The result is cached under
`<cache>/sysroot/<target>-<recipe hash>` and reused; a half-built sysroot is never visible (built in a
temporary directory, then renamed).

This lives in the package (not only in host_tools/) because `splitsdk build` and `emulate` need it
from an installed wheel; host_tools/build_sysroot.py is the command-line wrapper `make setup` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from splitsdk.errors import ToolchainError
from splitsdk.target import SysrootRecipe, Target

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def cache_root() -> Path:
    """Where sysroots live: $SPLITSDK_SYSROOT_CACHE, else the checkout's .cache/, else ~/.cache/splitsdk.

    Not $SPLITSDK_CACHE: tests isolate that one per test, and a sysroot is a 70 MB download.
    """
    env = os.environ.get("SPLITSDK_SYSROOT_CACHE")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "codegen").is_dir():
        return checkout / ".cache" / "sysroot"
    return Path.home() / ".cache" / "splitsdk" / "sysroot"


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


def _recipe(target: Target) -> SysrootRecipe:
    if target.toolchain is None or target.toolchain.sysroot is None:
        raise ToolchainError(f"target '{target.name}' ({target.path}) has no [toolchain.sysroot] recipe")
    return target.toolchain.sysroot


def sysroot_path(target: Target) -> Path:
    """The cached sysroot directory for `target` (it may not exist yet)."""
    return cache_root() / f"{target.name}-{recipe_hash(_recipe(target))}"


def ensure_sysroot(target: Target, log: bool = False) -> Path:
    """Return the target's sysroot, building it first if it is not cached."""
    dest = sysroot_path(target)
    if (dest / ".complete").is_file():
        return dest
    recipe = _recipe(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        for deb in _download(recipe, work / "apt", log):
            _run(["dpkg", "-x", str(deb), str(root)], f"unpacking {deb.name}")
        _fix_links(root, recipe)
        (root / ".complete").write_text(json.dumps({"target": target.name, "recipe": recipe_hash(recipe)}) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    if log:
        print(f"sysroot: {dest}")
    return dest


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolchainError(f"{what}: '{cmd[0]}' is not installed (run `make setup`)") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ToolchainError(f"{what} failed: {' | '.join(tail)}")
    return proc.stdout


def _download(recipe: SysrootRecipe, apt: Path, log: bool) -> list[Path]:
    """Download the recipe's packages and their whole closure with a private apt configuration."""
    for sub in ("lists/partial", "archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").write_text("")
    # Signed by the Debian archive keys the build machine already trusts (debian-archive-keyring).
    source = f"deb [arch={recipe.arch} signed-by={KEYRING}] {recipe.mirror} {recipe.suite} main\n"
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
    flags = [f"-o{k}={v}" for k, v in opts.items()]
    if log:
        print(f"sysroot: resolving {', '.join(recipe.packages)} from {recipe.mirror} {recipe.suite} {recipe.arch}")
    _run(["apt-get", *flags, "-qq", "update"], "apt-get update (private config)")
    _run(
        ["apt-get", *flags, "-qq", "-y", "--download-only", "install", *recipe.packages],
        "apt-get --download-only",
    )
    debs = sorted((apt / "archives").glob("*.deb"))
    if not debs:
        raise ToolchainError(f"apt downloaded nothing for {recipe.packages}")
    if log:
        print(f"sysroot: unpacking {len(debs)} packages")
    return debs


def _fix_links(root: Path, recipe: SysrootRecipe) -> None:
    """Apply the recipe's symlinks (link path -> relative target), replacing nothing real."""
    for link, target in recipe.symlinks:
        path = root / link
        if path.is_symlink() or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
