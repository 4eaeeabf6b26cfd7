"""A fleet on this machine: cameras -> HAProxy -> two receivers -> one PostgreSQL, the model on Ray Serve.

The fleet is the real thing (`splitsdk.cloud.fleet.up`: LocalPostgres, `ray start --head`, two
`splitsdk serve --engine ray` processes, haproxy), started once for the module and stopped by its pids.
The cameras are asyncio clients in their own process (tests/fleet_load.py) that reconnect and resend
what got no RESULT. Each test checks the one invariant of the design: every acknowledged frame is in the
database exactly once (the primary key forbids a second row; its body is the acknowledged one), through
a receiver killed with SIGKILL, a Ray Serve replica killed, and PostgreSQL restarted, each mid-load.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fleet_load
import psycopg
import pytest
from test_receiver import make_frame
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.cloud import fleet, haproxy
from splitsdk.cloud.pg_local import LocalPostgres, free_port
from splitsdk.wire.bundle import Bundle, load_bundle

CAMERAS = 2000


class Fleet:
    def __init__(self, root: Path, bundle_dir: Path) -> None:
        self.root = root
        self.bundle_dir = bundle_dir
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.state = fleet.up(bundle_dir, root, receivers=2, engine="ray", num_cpus=2)
        self.frame = root / "frame.bin"
        self.frame.write_bytes(wire.encode(make_frame(self.bundle, "load", 0)))
        self.port = int(self.state.listen.rpartition(":")[2])

    def cameras(self, out: Path, cameras: int, prefix: str, **kw: Any) -> Any:
        return fleet_load.start(self.port, self.bundle.plan_sha256, self.frame, out, cameras, prefix=prefix, **kw)

    def rows(self, prefix: str) -> dict[tuple[str, int], str]:
        with psycopg.connect(self.state.db) as conn:
            got = conn.execute(
                "SELECT device_id, seq, result FROM results WHERE device_id LIKE %s", (f"{prefix}-%",)
            ).fetchall()
        return {(d, int(s)): bytes(r).hex() for d, s, r in got}

    def proc(self, name: str) -> fleet.Proc:
        return next(p for p in self.state.processes if p.name == name)


@pytest.fixture(scope="module")
def running() -> Iterator[Fleet]:
    root = Path(tempfile.mkdtemp(prefix="splitsdk-fleet-"))  # under /tmp: the postgres user reaches it
    root.chmod(0o755)
    bundle_dir = build_bundle(root / "bundle", bits=4)
    f = Fleet(root / "fleet", bundle_dir)
    try:
        yield f
    finally:
        fleet.down(root / "fleet")
        shutil.rmtree(root, ignore_errors=True)


def _result(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _check_stored_once(f: Fleet, result: dict[str, Any], prefix: str) -> dict[tuple[str, int], str]:
    """Every acknowledged (device, seq) acknowledged once and stored, with the acknowledged body."""
    acks = Counter((d, s) for d, s, _ in result["acks"])
    assert acks and max(acks.values()) == 1
    rows = f.rows(prefix)
    for d, s, body in result["acks"]:
        assert rows.get((d, s)) == body, (d, s)
    return rows


def _metric(metrics_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def test_haproxy_config_tcp_passthrough_health_checked() -> None:
    text = haproxy.render(
        [haproxy.parse_backend("10.0.0.1:7700"), haproxy.parse_backend("10.0.0.2:7700/9100")], ":7000"
    )
    assert "mode tcp" in text and "bind 0.0.0.0:7000" in text
    assert "ssl" not in text.replace("TLS passed through", "")  # TLS is not terminated: mTLS reaches the receivers
    assert "option httpchk GET /healthz" in text
    assert "server r0 10.0.0.1:7700 check port 7701" in text
    assert "server r1 10.0.0.2:7700 check port 9100" in text
    with pytest.raises(fleet.ReceiverError, match="--receiver: expected HOST:PORT"):
        haproxy.parse_backend("nohost")


def test_many_cameras_through_haproxy_two_receivers_ray_serve(running: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "many.json"
    assert running.cameras(out, CAMERAS, "many", frames=3, timeout_s=120).wait(150) == 0
    result = _result(out)
    assert result["failures"] == []
    rows = _check_stored_once(running, result, "many")
    assert len(result["acks"]) == CAMERAS * 3 == len(rows)
    # both receivers served cameras
    for r in running.state.receivers:
        assert _metric(haproxy.parse_backend(r).health_port, "splitsdk_frames_total") > 0


def test_receiver_killed_mid_load_cameras_fail_over_and_it_rejoins(running: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "kill.json"
    cams = running.cameras(out, 300, "kill", seconds=10.0)
    victim = running.proc("receiver-0")
    backend = haproxy.parse_backend(victim.address)
    time.sleep(3.0)
    os.kill(victim.pid, signal.SIGKILL)
    assert cams.wait(60) == 0
    result = _result(out)
    _check_stored_once(running, result, "kill")
    assert any(code != "OVERLOADED" for _, _, code in result["refusals"])  # the cut connections
    late = [s for _, s, _ in result["acks"]]
    assert len(late) > 300 * 3  # cameras went on sending through the survivor
    # it restarts on its own ports and HAProxy puts it back in rotation
    fleet.restart_receiver(running.root, 0)
    _wait_until(lambda: fleet.healthz("127.0.0.1", backend.health_port) == 200, 60, "restarted receiver healthy")
    time.sleep(3.0)  # two health checks, 1 s apart
    again = tmp_path / "again.json"
    assert running.cameras(again, 100, "again", frames=2).wait(60) == 0
    assert _result(again)["failures"] == []
    assert _metric(backend.health_port, "splitsdk_frames_total") > 0  # the rejoined receiver serves cameras


def _replica_pids(app: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(f"ray::ServeReplica:{app}".encode()):
                pids.append(int(proc.name))
    return pids


def test_ray_replica_killed_mid_load_nothing_acknowledged_unstored(running: Fleet, tmp_path: Path) -> None:
    app = f"splitsdk-{running.bundle.plan_sha256[:16]}"
    replicas = _replica_pids(app)
    assert replicas
    out = tmp_path / "replica.json"
    cams = running.cameras(out, 200, "replica", seconds=12.0)
    time.sleep(3.0)
    for pid in replicas:
        os.kill(pid, signal.SIGKILL)
    assert cams.wait(60) == 0
    result = _result(out)
    rows = _check_stored_once(running, result, "replica")
    assert len(rows) >= len(result["acks"])
    _wait_until(lambda: bool(_replica_pids(app)), 60, "Serve replaced the replica")
    after = tmp_path / "after.json"
    assert running.cameras(after, 50, "after-replica", frames=2).wait(90) == 0
    assert _result(after)["failures"] == []


def test_postgres_restarted_mid_load_receivers_refuse_then_recover(running: Fleet, tmp_path: Path) -> None:
    pg = LocalPostgres(running.root / "pg")
    out = tmp_path / "pg.json"
    cams = running.cameras(out, 200, "pg", seconds=14.0)
    time.sleep(3.0)
    pg.stop("immediate")
    time.sleep(3.0)
    pg.start()
    assert cams.wait(60) == 0
    result = _result(out)
    _check_stored_once(running, result, "pg")
    codes = Counter(code for _, _, code in result["refusals"])
    assert codes["INTERNAL"] + codes["OVERLOADED"] > 0  # refused while the database was down
    after = tmp_path / "after.json"
    assert running.cameras(after, 50, "after-pg", frames=2).wait(60) == 0  # recovered by themselves
    assert _result(after)["failures"] == []


def test_edge_sim_fails_over_to_the_next_server(running: Fleet) -> None:
    import numpy as np

    from splitsdk.wire.client import simulate_failover

    dead = ("127.0.0.1", free_port("127.0.0.1"))  # nothing listens there
    shape = running.bundle.input.shape
    frames = [(f"f{i}", np.full(shape, i, np.uint8)) for i in range(3)]
    results = simulate_failover(running.bundle, [dead, ("127.0.0.1", running.port)], frames, "simfo-0")
    assert [r.seq for _, r in results] == [0, 1, 2]
    assert set(running.rows("simfo")) == {("simfo-0", s) for s in range(3)}


def test_a_multi_split_bundle_is_served_on_ray_one_application_per_split(running: Fleet, tmp_path: Path) -> None:
    """A multi-split bundle (the ladder model's split set) behind a receiver with `--engine ray` on the fleet's
    cluster: each member's cloud half is its own Serve application (`<app>-split<k>`), and a camera forced to
    each split gets what the in-process engine answers for the same frames; each row records its split."""
    import sqlite3

    import numpy as np
    from plan_factory import make_plan
    from test_adaptive_bundle import POST, ladder_model, split_set_for

    from splitsdk.cloud.config import EngineConfig
    from splitsdk.cloud.engine_ray import app_name
    from splitsdk.convert.chain import convert_split_set
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.wire.edge import AdaptiveCamera, drive

    model = ladder_model(tmp_path / "ladder.keras")
    plan = make_plan(model, tmp_path / "plan.json")
    convert_split_set(plan, split_set_for(model, plan), model, tmp_path / "bundle", postprocess=POST)
    bundle = load_bundle(tmp_path / "bundle")
    images = list(np.random.default_rng(3).integers(0, 256, (3, *bundle.input.shape)).astype(np.uint8))

    def answers(port: int, device: str) -> dict[int, list[list[float]]]:
        out = {}
        for k in bundle.split_indices:
            camera = AdaptiveCamera(bundle, "127.0.0.1", port, f"{device}-{k}", split=k)
            try:
                out[k] = [json.loads(r.result.body)["outputs"][0] for r in drive(camera, images, 120.0, len(images))]
            finally:
                camera.close(send_stats=False)
        return out

    with ReceiverProcess(bundle) as local:
        want = answers(local.port, "local")
    config = tmp_path / "receiver.toml"  # the fleet's cluster has 2 CPUs, its own application holds one
    config.write_text(fleet.receiver_toml() + "[engine]\nnum_cpus = 0.2\n")
    db = tmp_path / "ray.sqlite"
    proc = fleet.start_receiver(9, tmp_path / "bundle", config, str(db), free_port("127.0.0.1"),
                                free_port("127.0.0.1"), tmp_path, running.state.ray_address)
    try:
        for k in bundle.split_indices:  # one Serve application per cloud half, each with its replica
            app = app_name(bundle, EngineConfig(), k)
            _wait_until(lambda: bool(_replica_pids(app)), 60, f"the replica of {app}")  # noqa: B023 - used at once
        got = answers(haproxy.parse_backend(proc.address).port, "ray")
    finally:
        fleet.stop(proc)
    assert sorted(got) == sorted(want) == sorted(bundle.split_indices) and len(got) >= 2
    for k in got:
        assert len(got[k]) == len(want[k]) == len(images)
        np.testing.assert_allclose(np.array(got[k]), np.array(want[k]), rtol=1e-4, atol=1e-5)
    assert got[bundle.split_indices[0]] != got[bundle.split_indices[-1]]  # the halves are different models
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT device_id, split FROM results").fetchall()
    assert sorted(rows) == sorted((f"ray-{k}", k) for k in bundle.split_indices for _ in images)
