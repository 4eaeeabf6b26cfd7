"""`splitsdk inspect` end to end through the console script, and the installable wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import model_zoo

REPO = Path(__file__).resolve().parent.parent


def _splitsdk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitsdk", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_inspect_json_has_the_contract_keys(tmp_path: Path) -> None:
    model_zoo.two_head().save(tmp_path / "two_head.keras")
    proc = _splitsdk("inspect", str(tmp_path / "two_head.keras"), "--json", "--plot", str(tmp_path / "t.png"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["model"]["name"] == "two_head" and out["model"]["input_elements"] == 192
    assert [lay["name"] for lay in out["layers"]] == ["c1", "c2", "head_b", "head_a"]
    assert set(out["layers"][0]) >= {"name", "op", "output_shape", "weights", "macs"}
    splits = out["splits"]
    assert splits[0]["index"] == 0 and splits[0]["crossing"][0]["tensor"] == "img"
    assert splits[-1]["crossing"] == [] and splits[-1]["edge_layers"] == ["c1", "c2", "head_b", "head_a"]
    s2 = splits[2]
    assert set(s2) >= {"index", "edge_layers", "crossing", "transmit_elements", "edge_weights",
                       "peak_activation_elements"}
    assert [(c["tensor"], c["shape"], c["elements"]) for c in s2["crossing"]] == [
        ("c1", [4, 4, 4], 64), ("c2", [2, 2, 8], 32)]
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_inspect_table_and_sensitivity(tmp_path: Path) -> None:
    import numpy as np

    model_zoo.chain().save(tmp_path / "chain.keras")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((4, 8, 8, 3), np.float32))
    proc = _splitsdk("inspect", str(tmp_path / "chain.keras"), "--calib", str(tmp_path / "calib.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "relu1[8x8x4]" in proc.stdout and "per-layer sensitivity" in proc.stdout
    assert "RANDOM" not in proc.stdout + proc.stderr


def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(REPO)], capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(wheels.glob("splitsdk-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    pip = env_dir / "bin" / "pip"
    proc = subprocess.run([str(pip), "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the light runtime deps the CLI needs to start, from this environment's own wheels cache / index
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    proc = subprocess.run([str(env_dir / "bin" / "splitsdk"), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert "inspect" in proc.stdout
    # the package data travelled: target descriptors are inside the wheel
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "splitsdk/targets/cortex-a7.toml" in names
    assert "splitsdk/py.typed" in names
