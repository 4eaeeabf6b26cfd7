"""Durable result store: SQLite in WAL mode, idempotent on (device_id, seq).

The receiver answers a FRAME only after its result is committed here, so a camera that resends a
frame after a receiver crash gets the stored result back instead of a duplicate row. All calls come
from one thread (the receiver's store executor); SQLite's connection is not shared across threads.
The `device_stats` table keeps each camera's STATS messages (its per-stage timings, JSON), one row
per message, appended.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from splitsdk.errors import ReceiverError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    device_id   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    capture_us  INTEGER NOT NULL,
    stored_us   INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    result      BLOB    NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_stats (
    device_id   TEXT    NOT NULL,
    received_at INTEGER NOT NULL,  -- microseconds since the Unix epoch
    stats       TEXT    NOT NULL   -- the camera's JSON text, as sent
);
CREATE INDEX IF NOT EXISTS device_stats_by_device ON device_stats (device_id, received_at);
"""


@dataclass(frozen=True)
class StoredResult:
    device_id: str
    seq: int
    capture_us: int
    status: int
    result: bytes


class ResultStore:
    """SQLite results table; `put_many` commits one transaction per batch."""

    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        if synchronous not in ("full", "normal"):
            raise ReceiverError(f"db synchronous must be 'full' or 'normal', got {synchronous!r}")
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL (default): a committed result survives power loss; NORMAL: it survives a crash of
            # the receiver process (kill -9) but the last commits may be lost if the machine loses power.
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ReceiverError(f"{self.path}: cannot open the results database: {exc}") from None

    @staticmethod
    def _seq(seq: int) -> int:
        # SQLite integers are signed 64-bit; the wire's seq is u64.
        return seq - (1 << 64) if seq >= (1 << 63) else seq

    def get(self, device_id: str, seq: int) -> StoredResult | None:
        row = self._db.execute(
            "SELECT capture_us, status, result FROM results WHERE device_id=? AND seq=?",
            (device_id, self._seq(seq)),
        ).fetchone()
        return None if row is None else StoredResult(device_id, seq, row[0], row[1], bytes(row[2]))

    def put_many(self, rows: list[StoredResult]) -> list[StoredResult]:
        """Insert rows in one transaction; a (device_id, seq) already there keeps its first result,
        which is what is returned for it."""
        now = int(time.time() * 1e6)
        out = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for r in rows:
                self._db.execute(
                    "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    (r.device_id, self._seq(r.seq), r.capture_us, now, r.status, r.result),
                )
            for r in rows:
                stored = self.get(r.device_id, r.seq)
                out.append(stored if stored is not None else r)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return out

    def put_stats(self, device_id: str, stats_json: str) -> None:
        """Append one camera's STATS (already checked to be JSON) with the time it arrived."""
        self._db.execute("INSERT INTO device_stats VALUES (?, ?, ?)", (device_id, int(time.time() * 1e6), stats_json))

    def stats(self, device_id: str) -> list[tuple[int, str]]:
        """(received_at µs, JSON text) of a camera's STATS messages, oldest first."""
        rows = self._db.execute(
            "SELECT received_at, stats FROM device_stats WHERE device_id=? ORDER BY received_at, rowid",
            (device_id,),
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()
