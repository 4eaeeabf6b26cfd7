"""A receiver in its own process and light asyncio camera fleets in others, for load tests and benchmarks.

Two commands, each a separate process (`python tests/receiver_load.py serve|cameras ...`):

- `serve`: a `Receiver` on plain TCP loopback; prints `{"port": ..}` as one JSON line once it listens,
  drains and exits on SIGTERM. `--runner null` replaces the cloud model with `null_runner` (constant
  scores) so that a benchmark counts the receiver, not the model. `--profile FILE` writes a cProfile of
  the event loop thread.
- `cameras`: `--cameras N` concurrent cameras (asyncio, one connection each) sending a template frame
  with a fresh seq each time (seq and CRC patched in place), `--frames` each or for `--seconds`; writes
  JSON to `--out`: every RESULT as [device, seq, result body hex], the RESULT latencies, the failures and
  the reconnects (a camera refused as OVERLOADED backs off and reconnects, as a real one does).

Every loop is bounded in count and time; processes are ended by their pid (`ReceiverProcess.stop`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEQ_AT, CRC_LEN = 12, 4  # the u64 seq's offset in a frame; the CRC32 ends it


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (a thousand sockets per process)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads (/proc/<pid>/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the receiver process ----


def _serve(args: argparse.Namespace) -> None:
    import cProfile

    from splitsdk.cloud.config import BatchingConfig, LimitsConfig, ReceiverConfig
    from splitsdk.cloud.model import null_runner
    from splitsdk.cloud.server import Receiver
    from splitsdk.wire.bundle import load_bundle

    raise_nofile()
    cfg = ReceiverConfig(
        listen="127.0.0.1:0",
        db=args.db,
        db_synchronous=args.sync,
        insecure_plain_tcp=True,
        limits=LimitsConfig(max_connections=args.max_connections, idle_timeout_s=120.0),
        batching=BatchingConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms),
    )
    receiver = Receiver(load_bundle(args.bundle), cfg, null_runner() if args.runner == "null" else None)
    profile = cProfile.Profile() if args.profile else None

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await receiver.start()
        print(json.dumps({"port": receiver.port}), flush=True)
        if profile is not None:
            profile.enable()
        await stop.wait()
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        await receiver.drain(10)

    asyncio.run(main())


@dataclass
class ReceiverProcess:
    """`serve` in a child process; `stop()` sends SIGTERM to its pid and waits."""

    proc: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, bundle: Path, db: Path, *extra: str, timeout_s: float = 60.0) -> ReceiverProcess:
        cmd = [sys.executable, str(Path(__file__)), "serve", "--bundle", str(bundle), "--db", str(db), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = proc.stdout.readline()  # the child prints its port once it listens, or exits
        if not line or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"receiver process did not start (exit {proc.returncode})")
        return cls(proc, int(json.loads(line)["port"]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return int(self.proc.returncode)


# ---- the camera fleet process ----


async def _camera(
    args: argparse.Namespace, template: bytes, index: int, stop_at: float, out: dict[str, list[Any]]
) -> None:
    from splitsdk import wire
    from splitsdk.wire.client import AsyncWireClient, ReceiverRefused

    device = f"{args.prefix}-{index}"
    frame = bytearray(template)
    view = memoryview(frame)
    client = None
    try:
        for attempt in range(100):
            # a flood of connects may overflow the listen backlog or the receiver's per-address handshake
            # limit for a moment: like a real camera, back off and reconnect (bounded in count and time)
            try:
                client = await AsyncWireClient.connect("127.0.0.1", args.port)
                await client.hello(device, args.plan_hash)
                break
            except (OSError, ReceiverRefused) as exc:
                if client is not None:
                    await client.close()
                    client = None
                overloaded = isinstance(exc, ReceiverRefused) and exc.error.code == wire.ErrorCode.OVERLOADED
                if not (overloaded or isinstance(exc, OSError)) or attempt == 99 or time.monotonic() > stop_at:
                    raise
                out["reconnects"].append(device)
                await asyncio.sleep(0.05 + 0.005 * (index % 40))
        assert client is not None
        seqs: Iterable[int] = list(range(args.frames)) + ([args.frames - 1] if args.resend_last else [])
        if args.seconds:
            seqs = itertools.count()  # until stop_at
        for seq in seqs:
            if time.monotonic() > stop_at:
                break
            frame[SEQ_AT : SEQ_AT + 8] = seq.to_bytes(8, "little")
            frame[-CRC_LEN:] = wire.crc32(view[:-CRC_LEN]).to_bytes(CRC_LEN, "little")
            sent = time.perf_counter()
            result = await client.send_frame(bytes(frame))
            out["latency_s"].append(time.perf_counter() - sent)
            out["acks"].append([device, result.seq, result.body.hex() if args.bodies else ""])
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the fleet
        out["failures"].append([device, f"{type(exc).__name__}: {exc}"])
    finally:
        if client is not None:
            await client.close()


def _cameras(args: argparse.Namespace) -> None:
    raise_nofile()
    template = Path(args.frame).read_bytes()
    out: dict[str, list[Any]] = {"acks": [], "latency_s": [], "failures": [], "reconnects": []}
    stop_at = time.monotonic() + (args.seconds or args.timeout_s)

    async def main() -> None:
        await asyncio.gather(*(_camera(args, template, i, stop_at, out) for i in range(args.cameras)))

    asyncio.run(main())
    Path(args.out).write_text(json.dumps(out))


def run_cameras(
    port: int,
    plan_hash: str,
    frame: Path,
    out: Path,
    cameras: int,
    *,
    prefix: str,
    frames: int = 3,
    seconds: float = 0.0,
    resend_last: bool = False,
    bodies: bool = False,
    timeout_s: float = 90.0,
) -> subprocess.Popen[bytes]:
    """Start a `cameras` process (returns at once; wait on it, then read `out`)."""
    cmd = [
        sys.executable, str(Path(__file__)), "cameras", "--port", str(port), "--plan-hash", plan_hash,
        "--frame", str(frame), "--out", str(out), "--cameras", str(cameras), "--prefix", prefix,
        "--frames", str(frames), "--seconds", str(seconds), "--timeout-s", str(timeout_s),
    ]  # fmt: skip
    cmd += ["--resend-last"] if resend_last else []
    cmd += ["--bodies"] if bodies else []
    return subprocess.Popen(cmd, preexec_fn=raise_nofile)


def add_camera_args(parser: argparse.ArgumentParser) -> None:
    """The options of a camera fleet process (this file's `cameras`, and tests/fleet_load.py)."""
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan-hash", required=True)
    parser.add_argument("--frame", required=True, help="an encoded FRAME to send (seq and CRC are patched)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cameras", type=int, required=True)
    parser.add_argument("--prefix", default="cam")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.0, help="send for this long instead of --frames")
    parser.add_argument("--timeout-s", type=float, default=90.0, help="every camera stops by then")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--bundle", required=True)
    serve.add_argument("--db", required=True)
    serve.add_argument("--sync", choices=("full", "normal"), default="full")
    serve.add_argument("--runner", choices=("null", "bundle"), default="bundle")
    serve.add_argument("--max-batch", type=int, default=32)
    serve.add_argument("--max-wait-ms", type=float, default=2.0)
    serve.add_argument("--max-connections", type=int, default=4096)
    serve.add_argument("--profile", default="")
    cams = sub.add_parser("cameras")
    add_camera_args(cams)
    cams.add_argument("--resend-last", action="store_true", help="send the last frame twice (idempotency)")
    cams.add_argument("--bodies", action="store_true", help="record the RESULT bodies")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _serve(args) if args.command == "serve" else _cameras(args)


if __name__ == "__main__":
    main()
