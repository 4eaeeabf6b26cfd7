"""The CLI's contract beyond single errors: --help and error paths load no TensorFlow, outputs never destroy
a user's files, --json is parseable, a closed pipe is quiet, completion and log flags work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from splitsdk.cli.args import resolve_input
from splitsdk.cli.main import COMMANDS, build_parser, main
from splitsdk.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "firmware_examples" / "camera-net-cortex-a7" / "bundle"
HEAVY = ("tensorflow", "keras")


def _imported(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    """Exit code and top-level modules imported by `splitsdk ARGS` (from `python -X importtime`)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "splitsdk", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)
    mods = {ln.split("|")[-1].strip().split(".")[0] for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    return proc.returncode, mods


@pytest.mark.parametrize("command", [c.removeprefix("cmd_").replace("_", "-") for c in COMMANDS] + [""])
def test_help_imports_no_tensorflow(command: str, tmp_path: Path) -> None:
    code, mods = _imported([command, "--help"] if command else ["--help"], tmp_path)
    assert code == 0 and not mods & set(HEAVY), sorted(mods & set(HEAVY))


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "truncated.json", "--model", "m.keras", "-o", "b"],
        ["report", "truncated.json", "-o", "r"],
        ["plan", "m.keras", "--target", "cortex-a7", "--uplink", "-1mbit", "-o", "p.json"],
        ["inspect", "missing.keras"],
        ["edge-sim", "nowhere", "--server", "127.0.0.1:1", "--frames", "."],
        ["serve", "nowhere", "--insecure-plain-tcp"],
    ],
)
def test_error_paths_import_no_tensorflow(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "truncated.json").write_text('{"schema_version": 2, "mod')
    code, mods = _imported(args, tmp_path)
    assert code == 1 and not mods & set(HEAVY), sorted(mods & set(HEAVY))


def _generate(out: Path, *extra: str) -> int:
    return main(["-q", "generate", str(BUNDLE), "--target", "cortex-a7", "-o", str(out), *extra])


def test_generate_keeps_a_hand_edited_file_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    assert _generate(project) == 0
    listing = (project / ".splitsdk-generated").read_text().splitlines()
    assert all(len(line.split()[0]) == 64 for line in listing)  # sha256sum format
    main_cpp = project / "src" / "main.cpp"
    main_cpp.write_text(main_cpp.read_text() + "// my change\n")
    capsys.readouterr()
    assert main(["generate", str(BUNDLE), "--target", "cortex-a7", "-o", str(project), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["kept"] == ["src/main.cpp"] and "src/main.cpp" in err
    assert main_cpp.read_text().endswith("// my change\n")
    assert _generate(project, "--force") == 0
    assert "// my change" not in main_cpp.read_text()


def test_generate_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "src"
    mine.mkdir(parents=True)
    (mine / "main.cpp").write_text("int main() {}\n")
    assert _generate(tmp_path / "mine") == 1
    assert (mine / "main.cpp").read_text() == "int main() {}\n"
    assert _generate(tmp_path / "mine", "--force") == 0
    assert (mine / "main.cpp").read_text() != "int main() {}\n"


def test_bundle_flag_is_an_alias_of_the_positional_input(tmp_path: Path) -> None:
    assert main(["-q", "generate", "--bundle", str(BUNDLE), "--target", "cortex-a7", "-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "src" / "main.cpp").is_file()


def test_json_outputs_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["targets", "--json"], ["targets", "cortex-a7", "--json"],
                 ["generate", str(BUNDLE), "--target", "cortex-a7", "-o", str(tmp_path / "g"), "--json"]):
        assert main(argv) == 0
        json.loads(capsys.readouterr().out)


def test_closed_pipe_is_quiet() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "splitsdk", "targets", "cortex-a7"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader (`| head`) is gone before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and err == "", err


def test_bash_completion_lists_commands_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _splitsdk splitsdk" in script and "--uplink" in script
    assert "--bundle" not in script.split("generate)")[1].split(";;")[0]  # hidden alias not offered
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_verbose_gives_debug_logs_and_quiet_silences_notes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "targets", "--json"]) == 0
    assert "splitsdk: debug: splitsdk.cli: targets:" in capsys.readouterr().err
    assert main(["-q", "targets", "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_missing_optional_package_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """`pip install splitsdk` without extras: a command needing keras says which extra adds it."""
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04")  # exists: the command gets as far as importing keras
    code = ("import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
            "from splitsdk.cli.main import main; sys.exit(main(['inspect', 'm.keras']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert err[0].startswith("splitsdk: error: `splitsdk inspect` needs the Python package")
    assert 'pip install "splitsdk[ml]"' in err[0] and "Traceback" not in proc.stderr


def test_missing_unknown_module_keeps_its_traceback(tmp_path: Path) -> None:
    """Only the optional packages are explained; any other missing module is a bug and shows as one."""
    code = ("import sys, splitsdk.cli.cmd_targets as t\n"
            "def boom(args): import no_such_module_xyz\n"
            "t.run = boom\n"
            "from splitsdk.cli.main import main; sys.exit(main(['targets']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0 and "ModuleNotFoundError: No module named 'no_such_module_xyz'" in proc.stderr


@pytest.mark.parametrize(("command", "extra"), [("emulate", ["--frames", "f"]), ("verify", []),
                                               ("profile", ["-o", "m.csv"])])
def test_bundle_is_positional_after_the_firmware_with_a_hidden_alias(command: str, extra: list[str]) -> None:
    parser = build_parser()
    positional = parser.parse_args([command, "fw", "bundle", *extra])
    alias = parser.parse_args([command, "fw", "--bundle", "bundle", *extra])
    assert resolve_input(positional, "bundle") == resolve_input(alias, "bundle") == Path("bundle")
    assert positional.firmware == Path("fw")
    usage = parser._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
    assert "BUNDLE" in usage and "--bundle" not in usage
    with pytest.raises(UsageError, match="BUNDLE"):
        resolve_input(parser.parse_args([command, "fw", *extra]), "bundle")


def test_certs_takes_dash_o_for_its_output_folder(tmp_path: Path) -> None:
    assert main(["-q", "certs", "-o", str(tmp_path / "c"), "--camera", "cam-1"]) == 0
    assert (tmp_path / "c" / "ca.pem").is_file() and (tmp_path / "c" / "cam-1.pem").is_file()


def test_fleet_default_folder_is_the_library_s() -> None:
    """cmd_fleet spells the default folder itself (building the parser imports no receiver code)."""
    from splitsdk.cli import cmd_fleet
    from splitsdk.cloud import fleet

    assert cmd_fleet.DEFAULT_ROOT == fleet.DEFAULT_ROOT
