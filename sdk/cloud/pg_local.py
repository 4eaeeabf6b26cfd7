"""A private PostgreSQL cluster in one folder: `initdb`, serve on a loopback port, stop.

`LocalPostgres(root)` keeps everything under `root`: the cluster (`data/`), the server's unix socket
(`sock/`) and its log (`postgres.log`). `start()` creates the cluster on first use (a superuser `user`,
trusted on loopback only, or with a password when one is given) on a free loopback port, then starts it;
`stop()` stops it; `url(dbname)` is the psycopg URL; `create_database(name)` adds a database.

PostgreSQL refuses to run as root: run as root, the server runs as the `postgres` system user that
Debian's `postgresql` package creates, and `root` is handed to that user (it must be reachable by it:
a folder under /tmp or /var/lib, not under /root). The server binaries are looked up on PATH, then in
Debian's /usr/lib/postgresql/<version>/bin (newest version first).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from splitsdk.cloud.store import StoreError
from splitsdk.errors import first_line

DEBIAN_BIN = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
START_TIMEOUT_S = 60


def server_bin(name: str) -> Path:
    """A PostgreSQL server program (initdb, pg_ctl)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    versions = sorted(
        (p for p in DEBIAN_BIN.glob(f"*/bin/{name}") if p.parent.parent.name.isdigit()),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if not versions:
        raise StoreError(f"{name}: PostgreSQL server not found (install the postgresql package; make setup does)")
    return versions[0]


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL cluster under `root`, served on `host`:`port` (0: a free port, chosen at creation)."""

    def __init__(
        self,
        root: str | Path,
        port: int = 0,
        user: str = "splitsdk",
        password: str | None = None,
        host: str = "127.0.0.1",
        durable: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.host = host
        self.user = user
        self.password = password
        self.durable = durable  # False: no fsync (tests, throw-away clusters)
        self.port = port or self._configured_port() or free_port(host)
        self._owner = pwd.getpwnam(SERVICE_USER) if os.geteuid() == 0 else None

    # ---- running the server programs as the cluster's owner ----

    def _owner_kwargs(self) -> dict[str, Any]:
        if self._owner is None:
            return {}
        return {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []}

    def _run(self, *cmd: str | Path) -> None:
        try:
            proc = subprocess.run(
                [str(c) for c in cmd],
                capture_output=True,
                text=True,
                cwd=self.root,
                timeout=START_TIMEOUT_S + 30,
                check=False,
                **self._owner_kwargs(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise StoreError(f"{self.root}: {Path(cmd[0]).name} failed: {first_line(exc)}") from None
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            if self.log.exists():
                lines += [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
            why = lines[-1].strip() if lines else f"exit status {proc.returncode}"
            raise StoreError(f"{self.root}: {Path(cmd[0]).name} failed: {why}")

    def _hand_over(self) -> None:
        """Give `root` to the postgres user when running as root (the server refuses to run as root)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._owner is None:
            return
        for parent in self.root.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH and parent.stat().st_uid != self._owner.pw_uid:
                raise StoreError(
                    f"{self.root}: the {SERVICE_USER} user cannot reach this folder ({parent} is not searchable "
                    "by others); choose one under /tmp or /var/lib"
                )
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid, follow_symlinks=False)

    # ---- the cluster ----

    def _configured_port(self) -> int | None:
        conf = self.data / "postgresql.conf"
        found = re.findall(r"^port = (\d+)", conf.read_text(), re.M) if conf.exists() else []
        return int(found[-1]) if found else None

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (once): superuser `user`, UTF-8, listening on `host`:`port` only."""
        if self.initialized:
            return
        self.sock.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        auth = ["--auth=trust"]
        if self.password is not None:
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        self._hand_over()
        try:
            self._run(
                server_bin("initdb"),
                "-D",
                self.data,
                f"--username={self.user}",
                "--encoding=UTF8",
                "--locale=C",
                *auth,
                *([] if self.durable else ["--no-sync"]),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sock}'",
            **({} if self.durable else {"fsync": "off", "full_page_writes": "off"}),
        }
        with open(self.data / "postgresql.conf", "a") as conf:  # stays the postgres user's file
            conf.write("\n# splitsdk LocalPostgres\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self) -> None:
        """Create the cluster if needed and start its server; returns once it accepts connections."""
        self.init()
        self._run(server_bin("pg_ctl"), "start", "-D", self.data, "-l", self.log, "-w", "-t", str(START_TIMEOUT_S))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server ("fast": end sessions, checkpoint; "immediate": kill, recover at the next start)."""
        if self.pid() is not None:
            self._run(server_bin("pg_ctl"), "stop", "-D", self.data, "-m", mode, "-w", "-t", str(START_TIMEOUT_S))

    def restart(self, mode: str = "fast") -> None:
        """Stop the server and start it again (its sessions end; clients must reconnect)."""
        pg_ctl = server_bin("pg_ctl")
        self._run(pg_ctl, "restart", "-D", self.data, "-l", self.log, "-m", mode, "-w", "-t", str(START_TIMEOUT_S))

    def pid(self) -> int | None:
        """The server's process id while it runs (from postmaster.pid)."""
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def url(self, dbname: str = "postgres") -> str:
        auth = quote(self.user, safe="") + ("" if self.password is None else ":" + quote(self.password, safe=""))
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database `name` (letters, digits, underscores); returns its URL."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise StoreError(f"database name {name!r}: use letters, digits and underscores")
        import psycopg

        try:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise StoreError(f"{self.url(name)}: cannot create the database: {first_line(exc)}") from None
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
