"""The edge app under emulation against a real `splitsdk serve`: qemu-arm results equal the host-only
pipeline's, the ASan/UBSan host build runs the whole pipeline clean, a receiver that is down at start
is retried until it is up, a receiver's ERROR (wrong plan hash) is reported by the app, and the app's
stage timings reach the receiver's database in a STATS message."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge_app_helpers import host_pipeline, shared_bundle, shared_firmware, write_frames

from splitsdk.errors import ToolchainError
from splitsdk.toolchain.build import Firmware, load_firmware
from splitsdk.toolchain.emulate import (
    AppRun,
    ReceiverProcess,
    ServerTls,
    app_args,
    app_command,
    emulate,
    free_port,
    parse_app_output,
    run_app,
)
from splitsdk.wire.bundle import load_bundle

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.requires_qemu, pytest.mark.slow]

STAGES = {"capture", "infer", "pack", "send_result", "total"}


def _scores(body: str) -> list[tuple[int, float]]:
    return [(int(c), float(s)) for c, s in json.loads(body)["topk"]]


def test_qemu_arm_results_equal_the_host_pipeline(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = shared_firmware(base, bundle, "cortex-a7")
    frames = write_frames(tmp_path / "frames", 5, seed=11)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "splitsdk",
            "emulate",
            str(fw),
            "--bundle",
            str(bundle),
            "--frames",
            str(frames),
            "-n",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    results = out["results"]
    assert [r["seq"] for r in results] == [0, 1, 2, 3] and all(r["status"] == 0 for r in results)
    assert [r["frame"] for r in results] == [f"frame{i:03d}.f32" for i in range(4)]
    expected = host_pipeline(bundle, frames)[:4]
    for got, want in zip(results, expected, strict=True):
        g, w = _scores(got["body"]), _scores(want)
        assert [c for c, _ in g] == [c for c, _ in w]  # the same classes in the same order
        assert all(abs(a - b) <= 1e-4 for (_, a), (_, b) in zip(g, w, strict=True))
    assert set(out["stages"]) == STAGES and out["stages"]["pack"]["n"] == 4
    assert out["counters"]["sent"] == 4 and out["counters"]["dropped"] == 0 and out["counters"]["reconnects"] == 0


def test_asan_ubsan_host_build_runs_the_pipeline_clean(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "host", sanitize=True))
    assert fw.sanitized and "libasan.so.8" in fw.libraries
    frames = write_frames(tmp_path / "frames", 3, seed=2)
    # the PGM/PPM readers too: a 16x12 RGB frame, resized to the model's 8x8 input
    (frames / "z_colour.ppm").write_bytes(b"P6\n# camera\n16 12\n255\n" + bytes(range(256)) * 2 + bytes(64))
    (frames / "z_grey.pgm").write_bytes(b"P5 4 4 255\n" + bytes(range(0, 256, 16)))
    suppressions = tmp_path / "lsan.supp"
    suppressions.write_text("leak:libtensorflow-lite\n")  # a 1-byte static allocation inside TFLite itself
    env = {
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
        "LSAN_OPTIONS": f"suppressions={suppressions}",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
    }
    with ReceiverProcess(bundle) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr
    assert [r.frame for r in run.results] == [
        "frame000.f32",
        "frame001.f32",
        "frame002.f32",
        "z_colour.ppm",
        "z_grey.pgm",
    ]


def test_receiver_down_at_start_is_retried_until_it_is_up(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    frames = write_frames(tmp_path / "frames", 2)
    port = free_port()
    retries: list[str] = []
    run = _run_until_the_receiver_is_up(fw, app_args(fw, frames, port), bundle, port, retries, waits=2)
    assert "retrying in" in retries[0]
    assert [r.seq for r in run.results] == [0, 1] and all(r.status == 0 for r in run.results)
    assert run.counters["connect_failures"] >= 2 and run.counters["results"] == 2


def test_stage_timings_are_stored_by_the_receiver(base: Path, bundle: Path, tmp_path: Path) -> None:
    """On a clean exit the ARM app sends the JSON it prints (`stats: ...`) in one STATS message, after
    its last RESULT; the receiver stores it in device_stats under the camera's device id."""
    import sqlite3

    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    frames = write_frames(tmp_path / "frames", 2)
    db = tmp_path / "results.sqlite"
    rows: list[tuple[str, int, str]] = []
    with ReceiverProcess(bundle, db=db) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port, extra=["--device-id", "stats-cam"]))
        deadline = time.monotonic() + 60  # the receiver does not answer STATS: wait for its commit
        while not rows and time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT device_id, received_at, stats FROM device_stats").fetchall()
            time.sleep(0.05)
    assert run.returncode == 0, run.stderr
    assert "stats not sent" not in run.stderr
    assert len(rows) == 1, rows
    device, received_at, text = rows[0]
    sent = json.loads(text)
    assert device == "stats-cam" and abs(received_at / 1e6 - time.time()) < 600
    assert set(sent["stages"]) == STAGES and sent["stages"]["pack"]["n"] == 2
    assert sent["stages"] == run.stages  # the very numbers the app printed
    assert {k: v for k, v in sent.items() if k != "stages"} == run.counters and run.counters["results"] == 2


