"""`pip install "splitsdk[all]"` gives a working tool: the wheel, installed into a fresh venv, runs every stage.

The wheel is built from this checkout, tagged abi3, and installed with its extras into a new virtual
environment; the commands then run from a folder outside the source tree, so the installed package (not the
checkout) is what runs. Installing TensorFlow and the rest from pip's cache takes ~4.5 minutes, so the
fresh venv sees the development venv's already-installed packages through a `.pth` file naming a folder of
links to them: pip finds the pinned extras satisfied there and installs the rest. splitsdk itself, onnx2tf
(so the [ml] extra really installs it) and the packages `splitsdk doctor --fix` installs (scalesim, tqdm)
are left out of that folder, so doctor finds those missing and `--fix` really installs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from splitsdk.target import load_target
from splitsdk.toolchain.doctor import NO_DEPS, canonical
from splitsdk.toolchain.sysroot import is_installed

import model_zoo

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = {"splitsdk", "onnx2tf", *NO_DEPS}  # canonical names the fresh venv must install itself


def _run(cmd: list[str | Path], cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, env=env)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def _deps_view(dest: Path) -> Path:
    """Links to the development venv's installed packages, without splitsdk and the no-deps packages."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in site.iterdir():
        name = canonical(entry.name.split("-")[0].removesuffix(".py"))
        if entry.suffix == ".pth" or name in LEFT_OUT or entry.name.startswith("__editable__"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", out, ROOT], ROOT)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("venv")
    env = base / "env"
    _run([sys.executable, "-m", "venv", env], base)
    python = env / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base).stdout.strip())
    (site / "splitsdk_test_deps.pth").write_text(f"{_deps_view(base / 'deps')}\n")
    _run([python, "-m", "pip", "install", "-q", f"{wheel}[all]"], base)
    return env


def test_the_wheel_is_abi3_and_declares_its_runtime(wheel: Path) -> None:
    assert wheel.name == "splitsdk-0.1.0-cp311-abi3-linux_x86_64.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read("splitsdk-0.1.0.dist-info/METADATA").decode()
    assert "splitsdk/_native.abi3.so" in names
    assert {"splitsdk/targets/cortex-a7.toml", "splitsdk/toolchain/doctor.py", "splitsdk/cli/cmd_toolchain.py"} <= set(
        names
    )
    requires = [ln.removeprefix("Requires-Dist: ") for ln in meta.splitlines() if ln.startswith("Requires-Dist: ")]
    assert any(r.startswith("cffi") and "extra" not in r for r in requires)
    assert any(r.startswith("cryptography") and "extra" not in r for r in requires)
    assert 'tensorflow==2.21.0; extra == "ml"' in requires
    assert "Provides-Extra: all" in meta


def test_the_installed_wheel_runs_every_stage(venv: Path, tmp_path: Path) -> None:
    bin_ = venv / "bin"
    splitsdk = bin_ / "splitsdk"
    where = _run([bin_ / "python", "-c", "import splitsdk; print(splitsdk.__file__)"], tmp_path).stdout
    assert where.startswith(str(venv)), where  # the wheel, not the checkout

    # doctor: the no-deps packages are missing and say how to add them; --fix installs them here
    checks = {c["name"]: c for c in json.loads(_run([splitsdk, "doctor", "--json"], tmp_path).stdout)}
    assert not checks["scalesim"]["present"] and checks["scalesim"]["fix"] == "splitsdk doctor --fix"
    assert checks["tensorflow"]["present"] and checks["tensorflow"]["detail"] == "2.21.0"
    _run([splitsdk, "doctor", "--fix"], tmp_path)
    checks = {c["name"]: c for c in json.loads(_run([splitsdk, "doctor", "--json"], tmp_path).stdout)}
    assert all(checks[name]["present"] for name in NO_DEPS), checks
    for module in ("scalesim", "onnx2tf"):  # onnx2tf: a pinned dependency of the [ml] extra
        found = _run([bin_ / "python", "-c", f"import {module}; print({module}.__file__)"], tmp_path).stdout
        assert found.startswith(str(venv)), found
    assert "Python packages:" in _run([splitsdk, "doctor"], tmp_path).stdout

    # certs needs cryptography and cffi's backend, both runtime dependencies now
    _run([splitsdk, "certs", "--out", tmp_path / "certs", "--camera", "cam-1"], tmp_path)
    assert (tmp_path / "certs" / "ca.pem").is_file()

    model = tmp_path / "chain.keras"
    model_zoo.chain().save(model)
    assert "gap" in _run([splitsdk, "inspect", model, "--target", "host"], tmp_path).stdout
    _run([splitsdk, "plan", model, "--target", "host", "--uplink", "3", "-o", tmp_path / "plan.json"], tmp_path)
    _run([splitsdk, "convert", tmp_path / "plan.json", "--model", model, "-o", tmp_path / "bundle"], tmp_path)
    targets = ["host"] + (["cortex-a7"] if is_installed(load_target("cortex-a7")) else [])
    for target in targets:
        _run([splitsdk, "toolchain", "install", "--no-progress", target], tmp_path)
        app, fw = tmp_path / f"app-{target}", tmp_path / f"fw-{target}"
        _run([splitsdk, "generate", "--target", target, "--bundle", tmp_path / "bundle", "-o", app], tmp_path)
        _run([splitsdk, "build", app, "-o", fw], tmp_path)
        firmware = json.loads((fw / "firmware.json").read_text())
        assert firmware["target"] == target and (fw / "bin").is_dir()
