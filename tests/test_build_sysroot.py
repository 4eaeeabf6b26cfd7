"""The target sysroots built from pinned Debian sid .debs (splitsdk.toolchain.sysroot, `splitsdk toolchain install`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from splitsdk.cli.main import main
from splitsdk.errors import ToolchainError
from splitsdk.target import list_targets, load_target
from splitsdk.toolchain.sysroot import Deb, ensure_sysroot, parse_uris, plan_sysroot, recipe_hash, sysroot_path

DEPLOYABLE = ["cortex-a7", "host"]


def test_recipe_hash_is_stable_and_names_the_cache_dir() -> None:
    target = load_target("cortex-a7")
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    h = recipe_hash(target.toolchain.sysroot)
    assert h == recipe_hash(target.toolchain.sysroot) and len(h) == 12
    assert sysroot_path(target).name == f"cortex-a7-{h}"


def test_every_recipe_pins_its_packages() -> None:
    for name in list_targets():
        target = load_target(name)
        if target.toolchain is not None and target.toolchain.sysroot is not None:
            for package in target.toolchain.sysroot.packages:
                assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+=[0-9][A-Za-z0-9.+~:-]*", package), f"{name}: {package}"


def test_apt_print_uris_lines_give_name_version_and_size() -> None:
    out = (
        "'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1.3.dfsg%2breally1.3.2-4_armhf.deb' "
        "zlib1g_1%3a1.3.dfsg+really1.3.2-4_armhf.deb 77364 MD5Sum:6299d79865a5302c886e2642d0a9846d\n"
        "W: a warning line\n"
        "'http://x/libstdc%2b%2b6_16.2.0-4_armhf.deb' libstdc++6_16.2.0-4_armhf.deb 662348 SHA256:00\n"
    )
    assert parse_uris(out) == [
        Deb("zlib1g", "1:1.3.dfsg+really1.3.2-4", "armhf", 77364,
            "http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1.3.dfsg%2breally1.3.2-4_armhf.deb"),
        Deb("libstdc++6", "16.2.0-4", "armhf", 662348, "http://x/libstdc%2b%2b6_16.2.0-4_armhf.deb"),
    ]


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
    # merged-/usr and the libstdc++ development link (the pitfalls each target's [toolchain.sysroot] symlinks fix)
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


@pytest.mark.requires_toolchain
def test_toolchain_install_says_what_it_downloads_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = load_target("cortex-a7")
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path))  # nothing installed there
    plan = plan_sysroot(target)
    resolved = {d.name: d.version for d in plan.debs}
    for pin in target.toolchain.sysroot.packages:  # the closure holds every pinned package at its pin
        name, version = pin.split("=")
        # (sid keeps only current versions: once a tested one is gone, the current one is installed, said in a line)
        assert resolved[name] == version if plan.pins == target.toolchain.sysroot.packages else name in resolved
    assert plan.dest == sysroot_path(target) and plan.dest.is_relative_to(tmp_path)
    assert 5e6 < plan.download_bytes < 100e6 and all(d.arch in ("armhf", "all") for d in plan.debs)

    assert main(["toolchain", "install", "--dry-run", "cortex-a7"]) == 0
    out = capsys.readouterr().out
    assert "pinned: libtensorflow-lite-dev=" in out
    assert f"{len(plan.debs)} packages, {plan.download_bytes / 1e6:.1f} MB download -> {plan.dest}" in out
    assert "libtensorflow-lite2.14.1" in out and not plan.dest.exists()


@pytest.mark.requires_toolchain
def test_toolchain_install_of_an_installed_sysroot_says_where_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    target = load_target("host")
    ensure_sysroot(target)
    assert main(["toolchain", "install", "host"]) == 0
    assert capsys.readouterr().out.startswith(f"host: sysroot installed at {sysroot_path(target)}\n")


def test_toolchain_install_of_a_target_without_recipe_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["toolchain", "install", "tpu"]) == ToolchainError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitsdk: error: target 'tpu'") and "no [toolchain.sysroot]" in err[0]


def test_a_tested_version_gone_from_sid_falls_back_to_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (Path(str(load_target("cortex-a7").path))).read_text()
    gone = re.sub(r'"libc6-dev=[^"]*"', '"libc6-dev=0.0-0"', text)
    assert gone != text
    (tmp_path / "gone.toml").write_text(gone)
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "cache"))
    plan = plan_sysroot(load_target(tmp_path / "gone.toml"))
    assert "libc6-dev" in plan.pins and "libc6-dev" in {d.name for d in plan.debs}
    err = capsys.readouterr().err
    assert "no longer has the tested versions" in err and "0.0-0" in err
