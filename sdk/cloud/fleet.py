"""A local fleet on this machine: PostgreSQL, N receivers, HAProxy in front, and a Ray cluster.

`up(bundle, root)` starts, each as its own process (its own session, so that it outlives the command):
a private PostgreSQL cluster (`LocalPostgres` under `root/pg`), a Ray head (`ray start --head --block`,
its daemons in one process group), the receivers (`splitsdk serve` with the fleet's receiver.toml:
the shared database, `--engine ray` by default) and HAProxy (`haproxy.render`) in front of them. Every
process is recorded in `root/fleet.json` (pids, addresses); `down(root)` stops them by those pids in the
reverse order (the receivers with SIGTERM, so that they drain). The same functions serve the tests
(`start_receiver` restarts a receiver killed on purpose).

Behind the balancer every camera connection comes from HAProxy's address, so the fleet's receiver.toml
lifts the per-address handshake cap to the overall one.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from splitsdk.cloud import haproxy
from splitsdk.cloud.pg_local import LocalPostgres, free_port
from splitsdk.codec import CodecError, decode, dumps_json, write_atomic
from splitsdk.errors import ReceiverError

STATE = "fleet.json"
HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "splitsdk-fleet"  # reachable by the postgres user (cli/cmd_fleet.py)


@dataclass(frozen=True)
class Proc:
    """One process of the fleet; `group`: stop its whole process group (the Ray head and its daemons)."""

    name: str
    pid: int
    address: str = ""
    group: bool = False


@dataclass(frozen=True)
class FleetState:
    """fleet.json: what `up` started, for `down` and for the user."""

    root: str
    bundle: str
    db: str
    listen: str  # where cameras connect (HAProxy)
    ray_address: str = ""
    config: str = ""  # the receivers' receiver.toml
    receivers: list[str] = field(default_factory=list)  # HOST:PORT/METRICS_PORT
    processes: list[Proc] = field(default_factory=list)


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: thousands of camera connections per process."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=raise_nofile,
            env={**os.environ, **(env or {})},
        )


def alive(pid: int) -> bool:
    """Whether `pid` runs (a child of ours that exited is reaped here, not taken for alive)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _wait(ready: object, pid: int, what: str, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive(pid):
            raise ReceiverError(f"{what} exited while starting (see {log}): {_tail(log)}")
        time.sleep(0.2)
    raise ReceiverError(f"{what} did not start within {timeout_s:.0f} s (see {log}): {_tail(log)}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def healthz(host: str, port: int) -> int:
    """The HTTP status of a receiver's /healthz (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def stop(proc: Proc, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Signal `proc` by its pid (or its process group), wait, then SIGKILL what is left."""
    kill = os.killpg if proc.group else os.kill
    for s in (sig, signal.SIGKILL):
        try:
            kill(proc.pid, s)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive(proc.pid) and not (proc.group and _group_alive(proc.pid)):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- the services ----


def start_postgres(root: Path) -> tuple[LocalPostgres, Proc]:
    pg = LocalPostgres(root / "pg", durable=False)
    pg.start()
    pid = pg.pid()
    assert pid is not None
    return pg, Proc("postgres", pid, f"{pg.host}:{pg.port}")


def start_ray(root: Path, num_cpus: int = 2) -> Proc:
    """A Ray head (`ray start --head --block`) on a free port; its daemons share its process group."""
    port = free_port(HOST)
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's unix sockets live there
    log = root / "ray.log"
    ray = Path(sys.executable).parent / "ray"
    cmd = [
        str(ray), "start", "--head", "--block", f"--port={port}", f"--node-ip-address={HOST}",
        f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    proc = _spawn(cmd, log, {"RAY_USAGE_STATS_ENABLED": "0"})
    _wait(lambda: "Ray runtime started" in log.read_text(errors="replace"), proc.pid, "ray head", log)
    return Proc("ray", proc.pid, f"{HOST}:{port}", group=True)


def start_receiver(
    index: int, bundle: Path, config: Path, db: str, listen: int, metrics: int, root: Path, ray_address: str = ""
) -> Proc:
    """`splitsdk serve` on HOST:`listen` (/healthz on `metrics`); returns once /healthz answers 200."""
    log = root / f"receiver-{index}.log"
    cmd = [
        sys.executable, "-m", "splitsdk", "serve", str(bundle), "--config", str(config), "--db", db,
        "--listen", f"{HOST}:{listen}", "--metrics", f"{HOST}:{metrics}",
    ]  # fmt: skip
    if ray_address:
        cmd += ["--engine", "ray", "--ray-address", ray_address]
    proc = _spawn(cmd, log, {"TF_CPP_MIN_LOG_LEVEL": "3"})
    _wait(lambda: healthz(HOST, metrics) == 200, proc.pid, f"receiver {index}", log)
    return Proc(f"receiver-{index}", proc.pid, f"{HOST}:{listen}/{metrics}")


def start_haproxy(root: Path, receivers: list[str], listen: str) -> Proc:
    cfg = root / "haproxy.cfg"
    write_atomic(cfg, haproxy.render([haproxy.parse_backend(r) for r in receivers], listen))
    log = root / "haproxy.log"
    proc = _spawn(["haproxy", "-db", "-f", str(cfg)], log)
    host, _, port = listen.rpartition(":")
    _wait(lambda: port_open(host or HOST, int(port)), proc.pid, "haproxy", log)
    return Proc("haproxy", proc.pid, listen)


def receiver_toml(max_connections: int = 8192) -> str:
    """The fleet's receiver.toml: plain TCP on loopback; behind HAProxy every camera has its address."""
    return f"""# splitsdk fleet: receivers behind HAProxy on this machine
insecure_plain_tcp = true
[limits]
max_connections = {max_connections}
max_handshakes = 4096
max_handshakes_per_address = 4096
idle_timeout_s = 600.0
[batching]
max_batch = 32
max_wait_ms = 5.0
"""


def up(
    bundle: Path,
    root: Path = DEFAULT_ROOT,
    *,
    receivers: int = 2,
    engine: str = "ray",
    num_cpus: int = 2,
    config: Path | None = None,
    listen: str = "",
) -> FleetState:
    """Start the fleet under `root` and record it in `root/fleet.json` (a fleet already there: refused)."""
    root = root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    if (root / STATE).exists():
        raise ReceiverError(f"{root / STATE}: a fleet is up there already (splitsdk fleet down --dir {root})")
    if config is None:
        config = root / "receiver.toml"
        write_atomic(config, receiver_toml())
    procs: list[Proc] = []
    state = FleetState(
        str(root), str(bundle.absolute()), "", listen or f"{HOST}:{free_port(HOST)}", config=str(config.absolute())
    )

    def record() -> None:
        write_atomic(root / STATE, dumps_json(replace(state, processes=procs)))

    record()
    try:
        pg, p = start_postgres(root)
        procs.append(p)
        record()
        state = replace(state, db=pg.url("splitsdk") if _has_database(pg) else pg.create_database("splitsdk"))
        record()
        if engine == "ray":
            ray = start_ray(root, num_cpus)
            procs.append(ray)
            state = replace(state, ray_address=ray.address)
            record()
        for i in range(receivers):
            listen_port, metrics_port = free_port(HOST), free_port(HOST)
            procs.append(
                start_receiver(i, bundle, config, state.db, listen_port, metrics_port, root, state.ray_address)
            )
            state = replace(state, receivers=[*state.receivers, procs[-1].address])
            record()
        procs.append(start_haproxy(root, state.receivers, state.listen))
        record()
    except BaseException:
        down(root)
        raise
    return replace(state, processes=procs)


def _has_database(pg: LocalPostgres, name: str = "splitsdk") -> bool:
    """Whether the cluster has database `name` already (a fleet folder used again)."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def load_state(root: Path) -> FleetState:
    path = root / STATE
    try:
        import json

        return decode(FleetState, json.loads(path.read_text()))
    except FileNotFoundError:
        raise ReceiverError(f"{path}: no fleet is up there (no such file)") from None
    except (OSError, ValueError) as exc:
        where = f"{exc}" if isinstance(exc, CodecError) else f"unreadable: {exc}"
        raise ReceiverError(f"{path}: {where}") from None


def restart_receiver(root: Path, index: int) -> Proc:
    """Start receiver `index` again on its own ports (after it died) and record its new pid."""
    root = root.absolute()
    state = load_state(root)
    name = f"receiver-{index}"
    old = next((p for p in state.processes if p.name == name), None)
    if old is None:
        raise ReceiverError(f"{root / STATE}: no {name} in this fleet")
    if alive(old.pid):
        raise ReceiverError(f"{name} (pid {old.pid}) still runs")
    backend = haproxy.parse_backend(old.address)
    new = start_receiver(
        index, Path(state.bundle), Path(state.config), state.db, backend.port, backend.health_port, root,
        state.ray_address,
    )  # fmt: skip
    procs = [new if p.name == name else p for p in state.processes]
    write_atomic(root / STATE, dumps_json(replace(state, processes=procs)))
    return new


def down(root: Path = DEFAULT_ROOT) -> list[str]:
    """Stop every process `root/fleet.json` records, last started first; returns their names."""
    root = root.absolute()
    state = load_state(root)
    stopped = []
    for proc in reversed(state.processes):
        if proc.name == "postgres":
            LocalPostgres(root / "pg").stop("fast")
        else:
            stop(proc)
        stopped.append(proc.name)
    (root / STATE).unlink(missing_ok=True)
    return stopped
