"""`splitsdk serve` as a library call: load the bundle, run the receiver until SIGTERM/SIGINT, drain.

Runs in the foreground; logs are JSON lines on stderr. Under systemd (`Type=notify`) it tells the
service manager "READY=1" once the ports are bound and the model is loaded (start-up takes seconds)
and "STOPPING=1" when it starts draining, by writing to the `$NOTIFY_SOCKET` datagram socket itself.
SIGHUP re-reads the TLS trust files (CRL, device allow-list) for new connections.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splitsdk.cloud.config import ReceiverConfig
from splitsdk.cloud.model import Runner
from splitsdk.cloud.server import Receiver
from splitsdk.cloud.store import is_postgres_url
from splitsdk.codec import encode
from splitsdk.wire.bundle import Bundle, load_bundle

STATE_DIRECTORY = "splitsdk-receiver"
KEY_CREDENTIAL = "tls.key"


def serve(bundle: Bundle | str | Path, config: ReceiverConfig, runner: Runner | None = None) -> int:
    """Serve `bundle` (a Bundle or its directory) with `config` until SIGTERM or SIGINT, in the foreground.

    `runner` replaces the bundle's cloud model (benchmarks). Returns the process exit code (0 after a
    clean drain). `splitsdk serve` is this function after turning its flags into a ReceiverConfig.
    """
    config.validate()
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    return asyncio.run(_main(Receiver(b, config, runner)))


def sd_notify(state: str) -> bool:
    """Send `state` ("READY=1", ...) to systemd's `$NOTIFY_SOCKET`; False when there is none (not
    started by systemd) or it cannot be reached. The sd_notify protocol: one datagram on a unix socket,
    whose name starts with "@" for an abstract address."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), target)
    except OSError:
        return False
    return True


async def _main(receiver: Receiver) -> int:
    await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, receiver.reload_trust)
    sd_notify(f"READY=1\nSTATUS=serving on port {receiver.port}\nMAINPID={os.getpid()}")
    await stop.wait()
    sd_notify("STOPPING=1\nSTATUS=draining")
    await receiver.drain()
    return 0


def exec_args(
    bundle_dir: str | Path, config: ReceiverConfig, flags: Mapping[str, str], config_file: str | Path | None = None
) -> list[str]:
    """`serve` and its arguments that give `config` again wherever it is started (systemd starts in /):
    every field that has a flag (`flags`: field path -> flag) from the parsed config, paths absolute,
    and the config file (absolute) for the fields that have none."""
    values: dict[str, Any] = encode(config)
    args = ["serve", str(Path(bundle_dir).resolve())]
    if config_file is not None:
        args += ["--config", str(Path(config_file).resolve())]
    for dotted, flag in flags.items():
        value: Any = values
        for part in dotted.split("."):
            value = value[part]
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
            continue
        text = str(value)
        if dotted.startswith("tls.") or (dotted == "db" and not is_postgres_url(text)):
            text = os.path.abspath(text)
        args += [flag, text]
    return args


def _unit_escape(arg: str) -> str:
    """One ExecStart= word: shell-style quoting, and systemd's own % (specifier) and $ (variable)."""
    return shlex.quote(arg).replace("%", "%%").replace("$", "$$")


def systemd_unit(
    bundle_dir: str | Path,
    config: ReceiverConfig,
    config_file: str | Path | None = None,
    flags: Mapping[str, str] | None = None,
) -> str:
    """A hardened systemd service unit (`Type=notify`, a dynamic unprivileged user) that serves
    `bundle_dir` with `config`. The server key is handed over as a systemd credential (readable by the
    service's user whoever owns the file); a SQLite database's directory is the one writable path
    besides the service's state directory, and must be writable by the service's user.

    `MemoryDenyWriteExecute=` is not set: TensorFlow's CPU kernels (oneDNN) are compiled at run time
    into writable-and-executable memory."""
    if flags is None:
        from splitsdk.cli.cmd_serve import FLAGS

        flags = {dotted: flag for dotted, (_, flag) in FLAGS.items()}
    args = exec_args(bundle_dir, config, flags, config_file)
    words = [_unit_escape(a) for a in args]
    extra: list[str] = []
    if config.tls.key is not None:
        key_flag = words.index(_unit_escape(flags["tls.key"]))
        words[key_flag + 1] = f"%d/{KEY_CREDENTIAL}"
        extra.append(f"LoadCredential={KEY_CREDENTIAL}:{_unit_escape(os.path.abspath(config.tls.key))}")
    if not is_postgres_url(config.db):
        extra.append(f"ReadWritePaths={_unit_escape(str(Path(os.path.abspath(config.db)).parent))}")
    ports = [config.port] + ([config.metrics_address[1]] if config.metrics_address else [])
    caps = "CAP_NET_BIND_SERVICE" if min(ports) < 1024 else ""
    if caps:
        extra.append(f"AmbientCapabilities={caps}")
    script = sys.argv[0] if sys.argv else ""
    exe = [os.path.abspath(script)] if script.endswith("splitsdk") else [sys.executable, "-m", "splitsdk"]
    home = any(
        os.path.abspath(p).startswith(("/home/", "/root/", "/run/user/"))
        for p in [str(bundle_dir), *map(str, config.tls.trust_files), config.db]
    )
    lines = "\n".join(extra)
    return f"""[Unit]
Description=splitsdk cloud receiver ({Path(bundle_dir).resolve().name})
After=network-online.target
Wants=network-online.target

[Service]
# READY=1 comes (sd_notify) once the ports are bound and the cloud model is loaded
Type=notify
NotifyAccess=main
ExecStart={" ".join([*map(_unit_escape, exe), *words])}
# SIGHUP re-reads the CRL and the device allow-list for new connections
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains: in-flight frames are answered and stored before exit.
KillSignal=SIGTERM
TimeoutStartSec=300
TimeoutStopSec=60
Restart=on-failure
RestartSec=2
Environment=TF_CPP_MIN_LOG_LEVEL=3
# a transient unprivileged user; /var/lib/{STATE_DIRECTORY} is its own
DynamicUser=yes
StateDirectory={STATE_DIRECTORY}
WorkingDirectory=/var/lib/{STATE_DIRECTORY}
{lines}
LimitNOFILE=65536
UMask=0077
CapabilityBoundingSet={caps}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome={"read-only" if home else "yes"}
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers={"no" if caps else "yes"}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
DevicePolicy=closed
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
# no MemoryDenyWriteExecute=: TensorFlow's CPU kernels (oneDNN) are compiled at run time into W+X memory

[Install]
WantedBy=multi-user.target
"""