def test_wrong_plan_hash_is_reported_by_the_app(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    other = shared_bundle(base, "other-plan", seed=4)  # another plan: the receiver must refuse the camera
    frames = write_frames(tmp_path / "frames", 1)
    start = time.monotonic()
    with ReceiverProcess(other) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port))
    assert run.returncode == 3, run.stderr
    assert run.error.startswith("receiver refused (code 2): plan hash mismatch")
    assert run.results == [] and time.monotonic() - start < 300  # refused, not retried forever


def test_tls_with_client_certificates_under_qemu(base: Path, bundle: Path, tmp_path: Path) -> None:
    from splitsdk.cloud.certs import make_certs

    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    assert "libssl.so.3" in fw.libraries
    certs = make_certs(tmp_path / "certs", ["camera-0"], ["127.0.0.1"])
    cert, key = certs.cameras["camera-0"]
    frames = write_frames(tmp_path / "frames", 2)
    tls = ["--tls-ca", str(certs.ca_cert), "--tls-cert", str(cert), "--tls-key", str(key)]
    server = ServerTls(certs.server_cert, certs.server_key, certs.ca_cert)
    with ReceiverProcess(bundle, tls=server) as receiver:
        ok = run_app(fw, app_args(fw, frames, receiver.port, extra=tls))
        # the receiver binds the device id to the certificate's name: another id is refused
        refused = run_app(fw, app_args(fw, frames, receiver.port, extra=[*tls, "--device-id", "camera-9"]))
    assert ok.returncode == 0, ok.stderr
    assert [r.seq for r in ok.results] == [0, 1] and all(r.status == 0 for r in ok.results)
    assert refused.returncode == 3 and "not the certificate's name 'camera-0'" in refused.error


def test_config_file_and_flags_override_the_defaults_and_drops_are_counted(
    base: Path, bundle: Path, tmp_path: Path
) -> None:
    """A live source (--realtime-fps) faster than a receiver that is not up yet: frames are dropped at
    the bounded queue and counted; every captured frame is either sent or counted as dropped."""
    import sqlite3

    fw = load_firmware(shared_firmware(base, bundle, "host"))
    frames = write_frames(tmp_path / "frames", 3)
    port = free_port()
    config = tmp_path / "edge.conf"
    config.write_text(
        f"# camera settings\nserver = 127.0.0.1:{port}\ndevice_id = cfg-cam\nframes = {frames}\n"
        f"model = {fw.model}\nloop = true\ncount = 40\nrealtime_fps = 200\nqueue_depth = 64\n"
    )
    db = tmp_path / "results.sqlite"
    args = ["--config", str(config), "--queue-depth", "1", "--quiet"]
    run = _run_until_the_receiver_is_up(fw, args, bundle, port, [], waits=1, db=db)
    c = run.counters
    assert c["captured"] == 40 and c["dropped"] > 0 and c["sent"] + c["dropped"] == c["captured"]
    assert run.results == []  # --quiet
    rows = sqlite3.connect(db).execute("SELECT DISTINCT device_id FROM results").fetchall()
    assert rows == [("cfg-cam",)]  # the config file's device id, not the generated default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "/nonexistent", "--bogus"], "unknown argument '--bogus'"),
        (["--frames", "x", "--server", "nohost"], "server must be HOST:PORT"),
        (["--frames", "x", "--queue-depth", "0"], "queue_depth: must be in 1..1024"),
        (["--frames", "x", "--tls-ca", "ca.pem"], "TLS needs --tls-cert and --tls-key"),
        ([], "one frame source: --frames DIR or --video"),
        (["--frames", "x", "--video", "/dev/video0"], "one frame source"),
        (["--config", "/nonexistent.conf", "--frames", "x"], "cannot open config file"),
        (["--frames", "x", "--first-seq", "soon"], "first_seq: expected a non-negative integer or 'clock', got 'soon'"),
        (["--frames", "x", "--first-seq", "99999999999999999999"], "first_seq: expected a non-negative integer"),
    ],
)
def test_bad_arguments_end_with_one_error_line(base: Path, bundle: Path, args: list[str], message: str) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    run = run_app(fw, args)
    assert run.returncode == 2 and message in run.stderr
    assert run.stderr.startswith("splitsdk-edge: error: ")


