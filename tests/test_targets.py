"""Target descriptors: the shipped files load with the figures their sources give; bad files fail clearly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_profile_graphs import toy_graph

from splitsdk.errors import TargetError
from splitsdk.profile import build_profile
from splitsdk.target import builtin_targets_dir, list_targets, load_target

INVALID = sorted((Path(__file__).parent / "data" / "invalid_targets").glob("*.toml"))
SHIPPED = ["cloud-cpu", "cloud-gpu", "cortex-a7", "eyeriss", "host", "tpu"]


def test_list_targets_names_every_shipped_file() -> None:
    assert list_targets() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_target_loads_and_runs_float(name: str) -> None:
    t = load_target(name)
    assert t.name == name and t.description and t.role in ("edge", "cloud", "any")
    assert t.device.app_memory_mb <= t.device.memory_mb
    assert t.quant.mode_for(32, 32).weights == 32
    assert (t.device.systolic is not None) == (t.device.kind == "systolic")


def test_eyeriss_is_the_papers_table1_edge() -> None:
    t = load_target("eyeriss")
    arr = t.device.systolic
    assert arr is not None and (arr.rows, arr.cols, arr.pes) == (12, 14, 168)
    assert arr.ifmap_sram_kb + arr.filter_sram_kb + arr.ofmap_sram_kb == t.device.onchip_kb == 192
    assert t.device.memory_mb == 4096 and t.device.bandwidth_gbps == 1.0
    # 34 GOPs = 168 PEs x 200 MHz (one op per MAC)
    assert arr.pes * t.device.clock_mhz * 1e6 / 1e9 == pytest.approx(t.device.peak_gops, rel=0.02)
    assert t.device.bytes_per_cycle == pytest.approx(5.0)
    assert t.quant.candidate_bits == (2, 4, 6, 8) and t.quant.packed_storage
    assert t.quant.storage_bits(4) == 4


def test_tpu_is_the_papers_table1_cloud_at_16_bits() -> None:
    t = load_target("tpu")
    assert t.role == "cloud" and t.device.onchip_kb == 28 * 1024 and t.device.memory_mb == 16 * 1024
    assert t.device.bandwidth_gbps == 13.0 and t.device.peak_gops == 96000.0
    assert (t.quant.native.weights, t.quant.native.activations) == (16, 16)


def test_cortex_a7_runtime_toolchain_and_qemu() -> None:
    t = load_target("cortex-a7")
    d, q = t.device, t.quant
    assert (d.kind, d.cores, d.clock_mhz, d.memory_mb) == ("cpu", 1, 900.0, 512)
    assert 0 < d.app_memory_mb < d.memory_mb
    assert set(q.precisions) == {"int8", "int16x8", "dynamic_int8", "float32"}
    assert "int4_weights" in q.unsupported and q.runtime.endswith("2.14.1")
    assert q.emulated_bits == (2, 4, 6) and q.storage_bits(4) == 8  # int4 lives on the int8 grid
    assert q.runs_int16_activations and 16 in q.activation_bit_options
    tc = t.toolchain
    assert tc is not None and tc.triple == "arm-linux-gnueabihf"
    assert tc.cflags == ("-mcpu=cortex-a7", "-mfpu=neon-vfpv4", "-mfloat-abi=hard")
    assert tc.sysroot is not None and tc.sysroot.suite == "sid" and tc.sysroot.arch == "armhf"
    assert "libtensorflow-lite-dev" in [p.split("=")[0] for p in tc.sysroot.packages]
    assert tc.sysroot.tflite_version == "2.14.1"
    assert ("lib", "usr/lib") in tc.sysroot.symlinks
    assert t.qemu is not None and (t.qemu.user_binary, t.qemu.user_cpu) == ("qemu-arm", "cortex-a7")
    assert (t.qemu.system_machine, t.qemu.system_memory_mb) == ("virt", 512)


def test_host_target_is_x86_64() -> None:
    t = load_target("host")
    assert t.toolchain is not None and t.toolchain.triple.startswith("x86_64")
    assert t.qemu is None and t.family == load_target("cortex-a7").family


@pytest.mark.parametrize(
    "name,wbits,abits,mode",
    [
        ("cortex-a7", 8, 8, "int8"),
        ("cortex-a7", 2, 4, "int8"),  # sub-8-bit runs as int8
        ("cortex-a7", 8, 16, "int16x8"),  # not the faster dynamic-range mode: what a converter emits
        ("cortex-a7", 8, 32, "dynamic_int8"),
        ("cortex-a7", 32, 8, "float32"),  # float weights: the layer runs in float
        ("eyeriss", 4, 16, "int16"),
        ("cloud-cpu", 8, 16, "float32"),  # no int16 kernels there
        ("cloud-gpu", 16, 16, "float16"),
    ],
)
def test_mode_for_picks_the_runtime_mode(name: str, wbits: int, abits: int, mode: str) -> None:
    assert load_target(name).quant.mode_for(wbits, abits).name == mode


def test_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(TargetError, match=r"unknown target 'nope' \(known: cloud-cpu, .*tpu\)"):
        load_target("nope")
    with pytest.raises(TargetError, match="missing.toml: target file not found"):
        load_target("/nonexistent/missing.toml")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_descriptor_names_file_and_field(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    with pytest.raises(TargetError) as err:
        load_target(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {expected}") and "\n" not in msg, msg


def test_adding_a_target_is_adding_a_file(tmp_path: Path) -> None:
    src = (builtin_targets_dir() / "cortex-a7.toml").read_text()
    text = src.replace('name = "cortex-a7"', 'name = "cortex-a53"').replace("clock_mhz = 900.0", "clock_mhz = 1200.0")
    path = tmp_path / "cortex-a53.toml"
    path.write_text(text)
    fast, slow = load_target(path), load_target("cortex-a7")
    assert fast.name == "cortex-a53" and fast.device.clock_mhz == 1200.0
    p_fast = build_profile(toy_graph(), fast, "tpu")
    p_slow = build_profile(toy_graph(), slow, "tpu")
    assert p_fast.edge_device == "cortex-a53"
    assert p_fast.edge_ms("conv1", 8, 8) < p_slow.edge_ms("conv1", 8, 8)


def test_profile_code_never_tests_a_target_name() -> None:
    names = "|".join(re.escape(n) for n in SHIPPED)
    pattern = re.compile(rf"""==\s*["']({names})["']|["']({names})["']\s*==|in\s*\(["']({names})""")
    sdk = Path(__file__).parent.parent / "sdk" / "profile"
    offenders = [p.name for p in sdk.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_shipped_descriptors_are_package_data(tmp_path: Path) -> None:
    # a copy of a shipped file loads from anywhere (the wheel ships targets/*.toml as package data)
    copy = tmp_path / "eyeriss.toml"
    shutil.copy(builtin_targets_dir() / "eyeriss.toml", copy)
    assert load_target(copy) == load_target("eyeriss")


def test_cli_lists_targets_and_shows_one(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from splitsdk.cli.main import main

    assert main(["targets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["target", "role", "kind"] and len(lines) == 1 + len(SHIPPED)
    assert main(["targets", "cortex-a7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["toolchain"]["triple"] == "arm-linux-gnueabihf" and "int16x8" in data["quant"]["precisions"]
    assert main(["targets", "--json"]) == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)] == SHIPPED


def test_cli_bad_target_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from splitsdk.cli.main import main

    bad = INVALID[0]
    assert main(["targets", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"splitsdk: error: {bad}: ")


def test_cpu_targets_give_codec_costs_and_accelerators_none(tmp_path: Path) -> None:
    for name in list_targets():
        t = load_target(name)
        has = (t.device.zstd_ns_per_byte, t.device.jpeg_ns_per_pixel)
        if t.device.kind == "cpu":
            assert all(v is not None and v > 0 for v in has), name
            text = (builtin_targets_dir() / f"{name}.toml").read_text()
            assert "Modelled estimates until measured" in text or "Emulated instruction counts" in text, name
        elif t.device.kind == "systolic":
            assert has == (None, None), name
    src = (builtin_targets_dir() / "host.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace("zstd_ns_per_byte = 3.0", "zstd_ns_per_byte = -3.0"))
    with pytest.raises(TargetError, match=r"bad.toml: device.zstd_ns_per_byte: must be > 0"):
        load_target(bad)
