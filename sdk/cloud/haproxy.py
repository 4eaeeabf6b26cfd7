"""An HAProxy configuration that spreads cameras over stateless receivers.

The receivers keep no per-camera state (results are idempotent on (device, seq) in the one shared
database), so any camera may reach any receiver: HAProxy runs in TCP mode and passes TLS through
untouched, so each receiver still terminates the camera's mutual TLS and reads its device id from the
client certificate. Each receiver's `/healthz` (on its metrics port) is checked over HTTP
(`option httpchk` + `check port N`): a receiver that drains (SIGTERM) answers 503 and gets no new
cameras while it finishes the frames in flight; one that dies fails its check and its cameras, which
reconnect with their own backoff, land on the others (a connect that fails is redispatched).
`leastconn` balances the long-lived connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from splitsdk.address import AddressError, parse_hostport
from splitsdk.errors import ReceiverError


@dataclass(frozen=True)
class Backend:
    """One receiver: where cameras reach it and where its /healthz answers."""

    host: str
    port: int
    health_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_backend(text: str, what: str = "--receiver") -> Backend:
    """HOST:PORT[/HEALTH_PORT] (HEALTH_PORT: the receiver's --metrics port; default PORT + 1)."""
    address, _, health = text.partition("/")
    try:
        host, port = parse_hostport(address, what)
        health_port = int(health) if health else port + 1
    except AddressError as exc:
        raise ReceiverError(str(exc)) from None
    except ValueError:
        raise ReceiverError(f"{what}: expected HOST:PORT/METRICS_PORT, got {text!r}") from None
    if not 0 < health_port < 65536:
        raise ReceiverError(f"{what} {text!r}: metrics port {health_port} out of range")
    return Backend(host, port, health_port)


def render(
    backends: list[Backend],
    listen: str,
    *,
    check_interval_ms: int = 1000,
    max_connections: int = 8000,
    stats: str | None = None,
) -> str:
    """The haproxy.cfg text: `listen` (HOST:PORT) in front of `backends`, health-checked on /healthz."""
    if not backends:
        raise ReceiverError("--receiver: give at least one receiver")
    try:
        host, port = parse_hostport(listen, "--listen", default_host="0.0.0.0")
    except AddressError as exc:
        raise ReceiverError(f"--listen: {exc}") from None
    servers = "\n".join(
        f"    server r{i} {b.address} check port {b.health_port} inter {check_interval_ms} fall 2 rise 2"
        for i, b in enumerate(backends)
    )
    stats_block = (
        f"\nfrontend stats\n    mode http\n    bind {stats}\n    stats enable\n    stats uri /stats\n" if stats else ""
    )
    return f"""# splitsdk: cameras -> {len(backends)} receiver(s); TCP mode, TLS passed through to the receivers
global
    maxconn {max_connections}
    log stderr format short local0 warning

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 5s
    # cameras keep one connection open between frames (the receiver's idle timeout is its own)
    timeout client 15m
    timeout server 15m
    timeout check 2s

frontend cameras
    bind {host}:{port}
    maxconn {max_connections}
    default_backend receivers

backend receivers
    balance leastconn
    # /healthz on each receiver's metrics port: 200 serving, 503 draining (then no new cameras)
    option httpchk GET /healthz
    http-check expect status 200
    # a connect that fails (a receiver just died) is retried on another receiver
    option redispatch
    retries 3
{servers}
{stats_block}"""