def test_receiver_restart_mid_run_reconnects_and_resends(base: Path, bundle: Path, tmp_path: Path) -> None:
    """The receiver goes away after the first RESULT and comes back on the same port and database:
    the app reconnects with backoff, says HELLO again and every frame gets exactly one RESULT."""
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    frames = write_frames(tmp_path / "frames", 3)
    port, db = free_port(), tmp_path / "results.sqlite"
    first = ReceiverProcess(bundle, port=port, db=db).start()
    app = subprocess.Popen(
        app_command(fw, app_args(fw, frames, port, n=12, extra=["--loop", "--queue-depth", "1"])),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        head = [app.stdout.readline()]
        assert head[0].startswith("result seq=0 "), head
        first.stop()  # drains: the frame in flight is answered, then the port closes
        with ReceiverProcess(bundle, port=port, db=db):
            stdout, stderr = app.communicate(timeout=300)
    finally:
        first.stop()
        if app.poll() is None:
            app.kill()
            app.wait()
    run = parse_app_output(app.returncode, head[0] + stdout, stderr)
    assert app.returncode == 0, stderr
    assert [r.seq for r in run.results] == list(range(12)) and all(r.status == 0 for r in run.results)
    assert run.counters["reconnects"] >= 1 and "reconnecting" in stderr


def test_a_restarted_app_numbered_from_the_clock_gets_its_own_results(
    base: Path, bundle: Path, tmp_path: Path
) -> None:
    """The receiver answers a sequence number it has stored from its store (a resent frame's one result). A
    camera restarted with its default numbering sends new frames as 0, 1, ... again and gets the earlier run's
    results for them; numbered from the clock (`--first-seq clock`, the deployed config's setting) each run's
    frames are new to the receiver and get their own results."""
    import sqlite3

    fw = load_firmware(shared_firmware(base, bundle, "host"))
    first, second = write_frames(tmp_path / "a", 3, seed=1), write_frames(tmp_path / "b", 3, seed=2)
    want_first, want_second = host_pipeline(bundle, first), host_pipeline(bundle, second)

    def answers(run: AppRun, bodies: list[str]) -> bool:
        """The run's results are these bodies (the same classes in order, scores within 1e-4)."""
        if len(run.results) != len(bodies):
            return False
        for r, body in zip(run.results, bodies, strict=True):
            got, want = _scores(r.body), _scores(body)
            if [c for c, _ in got] != [c for c, _ in want]:
                return False
            if any(abs(a - b) > 1e-4 for (_, a), (_, b) in zip(got, want, strict=True)):
                return False
        return True

    db = tmp_path / "results.sqlite"
    with ReceiverProcess(bundle, db=db) as rx:
        runs = [run_app(fw, app_args(fw, frames, rx.port, extra=extra)) for frames, extra in [
            (first, []), (second, []),  # the default numbering, twice
            (first, ["--first-seq", "clock"]), (second, ["--first-seq", "clock"]),
        ]]  # fmt: skip
    assert all(r.returncode == 0 for r in runs), [r.stderr[-300:] for r in runs]
    assert [r.seq for r in runs[1].results] == [0, 1, 2]
    assert answers(runs[1], want_first) and not answers(runs[1], want_second)  # the first run's answers back
    late, later = [r.seq for r in runs[2].results], [r.seq for r in runs[3].results]
    assert late == list(range(late[0], late[0] + 3)) and later[0] > late[-1] and late[0] > 10**15  # microseconds
    assert answers(runs[2], want_first) and answers(runs[3], want_second)
    stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert stored == 3 + 3 + 3  # 0..2 once, then each clock-numbered run's own rows


def test_first_seq_numbers_the_frames_from_n(base: Path, bundle: Path, tmp_path: Path) -> None:
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    frames = write_frames(tmp_path / "frames", 2)
    with ReceiverProcess(bundle) as rx:
        run = run_app(fw, app_args(fw, frames, rx.port, extra=["--first-seq", "1000", "-n", "3", "--loop"]))
    assert run.returncode == 0, run.stderr
    assert [(r.seq, r.frame) for r in run.results] == [
        (1000, "frame000.f32"), (1001, "frame001.f32"), (1002, "frame000.f32")
    ]


def test_missing_video_device_is_one_clear_error(base: Path, bundle: Path) -> None:
    """The V4L2 source (no camera on a build machine: only its failure path runs here)."""
    fw = load_firmware(shared_firmware(base, bundle, "host"))
    run = run_app(fw, ["--video", "/dev/splitsdk-no-such-video", "--model", str(fw.model), "--offline"])
    assert run.returncode == 1
    assert run.error == "/dev/splitsdk-no-such-video: cannot open the video device: No such file or directory"
    assert run.counters["captured"] == 0  # stats still printed


def test_library_emulate_takes_objects_or_paths(base: Path, bundle: Path, tmp_path: Path) -> None:
    """`splitsdk.emulate` (the library call behind `splitsdk emulate`) with a Firmware and a Bundle object."""
    frames = write_frames(tmp_path / "frames", 2, seed=5)
    fw_dir = shared_firmware(base, bundle, "host")
    by_object = emulate(load_firmware(fw_dir), load_bundle(bundle), frames, n=2)
    by_path = emulate(fw_dir, bundle, frames, n=2)
    assert [r.status for r in by_object.results] == [0, 0]
    assert [r.body for r in by_object.results] == [r.body for r in by_path.results]
    with pytest.raises(ToolchainError, match="not a directory of frames"):
        emulate(fw_dir, bundle, tmp_path / "none")


def test_the_app_fails_over_to_the_next_receiver(base: Path, bundle: Path, tmp_path: Path) -> None:
    """`--server A,B`: with A down the ARM app moves on to B after its backoff and every frame is answered."""
    fw = load_firmware(shared_firmware(base, bundle, "cortex-a7"))
    frames = write_frames(tmp_path / "frames", 2)
    dead, live = free_port(), free_port()
    servers = ["--server", f"127.0.0.1:{dead},127.0.0.1:{live}"]
    with ReceiverProcess(bundle, port=live):
        run = run_app(fw, app_args(fw, frames, dead, extra=servers))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"127.0.0.1:{dead}" in run.stderr and "unreachable" in run.stderr
    assert [r.seq for r in run.results] == [0, 1] and all(r.status == 0 for r in run.results)


def _run_until_the_receiver_is_up(
    fw: Firmware, args: list[str], bundle: Path, port: int, retries: list[str], waits: int, db: Path | None = None
) -> AppRun:
    """Start the app with no receiver, wait for `waits` "unreachable" lines (kept in `retries`), then start the
    receiver on `port` and let the app finish; it must exit 0."""
    app = subprocess.Popen(app_command(fw, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert app.stderr is not None
        while len(retries) < waits:  # it is really retrying before the receiver exists
            line = app.stderr.readline()
            assert line, "the app exited instead of retrying"
            if "unreachable" in line:
                retries.append(line)
        with ReceiverProcess(bundle, port=port, db=db):
            stdout, stderr = app.communicate(timeout=300)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0, stderr
    return parse_app_output(app.returncode, stdout, stderr)
