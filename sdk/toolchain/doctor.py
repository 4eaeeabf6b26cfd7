"""`splitsdk doctor`: what this machine has and lacks for each command, and the command that adds each.

Three kinds of things: host tools (the cross compiler of each deployable target, cmake, QEMU user and
system emulation; Debian packages), the target sysroots (`splitsdk toolchain install TARGET`), and the
optional Python packages (the wheel's extras: `pip install "splitsdk[all]"`). The extras' exact pins
are read from the installed distribution's own metadata, so a package at another version than the
tested one is reported too.

scalesim cannot be a dependency: it pulls in packages it does not need (numba, pandas, cython).
`splitsdk doctor --fix` installs it (and tqdm) with `pip --no-deps` into the running interpreter's
environment. A feature whose package is missing names the command that adds it (`missing_package`).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from splitsdk.target import Target, list_targets, load_target
from splitsdk.toolchain.sysroot import is_installed, sysroot_path
from splitsdk.toolchain.tools import provider

# Installed with `pip install --no-deps` by `splitsdk doctor --fix` (requirements-nodeps.txt holds the same pins).
NO_DEPS = {"scalesim": "3.0.0", "tqdm": "4.70.1"}
FIX = "splitsdk doctor --fix"

# Optional Python packages: distribution name -> (the wheel's extra that installs it, what needs it)
PYTHON_PACKAGES = {
    "tensorflow": ("ml", "Keras models: inspect, plan, convert"),
    "keras": ("ml", "Keras models"),
    "tf_keras": ("ml", "legacy .h5 / SavedModel models"),
    "ai-edge-litert": ("ml", "running TFLite models (convert's check, edge-sim)"),
    "ai-edge-quantizer": ("ml", "per-layer precision mixes (convert)"),
    "onnx": ("ml", "ONNX models"),
    "onnxruntime": ("ml", "ONNX models (reference outputs)"),
    "onnx2tf": ("ml", "converting ONNX models"),
    "scalesim": ("", "the SCALE-Sim profile backend"),
    "tqdm": ("", "scalesim"),
    "highspy": ("plan", "the exact planner (MILP)"),
    "scipy": ("plan", "the planner"),
    "matplotlib": ("plan", "report figures"),
    "psycopg": ("cloud", "the receiver's PostgreSQL results database"),
}


@dataclass(frozen=True)
class Check:
    """One thing a command may need: whether it is here (and its version or path), and how to add it."""

    kind: str  # "tool", "sysroot" or "python"
    name: str
    present: bool
    detail: str  # version, path, or what is wrong
    needed_for: str
    fix: str  # the command that adds (or repairs) it; "" when present and right


def install_command(dist: str) -> str:
    """The command that adds one of PYTHON_PACKAGES: its extra of the wheel, or `splitsdk doctor --fix`."""
    extra = PYTHON_PACKAGES[dist][0]
    return f'pip install "splitsdk[{extra}]"' if extra else FIX


def missing_package(dist: str, feature: str) -> str:
    """The one-line message of a feature whose optional package is not installed."""
    return f"{feature} needs the Python package {dist}: run `{install_command(dist)}`"


def _dpkg_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def missing_system_packages(target: Target) -> list[str]:
    """The Debian packages the target's build and emulation need that are not installed."""
    packages = target.toolchain.debian_packages if target.toolchain else ()
    return [p for p in packages if not _dpkg_installed(p)]


def deployable_targets() -> list[Target]:
    """The shipped targets with a [toolchain.sysroot] recipe (the edge app builds and runs for them)."""
    return [t for t in map(load_target, list_targets()) if t.toolchain is not None and t.toolchain.sysroot is not None]


def tool_checks() -> list[Check]:
    """The cross compiler of each deployable target, cmake, QEMU user and system emulation."""
    tools: dict[str, str] = {}
    for t in deployable_targets():
        assert t.toolchain is not None
        tools.setdefault(f"{t.toolchain.triple}-g++", f"building for {t.name}")
        if t.qemu is not None:
            tools.setdefault(t.qemu.user_binary, f"running {t.name} binaries (QEMU user mode)")
            if t.qemu.system_binary:
                tools.setdefault(t.qemu.system_binary, f"camera images of {t.name} (QEMU system mode)")
    tools["cmake"] = "building the edge app"
    checks = []
    for exe, why in tools.items():
        path = shutil.which(exe)
        fix = "" if path else f"sudo apt-get install {provider(exe)}"
        checks.append(Check("tool", exe, path is not None, path or "not found", why, fix))
    return checks


def sysroot_checks() -> list[Check]:
    """The cached sysroot of each deployable target."""
    checks = []
    for t in deployable_targets():
        here = is_installed(t)
        fix = "" if here else f"splitsdk toolchain install {t.name}"
        detail = str(sysroot_path(t)) if here else "not installed"
        checks.append(Check("sysroot", t.name, here, detail, f"build and emulate for {t.name}", fix))
    return checks


_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)")


def canonical(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_pins() -> dict[str, str]:
    """The exact pins of the installed splitsdk's extras (its own metadata), by canonical name."""
    try:
        requires = importlib.metadata.requires("splitsdk") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {canonical(m[1]): m[2] for r in requires if (m := _PIN.match(r))}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def python_checks(pins: dict[str, str] | None = None) -> list[Check]:
    """The optional Python packages, present at the tested version or not (`pins`: the installed extras')."""
    pins = {**(extra_pins() if pins is None else pins), **{canonical(k): v for k, v in NO_DEPS.items()}}
    checks = []
    for dist, (extra, why) in PYTHON_PACKAGES.items():
        version = _version(dist)
        pin = pins.get(canonical(dist))
        if version is None:
            checks.append(Check("python", dist, False, "not installed", why, install_command(dist)))
        elif pin is not None and version != pin:
            fix = f"pip install {dist}=={pin}" if extra else FIX
            checks.append(Check("python", dist, False, f"{version} (tested: {pin})", why, fix))
        else:
            checks.append(Check("python", dist, True, version, why, ""))
    return checks


def diagnose() -> list[Check]:
    return [*tool_checks(), *sysroot_checks(), *python_checks()]


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def fix_no_deps() -> list[str]:
    """Install the no-deps packages at their pins into this interpreter's environment; the command run."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *(f"{k}=={v}" for k, v in NO_DEPS.items())]
    subprocess.run(cmd, check=True)
    return cmd
