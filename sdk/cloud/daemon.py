"""`splitsdk serve` as a library call: load the bundle, run the receiver until SIGTERM/SIGINT, drain.

Runs in the foreground (systemd `Type=simple`); logs are JSON lines on stderr.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from pathlib import Path

from splitsdk.cloud.config import ReceiverConfig
from splitsdk.cloud.model import Runner, load_cloud_runner
from splitsdk.cloud.server import Receiver
from splitsdk.wire.bundle import load_bundle


def serve(bundle_dir: str | Path, config: ReceiverConfig, runner: Runner | None = None) -> int:
    """Serve `bundle_dir` until SIGTERM or SIGINT; returns the process exit code (0 after a clean drain)."""
    config.validate()
    bundle = load_bundle(bundle_dir)
    run = runner if runner is not None else load_cloud_runner(bundle)
    return asyncio.run(_main(Receiver(bundle, config, run)))


async def _main(receiver: Receiver) -> int:
    await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await receiver.drain()
    return 0


def systemd_unit(bundle_dir: str | Path, args: list[str]) -> str:
    """A systemd service unit that runs this receiver with the same arguments."""
    exe = shlex.quote(sys.argv[0] if sys.argv and sys.argv[0].endswith("splitsdk") else "splitsdk")
    cmd = " ".join([exe, "serve", shlex.quote(str(Path(bundle_dir).resolve())), *map(shlex.quote, args)])
    return f"""[Unit]
Description=splitsdk cloud receiver ({Path(bundle_dir).name})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={cmd}
# SIGTERM drains: in-flight frames are answered and stored before exit.
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=2
Environment=TF_CPP_MIN_LOG_LEVEL=3
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""
