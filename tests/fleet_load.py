"""Cameras that survive a fleet's failures: asyncio clients in their own process, reconnecting and resending.

`python tests/fleet_load.py --port P ...` runs `--cameras N` cameras (one connection each, to HAProxy)
sending a template frame with a fresh seq each time (seq and CRC patched in place as in
tests/receiver_load.py), `--frames` each or for `--seconds`. A camera whose connection breaks (a receiver
killed), or that gets an ERROR (SHUTTING_DOWN, OVERLOADED, INTERNAL: a model or database that failed),
backs off, reconnects and resends the frame that got no RESULT, as the edge app does. Writes JSON to
`--out`: acks [device, seq, result hex], latencies, refusals [device, seq, code], reconnects, and the
cameras that gave up (failures). Bounded: every camera stops at `--timeout-s`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from receiver_load import CRC_LEN, SEQ_AT, add_camera_args, raise_nofile


async def _camera(args: argparse.Namespace, template: bytes, index: int, stop_at: float, out: dict[str, Any]) -> None:
    from splitsdk import wire
    from splitsdk.wire.client import AsyncWireClient, ReceiverRefused

    device = f"{args.prefix}-{index}"
    frame = bytearray(template)
    view = memoryview(frame)
    client: AsyncWireClient | None = None
    seq, backoff = 0, 0.05
    end_seq = args.frames if not args.seconds else 1 << 62
    while seq < end_seq and time.monotonic() < stop_at:
        try:
            if client is None:
                client = await asyncio.wait_for(AsyncWireClient.connect("127.0.0.1", args.port), 10)
                await asyncio.wait_for(client.hello(device, args.plan_hash), 30)
            frame[SEQ_AT : SEQ_AT + 8] = seq.to_bytes(8, "little")
            frame[-CRC_LEN:] = wire.crc32(view[:-CRC_LEN]).to_bytes(CRC_LEN, "little")
            sent = time.perf_counter()
            result = await asyncio.wait_for(client.send_frame(bytes(frame)), 60)
            out["latency_s"].append(time.perf_counter() - sent)
            out["acks"].append([device, result.seq, result.body.hex()])
            seq, backoff = seq + 1, 0.05
        except (OSError, EOFError, TimeoutError, ReceiverRefused, asyncio.IncompleteReadError) as exc:
            code = wire.ErrorCode(exc.error.code).name if isinstance(exc, ReceiverRefused) else type(exc).__name__
            out["refusals"].append([device, seq, code])
            if client is not None:
                await client.close()
                client = None
            out["reconnects"] += 1
            await asyncio.sleep(backoff * (1 + (index % 10) / 10))  # spread the herd
            backoff = min(backoff * 2, 1.0)
    if seq < end_seq and not args.seconds:
        out["failures"].append([device, seq])
    if client is not None:
        await client.close()


def _run(args: argparse.Namespace) -> None:
    raise_nofile()
    template = Path(args.frame).read_bytes()
    out: dict[str, Any] = {"acks": [], "latency_s": [], "refusals": [], "reconnects": 0, "failures": []}
    stop_at = time.monotonic() + (args.seconds or args.timeout_s)

    async def main() -> None:
        await asyncio.gather(*(_camera(args, template, i, stop_at, out) for i in range(args.cameras)))

    started = time.perf_counter()
    asyncio.run(main())
    out["elapsed_s"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(out))


def start(
    port: int, plan_hash: str, frame: Path, out: Path, cameras: int, *, prefix: str, frames: int = 3,
    seconds: float = 0.0, timeout_s: float = 90.0,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start a camera process (returns at once; wait on it, then read `out`)."""
    cmd = [
        sys.executable, str(Path(__file__)), "--port", str(port), "--plan-hash", plan_hash, "--frame", str(frame),
        "--out", str(out), "--cameras", str(cameras), "--prefix", prefix, "--frames", str(frames),
        "--seconds", str(seconds), "--timeout-s", str(timeout_s),
    ]  # fmt: skip
    return subprocess.Popen(cmd, preexec_fn=raise_nofile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_camera_args(parser)
    _run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
