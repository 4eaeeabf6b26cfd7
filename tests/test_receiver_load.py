"""A thousand cameras at once on loopback: every acknowledged frame is stored exactly once.

The receiver (plain TCP, the bundle's real cloud model, SQLite `synchronous=full`) runs in its own
process; the cameras are asyncio clients in two other processes (tests/receiver_load.py), each camera on
its own connection sending a few frames and then its last frame again (a resend must be answered from
the store, not stored twice). RESULTs are counted per (device, seq) and compared with the rows of the
database. Bounded: a fixed number of frames, every camera gives up after 90 s, the whole test < 2 min.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from receiver_load import ReceiverProcess, raise_nofile, run_cameras
from test_receiver import make_frame
from test_wire_bundle import build_bundle

from splitsdk import wire
from splitsdk.wire.bundle import load_bundle

CAMERAS = 1000
FRAMES_EACH = 3
FLEETS = 2


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), bits=4)


def test_1000_concurrent_cameras_every_acknowledged_frame_stored_exactly_once(bundle_dir: Path, tmp_path: Path) -> None:
    raise_nofile()
    bundle = load_bundle(bundle_dir)
    frame = tmp_path / "frame.bin"
    frame.write_bytes(wire.encode(make_frame(bundle, "load", 0)))
    db = tmp_path / "results.sqlite"
    started = time.monotonic()
    srv = ReceiverProcess.start(bundle_dir, db, "--max-batch", "32", "--max-wait-ms", "5")
    try:
        outs = [tmp_path / f"fleet-{i}.json" for i in range(FLEETS)]
        fleets = [
            run_cameras(
                srv.port,
                bundle.plan_sha256,
                frame,
                out,
                CAMERAS // FLEETS,
                prefix=f"f{i}",
                frames=FRAMES_EACH,
                resend_last=True,
                bodies=True,
                timeout_s=90,
            )  # fmt: skip
            for i, out in enumerate(outs)
        ]
        for p in fleets:
            assert p.wait(110) == 0
    finally:
        assert srv.stop() == 0  # drained and exited by itself on SIGTERM
    assert time.monotonic() - started < 120
    results = [json.loads(o.read_text()) for o in outs]
    failures = [f for r in results for f in r["failures"]]
    assert failures == []
    acks = Counter((dev, seq) for r in results for dev, seq, _ in r["acks"])
    bodies: dict[tuple[str, int], set[str]] = {}
    for r in results:
        for dev, seq, body in r["acks"]:
            bodies.setdefault((dev, seq), set()).add(body)
    # every camera got every frame answered, its resend included
    assert len({dev for dev, _ in acks}) == CAMERAS
    assert sum(acks.values()) == CAMERAS * (FRAMES_EACH + 1)
    assert all(n == (2 if seq == FRAMES_EACH - 1 else 1) for (_, seq), n in acks.items())

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT device_id, seq, result FROM results").fetchall()
    stored = Counter((dev, seq) for dev, seq, _ in rows)
    assert max(stored.values()) == 1  # exactly once
    assert set(stored) == set(acks)  # every acknowledged frame, and nothing unacknowledged
    for dev, seq, result in rows:  # the resend got the stored result back, byte for byte
        assert bodies[(dev, seq)] == {bytes(result).hex()}
