"""Run a host tool (cmake, readelf, apt-get, dpkg, mkfs.ext4, ...) the one way the toolchain does.

A missing executable is named with the Debian package that provides it; a failing tool ends in one
ToolchainError line naming the step and the tool's own last error line.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from splitsdk.errors import ToolchainError

_ERROR = re.compile(r"\berror\b\s*:|^E: |\bfatal\b", re.IGNORECASE)
_CMAKE_ERROR = re.compile(r"^CMake Error\b")
_MAKE_NOISE = re.compile(r"^g?make(\[\d+\])?: \*\*\*")

# executable -> Debian package (host_tools/setup_system.sh installs them; `make setup` runs it)
_PACKAGES = {
    "apt-cache": "apt",
    "apt-get": "apt",
    "cmake": "cmake",
    "dpkg": "dpkg",
    "file": "file",
    "g++": "g++",
    "gcc": "gcc",
    "mkfs.ext4": "e2fsprogs",
    "qemu-arm": "qemu-user",
    "qemu-system-arm": "qemu-system-arm",
    "readelf": "binutils",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "strip": "binutils",
}
# a cross tool `<triple>-<tool>` comes from the triple's compiler or binutils package
_CROSS = {"g++": "g++", "gcc": "gcc", "cpp": "cpp", "readelf": "binutils", "strip": "binutils", "objdump": "binutils"}


def provider(executable: str) -> str:
    """The Debian package that installs `executable` (its own name when unknown)."""
    name = Path(executable).name
    if name in _PACKAGES:
        return _PACKAGES[name]
    triple, sep, tool = name.rpartition("-")
    if sep and triple.count("-") >= 2 and tool in _CROSS:
        return f"{_CROSS[tool]}-{triple}"
    return name


def missing_tool(executable: str, what: str = "") -> str:
    """The one-line message for a tool that is not installed."""
    where = f"{what}: " if what else ""
    return f"{where}'{executable}' is not installed (Debian package {provider(executable)}; `make setup` installs it)"


def last_error_line(output: str) -> str:
    """The line of a tool's output that says what went wrong.

    Its last `error:` line (compilers, dpkg, ld), apt's `E:` or a `CMake Error` with the line after it;
    else its last line. make's own `*** [..] Error 2` says nothing and is passed over.
    """
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not _MAKE_NOISE.search(ln)]
    found = ""
    for i, ln in enumerate(lines):
        if _CMAKE_ERROR.match(ln):
            found = " ".join(lines[i : i + 2])
        elif _ERROR.search(ln):
            found = ln
    return (found or (lines[-1] if lines else "(no output)"))[:300]


def run_tool(
    cmd: Sequence[str | Path],
    what: str,
    *,
    cwd: Path | None = None,
    timeout_s: float | None = None,
    error: type[ToolchainError] = ToolchainError,
) -> str:
    """Run `cmd` to completion and return its stdout; `error` (a ToolchainError) names `what` on failure."""
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise error(missing_tool(args[0], what)) from None
    except subprocess.TimeoutExpired:
        raise error(f"{what}: '{args[0]}' did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        line = last_error_line(f"{proc.stdout}\n{proc.stderr}")
        raise error(f"{what} failed (exit {proc.returncode}): {line}")
    return proc.stdout
