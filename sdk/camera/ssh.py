"""SSH to a camera with the system OpenSSH client (`ssh`), non-interactively.

Host keys: a camera's key is accepted on first use into the given known_hosts file
(`StrictHostKeyChecking=accept-new`); a changed key is refused, as ssh always does.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from splitsdk.camera.errors import CameraError

_HOST = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class Remote:
    """`user@host[:port]` with the key and known_hosts file to use."""

    host: str
    user: str = "root"
    port: int = 22
    key: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: int = 15

    @classmethod
    def parse(cls, spec: str, key: Path | None = None, known_hosts: Path | None = None) -> Remote:
        m = _HOST.match(spec.strip())
        if m is None:
            raise CameraError(f"--host must be user@host[:port], got '{spec}'")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise CameraError(f"--host: bad port {port}")
        return cls(host=m["host"].strip("[]"), user=m["user"] or "root", port=port, key=key, known_hosts=known_hosts)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def command(self, remote_cmd: str) -> list[str]:
        cmd = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
        cmd += [
            "-o",
            f"ConnectTimeout={self.connect_timeout_s}",
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.known_hosts is not None:
            cmd += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key is not None:
            cmd += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return [*cmd, f"{self.user}@{self.host}", remote_cmd]

    def run(self, remote_cmd: str, stdin: bytes = b"", timeout_s: float = 120.0) -> tuple[int, str, str]:
        """Run `remote_cmd` on the camera; (exit status, stdout, stderr). 255 is ssh's own failure."""
        try:
            proc = subprocess.run(
                self.command(remote_cmd), input=stdin, capture_output=True, timeout=timeout_s, check=False
            )
        except FileNotFoundError:
            raise CameraError("'ssh' is not installed (openssh-client; run `make setup`)") from None
        except subprocess.TimeoutExpired:
            raise CameraError(f"{self}: '{remote_cmd.split()[0]}' did not finish within {timeout_s:.0f} s") from None
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def check(self, remote_cmd: str, stdin: bytes = b"", timeout_s: float = 120.0) -> str:
        rc, out, err = self.run(remote_cmd, stdin, timeout_s)
        if rc == 255:
            raise CameraError(f"cannot reach the camera at {self}: {err.strip().splitlines()[-1:] or ['ssh failed']}")
        if rc != 0:
            raise CameraError(f"{self}: '{remote_cmd}' failed ({rc}): {err.strip()}")
        return out
