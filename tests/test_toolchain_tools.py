"""The one way host tools run (splitsdk.toolchain.tools) and the one cache directory (splitsdk.cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from splitsdk.cache import cache_dir, cache_root
from splitsdk.camera.errors import CameraError
from splitsdk.errors import ToolchainError
from splitsdk.target import load_target
from splitsdk.toolchain.sysroot import sysroot_path
from splitsdk.toolchain.tools import last_error_line, provider, run_tool


def test_run_tool_returns_stdout_and_runs_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("")
    assert run_tool(["ls"], "listing", cwd=tmp_path) == "here.txt\n"


def test_a_failing_tool_is_one_line_with_its_own_error() -> None:
    script = "import sys; print('compiling'); print('x.c:3: error: bad', file=sys.stderr); print('done'); sys.exit(3)"
    with pytest.raises(ToolchainError) as info:
        run_tool([sys.executable, "-c", script], "compiling x")
    assert str(info.value) == "compiling x failed (exit 3): x.c:3: error: bad"


def test_a_missing_tool_names_its_package() -> None:
    with pytest.raises(ToolchainError, match=r"^readelf of x: 'no-such-tool-xyz' is not installed"):
        run_tool(["no-such-tool-xyz", "-l"], "readelf of x")
    with pytest.raises(CameraError, match="Debian package e2fsprogs"):
        run_tool(["/nonexistent/mkfs.ext4"], "data disk", error=CameraError)


def test_a_tool_that_hangs_is_stopped() -> None:
    with pytest.raises(ToolchainError, match="did not finish within 1 s"):
        run_tool([sys.executable, "-c", "import time; time.sleep(30)"], "waiting", timeout_s=1)


@pytest.mark.parametrize(
    ("tool", "package"),
    [
        ("cmake", "cmake"),
        ("mkfs.ext4", "e2fsprogs"),
        ("arm-linux-gnueabihf-g++", "g++-arm-linux-gnueabihf"),
        ("arm-linux-gnueabihf-strip", "binutils-arm-linux-gnueabihf"),
        ("/usr/bin/readelf", "binutils"),
        ("qemu-arm", "qemu-user"),
        ("frobnicate", "frobnicate"),
    ],
)
def test_provider(tool: str, package: str) -> None:
    assert provider(tool) == package


@pytest.mark.parametrize(
    ("output", "line"),
    [
        ("a\nb: error: first\nc\nd: error: last\ntail\n", "d: error: last"),
        ("E: Unable to locate package nope\n", "E: Unable to locate package nope"),
        ("-- ok\nCMake Error at CMakeLists.txt:3 (message):\n  no sysroot\n\n-- Configuring incomplete\n",
         "CMake Error at CMakeLists.txt:3 (message): no sysroot"),
        ("x.c:1: error: y\ngmake[2]: *** [x.o] Error 1\ngmake: *** [all] Error 2\n", "x.c:1: error: y"),
        ("just\nsome output\n", "some output"),
        ("", "(no output)"),
    ],
)
def test_last_error_line(output: str, line: str) -> None:
    assert last_error_line(output) == line


def test_one_cache_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "c" and cache_dir("sysroot") == tmp_path / "c" / "sysroot"
    assert sysroot_path(load_target("cortex-a7")).parent == tmp_path / "c" / "sysroot"
    monkeypatch.delenv("SPLITSDK_CACHE")
    assert cache_root() == tmp_path / "xdg" / "splitsdk"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "splitsdk"


def test_tests_share_the_downloads_but_not_the_rest() -> None:
    # conftest gives each test its own cache, linking the sysroots and camera userlands `make setup` fetched
    root = cache_root()
    assert (root / "sysroot").is_symlink() and (root / "camera").is_symlink()
    assert not (root / "sensitivity").exists()
