"""The target TOML, `splitsdk-project.json`, `firmware.json` and the receiver's TOML config, read strictly.

Each format is one dataclass tree read through `splitsdk.codec`: a misspelt key, a key in the wrong
section, a value of the wrong type (`"16"` for a number, `"false"` for a boolean) or out of range is
refused with one line naming the file and the field. The bad files live under tests/data/; the
checked-in JSON Schemas are what the classes say.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_wire_bundle import build_bundle

from splitsdk.cli.main import main
from splitsdk.cloud.config import ReceiverConfig, load_config
from splitsdk.codec import dumps_json, encode
from splitsdk.errors import ReceiverError, TargetError, ToolchainError
from splitsdk.target import builtin_targets_dir, load_target
from splitsdk.toolchain.build import FIRMWARE_FILE, PROJECT_FILE, load_firmware, load_project, project_json

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
BAD_RECEIVER = sorted((DATA / "invalid_receiver_configs").glob("*.toml"))


def _expected(path: Path) -> str:
    return path.read_text().splitlines()[0].removeprefix("# expect:").strip()


def _one_line(exc: pytest.ExceptionInfo[BaseException], prefix: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(prefix), msg
    return msg


# -- target descriptors --------------------------------------------------------------------------------


def _edited_target(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (builtin_targets_dir() / "cortex-a7.toml").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("clock_mhz = 900.0", "clock_mz = 900.0", "device.clock_mz: unknown key"),
        ('suite = "bookworm"', 'suit = "bookworm"', "camera.suit: unknown key"),
        ("packed_storage = false", 'packed_storage = "false"', "quant.packed_storage: expected true or false"),
        ("cores = 1", 'cores = "1"', "device.cores: expected an integer, got a string"),
        ("efficiency = 1.0 ", "efficiency = 2.0 ", "device.efficiency: must be <= 1, got 2"),
        ("system_memory_mb = 512", "system_memory_mb = -512", "qemu.system_memory_mb: must be >= 0"),
        ('console = "ttyAMA0"', "console = 0", "camera.console: expected a string, got an integer"),
    ],
)
def test_a_bad_target_field_is_one_line_naming_file_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = _edited_target(tmp_path, "my-a7.toml", old, new)
    with pytest.raises(TargetError) as err:
        load_target(path)
    _one_line(err, f"{path}: {message}")


def test_a_copied_target_with_another_file_name_just_works(tmp_path: Path) -> None:
    copy = tmp_path / "my-a7.toml"
    shutil.copy(builtin_targets_dir() / "cortex-a7.toml", copy)
    mine, shipped = load_target(copy), load_target("cortex-a7")
    assert mine == shipped and mine.name == "cortex-a7" and mine.path == str(copy)
    assert mine.camera is not None and mine.camera.suite == "bookworm"


def test_a_copied_target_generates_a_project_that_carries_it(tmp_path: Path) -> None:
    copy = _edited_target(tmp_path, "my-a7.toml", "clock_mhz = 900.0", "clock_mhz = 1000.0")
    from splitsdk.codegen import generate

    bundle = build_bundle(tmp_path / "bundle", bits=4)
    generate(bundle, copy, tmp_path / "proj")
    project = load_project(tmp_path / "proj")
    assert project.target == "cortex-a7" and project.target_file == "target/cortex-a7.toml"
    carried = load_target(tmp_path / "proj" / project.target_file)
    assert carried.device.clock_mhz == 1000.0 and (tmp_path / "proj" / project.target_file).read_text() == (
        copy.read_text()
    )


def test_a_folder_named_like_a_target_does_not_hide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cortex-a7").mkdir()  # e.g. a firmware output folder
    assert load_target("cortex-a7").path == str(builtin_targets_dir() / "cortex-a7.toml")
    # an existing FILE is loaded by path, with or without the .toml suffix
    shutil.copy(builtin_targets_dir() / "host.toml", tmp_path / "my-host")
    assert load_target("my-host").path == "my-host" and load_target("my-host").name == "host"
    with pytest.raises(TargetError, match="unknown target 'nope'"):
        load_target("nope")


def test_cli_shows_a_copied_target_and_refuses_a_bad_one_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "my-a7.toml"
    shutil.copy(builtin_targets_dir() / "cortex-a7.toml", copy)
    assert main(["targets", str(copy), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "cortex-a7" and data["path"] == str(copy) and data["camera"]["console"] == "ttyAMA0"
    bad = _edited_target(tmp_path, "bad.toml", "clock_mhz = 900.0", "clock_mz = 900.0")
    assert main(["targets", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"splitsdk: error: {bad}: device.clock_mz: unknown key (known: {_known_device_keys()})"]


def _known_device_keys() -> str:
    from dataclasses import fields

    from splitsdk.target import Device

    return ", ".join(sorted(f.name for f in fields(Device)))


# -- splitsdk-project.json and firmware.json ------------------------------------------------------------

PROJECT: dict[str, Any] = {
    "generated": "Generated by splitsdk",
    "splitsdk_version": "0",
    "target": "cortex-a7",
    "target_file": "target/cortex-a7.toml",
    "plan_sha256": "ab" * 32,
    "toolchain_file": "cmake/cortex-a7.toolchain.cmake",
    "binary": "splitsdk-edge",
    "model": "model/edge.tflite",
    "init_script": "deploy/S90splitsdk-edge",
    "systemd_unit": "deploy/splitsdk-edge.service",
    "config": "deploy/splitsdk-edge.conf",
}
FIRMWARE: dict[str, Any] = {
    "target": "cortex-a7",
    "plan_sha256": "ab" * 32,
    "binary_bytes": 1000,
    "firmware_bytes": 5000,
    "libraries": ["libc.so.6"],
    "sanitized": False,
}


def test_project_file_round_trips_through_the_codec(tmp_path: Path) -> None:
    (tmp_path / PROJECT_FILE).write_text(project_json(**PROJECT))
    project = load_project(tmp_path)
    assert encode(project) == PROJECT and project.root == tmp_path
    assert json.loads((tmp_path / PROJECT_FILE).read_text()) == PROJECT


def test_firmware_file_round_trips_through_the_codec(tmp_path: Path) -> None:
    (tmp_path / FIRMWARE_FILE).write_text(json.dumps(FIRMWARE))
    fw = load_firmware(tmp_path)
    assert fw.root == tmp_path and fw.libraries == ("libc.so.6",)
    assert fw.target_file == tmp_path / "share/splitsdk-edge/cortex-a7.toml"
    assert FIRMWARE.items() <= json.loads(dumps_json(fw)).items()  # optional fields left out read as defaults
    assert load_firmware(tmp_path) == fw


@pytest.mark.parametrize(
    ("name", "base", "key", "value", "message"),
    [
        (PROJECT_FILE, PROJECT, "target_fil", "x", "target_fil: unknown key"),
        (PROJECT_FILE, PROJECT, "plan_sha256", 5, "plan_sha256: expected a string, got an integer"),
        (PROJECT_FILE, PROJECT, "root", "/etc", "root: unknown key"),  # where it was read from: not a field
        (FIRMWARE_FILE, FIRMWARE, "sanitised", False, "sanitised: unknown key"),
        (FIRMWARE_FILE, FIRMWARE, "sanitized", "false", "sanitized: expected true or false, got a string"),
        (FIRMWARE_FILE, FIRMWARE, "binary_bytes", "1000", "binary_bytes: expected an integer, got a string"),
        (FIRMWARE_FILE, FIRMWARE, "firmware_bytes", -1, "firmware_bytes: must be >= 0, got -1"),
        (FIRMWARE_FILE, FIRMWARE, "libraries", "libc.so.6", "libraries: expected a list, got a string"),
    ],
)
def test_a_bad_project_or_firmware_field_is_one_line(
    tmp_path: Path, name: str, base: dict[str, Any], key: str, value: Any, message: str
) -> None:
    (tmp_path / name).write_text(json.dumps({**base, key: value}))
    with pytest.raises(ToolchainError) as err:
        (load_project if name == PROJECT_FILE else load_firmware)(tmp_path)
    _one_line(err, f"{tmp_path / name}: {message}")


def test_missing_fields_and_broken_json_are_one_line(tmp_path: Path) -> None:
    record = {k: v for k, v in FIRMWARE.items() if k != "plan_sha256"}
    (tmp_path / FIRMWARE_FILE).write_text(json.dumps(record))
    with pytest.raises(ToolchainError) as err:
        load_firmware(tmp_path)
    _one_line(err, f"{tmp_path / FIRMWARE_FILE}: plan_sha256: missing")
    (tmp_path / FIRMWARE_FILE).write_text("{")
    with pytest.raises(ToolchainError) as err:
        load_firmware(tmp_path)
    _one_line(err, f"{tmp_path / FIRMWARE_FILE}: unreadable: ")
    with pytest.raises(ToolchainError) as err:
        load_project(tmp_path)
    _one_line(err, f"{tmp_path / PROJECT_FILE}: no such file")


# -- the receiver's config -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BAD_RECEIVER, ids=[p.stem for p in BAD_RECEIVER])
def test_invalid_receiver_config_names_file_and_field(path: Path) -> None:
    with pytest.raises(ReceiverError) as err:
        load_config(path)
    _one_line(err, f"{path}: {_expected(path)}")


def test_receiver_config_sections_are_the_dataclass_layout(tmp_path: Path) -> None:
    toml = tmp_path / "receiver.toml"
    toml.write_text(
        'listen = "[::1]:7712"\ninsecure_plain_tcp = true\ndb_synchronous = "normal"\n'
        "[limits]\nmax_frame_bytes = 4294967295\nmax_connections = 3\nhandshake_timeout_s = 2\n"
        "[batching]\nmax_batch = 1\nmax_wait_ms = 0\n"
    )
    cfg = load_config(toml)
    assert (cfg.host, cfg.port, cfg.db_synchronous, cfg.insecure_plain_tcp) == ("::1", 7712, "normal", True)
    assert cfg.limits.frame.max_frame_bytes == 2**32 - 1 and cfg.limits.max_connections == 3
    assert cfg.limits.handshake_timeout_s == 2.0 and isinstance(cfg.limits.handshake_timeout_s, float)
    assert (cfg.batching.max_batch, cfg.batching.max_wait_ms) == (1, 0.0)
    assert cfg.metrics_address is None and not cfg.tls.enabled
    assert load_config(None) == ReceiverConfig()


def test_command_line_overrides_are_checked_like_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "receiver.toml"
    toml.write_text("[batching]\nmax_batch = 3\n[tls]\ncert = \"a.pem\"\n")
    cfg = load_config(toml, {"batching.max_batch": 7, "tls.key": Path("b.key"), "db": None, "metrics": ":9100"})
    assert cfg.batching.max_batch == 7 and cfg.tls == type(cfg.tls)(Path("a.pem"), Path("b.key"), None)
    assert cfg.metrics_address == ("0.0.0.0", 9100) and cfg.db == "results.sqlite"
    with pytest.raises(ReceiverError) as err:
        load_config(toml, {"batching.max_batch": 0})
    _one_line(err, "command line: batching.max_batch: must be >= 1, got 0")


def test_insecure_as_a_string_never_turns_plain_tcp_on(tmp_path: Path) -> None:
    toml = tmp_path / "receiver.toml"
    toml.write_text('insecure_plain_tcp = "false"\n')
    with pytest.raises(ReceiverError, match=r"insecure_plain_tcp: expected true or false, got a string"):
        load_config(toml).validate()
    toml.write_text("insecure_plain_tcp = false\n")
    with pytest.raises(ReceiverError, match="no TLS configured"):
        load_config(toml).validate()


@pytest.mark.parametrize("name", ["insecure_as_string", "max_batch_as_string", "frame_bytes_over_u32"])
def test_serve_with_a_bad_config_is_one_line_without_traceback(tmp_path: Path, name: str) -> None:
    bad = DATA / "invalid_receiver_configs" / f"{name}.toml"
    proc = subprocess.run(  # -W: a stale native build's warning is not this test's business
        [sys.executable, "-W", "ignore::RuntimeWarning", "-m", "splitsdk", "serve", str(tmp_path / "no-bundle"),
         "--config", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    err = proc.stderr.splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert err[0].startswith(f"splitsdk: error: {bad}: {_expected(bad)}")


# -- JSON Schemas ----------------------------------------------------------------------------------------


def test_checked_in_schemas_match_the_classes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "host_tools" / "regen_schemas.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads((REPO / "sdk/schemas/receiver-config.schema.json").read_text())
    limits = schema["$defs"]["LimitsConfig"]["properties"]["max_frame_bytes"]
    assert limits["maximum"] == 2**32 - 1 and schema["additionalProperties"] is False
    target = json.loads((REPO / "sdk/schemas/target.schema.json").read_text())
    assert "path" not in target["properties"] and "camera" in target["properties"]
