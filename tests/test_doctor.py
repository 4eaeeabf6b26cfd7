"""`splitsdk doctor`: present and missing tools, sysroots and Python packages, each with the command that adds it;
the wheel's pins (pyproject.toml) equal the tested set (requirements*.txt); a missing package is one line."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from splitsdk.cli.main import main
from splitsdk.convert.onnx_split import onnx_to_saved_model
from splitsdk.errors import ConvertError, ProfileError
from splitsdk.profile.scalesim_backend import _scalesim_version
from splitsdk.toolchain.doctor import NO_DEPS, PYTHON_PACKAGES, canonical, missing_package, python_checks

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by canonical name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not pinned"
            pins[canonical(req.name)] = spec.version
    return pins


def _project() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


def test_every_pyproject_pin_is_the_tested_one() -> None:
    tested = _pins(ROOT / "requirements.txt")
    project = _project()
    for group, reqs in project.items():
        for req in reqs:
            if canonical(req.name) == "splitsdk":
                continue
            version = tested.get(canonical(req.name))
            assert version is not None, f"pyproject [{group or 'dependencies'}] {req} is not in requirements.txt"
            assert req.specifier.contains(version), f"requirements.txt pins {req.name}=={version}, pyproject: {req}"
            if group:  # the extras pin exactly
                assert str(req.specifier) == f"=={version}", f"pyproject [{group}] {req}: pin it to =={version}"
    # `all` is every other extra; the runtime part of requirements.txt is all in the wheel's metadata
    assert project["all"] == [Requirement(f"splitsdk[{','.join(sorted(set(project) - {'', 'all'}))}]")]
    shipped = {canonical(r.name) for reqs in project.values() for r in reqs}
    dev = {"pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "types-networkx", "build", "jsonschema", "tomli-w"}
    assert set(tested) - shipped == dev


def test_no_deps_pins_are_requirements_nodeps() -> None:
    assert _pins(ROOT / "requirements-nodeps.txt") == {canonical(k): v for k, v in NO_DEPS.items()}


def test_doctor_lists_tools_sysroots_and_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPLITSDK_CACHE", str(tmp_path))  # an empty cache: no sysroot installed
    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert {"arm-linux-gnueabihf-g++", "cmake", "qemu-arm", "qemu-system-arm", "cortex-a7", "host"} <= set(checks)
    assert set(PYTHON_PACKAGES) <= set(checks)
    for name in ("cortex-a7", "host"):
        assert checks[name]["kind"] == "sysroot" and not checks[name]["present"]
        assert checks[name]["fix"] == f"splitsdk toolchain install {name}"
    assert checks["cmake"]["present"] and checks["cmake"]["fix"] == ""
    assert checks["tensorflow"]["present"] and checks["tensorflow"]["detail"] == "2.21.0"
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "-- cortex-a7" in text and "-> splitsdk toolchain install cortex-a7" in text and "2 missing" in text


def test_a_package_missing_or_at_another_version_says_how_to_fix_it() -> None:
    checks = {c.name: c for c in python_checks({"keras": "0.1", "tensorflow": "2.21.0"})}
    assert not checks["keras"].present and checks["keras"].fix == "pip install keras==0.1"
    assert checks["keras"].detail.endswith("(tested: 0.1)")
    assert checks["tensorflow"].present


def test_a_feature_whose_package_is_missing_names_the_command_that_adds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert missing_package("highspy", "x") == 'x needs the Python package highspy: run `pip install "splitsdk[plan]"`'
    monkeypatch.setitem(sys.modules, "onnx2tf", None)  # as if not installed
    with pytest.raises(ConvertError) as info:
        onnx_to_saved_model(Path("m.onnx"), Path("."), np.zeros((1, 4), np.float32))
    assert str(info.value) == 'm.onnx: converting an ONNX model needs the Python package onnx2tf: run ' \
        '`pip install "splitsdk[ml]"`'
    monkeypatch.setitem(sys.modules, "scalesim", None)
    with pytest.raises(ProfileError) as info2:
        _scalesim_version()
    assert str(info2.value) == "the SCALE-Sim backend needs the Python package scalesim: run `splitsdk doctor --fix`"
