"""Every bad input through the CLI ends in one line naming the file and the field (or flag, or layer), a
non-zero exit (1 bad input, 2 usage), no traceback and nothing half-written. One table, one test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from splitsdk.cli.main import main
from tests.onnx_zoo import chain

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
MODELS = DATA / "invalid_models"
BUNDLE = REPO / "firmware_examples" / "camera-net-cortex-a7" / "bundle"
RECEIVER_CONFIGS = DATA / "invalid_receiver_configs"
LAMBDA_NAME = (
    "scale_by_two_lambda_in_a_model_with_a_rather_long_layer_name_that_goes_on_and_on_past_any_200_character"
    "_cut_of_an_error_message_so_that_a_truncated_message_would_lose_it_here"
)
NO_ONNX2TF = "import sys; sys.modules['onnx2tf'] = None; from splitsdk.cli.main import main; sys.exit(main())"


@dataclass(frozen=True)
class Case:
    argv: list[str]  # {tmp}, {data}, {models}, {bundle}, {port}, {busy}, {certs}, {onnx_plan}, {onnx} filled in
    expect: str  # fragment of the first stderr line (of stdout when code is 0)
    code: int
    subprocess: bool = False  # run as `python -m splitsdk` (a separate process is the point of the case)
    env: tuple[tuple[str, str], ...] = ()
    python: str = ""  # `python -c` program instead of `-m splitsdk`


PLAN = ["plan", "{models}/lambda_layer.keras", "--target", "cortex-a7", "-o", "{tmp}/plan.json"]
SERVE = ["serve", "{tmp}/no-bundle", "--config"]
CASES: dict[str, Case] = {
    "lambda_layer_named_in_full": Case([*PLAN, "--uplink", "3"], f"layer '{LAMBDA_NAME}' is a Lambda", 1),
    "unregistered_custom_class_named": Case(
        ["plan", "{models}/unregistered_custom_layer.keras", "--target", "cortex-a7", "--uplink", "3", "-o",
         "{tmp}/plan.json"], "(class ShiftLayer, registered as 'private_pkg>ShiftLayer')", 1),
    "negative_uplink_is_a_value_not_a_flag": Case([*PLAN, "--uplink", "-1mbit"], "--uplink: bad link rate '-1mbit'", 1),
    "uplink_in_bytes_names_the_flag": Case([*PLAN, "--uplink", "3MB"], "--uplink: bad link rate '3MB'", 1),
    "plan_into_a_missing_folder": Case(
        [*PLAN[:-1], "{tmp}/no/such/dir/plan.json", "--uplink", "3"], "no such folder {tmp}/no/such/dir/", 1),
    "misspelt_target_key": Case(
        ["targets", "{data}/invalid_targets/misspelt_key.toml"], "misspelt_key.toml: device.clock_mz: unknown key", 1),
    "copied_target_with_another_name_loads": Case(["targets", "{tmp}/my-a7.toml", "--json"], '"name": "other-cam"', 0),
    "folder_named_like_a_target_does_not_hide_it": Case(["targets", "cortex-a7", "--json"], '"name": "cortex-a7"', 0),
    "truncated_plan": Case(["convert", "{tmp}/truncated.json", "--model", "m.keras", "-o", "{tmp}/b"],
                           "truncated.json: not valid JSON", 1),
    "onnx_convert_without_onnx2tf": Case(
        ["convert", "{onnx_plan}", "--model", "{onnx}", "-o", "{tmp}/b", "--no-verify"],
        "chain.onnx: converting an ONNX model needs the Python package onnx2tf: run `", 1,
        subprocess=True, python=NO_ONNX2TF),
    "receiver_max_batch_as_string": Case(
        [*SERVE, f"{RECEIVER_CONFIGS}/max_batch_as_string.toml"], "batching.max_batch: expected an integer", 1),
    "receiver_key_in_wrong_section": Case(
        [*SERVE, f"{RECEIVER_CONFIGS}/key_in_wrong_section.toml"], "limits.max_batch: unknown key", 1),
    "receiver_insecure_as_string": Case(
        [*SERVE, f"{RECEIVER_CONFIGS}/insecure_as_string.toml"], "insecure_plain_tcp: expected true or false", 1),
    "serve_with_the_metrics_port_in_use": Case(
        ["serve", "{bundle}", "--insecure-plain-tcp", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:{busy}",
         "--db", "{tmp}/r.sqlite"], "metrics: cannot listen on 127.0.0.1:{busy}", 1, subprocess=True),
    "plain_tcp_camera_against_a_tls_receiver": Case(
        ["edge-sim", "{bundle}", "--server", "127.0.0.1:{port}", "--frames", "{tmp}/frames"],
        "127.0.0.1:{port}: the receiver expects TLS", 1, subprocess=True),
    "build_without_the_cross_compiler": Case(
        ["build", "{tmp}/project", "-o", "{tmp}/fw"], "sudo apt-get install", 1, subprocess=True,
        env=(("PATH", "/nonexistent"),)),
    "convert_into_a_users_folder": Case(["convert", "{tmp}/plan.json", "--model", "m.keras", "-o", "{tmp}/mine"],
                                        "{tmp}/mine: folder has files but is not a bundle", 1),
    "build_into_a_users_folder": Case(["build", "{tmp}/project", "-o", "{tmp}/mine"],
                                      "{tmp}/mine: folder has files but is not a firmware", 1),
    "generate_into_a_users_folder": Case(
        ["generate", "{bundle}", "--target", "cortex-a7", "-o", "{tmp}/mine"], "{tmp}/mine: folder has files", 1),
    "missing_input_is_a_usage_error": Case(["generate", "--target", "cortex-a7", "-o", "{tmp}/p"],
                                           "required: BUNDLE", 2),
    "unknown_flag_is_a_usage_error": Case(["targets", "--colour"], "unrecognized arguments: --colour", 2),
}


@pytest.fixture(scope="module")
def onnx_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("onnx")
    model = chain(root / "chain.onnx")
    assert main(["-q", "plan", str(model), "--target", "cortex-a7", "--uplink", "1", "--exact", "none",
                 "-o", str(root / "plan.json"), "--json"]) == 0
    return model, root / "plan.json"


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("tls")
    assert main(["certs", "--out", str(root / "certs")]) == 0
    c = root / "certs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen(
        [sys.executable, "-m", "splitsdk", "serve", str(BUNDLE), "--listen", f"127.0.0.1:{port}", "--tls-cert",
         str(c / "server.pem"), "--tls-key", str(c / "server.key"), "--client-ca", str(c / "ca.pem"),
         "--db", str(root / "r.sqlite")], stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert srv.poll() is None, "receiver exited"
                time.sleep(0.1)
        yield port
    finally:
        srv.terminate()
        srv.wait(timeout=60)


def _prepare(tmp: Path) -> None:
    import numpy as np

    (tmp / "truncated.json").write_text('{"schema_version": 2, "mod')
    (tmp / "plan.json").write_text("{}")
    text = (REPO / "targets" / "cortex-a7.toml").read_text()
    (tmp / "my-a7.toml").write_text(text.replace('name = "cortex-a7"', 'name = "other-cam"'))
    (tmp / "cortex-a7").mkdir()  # a folder named like a shipped target
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("my own file")
    (tmp / "frames").mkdir()
    np.save(tmp / "frames" / "a.npy", np.zeros((32, 32, 3), np.uint8))
    assert main(["-q", "generate", str(BUNDLE), "--target", "cortex-a7", "-o", str(tmp / "project")]) == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_ends_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    case = CASES[name]
    _prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    fill = {"tmp": str(tmp_path), "data": str(DATA), "models": str(MODELS), "bundle": str(BUNDLE), "port": "",
            "busy": "", "onnx_plan": "", "onnx": ""}
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    fill["busy"] = str(busy.getsockname()[1])
    if "{port}" in " ".join(case.argv):
        fill["port"] = str(request.getfixturevalue("tls_receiver"))
    if "{onnx_plan}" in " ".join(case.argv):
        model, plan = request.getfixturevalue("onnx_plan")
        fill["onnx"], fill["onnx_plan"] = str(model), str(plan)
    argv = [a.format(**fill) for a in case.argv]
    capsys.readouterr()
    try:
        if case.subprocess:
            head = [sys.executable, "-c", case.python] if case.python else [sys.executable, "-m", "splitsdk"]
            proc = subprocess.run([*head, *argv], capture_output=True, text=True, timeout=300,
                                  env={**os.environ, **dict(case.env)})
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                code = int(exc.code or 0)
            out, err = capsys.readouterr()
    finally:
        busy.close()
    expect = case.expect.format(**fill)
    assert code == case.code, (code, out, err)
    assert "Traceback" not in err
    if case.code == 0:
        assert expect in out
        return
    lines = [  # the receiver's JSON logs and warnings aside
        ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("{", "splitsdk: warning: "))
    ]
    assert len(lines) == 1 and expect in lines[0], err
    assert lines[0].startswith("splitsdk: error: ") or (code == 2 and lines[0].startswith("splitsdk ")), err
    assert not (tmp_path / "b").exists() and not (tmp_path / "fw").exists()  # nothing half-written
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my own file"
    assert not list(tmp_path.glob(".*"))  # no temporary sibling left behind
