"""Receiver configuration: a TOML file (`--config receiver.toml`) with command-line overrides.

receiver.toml (every key optional; the sections are the dataclasses below, read through
`splitsdk.codec`: a misspelt key, a key in the wrong section, `"16"` for a number or `"false"` for a
boolean, an out-of-range limit are refused with one line naming the file and the field):

    listen = "0.0.0.0:7700"
    db = "results.sqlite"
    db_synchronous = "full"   # or "normal": survives a receiver crash, not a power loss; faster commits
    metrics = "127.0.0.1:9100"
    insecure_plain_tcp = false
    [tls]
    cert = "server.pem"
    key = "server.key"
    client_ca = "ca.pem"
    crl = "crl.pem"                 # revoked camera certificates (`splitsdk certs revoke`); re-read on change/SIGHUP
    allowed_devices = "devices.txt" # only these device ids (one a line, # comments); re-read on change/SIGHUP
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
    hello_timeout_s = 5.0      # after TLS, a new connection must have sent its HELLO within this
    max_handshakes = 512       # connections not yet past HELLO (their own cap, apart from max_connections)
    max_handshakes_per_address = 256  # ... of them from one source address
    max_bytes_in_flight = 268435456   # frame bytes being read, all connections together (memory bound)
    max_stats_bytes = 65536    # one STATS message's JSON text
    max_stats_depth = 32       # how deep its arrays/objects may nest
    stats_burst = 8            # STATS stored per camera at once; then one more per stats_interval_s
    stats_interval_s = 10.0
    http_timeout_s = 5.0       # /metrics, /healthz: a whole request must arrive within this
    http_max_connections = 16
    [batching]
    max_batch = 16
    max_wait_ms = 5.0
    [engine]                   # where the cloud model runs
    kind = "local"             # "local": in the receiver; "ray": a Ray Serve deployment (splitsdk.cloud.engine_ray)
    ray_address = "auto"       # the Ray cluster (HOST:PORT of its head, "auto", or ray://HOST:PORT)
    app = ""                   # Serve application name ("": splitsdk-<first 16 hex of the plan hash>)
    replicas = 1               # replicas of the cloud model (the fewest, with autoscaling)
    max_replicas = 0           # > replicas: autoscale up to this many on ongoing requests
    target_ongoing_requests = 2.0
    num_cpus = 1.0             # CPUs each replica reserves in the Ray cluster
    max_batch = 64             # frames one replica runs at once (@serve.batch joins the receivers' batches)
    batch_wait_ms = 5.0
    timeout_s = 30.0           # one batch's round trip to Serve; then it is retried
    retries = 2                # a failed round trip (a replica killed) is retried; then the frames get an ERROR
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from splitsdk.address import AddressError, parse_hostport
from splitsdk.codec import CodecError, bounds, decode, encode
from splitsdk.errors import ReceiverError
from splitsdk.wire._ext import lib
from splitsdk.wire.frame import MAX_RANK, Limits

U32_MAX = 2**32 - 1  # the C frame codec's lengths and counts are uint32
MIN_FRAME_BYTES = int(lib.SP_HEADER_LEN) + 4  # a header and its CRC-32: the smallest frame there is
POSITIVE = bounds(gt=0)


@dataclass(frozen=True)
class TlsConfig:
    """[tls]: the server's certificate and key and the CA that signed the cameras' certificates (PEM)."""

    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None
    crl: Path | None = None  # a CRL (PEM) of client_ca: its revoked certificates are refused at the handshake
    allowed_devices: Path | None = None  # a file of the device ids (certificate names) served; None: any

    @property
    def trust_files(self) -> tuple[Path, ...]:
        """The files a change of which re-reads the receiver's trust (certificates, CRL, allow-list)."""
        files = (self.cert, self.key, self.client_ca, self.crl, self.allowed_devices)
        return tuple(p for p in files if p is not None)

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class LimitsConfig:
    """[limits]: what one frame may hold (checked before anything is allocated) and connection timing."""

    max_frame_bytes: int = field(default=Limits.max_frame_bytes, metadata=bounds(ge=MIN_FRAME_BYTES, le=U32_MAX))
    max_tensors: int = field(default=Limits.max_tensors, metadata=bounds(ge=1, le=U32_MAX))
    max_rank: int = field(default=Limits.max_rank, metadata=bounds(ge=1, le=MAX_RANK))
    max_dim: int = field(default=Limits.max_dim, metadata=bounds(ge=1, le=U32_MAX))
    max_elements: int = field(default=Limits.max_elements, metadata=bounds(ge=1))
    max_connections: int = field(default=1024, metadata=bounds(ge=1))
    read_timeout_s: float = field(default=10.0, metadata=POSITIVE)
    min_rate_bytes_s: float = field(default=16384.0, metadata=POSITIVE)
    idle_timeout_s: float = field(default=300.0, metadata=POSITIVE)
    handshake_timeout_s: float = field(default=15.0, metadata=POSITIVE)
    hello_timeout_s: float = field(default=5.0, metadata=POSITIVE)
    max_handshakes: int = field(default=512, metadata=bounds(ge=1))
    max_handshakes_per_address: int = field(default=256, metadata=bounds(ge=1))
    max_bytes_in_flight: int = field(default=256 * 1024 * 1024, metadata=bounds(ge=MIN_FRAME_BYTES))
    max_stats_bytes: int = field(default=64 * 1024, metadata=bounds(ge=2))
    max_stats_depth: int = field(default=32, metadata=bounds(ge=1, le=256))
    stats_burst: int = field(default=8, metadata=bounds(ge=1))
    stats_interval_s: float = field(default=10.0, metadata=POSITIVE)
    http_timeout_s: float = field(default=5.0, metadata=POSITIVE)
    http_max_connections: int = field(default=16, metadata=bounds(ge=1))

    @property
    def frame(self) -> Limits:
        """The frame decoder's limits."""
        return Limits(self.max_frame_bytes, self.max_tensors, self.max_rank, self.max_dim, self.max_elements)


