"""The shared C core built outside Python: strict warnings, sanitizers, C++ inclusion, libFuzzer.

These compile sdk/native with the system compilers (gcc, clang; CI installs clang through
host_tools/setup_system.sh) and run the self-checking driver tests/native/driver.c and the decoder
fuzz target tests/native/fuzz_decode.c for a bounded time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from splitsdk import wire
from splitsdk.native import source_files

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "sdk" / "native"
HERE = Path(__file__).resolve().parent / "native"
C_SOURCES = [str(p) for p in source_files() if p.suffix == ".c"]
STRICT = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", f"-I{NATIVE}"]
LIBS = ["-lzstd"]  # splitcodec.c links the system libzstd


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_sources_compile_clean_with_werror(cc: str, tmp_path: Path) -> None:
    for src in C_SOURCES:
        _run([cc, *STRICT, "-O2", "-Wshadow", "-Wstrict-prototypes", "-c", src, "-o", str(tmp_path / "x.o")])


def test_headers_include_from_cpp(tmp_path: Path) -> None:
    main = tmp_path / "use.cpp"
    main.write_text(
        '#include "splitpack.h"\n#include "splitframe.h"\n#include "splitcodec.h"\n'
        "int main() { return sp_packed_size(3, 3) == 2 && sp_compress_bound(8) > 8 ? 0 : 1; }\n"
    )
    objs = []
    for src in C_SOURCES:
        obj = tmp_path / (Path(src).stem + ".o")
        _run(["gcc", *STRICT, "-c", src, "-o", str(obj)])
        objs.append(str(obj))
    exe = tmp_path / "use"
    _run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{NATIVE}", str(main), *objs, *LIBS, "-o", str(exe)])
    _run([str(exe)])


def test_driver_under_asan_and_ubsan(tmp_path: Path) -> None:
    exe = tmp_path / "driver"
    _run(
        [
            "gcc",
            *STRICT,
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *C_SOURCES,
            str(HERE / "driver.c"),
            *LIBS,
            "-o",
            str(exe),
        ]
    )
    assert "all checks passed" in _run([str(exe)]).stdout


ARM_FLAGS = ["-O2", "-mcpu=cortex-a7", "-mfpu=neon-vfpv4", "-mfloat-abi=hard", "-static"]


@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
def test_arm_neon_build_matches_the_host_under_qemu(tmp_path: Path) -> None:
    """The edge's build (NEON kernels) passes the driver under qemu-arm and packs every b like the host."""
    host, arm = tmp_path / "driver", tmp_path / "driver-arm"
    _run(["gcc", *STRICT, "-O2", *C_SOURCES, str(HERE / "driver.c"), *LIBS, "-o", str(host)])
    _run(["arm-linux-gnueabihf-gcc", *STRICT, *ARM_FLAGS, *C_SOURCES, str(HERE / "driver.c"), *arm_zstd(tmp_path),
          "-o", str(arm)])
    assert "all checks passed" in _run(["qemu-arm", str(arm)]).stdout
    digests = _run(["qemu-arm", str(arm), "digest"]).stdout
    assert digests == _run([str(host), "digest"]).stdout
    assert [line.split()[1] for line in digests.splitlines()] == [str(b) for b in range(1, 9)]


def arm_zstd(tmp_path: Path) -> list[str]:
    """Compiler flags for the cortex-a7 sysroot's libzstd: its two headers (alone: the rest of the sysroot's
    include folder would shadow the cross compiler's libc) and its static library."""
    from splitsdk.target import load_target
    from splitsdk.toolchain.sysroot import sysroot_path

    root = sysroot_path(load_target("cortex-a7")) / "usr"
    include = tmp_path / "zstd-include"
    include.mkdir()
    for name in ("zstd.h", "zstd_errors.h"):
        (include / name).symlink_to(root / "include" / name)
    return [f"-I{include}", str(root / "lib" / "arm-linux-gnueabihf" / "libzstd.a")]


def test_decoder_fuzz_bounded(tmp_path: Path) -> None:
    """libFuzzer on sp_decode for ~20 s, seeded with valid frames of every type."""
    exe = tmp_path / "fuzz_decode"
    _run(
        [
            "clang",
            *STRICT[:-1],
            f"-I{NATIVE}",
            "-g",
            "-O1",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=all",
            *C_SOURCES,
            str(HERE / "fuzz_decode.c"),
            *LIBS,
            "-o",
            str(exe),
        ]
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    packed = wire.pack(np.arange(24, dtype=np.uint8) % 8, 3)
    seeds = [
        wire.Hello("cam-1", "ab" * 32),
        wire.Frame(
            1,
            2,
            (
                wire.WireTensor(wire.TensorKind.PACKED, 3, 0.5, 2, (2, 3, 4), packed),
                wire.WireTensor(wire.TensorKind.INT, 16, 1.0, 0, (3,), b"\0" * 6),
            ),
        ),
        wire.Frame(5, 6, (wire.deflate(wire.WireTensor(wire.TensorKind.PACKED, 3, 0.5, 2, (2, 3, 4), packed)),)),
        wire.Result(3, 0, b'{"top": [1]}'),
        wire.Error(4, 1, "bad"),
    ]
    for i, msg in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(wire.encode(msg))
    # -malloc_limit_mb catches what matters (an allocation sized from unchecked input); the RSS limit
    # only guards the run: ASan's shadow and quarantine alone reach ~1.2 GB on these machines, so 1 GB
    # made the run fail with no input at fault. Crash artifacts go to tmp_path, not the working folder.
    proc = subprocess.run(
        [str(exe), "-max_total_time=20", "-rss_limit_mb=4096", "-malloc_limit_mb=256", "-max_len=4096",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr


def test_extension_was_built_from_these_sources() -> None:
    from splitsdk._native import ffi, lib
    from splitsdk.native import source_hash

    assert ffi.string(lib.splitsdk_native_hash()).decode() == source_hash()
