"""`splitsdk toolchain tflite-neon`: the recipe really configures Debian's TFLite source for the target and
compiles a kernel with NEON (and without, for the baseline), read back from the objects' ELF attributes;
`build --tflite-root` ships the prefix's library and reports NEON from that library itself.

The full library build takes tens of minutes: CI compiles one kernel object of the configured tree each way
(the source package, ~56 MB, and the build sysroot are downloaded once into the splitsdk cache)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splitsdk.errors import ToolchainError
from splitsdk.target import load_target
from splitsdk.toolchain.build import (
    build_firmware,
    library_neon,
    load_project,
    runtime_warning,
    shipped_runtime,
)
from splitsdk.toolchain.sysroot import ensure_sysroot
from splitsdk.toolchain.tflite_neon import (
    build_cflags,
    build_targets,
    configure,
    object_target,
    plan_build,
    prefix_path,
)

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.slow]

KERNEL = "kernels/internal/optimized/neon_tensor_utils.cc"  # TFLite's NEON tensor utilities (LSTM, hybrid ops)


def _readelf_a(path: Path) -> str:
    return subprocess.run(["readelf", "-A", str(path)], capture_output=True, text=True, check=True).stdout


def _neon_instructions(path: Path) -> int:
    dis = subprocess.run(["arm-linux-gnueabihf-objdump", "-d", str(path)], capture_output=True, text=True,
                         check=True).stdout
    # Advanced SIMD loads and multiply-accumulates on q/d registers (`vld1.8 {d16-d17}`, `vmlal.s16 q8, ...`)
    return sum(1 for line in dis.splitlines() if "\tvld1." in line or "\tvmlal." in line or "\tvmull." in line)


@pytest.fixture(scope="module")
def kernel_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The kernel's object compiled by the recipe's configured tree, NEON on (True) and off (False)."""
    target = load_target("cortex-a7")
    out = {}
    for neon in (True, False):
        build = tmp_path_factory.mktemp(f"tflite-{'neon' if neon else 'baseline'}")
        conf = configure(target, build, neon=neon, system_ruy=True)
        obj = object_target(conf, KERNEL)
        build_targets(conf, [obj], jobs=2)
        out[neon] = build / obj
    return out


def test_the_neon_recipe_compiles_advanced_simd_and_the_baseline_does_not(kernel_objects: dict[bool, Path]) -> None:
    neon, base = _readelf_a(kernel_objects[True]), _readelf_a(kernel_objects[False])
    assert "Tag_Advanced_SIMD_arch: NEONv1 with Fused-MAC" in neon and "Tag_FP_arch: VFPv4" in neon
    assert "Tag_Advanced_SIMD_arch" not in base and "Tag_FP_arch: VFPv3-D16" in base
    # the NEON code paths compiled in (TFLite picks them by __ARM_NEON), the baseline has none
    assert _neon_instructions(kernel_objects[True]) > 100 and _neon_instructions(kernel_objects[False]) == 0


def test_library_neon_reads_the_librarys_own_attributes(kernel_objects: dict[bool, Path], tmp_path: Path) -> None:
    target = load_target("cortex-a7")
    for neon, obj in kernel_objects.items():
        lib = tmp_path / ("neon" if neon else "base") / "libtensorflow-lite.so.2.14.1"
        lib.parent.mkdir()
        subprocess.run(["arm-linux-gnueabihf-g++", "-shared", "-o", str(lib), str(obj)], check=True)
        found, how = library_neon(target, [lib])
        assert found is neon and how.startswith("libtensorflow-lite.so.2.14.1 ELF attributes: ")
        assert ("Advanced SIMD" in how and "no Advanced SIMD" not in how) is neon


def test_the_prefix_is_named_by_the_recipe() -> None:
    target = load_target("cortex-a7")
    neon, base = plan_build(target), plan_build(target, neon=False)
    assert prefix_path(neon).name.startswith("cortex-a7-neon-") and prefix_path(base).name.startswith(
        "cortex-a7-baseline-")
    assert neon.cflags == ("-mcpu=cortex-a7", "-mfpu=neon-vfpv4", "-mfloat-abi=hard")
    assert base.cflags == ("-mcpu=cortex-a7", "-mfpu=vfpv3-d16", "-mfloat-abi=hard")
    assert plan_build(target).name == neon.name  # the name depends on the recipe only (no path, no time)
    assert "-DTFLITE_ENABLE_RUY=ON" in neon.cmake_flags and "-DTFLITE_ENABLE_XNNPACK=OFF" in neon.cmake_flags
    with pytest.raises(ToolchainError, match="not an ARM target"):
        build_cflags(load_target("host"), True)


def test_tflite_root_ships_the_prefixs_library_and_reports_neon_from_it(
    base: Path, bundle: Path, tmp_path: Path
) -> None:
    from splitsdk.codegen import generate

    target = load_target("cortex-a7")
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    sysroot = ensure_sysroot(target)
    # a user's prefix: Debian's (baseline) library, marked so that the firmware's copy shows where it came from
    prefix = tmp_path / "prefix"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "include").symlink_to(sysroot / "usr/include")
    marker = tmp_path / "marker"
    marker.write_bytes(b"the prefix's library")
    lib = prefix / "lib/libtensorflow-lite.so.2.14.1"
    subprocess.run(["arm-linux-gnueabihf-objcopy", "--add-section", f".splitsdk_marker={marker}",
                    str(sysroot / target.toolchain.sysroot.lib_dir / lib.name), str(lib)], check=True)
    (prefix / "lib/libtensorflow-lite.so").symlink_to(lib.name)
    project = tmp_path / "proj"
    generate(bundle, "cortex-a7", project)
    fw = build_firmware(load_project(project), tmp_path / "fw", tflite_root=prefix, build_dir=tmp_path / "build")
    assert (fw.root / "lib" / lib.name).read_bytes() == lib.read_bytes()  # the prefix's, not the sysroot's
    assert fw.runtime is not None and fw.runtime.tflite == "custom" and fw.runtime.neon is False
    assert "no Advanced SIMD" in fw.runtime.how
    warning = runtime_warning(target, fw.runtime)
    assert "assumes TFLite 2.14.1 (NEON on" in warning and "splitsdk profile" in warning
    # a prefix `toolchain tflite-neon` installed says which version it built
    (prefix / "tflite-build.json").write_text('{"tflite_version": "2.14.1", "neon": true}\n')
    shipped = shipped_runtime(target, [lib], prefix)
    assert shipped.tflite == "2.14.1" and shipped.neon is False  # NEON from the library, not the record
    assert runtime_warning(target, shipped).endswith("(neon on vs off): measure it with `splitsdk profile`")


def test_cli_refuses_a_target_without_neon_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "splitsdk", "toolchain", "tflite-neon", "host"],
                          capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert "not an ARM target" in errors[0]
    bad = tmp_path / "not-ruy"
    bad.mkdir()
    proc = subprocess.run([sys.executable, "-m", "splitsdk", "toolchain", "tflite-neon", "cortex-a7",
                           "--ruy-source", str(bad)], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{bad}: not a ruy source tree" in proc.stderr
