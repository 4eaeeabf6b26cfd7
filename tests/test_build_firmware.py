"""`splitsdk build`: the generated project compiles for cortex-a7 (ARM EABI5) and for the host, the
firmware carries what the camera needs, a user's own TFLite is accepted, and `verify` compares the
target's TFLite (under QEMU) with the host's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edge_app_helpers import (
    build_bundle,
    host_edge_outputs,
    read_frames,
    shared_firmware,
    write_frames,
)

from splitsdk.codec import encode
from splitsdk.codegen import generate
from splitsdk.errors import ToolchainError
from splitsdk.target import load_target
from splitsdk.toolchain.build import build_firmware, forget_stale_cache, load_firmware, load_project
from splitsdk.toolchain.emulate import run_app
from splitsdk.toolchain.sysroot import ensure_sysroot
from splitsdk.toolchain.verify import VerifyError, verify
from splitsdk.wire.bundle import load_bundle

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.requires_qemu, pytest.mark.slow]


def test_cortex_a7_firmware_is_an_arm_eabi5_executable(base: Path, bundle: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    desc = subprocess.run(["file", "-L", str(fw.binary)], capture_output=True, text=True).stdout
    assert "ELF 32-bit LSB" in desc and "ARM, EABI5" in desc and "stripped" in desc and "not stripped" not in desc
    assert "libtensorflow-lite.so.2.14.1" in fw.libraries and "libstdc++.so.6" in fw.libraries
    assert all((fw.root / "lib" / name).is_file() for name in fw.libraries)
    assert (fw.root / "etc/init.d/S90splitsdk-edge").stat().st_mode & 0o111
    assert (fw.root / "lib/systemd/system/splitsdk-edge.service").is_file()
    assert fw.model.read_bytes() == (bundle / "edge.tflite").read_bytes()
    on_disk = sum(p.stat().st_size for p in fw.root.rglob("*") if p.is_file() and p.name != "firmware.json")
    assert fw.firmware_bytes == on_disk and fw.binary_bytes == fw.binary.stat().st_size
    assert fw.plan_sha256 == load_bundle(bundle).plan_sha256


def test_host_firmware_matches_the_host_runtime(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    desc = subprocess.run(["file", "-L", str(fw.binary)], capture_output=True, text=True).stdout
    assert "x86-64" in desc
    frames = write_frames(tmp_path / "frames", 3, seed=5)
    dump = tmp_path / "dump"
    dump.mkdir()
    run = run_app(fw, ["--model", str(fw.model), "--frames", str(frames), "--offline", "--dump", str(dump)])
    assert run.returncode == 0, run.stderr
    assert run.counters["inferred"] == 3 and run.counters["sent"] == 0
    b = load_bundle(bundle)
    for name, image in read_frames(frames):
        ref = host_edge_outputs(b, image)[0]
        got = np.fromfile(dump / f"{name}.0.out", dtype=np.int8).reshape(ref.shape)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_verify_accepts_the_arm_build(base: Path, bundle: Path) -> None:
    checks = verify(shared_firmware(base, bundle, "cortex-a7"), bundle, samples=4)
    assert [c.crossing for c in checks] == ["edge_out_0"]
    assert all(c.ok and c.max_abs_diff <= 1 and c.dtype == "int8" for c in checks)


def test_verify_refuses_a_mismatch_naming_the_tensor(base: Path, bundle: Path, tmp_path: Path) -> None:
    # The host runs other weights with the same shapes: to verify, the target "mis-executes" the model.
    other = build_bundle(tmp_path / "other", seed=3)
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    shutil.copy(other / "edge.tflite", tampered / "edge.tflite")
    with pytest.raises(VerifyError, match=r"mis-executes.*crossing tensor 'edge_out_0' \(model output '[^']+'"):
        verify(shared_firmware(base, bundle, "cortex-a7"), tampered, samples=4)


def test_tflite_root_selects_a_users_tflite(base: Path, bundle: Path, tmp_path: Path) -> None:
    target = load_target("cortex-a7")
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    sysroot = ensure_sysroot(target)
    prefix = tmp_path / "my-tflite"  # a user's install prefix: include/ and lib/
    prefix.mkdir()
    (prefix / "include").symlink_to(sysroot / "usr/include")
    (prefix / "lib").mkdir()
    (prefix / "lib" / "libtensorflow-lite.so").symlink_to(
        sysroot / target.toolchain.sysroot.lib_dir / "libtensorflow-lite.so.2.14.1"
    )
    project = load_project(base / "proj-cortex-a7") if (base / "proj-cortex-a7").is_dir() else None
    if project is None:
        generate(bundle, "cortex-a7", tmp_path / "proj")
        project = load_project(tmp_path / "proj")
    build = tmp_path / "build"
    proc = subprocess.run(
        [
            "cmake",
            "-S",
            str(project.root),
            "-B",
            str(build),
            f"-DCMAKE_TOOLCHAIN_FILE={project.root / project.toolchain_file}",
            f"-DSPLITSDK_SYSROOT={sysroot}",
            f"-DTFLITE_ROOT={prefix}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"TFLite: {prefix}/lib/libtensorflow-lite.so" in proc.stdout

    # CMake keeps a TFLite root (and the libraries it found) across configures: a later build without
    # --tflite-root, or for a changed sysroot, drops that cache first instead of linking the old files
    assert not forget_stale_cache(build, sysroot, prefix)
    assert forget_stale_cache(build, sysroot, None) and not (build / "CMakeCache.txt").exists()
    again = subprocess.run(
        ["cmake", "-S", str(project.root), "-B", str(build),
         f"-DCMAKE_TOOLCHAIN_FILE={project.root / project.toolchain_file}", f"-DSPLITSDK_SYSROOT={sysroot}"],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert str(prefix) not in again.stdout and f"TFLite: {sysroot}" in again.stdout
    assert not forget_stale_cache(build, sysroot, None)
    assert forget_stale_cache(build, sysroot.with_name(sysroot.name + "-old"), None)


def test_build_cli_refuses_a_directory_that_is_not_a_project(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "build", str(tmp_path), "-o", str(tmp_path / "fw")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith("splitsdk: error: ") and "splitsdk-project.json" in errors[0]
    assert not (tmp_path / "fw").exists()


def test_firmware_json_round_trips(base: Path, bundle: Path) -> None:
    fw_dir = shared_firmware(base, bundle, "cortex-a7")
    data = json.loads((fw_dir / "firmware.json").read_text())
    assert data["target"] == "cortex-a7" and data["sanitized"] is False
    assert data.items() <= encode(load_firmware(fw_dir)).items()  # the file is the Firmware dataclass
    with pytest.raises(ToolchainError, match="firmware.json"):
        load_firmware(fw_dir / "bin")


def _dynamic_int4_bundle(root: Path, like: Path) -> Path:
    """A bundle whose edge model has int4 weights with float activations (ai-edge-quantizer's
    dynamic_wi4_afp32): Debian's armhf TFLite 2.14 returns NaN for it, the host runtime does not."""
    import keras
    import tensorflow as tf
    from ai_edge_quantizer import quantizer, recipe

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(64, name="head")(keras.layers.Flatten()(x)))
    root.mkdir()
    (root / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    qt = quantizer.Quantizer(str(root / "float.tflite"))
    qt.load_quantization_recipe(recipe.dynamic_wi4_afp32())
    qt.quantize().export_model(str(root / "edge.tflite"), overwrite=True)
    shutil.copy(like / "cloud.keras", root / "cloud.keras")  # not run by verify
    manifest = json.loads((like / "manifest.json").read_text())
    manifest["crossing"][0].update(tensor="head", shape=[64])
    manifest["plan_sha256"] = "4" * 64
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_verify_refuses_dynamic_int4_that_returns_nan_on_the_target(base: Path, bundle: Path, tmp_path: Path) -> None:
    int4 = _dynamic_int4_bundle(tmp_path / "int4", bundle)
    generate(int4, "cortex-a7", tmp_path / "proj")
    fw = build_firmware(tmp_path / "proj", tmp_path / "fw", build_dir=tmp_path / "build")
    with pytest.raises(VerifyError, match=r"crossing tensor 'head' \(model output '[^']+', float32\): \d+ NaN/Inf"):
        verify(fw.root, int4, samples=2)