@dataclass(frozen=True)
class BatchingConfig:
    """[batching]: frames of all cameras are run together, up to `max_batch`, waiting at most `max_wait_ms`."""

    max_batch: int = field(default=16, metadata=bounds(ge=1))
    max_wait_ms: float = field(default=5.0, metadata=bounds(ge=0))


@dataclass(frozen=True)
class EngineConfig:
    """[engine]: where the cloud model runs: in the receiver ("local") or on a Ray Serve deployment ("ray")."""

    kind: Literal["local", "ray"] = "local"
    ray_address: str = "auto"
    app: str = ""
    replicas: int = field(default=1, metadata=bounds(ge=1))
    max_replicas: int = field(default=0, metadata=bounds(ge=0))
    target_ongoing_requests: float = field(default=2.0, metadata=POSITIVE)
    num_cpus: float = field(default=1.0, metadata=POSITIVE)
    max_batch: int = field(default=64, metadata=bounds(ge=1))
    batch_wait_ms: float = field(default=5.0, metadata=bounds(ge=0))
    timeout_s: float = field(default=30.0, metadata=POSITIVE)
    retries: int = field(default=2, metadata=bounds(ge=0, le=100))


@dataclass(frozen=True)
class ReceiverConfig:
    """The receiver's settings, laid out as receiver.toml is."""

    listen: str = "127.0.0.1:7700"  # HOST:PORT
    db: str = "results.sqlite"  # a SQLite file, or a postgresql:// URL (Path would fold its //)
    db_synchronous: Literal["full", "normal"] = "full"
    metrics: str | None = None  # HOST:PORT of /metrics and /healthz; None: off
    insecure_plain_tcp: bool = False
    tls: TlsConfig = field(default_factory=TlsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    @property
    def host(self) -> str:
        return _address(self.listen, "listen")[0]

    @property
    def port(self) -> int:
        return _address(self.listen, "listen")[1]

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        return _address(self.metrics, "metrics") if self.metrics is not None else None

    def validate(self) -> ReceiverConfig:
        """Refuse configurations that would serve insecurely by accident or cannot work."""
        tls_parts = [self.tls.cert, self.tls.key, self.tls.client_ca]
        if any(p is not None for p in tls_parts) and not all(p is not None for p in tls_parts):
            raise ReceiverError("tls: needs all of tls.cert, tls.key and tls.client_ca")
        if not self.tls.enabled and not self.insecure_plain_tcp:
            raise ReceiverError(
                "no TLS configured: set tls.cert, tls.key and tls.client_ca, or insecure_plain_tcp = true to "
                "accept unauthenticated cameras"
            )
        for name, extra in (("tls.crl", self.tls.crl), ("tls.allowed_devices", self.tls.allowed_devices)):
            if extra is not None and not self.tls.enabled:
                raise ReceiverError(f"{name}: needs TLS (tls.cert, tls.key and tls.client_ca)")
        if 0 < self.engine.max_replicas < self.engine.replicas:
            raise ReceiverError("engine.max_replicas: below engine.replicas (0 turns autoscaling off)")
        for p in self.tls.trust_files:
            if not Path(p).is_file():
                raise ReceiverError(f"{p}: no such certificate/key/CRL/allow-list file")
        return self


def _address(text: str, what: str) -> tuple[str, int]:
    """A listening HOST:PORT (an empty host listens on every IPv4 address)."""
    return parse_hostport(text, what, default_host="0.0.0.0")


def _decode(data: Mapping[str, Any], source: str) -> ReceiverConfig:
    """`data` as a checked config; errors are one line, `<source>: <field>: <message>`."""
    try:
        cfg = decode(ReceiverConfig, data)
        _address(cfg.listen, "listen")
        if cfg.metrics is not None:
            _address(cfg.metrics, "metrics")
    except (CodecError, AddressError) as exc:
        raise ReceiverError(f"{source}: {exc}") from None
    return cfg


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> ReceiverConfig:
    """Defaults <- TOML file <- `overrides` (dotted field paths, `{"batching.max_batch": 5}`; None: unset).

    Overrides (the command line's flags) are checked like the file's values and named as "command line".
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ReceiverError(f"{path}: cannot read the receiver config: {exc}") from None
    cfg = _decode(data, str(path) if path is not None else "receiver config")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not given:
        return cfg
    merged: dict[str, Any] = encode(cfg)
    for dotted, value in given.items():
        *sections, key = dotted.split(".")
        table = merged
        for s in sections:
            table = table[s]
        table[key] = encode(value)
    return _decode(merged, "command line")
