"""The target sysroots `make setup` builds from Debian sid .debs (codegen.sysroot, host_tools/build_sysroot.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from splitsdk.errors import ToolchainError
from splitsdk.target import load_target
from splitsdk.toolchain.sysroot import ensure_sysroot, recipe_hash, sysroot_path

DEPLOYABLE = ["cortex-a7", "host"]


def test_recipe_hash_is_stable_and_names_the_cache_dir() -> None:
    target = load_target("cortex-a7")
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    h = recipe_hash(target.toolchain.sysroot)
    assert h == recipe_hash(target.toolchain.sysroot) and len(h) == 12
    assert sysroot_path(target).name == f"cortex-a7-{h}"


def test_target_without_recipe_is_refused() -> None:
    with pytest.raises(ToolchainError, match="tpu.*no \\[toolchain.sysroot\\]"):
        ensure_sysroot(load_target("tpu"))


@pytest.mark.requires_toolchain
@pytest.mark.parametrize("name", DEPLOYABLE)
def test_sysroot_has_tflite_and_the_link_fixes(name: str) -> None:
    target = load_target(name)
    root = ensure_sysroot(target)  # cached by `make setup`; builds it (~10 s download) otherwise
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    libdir = root / target.toolchain.sysroot.lib_dir
    assert (root / "usr/include/tensorflow/lite/interpreter.h").is_file()
    assert (libdir / "libtensorflow-lite.so").exists()
    # merged-/usr and the libstdc++ development link (DESIGN.md pitfalls)
    assert (root / "lib").is_symlink() and Path(root / "lib").resolve() == (root / "usr/lib").resolve()
    assert (libdir / "libstdc++.so").resolve() == (libdir / "libstdc++.so.6").resolve()
    # the sysroot's libstdc++ is newer than GCC 12's: the reason the toolchain file searches it first
    strings = subprocess.run(["strings", str(libdir / "libstdc++.so.6")], capture_output=True, text=True).stdout
    assert "GLIBCXX_3.4.32" in strings


@pytest.mark.requires_toolchain
def test_ensure_sysroot_reuses_the_cache() -> None:
    target = load_target("cortex-a7")
    first = ensure_sysroot(target)
    stamp = (first / ".complete").stat().st_mtime_ns
    assert ensure_sysroot(target) == first
    assert (first / ".complete").stat().st_mtime_ns == stamp
