"""Receiver configuration: a TOML file (`--config receiver.toml`) with command-line overrides.

receiver.toml (every key optional):

    listen = "0.0.0.0:7700"
    db = "results.sqlite"
    db_synchronous = "full"   # or "normal": survives a receiver crash, not a power loss; faster commits
    metrics = "127.0.0.1:9100"
    insecure_plain_tcp = false
    [tls]
    cert = "server.pem"
    key = "server.key"
    client_ca = "ca.pem"
    [limits]
    max_frame_bytes = 67108864
    max_tensors = 16
    max_rank = 8
    max_dim = 1048576
    max_elements = 67108864
    max_connections = 1024
    read_timeout_s = 10.0      # a started frame must arrive within this plus its size at min_rate (slow-loris)
    min_rate_bytes_s = 16384.0 # slowest uplink served: a 1 MiB frame gets 10 s + 64 s
    idle_timeout_s = 300.0     # a connection may stay silent between frames this long
    handshake_timeout_s = 15.0 # TLS handshake (generous: hundreds of cameras reconnect at once)
    [batching]
    max_batch = 16
    max_wait_ms = 5.0
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from splitsdk.errors import ReceiverError
from splitsdk.wire.frame import Limits


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 7700
    db: Path = Path("results.sqlite")
    db_synchronous: str = "full"
    metrics_host: str | None = None
    metrics_port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    insecure_plain_tcp: bool = False
    max_frame_bytes: int = Limits.max_frame_bytes
    max_tensors: int = Limits.max_tensors
    max_rank: int = Limits.max_rank
    max_dim: int = Limits.max_dim
    max_elements: int = Limits.max_elements
    max_connections: int = 1024
    read_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    handshake_timeout_s: float = 15.0
    min_rate_bytes_s: float = 16384.0
    max_batch: int = 16
    max_wait_ms: float = 5.0

    @property
    def limits(self) -> Limits:
        return Limits(self.max_frame_bytes, self.max_tensors, self.max_rank, self.max_dim, self.max_elements)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def validate(self) -> ReceiverConfig:
        """Refuse configurations that would serve insecurely by accident or cannot work."""
        tls_parts = [self.tls_cert, self.tls_key, self.client_ca]
        if any(p is not None for p in tls_parts) and not all(p is not None for p in tls_parts):
            raise ReceiverError("TLS needs all of --tls-cert, --tls-key and --client-ca")
        if not self.tls and not self.insecure_plain_tcp:
            raise ReceiverError(
                "no TLS configured: pass --tls-cert/--tls-key/--client-ca, or --insecure-plain-tcp to "
                "accept unauthenticated cameras"
            )
        for p in tls_parts:
            if p is not None and not Path(p).is_file():
                raise ReceiverError(f"{p}: no such certificate/key file")
        if self.db_synchronous not in ("full", "normal"):
            raise ReceiverError(f"db_synchronous must be 'full' or 'normal', got {self.db_synchronous!r}")
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.max_connections < 1:
            raise ReceiverError("max_batch and max_connections must be >= 1, max_wait_ms >= 0")
        if min(self.read_timeout_s, self.idle_timeout_s, self.handshake_timeout_s, self.min_rate_bytes_s) <= 0:
            raise ReceiverError("timeouts and min_rate_bytes_s must be positive")
        return self


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ReceiverError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_SECTIONS = {"tls": {"cert": "tls_cert", "key": "tls_key", "client_ca": "client_ca"}}


def load_config(path: str | Path | None, **overrides: Any) -> ReceiverConfig:
    """Defaults <- TOML file <- overrides whose value is not None."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ReceiverError(f"{path}: cannot read the receiver config: {exc}") from None
        known = {f.name for f in fields(ReceiverConfig)}
        for key, value in data.items():
            if key == "listen":
                values["host"], values["port"] = parse_hostport(str(value), f"{path}: listen")
            elif key == "metrics":
                values["metrics_host"], values["metrics_port"] = parse_hostport(str(value), f"{path}: metrics")
            elif key in _SECTIONS and isinstance(value, dict):
                for k, v in value.items():
                    if k not in _SECTIONS[key]:
                        raise ReceiverError(f"{path}: unknown key '{key}.{k}'")
                    values[_SECTIONS[key][k]] = Path(v)
            elif key in ("limits", "batching") and isinstance(value, dict):
                for k, v in value.items():
                    if k not in known:
                        raise ReceiverError(f"{path}: unknown key '{key}.{k}'")
                    values[k] = v
            elif key == "db":
                values["db"] = Path(value)
            elif key == "db_synchronous":
                values[key] = str(value)
            elif key == "insecure_plain_tcp":
                values[key] = bool(value)
            else:
                raise ReceiverError(f"{path}: unknown key '{key}'")
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return replace(ReceiverConfig(), **values)
    except TypeError as exc:
        raise ReceiverError(f"receiver config: {exc}") from None
