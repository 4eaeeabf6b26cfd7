"""Receiver throughput: frames/s against the number of concurrent cameras, with the cloud model
excluded (a stand-in returning constant scores) and included (the bundle's real Keras model).

Run alone: `python benchmarks/bench_receiver.py`; bench_wire.py includes its table. The receiver runs
in this process on its own event loop thread (plain TCP on loopback, SQLite on a temp dir); the
cameras are asyncio clients sending pre-encoded frames back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_receiver import ReceiverThread, make_frame  # noqa: E402
from test_wire_bundle import build_bundle  # noqa: E402

from splitsdk import wire  # noqa: E402
from splitsdk.cloud.config import ReceiverConfig  # noqa: E402
from splitsdk.cloud.model import load_cloud_runner, null_runner  # noqa: E402
from splitsdk.wire.bundle import Bundle, load_bundle  # noqa: E402
from splitsdk.wire.client import AsyncWireClient  # noqa: E402

BENCH_INPUT = (36, 64, 3)  # crossing tensor 36x64x32 at 4 bits: 36 KiB per frame


async def _load(port: int, bundle: Bundle, clients: int, seconds: float) -> int:
    frames = [wire.encode(make_frame(bundle, "bench", s)) for s in range(8)]
    stop_at = time.perf_counter() + seconds
    counts = [0] * clients

    async def camera(i: int) -> None:
        c = await AsyncWireClient.connect("127.0.0.1", port)
        await c.hello(f"bench-{i}", bundle.plan_sha256)
        seq = 0
        while time.perf_counter() < stop_at:
            data = bytearray(frames[seq % len(frames)])
            data[12:20] = seq.to_bytes(8, "little")  # a fresh seq per frame (new row, not a resend)
            data[-4:] = wire.crc32(bytes(data[:-4])).to_bytes(4, "little")
            await c.send_frame(bytes(data))
            seq += 1
            counts[i] += 1
        await c.close()

    await asyncio.gather(*(camera(i) for i in range(clients)))
    return sum(counts)


def receiver_throughput(client_counts: tuple[int, ...] = (1, 4, 16, 64), seconds: float = 2.0) -> list[dict[str, Any]]:
    logging.getLogger("splitsdk.cloud").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):  # the TFLite converter prints its artifacts
            bundle_dir = build_bundle(Path(tmp) / "bundle", bits=4, input_shape=BENCH_INPUT, channels=32)
        bundle = load_bundle(bundle_dir)
        real = load_cloud_runner(bundle)
        cases = [("excluded", "full", null_runner()), ("included", "full", real), ("included", "normal", real)]
        for label, sync, runner in cases:
            for clients in client_counts:
                db = Path(tmp) / f"{label}-{sync}-{clients}.sqlite"
                cfg = ReceiverConfig(
                    port=0, db=db, db_synchronous=sync, insecure_plain_tcp=True, max_batch=32, max_wait_ms=2.0
                )
                srv = ReceiverThread(bundle, cfg, runner)
                try:
                    n = asyncio.run(_load(srv.port, bundle, clients, seconds))
                    batches = srv.receiver.metrics.batches.value()
                    hist = srv.receiver.metrics.latency
                finally:
                    srv.stop()
                stage_ms = {st: 1e3 * hist.total(st) / max(hist.count(st), 1) for st in ("queue", "model", "store")}
                rows.append(
                    {
                        "cloud": label,
                        "sync": sync,
                        "clients": clients,
                        "frames_s": n / seconds,
                        "mean_batch": n / max(batches, 1),
                    }
                    | stage_ms
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| cloud model | SQLite synchronous | clients | frames/s | mean batch | queue ms/frame | model ms/batch "
        "| SQLite commit ms/batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['cloud']} | {r['sync']} | {r['clients']} | {r['frames_s']:.0f} | {r['mean_batch']:.1f} "
            f"| {r['queue']:.2f} | {r['model']:.2f} | {r['store']:.2f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(receiver_throughput()))
