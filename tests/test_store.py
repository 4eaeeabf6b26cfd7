"""The result store interface, on both back-ends (SQLite file, PostgreSQL database) through the same tests:
idempotency on (device_id, seq), first result wins, u64 seq extremes, STATS, count, schema migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_fixture import pg_cluster_fixture, pg_url_fixture  # noqa: F401 (fixtures)

from splitsdk.cloud.store import ResultStore, SqliteStore, StoredResult, StoreError, open_store
from splitsdk.cloud.store_pg import PostgresStore

# The layout receivers wrote before schema_version existed (version 0), on each back-end.
V0_LAYOUT = {
    "sqlite": [
        """CREATE TABLE results (device_id TEXT NOT NULL, seq INTEGER NOT NULL, capture_us INTEGER NOT NULL,
            stored_us INTEGER NOT NULL, status INTEGER NOT NULL, result BLOB NOT NULL,
            PRIMARY KEY (device_id, seq)) WITHOUT ROWID""",
        "CREATE TABLE device_stats (device_id TEXT NOT NULL, received_at INTEGER NOT NULL, stats TEXT NOT NULL)",
        "CREATE INDEX device_stats_by_device ON device_stats (device_id, received_at)",
        "INSERT INTO results VALUES ('cam-0', -1, 17, 18, 0, x'0102')",
        "INSERT INTO device_stats VALUES ('cam-0', 5, '{\"old\": true}')",
    ],
    "postgres": [
        """CREATE TABLE results (device_id TEXT NOT NULL, seq BIGINT NOT NULL, capture_us BIGINT NOT NULL,
            stored_us BIGINT NOT NULL, status INTEGER NOT NULL, result BYTEA NOT NULL,
            PRIMARY KEY (device_id, seq))""",
        """CREATE TABLE device_stats (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, device_id TEXT NOT NULL,
            received_at BIGINT NOT NULL, stats TEXT NOT NULL)""",
        "CREATE INDEX device_stats_by_device ON device_stats (device_id, received_at)",
        "INSERT INTO results VALUES ('cam-0', -1, 17, 18, 0, '\\x0102'::bytea)",
        "INSERT INTO device_stats (device_id, received_at, stats) VALUES ('cam-0', 5, '{\"old\": true}')",
    ],
}


def sqlite_raw(path: Path, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        rows: list[tuple[Any, ...]] = []
        for s in statements:
            rows = db.execute(s).fetchall()
        return rows
    finally:
        db.close()


def pg_raw(url: str, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for s in statements:
            cur = conn.execute(s)
            rows = cur.fetchall() if cur.description else []
        return rows


@dataclass
class Backend:
    name: str
    db: str | Path
    raw: Callable[[Sequence[str]], list[tuple[Any, ...]]]  # statements run beside the store; the last one's rows

    def open(self, synchronous: str = "full") -> ResultStore:
        return open_store(self.db, synchronous)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "results.sqlite"
        return Backend("sqlite", path, lambda s: sqlite_raw(path, s))
    url: str = request.getfixturevalue("pg_url")
    return Backend("postgres", url, lambda s: pg_raw(url, s))


def row(seq: int, body: bytes, device: str = "cam-1", capture_us: int = 1000) -> StoredResult:
    return StoredResult(device, seq, capture_us, 0, body)


def test_open_store_picks_the_back_end(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, SqliteStore if backend.name == "sqlite" else PostgresStore)
    store.close()


def test_put_many_is_idempotent_and_the_first_result_wins(backend: Backend) -> None:
    store = backend.open()
    first = store.put_many([row(1, b"one"), row(2, b"two")])
    assert [r.result for r in first] == [b"one", b"two"]
    # a resent frame (new inference, other bytes) gets the first stored result back, nothing is added
    again = store.put_many([row(2, b"TWO", capture_us=9), row(3, b"three"), row(1, b"ONE")])
    assert [(r.seq, r.result, r.capture_us) for r in again] == [
        (2, b"two", 1000),
        (3, b"three", 1000),
        (1, b"one", 1000),
    ]
    assert store.count() == 3
    got = store.get("cam-1", 2)
    assert got == row(2, b"two")
    assert store.get("cam-1", 4) is None and store.get("cam-2", 1) is None
    store.close()


def test_the_first_of_two_equal_frames_in_one_batch_wins(backend: Backend) -> None:
    store = backend.open()
    out = store.put_many([row(5, b"a"), row(5, b"b", device="cam-2"), row(5, b"c")])
    assert [r.result for r in out] == [b"a", b"b", b"a"]
    assert store.count() == 2
    assert store.put_many([]) == []
    store.close()


def test_u64_seq_extremes_are_distinct_keys_and_read_back(backend: Backend) -> None:
    seqs = [0, 1, 2**63 - 1, 2**63, 2**64 - 1]
    store = backend.open()
    out = store.put_many([row(s, s.to_bytes(8, "little")) for s in seqs])
    assert [r.seq for r in out] == seqs
    store.close()
    store = backend.open()  # durable across a reopen
    assert store.count() == len(seqs)
    for s in seqs:
        got = store.get("cam-1", s)
        assert got is not None and got.seq == s and got.result == s.to_bytes(8, "little")
    store.close()


def test_stats_are_appended_per_device_oldest_first(backend: Backend) -> None:
    store = backend.open()
    for i in range(3):
        store.put_stats("cam-1", f'{{"n": {i}}}')
    store.put_stats("cam-2", '{"other": 1}')
    rows = store.stats("cam-1")
    assert [text for _, text in rows] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert [t for t, _ in rows] == sorted(t for t, _ in rows) and rows[0][0] > 1_600_000_000_000_000
    assert [text for _, text in store.stats("cam-2")] == ['{"other": 1}']
    assert store.stats("cam-3") == []
    assert store.count() == 0  # STATS are not results
    store.close()


def test_a_version_0_database_is_migrated_to_the_current_version(backend: Backend) -> None:
    backend.raw(V0_LAYOUT[backend.name])
    store = backend.open()
    assert backend.raw(["SELECT version FROM schema_version"]) == [(2,)]
    assert store.get("cam-0", 2**64 - 1) == StoredResult("cam-0", 2**64 - 1, 17, 0, b"\x01\x02", split=0)
    assert store.stats("cam-0") == [(5, '{"old": true}')]
    assert [r.result for r in store.put_many([row(2**64 - 1, b"new", device="cam-0"), row(7, b"x")])] == [
        b"\x01\x02",
        b"x",
    ]
    store.close()
    store = backend.open()  # already current: opens as it is
    assert store.count() == 2 and backend.raw(["SELECT count(*) FROM schema_version"]) == [(1,)]
    store.close()


def test_a_version_1_database_gets_the_split_column_and_keeps_its_rows(backend: Backend) -> None:
    """Version 2 records the split each frame was sent at; rows stored before read as split 0."""
    backend.raw(V0_LAYOUT[backend.name])
    backend.raw(["CREATE TABLE schema_version (version INTEGER NOT NULL)", "INSERT INTO schema_version VALUES (1)"])
    store = backend.open()
    assert backend.raw(["SELECT version FROM schema_version"]) == [(2,)]
    assert store.get("cam-0", 2**64 - 1) == StoredResult("cam-0", 2**64 - 1, 17, 0, b"\x01\x02", split=0)
    store.close()


def test_the_split_a_frame_was_sent_at_is_stored_and_the_first_one_kept(backend: Backend) -> None:
    store = backend.open()
    out = store.put_many([StoredResult("cam-1", 1, 10, 0, b"a", split=3), StoredResult("cam-1", 2, 11, 0, b"b")])
    assert [r.split for r in out] == [3, 0]
    again = store.put_many([StoredResult("cam-1", 1, 12, 0, b"c", split=5)])  # a resent frame: the first row
    assert again == [StoredResult("cam-1", 1, 10, 0, b"a", split=3)]
    assert store.get("cam-1", 1) == StoredResult("cam-1", 1, 10, 0, b"a", split=3)
    assert sorted(backend.raw(["SELECT seq, split FROM results"])) == [(1, 3), (2, 0)]
    store.close()


def test_a_fresh_database_gets_the_current_version(backend: Backend) -> None:
    backend.open().close()
    assert backend.raw(["SELECT version FROM schema_version"]) == [(2,)]


def test_a_newer_database_is_refused_with_one_line(backend: Backend) -> None:
    backend.open().close()
    backend.raw(["UPDATE schema_version SET version = 3"])
    with pytest.raises(StoreError) as err:
        backend.open()
    msg = str(err.value)
    assert "\n" not in msg and "schema version 3 is newer" in msg and "(2)" in msg and "upgrade splitsdk" in msg


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_both_synchronous_modes_store(backend: Backend, synchronous: str) -> None:
    store = backend.open(synchronous)
    assert store.put_many([row(1, b"x")])[0].result == b"x"
    store.close()


def test_an_unknown_synchronous_mode_is_refused(backend: Backend) -> None:
    with pytest.raises(StoreError, match="db synchronous must be 'full' or 'normal', got 'off'"):
        backend.open("off")


def test_a_file_that_is_not_a_database_is_refused_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"not a database\n" * 100)
    with pytest.raises(StoreError) as err:
        open_store(bad)
    assert str(err.value).startswith(f"{bad}: ") and "\n" not in str(err.value)


def test_postgres_urls_open_postgres_and_paths_sqlite(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "postgres.sqlite"))  # a file whose name starts with postgres
    assert isinstance(store, SqliteStore)
    store.close()
    with pytest.raises(StoreError, match="give a PostgreSQL URL as text"):
        open_store(Path("postgresql://u@127.0.0.1/db"))
