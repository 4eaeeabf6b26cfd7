"""Durable result stores, idempotent on (device_id, seq): the interface, its SQLite back-end and `open_store`.

The receiver answers a FRAME only after its result is committed here, so a camera that resends a
frame after a receiver crash gets the stored result back instead of a duplicate row. All calls come
from one thread (the receiver's store executor). The `device_stats` table keeps each camera's STATS
messages (its per-stage timings, JSON), one row per message, appended.

Two back-ends implement `ResultStore`: `SqliteStore` (a file in WAL mode, one receiver) and
`PostgresStore` (splitsdk.cloud.store_pg, a database several receivers share). `open_store(db)` picks
PostgreSQL for a `postgresql://` or `postgres://` URL and SQLite for anything else (a file path).

Both keep the same tables, declared once (`migrations(dialect)`: the ordered schema changes, entry N-1
brings a database to version N), and a `schema_version` table. Opening a database applies the missing
changes in one transaction; a database from before `schema_version` (version 0: the results and
device_stats tables alone) is migrated like any older one, and one newer than this code is refused.

`synchronous` is the durability of a commit: "full" (the default) survives a power loss of the database
host; "normal" survives a crash of the receiver (and, for PostgreSQL, of the database server process)
but the last commits may be lost if the database host loses power, for faster commits. SQLite maps it to
`PRAGMA synchronous`, PostgreSQL to the session's `synchronous_commit` (on / off).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from splitsdk.errors import ReceiverError, first_line

SYNCHRONOUS = ("full", "normal")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
WAL_SIZE_LIMIT = 1 << 20  # bytes a SQLite WAL file keeps after a checkpoint


@dataclass(frozen=True)
class Dialect:
    """What the two back-ends spell differently in the one schema below."""

    int64: str  # a signed 64-bit integer column
    blob: str  # a byte string column
    results_options: str  # after the results table's definition
    stats_order: str  # a device_stats column that keeps the arrival order, with its definition


SQLITE = Dialect("INTEGER", "BLOB", " WITHOUT ROWID", "")  # device_stats keeps SQLite's rowid
POSTGRES = Dialect("BIGINT", "BYTEA", "", "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,")


def migrations(d: Dialect) -> tuple[tuple[str, ...], ...]:
    """The ordered schema changes: entry n - 1 brings a version n - 1 database to version n. Version 1 is
    the layout from before schema_version, so its statements tolerate tables that are already there."""
    return (
        (
            f"""CREATE TABLE IF NOT EXISTS results (
                device_id   TEXT    NOT NULL,
                seq         {d.int64} NOT NULL,  -- the wire's u64, stored as signed 64-bit (see db_seq)
                capture_us  {d.int64} NOT NULL,
                stored_us   {d.int64} NOT NULL,
                status      INTEGER NOT NULL,
                result      {d.blob} NOT NULL,
                PRIMARY KEY (device_id, seq)
            ){d.results_options}""",
            f"""CREATE TABLE IF NOT EXISTS device_stats ({d.stats_order}
                device_id   TEXT    NOT NULL,
                received_at {d.int64} NOT NULL,  -- microseconds since the Unix epoch
                stats       TEXT    NOT NULL   -- the camera's JSON text, as sent
            )""",
            "CREATE INDEX IF NOT EXISTS device_stats_by_device ON device_stats (device_id, received_at)",
        ),
        # version 2: the member of a multi-split bundle each frame was sent at (FRAME.split; 0 otherwise and
        # for the rows stored before)
        ("ALTER TABLE results ADD COLUMN split INTEGER NOT NULL DEFAULT 0",),
    )


class StoreError(ReceiverError):
    """A results database that cannot be opened, migrated, read or written (one line: the database, the reason)."""


@dataclass(frozen=True)
class StoredResult:
    device_id: str
    seq: int
    capture_us: int
    status: int
    result: bytes
    split: int = 0  # the member of a multi-split bundle the frame was sent at (FRAME.split)


class ResultStore(Protocol):
    """What the receiver needs of a results database; every call comes from one thread at a time.

    Each method raises `StoreError` (one line) when the database fails; the receiver then refuses the
    frame, and a later call tries again (PostgreSQL reconnects by itself).
    """

    def get(self, device_id: str, seq: int) -> StoredResult | None:
        """The stored result of one frame, or None."""
        ...

    def put_many(self, rows: list[StoredResult]) -> list[StoredResult]:
        """Insert rows in one committed transaction; a (device_id, seq) already stored keeps its first
        result, which is what is returned for it (one entry per row, in order)."""
        ...

    def put_stats(self, device_id: str, stats_json: str) -> None:
        """Append one camera's STATS (already checked to be JSON) with the time it arrived."""
        ...

    def stats(self, device_id: str) -> list[tuple[int, str]]:
        """(received_at µs, JSON text) of a camera's STATS messages, oldest first."""
        ...

    def count(self) -> int:
        """How many results are stored."""
        ...

    def close(self) -> None: ...


class UnopenedStore:
    """The `ResultStore` of a receiver that has not opened its database yet (it opens it once its ports
    are bound, so that a failed start leaves no database behind): every call refuses, close does nothing."""

    def __init__(self, db: str | Path) -> None:
        self.db = db

    def _refuse(self) -> StoreError:
        return StoreError(f"{self.db}: the results database is not open (the receiver has not started)")

    def get(self, device_id: str, seq: int) -> StoredResult | None:
        raise self._refuse()

    def put_many(self, rows: list[StoredResult]) -> list[StoredResult]:
        raise self._refuse()

    def put_stats(self, device_id: str, stats_json: str) -> None:
        raise self._refuse()

    def stats(self, device_id: str) -> list[tuple[int, str]]:
        raise self._refuse()

    def count(self) -> int:
        raise self._refuse()

    def close(self) -> None:
        pass


