"""Receiver throughput: frames/s against the number of concurrent cameras, with the cloud model
excluded (a stand-in returning constant scores) and included (the bundle's real Keras model).

Run alone: `python benchmarks/bench_receiver.py`; bench_wire.py includes its table. The receiver runs
in this process on its own event loop thread (plain TCP on loopback, SQLite on a temp dir); the
cameras are asyncio clients sending pre-encoded frames back to back.

`receiver_cpu` is the receiver-efficiency goal: the receiver in its own process (tests/receiver_load.py),
camera fleets in other processes, a 288 KB frame (36x64x256 at 4 bits), the cloud model excluded
(`null_runner`, constant scores: only the model's own cost is left out, the frame is still read, checked,
dequantised into the batch tensor, post-processed and committed); frames per CPU-second of the receiver
process (/proc/<pid>/stat, all its threads) for both SQLite sync modes, and the p99 RESULT latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from receiver_load import ReceiverProcess, cpu_seconds, run_cameras  # noqa: E402
from test_receiver import ReceiverThread, make_frame  # noqa: E402
from test_wire_bundle import build_bundle  # noqa: E402

from splitsdk import wire  # noqa: E402
from splitsdk.cloud.config import BatchingConfig, ReceiverConfig  # noqa: E402
from splitsdk.cloud.model import load_cloud_runner, null_runner  # noqa: E402
from splitsdk.wire.bundle import Bundle, load_bundle  # noqa: E402
from splitsdk.wire.client import AsyncWireClient  # noqa: E402

BENCH_INPUT = (36, 64, 3)  # crossing tensor 36x64x32 at 4 bits: 36 KiB per frame
CPU_CHANNELS = 256  # receiver_cpu: 36x64x256 at 4 bits, 288 KiB per frame
CPU_GOAL = 1000.0  # frames per receiver CPU-second, model excluded


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
                    listen="127.0.0.1:0",
                    db=db,
                    db_synchronous=sync,
                    insecure_plain_tcp=True,
                    batching=BatchingConfig(max_batch=32, max_wait_ms=2.0),
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


def _fleet(
    srv: ReceiverProcess, bundle: Bundle, frame: Path, tmp: Path, cameras: int, seconds: float
) -> dict[str, Any]:
    """Camera processes (two, half the cameras each) sending for `seconds`; the receiver's CPU time meanwhile."""
    outs = [tmp / f"fleet-{i}.json" for i in range(2)]
    cpu0 = cpu_seconds(srv.pid)
    procs = [
        run_cameras(srv.port, bundle.plan_sha256, frame, out, cameras // 2, prefix=f"b{i}", seconds=seconds)
        for i, out in enumerate(outs)
    ]
    for p in procs:
        p.wait(seconds + 120)
    cpu = cpu_seconds(srv.pid) - cpu0
    data = [json.loads(o.read_text()) for o in outs]
    lat = sorted(x for d in data for x in d["latency_s"])
    frames = sum(len(d["acks"]) for d in data)
    return {
        "frames": frames,
        "cpu_s": cpu,
        "frames_per_cpu_s": frames / max(cpu, 1e-9),
        "p50_ms": 1e3 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "failures": sum(len(d["failures"]) for d in data),
    }


def receiver_cpu(cameras: int = 16, seconds: float = 5.0, profile: str = "") -> list[dict[str, Any]]:
    """Frames per receiver CPU-second at 288 KB per frame, model excluded, SQLite full and normal."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with contextlib.redirect_stdout(io.StringIO()):
            bundle_dir = build_bundle(tmp / "bundle", bits=4, input_shape=BENCH_INPUT, channels=CPU_CHANNELS)
        bundle = load_bundle(bundle_dir)
        frame = tmp / "frame.bin"
        frame.write_bytes(wire.encode(make_frame(bundle, "bench", 0)))
        for sync in ("full", "normal"):
            extra = ["--sync", sync, "--runner", "null", "--max-batch", "32", "--max-wait-ms", "2"]
            extra += ["--profile", f"{profile}.{sync}"] if profile else []
            srv = ReceiverProcess.start(bundle_dir, tmp / f"{sync}.sqlite", *extra)
            try:
                row = _fleet(srv, bundle, frame, tmp, cameras, seconds)
            finally:
                srv.stop()
            rows.append({"sync": sync, "cameras": cameras, "frame_kb": frame.stat().st_size / 1024} | row)
    return rows


CPU_TABLE = (
    "| SQLite synchronous | cameras | frame | frames | receiver CPU s | frames per CPU-second (goal >= 1000) "
    "| measured / goal | RESULT latency p50 / p99 ms | failures |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    "| {sync} | {cameras} | {frame_kb:.0f} KiB | {frames} | {cpu_s:.2f} | {frames_per_cpu_s:.0f} | {ratio:.2f}x "
    "| {p50_ms:.1f} / {p99_ms:.1f} | {failures} |",
)
THROUGHPUT_TABLE = (
    "| cloud model | SQLite synchronous | clients | frames/s | mean batch | queue ms/frame | model ms/batch "
    "| SQLite commit ms/batch |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    "| {cloud} | {sync} | {clients} | {frames_s:.0f} | {mean_batch:.1f} | {queue:.2f} | {model:.2f} | {store:.2f} |",
)


def _table(layout: tuple[str, str, str], rows: list[dict[str, Any]]) -> str:
    header, align, row = layout
    return "\n".join([header, align, *(row.format(**r) for r in rows)])


def cpu_markdown(rows: list[dict[str, Any]]) -> str:
    return _table(CPU_TABLE, [r | {"ratio": r["frames_per_cpu_s"] / CPU_GOAL} for r in rows])


def markdown(rows: list[dict[str, Any]]) -> str:
    return _table(THROUGHPUT_TABLE, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true", help="only the receiver CPU-efficiency table")
    parser.add_argument("--profile", default="", help="cProfile the receiver's event loop to PREFIX.<sync>")
    args = parser.parse_args()
    print(cpu_markdown(receiver_cpu(profile=args.profile)), end="\n\n")
    if not args.cpu_only:
        print(markdown(receiver_throughput()))