def check_synchronous(synchronous: str) -> None:
    if synchronous not in SYNCHRONOUS:
        raise StoreError(f"db synchronous must be 'full' or 'normal', got {synchronous!r}")


def db_seq(seq: int) -> int:
    """The wire's u64 seq as the signed 64-bit integer both databases store (2**63.. wrap to negative)."""
    return seq - (1 << 64) if seq >= (1 << 63) else seq


def now_us() -> int:
    return int(time.time() * 1e6)


def migrate(label: str, migrations: Sequence[Sequence[str]], found: int, execute: Callable[[str], object]) -> int:
    """Bring a database at version `found` to the newest one with `execute` (inside the caller's
    transaction) and record it in schema_version; refuses a database newer than this code."""
    latest = len(migrations)
    if found > latest:
        raise StoreError(
            f"{label}: results database schema version {found} is newer than this splitsdk supports "
            f"({latest}); upgrade splitsdk to serve it"
        )
    for version in range(found + 1, latest + 1):
        for statement in migrations[version - 1]:
            execute(statement)
    if found != latest:
        execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        execute("DELETE FROM schema_version")
        execute(f"INSERT INTO schema_version (version) VALUES ({latest})")
    return latest


def is_postgres_url(db: str | Path) -> bool:
    # a Path has collapsed the URL's "//" (postgresql:/host/db)
    return str(db).startswith(POSTGRES_SCHEMES if isinstance(db, str) else ("postgresql:/", "postgres:/"))


def open_store(db: str | Path, synchronous: str = "full") -> ResultStore:
    """A `PostgresStore` for a postgresql:// (or postgres://) URL, else a `SqliteStore` on the path `db`."""
    if not is_postgres_url(db):
        return SqliteStore(db, synchronous)
    if isinstance(db, Path):  # Path("postgresql://h/d") has already collapsed the "//"
        raise StoreError(f"{db}: give a PostgreSQL URL as text, not as a file path")
    try:
        from splitsdk.cloud.store_pg import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"a PostgreSQL results database needs psycopg (pip install 'psycopg[binary]'): {exc}"
        ) from None
    return PostgresStore(db, synchronous)


class SqliteStore:
    """SQLite results table in WAL mode; `put_many` commits one transaction per batch."""

    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        self._full = False
        check_synchronous(synchronous)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed result survives power loss; NORMAL: it survives a crash of the receiver
            # process (kill -9) but the last commits may be lost if the machine loses power.
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA busy_timeout=5000")
            # checkpoint the WAL into the database every WAL_SIZE_LIMIT bytes and shrink the file back to
            # that size after each one: the log never holds much more disk than that (a small disk fills
            # with data, not with the log)
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_SIZE_LIMIT // 4096}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the results database: {exc}") from None
        with self._transaction():
            migrate(str(self.path), migrations(SQLITE), self.version(), self._db.execute)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                self._full = True  # the WAL may hold the disk: truncate it once space is back
                raise StoreError(
                    f"{self.path}: cannot store results: database or disk is full (free space on its file system)"
                ) from None
            raise StoreError(f"{self.path}: {first_line(exc)}") from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._errors():
            if self._full:
                self._truncate_wal()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (disk full, I/O error) may already have rolled back: an explicit
                # ROLLBACK would then fail and hide the real error
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def _truncate_wal(self) -> None:
        """After a full disk: checkpoint the WAL into the database and truncate it to zero bytes, so
        that the log does not keep the space that has been freed (best effort: retried before each
        write until it succeeds)."""
        with suppress(sqlite3.Error):
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self._full = bool(busy)

    def version(self) -> int:
        """The schema version recorded in the database (0: none recorded)."""
        with self._errors():
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name='schema_version'").fetchone() is None:
                return 0
            return int(self._db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def get(self, device_id: str, seq: int) -> StoredResult | None:
        with self._errors():
            row = self._db.execute(
                "SELECT capture_us, status, result, split FROM results WHERE device_id=? AND seq=?",
                (device_id, db_seq(seq)),
            ).fetchone()
        return None if row is None else StoredResult(device_id, seq, row[0], row[1], bytes(row[2]), row[3])

    def put_many(self, rows: list[StoredResult]) -> list[StoredResult]:
        now = now_us()
        out = []
        with self._transaction():
            for r in rows:
                self._db.execute(
                    "INSERT OR IGNORE INTO results (device_id, seq, capture_us, stored_us, status, result, split) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r.device_id, db_seq(r.seq), r.capture_us, now, r.status, r.result, r.split),
                )
            for r in rows:
                stored = self.get(r.device_id, r.seq)
                out.append(stored if stored is not None else r)
        return out

    def put_stats(self, device_id: str, stats_json: str) -> None:
        with self._errors():
            self._db.execute("INSERT INTO device_stats VALUES (?, ?, ?)", (device_id, now_us(), stats_json))

    def stats(self, device_id: str) -> list[tuple[int, str]]:
        with self._errors():
            rows = self._db.execute(
                "SELECT received_at, stats FROM device_stats WHERE device_id=? ORDER BY received_at, rowid",
                (device_id,),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def count(self) -> int:
        with self._errors():
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()
