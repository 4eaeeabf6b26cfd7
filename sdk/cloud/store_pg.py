"""PostgreSQL result store: one database that several receivers share (psycopg 3).

The same tables as the SQLite store (`seq` is the wire's u64 kept as signed BIGINT, as SQLite keeps it)
and the same contract (`splitsdk.cloud.store.ResultStore`): `put_many` inserts a batch with
`INSERT ... ON CONFLICT DO NOTHING` and reads the stored rows back in the same transaction, so a frame
that receiver A stored and the camera resent to receiver B is stored once and B answers A's result.
Rows are inserted in (device_id, seq) order, so two receivers writing overlapping batches lock them in
the same order and never deadlock. `put_many` returns only after the commit.

`synchronous` sets the session's `synchronous_commit`: "full" -> on (a commit returns once its WAL is
flushed to disk), "normal" -> off (it returns before the flush: a crash of the database host may lose the
last fraction of a second of commits, never corrupt the database).

A failed call raises `StoreError` with the server's message in one line and drops the connection; the
next call connects again, so a receiver refuses frames while the database is down and serves again once
it is back. A connection that died since its last use (the server restarted in between) is replaced and
the call retried once at once (safe: a batch is idempotent; a STATS row whose commit was acknowledged but
lost with the connection may be stored twice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from splitsdk.cloud.store import (
    POSTGRES,
    StoredResult,
    StoreError,
    check_synchronous,
    db_seq,
    migrate,
    migrations,
    now_us,
)
from splitsdk.errors import first_line

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK = 0x73706C6974  # pg_advisory_xact_lock key: receivers opening one database migrate in turn

INSERT_RESULT = """INSERT INTO results (device_id, seq, capture_us, stored_us, status, result, split)
    VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (device_id, seq) DO NOTHING"""
SELECT_RESULTS = """SELECT device_id, seq, capture_us, status, result, split FROM results
    WHERE (device_id, seq) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))"""


def redact(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}" if ":" in userinfo else parts.netloc
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class PostgresStore:
    """Results in a PostgreSQL database at `url` (postgresql://user@host:port/dbname)."""

    def __init__(self, url: str, synchronous: str = "full") -> None:
        self.url = url
        self.label = redact(url)
        check_synchronous(synchronous)
        self._synchronous_commit = "on" if synchronous == "full" else "off"
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"{self.label}: not a PostgreSQL URL: {first_line(exc)}") from None
        self._connect_args: dict[str, Any] = {"application_name": "splitsdk-receiver"}
        if "connect_timeout" not in given:
            self._connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        self._conn: Conn | None = None
        self._run(self._migrate)

    # ---- connection, transactions, errors ----

    def _connect(self) -> Conn:
        conn = psycopg.connect(self.url, autocommit=True, **self._connect_args)
        conn.execute(f"SET synchronous_commit = {self._synchronous_commit}")
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, op: Callable[[Conn], T], transaction: bool = True) -> T:
        """`op` on the connection (made when there is none), in one committed transaction by default."""
        for attempt in range(2):
            conn, fresh = self._conn, self._conn is None
            try:
                if conn is None:
                    conn = self._conn = self._connect()
                if not transaction:
                    return op(conn)
                with conn.transaction():
                    return op(conn)
            except psycopg.Error as exc:
                lost = conn is None or conn.broken or conn.closed
                if lost:
                    self._drop()
                # a connection that died while idle (server restarted), or a lost serialization race
                retry = (lost and not fresh) or isinstance(exc, errors.TransactionRollback)
                if attempt > 0 or not retry:
                    full = "database or disk is full: " if isinstance(exc, errors.DiskFull) else ""
                    raise StoreError(f"{self.label}: {full}{first_line(exc)}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _scalar(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> Any:
        row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def _version(self, conn: Conn) -> int:
        if self._scalar(conn, "SELECT to_regclass('schema_version')") is None:
            return 0
        return int(self._scalar(conn, "SELECT coalesce(max(version), 0) FROM schema_version"))

    def _migrate(self, conn: Conn) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        migrate(self.label, migrations(POSTGRES), self._version(conn), conn.execute)

    # ---- the ResultStore interface ----

    def version(self) -> int:
        """The schema version recorded in the database (0: none recorded)."""
        return self._run(self._version, transaction=False)

    def get(self, device_id: str, seq: int) -> StoredResult | None:
        def op(conn: Conn) -> StoredResult | None:
            row = conn.execute(
                "SELECT capture_us, status, result, split FROM results WHERE device_id = %s AND seq = %s",
                (device_id, db_seq(seq)),
            ).fetchone()
            return None if row is None else StoredResult(device_id, seq, row[0], row[1], bytes(row[2]), row[3])

        return self._run(op, transaction=False)

    def put_many(self, rows: list[StoredResult]) -> list[StoredResult]:
        if not rows:
            return []
        now = now_us()
        keys = [(r.device_id, db_seq(r.seq)) for r in rows]
        order = sorted(range(len(rows)), key=keys.__getitem__)  # stable: the first of equal keys wins
        distinct = sorted(set(keys))

        def op(conn: Conn) -> dict[tuple[str, int], tuple[int, int, bytes, int]]:
            with conn.cursor() as cur:
                cur.executemany(
                    INSERT_RESULT,
                    [(*keys[i], rows[i].capture_us, now, rows[i].status, rows[i].result, rows[i].split) for i in order],
                )
                cur.execute(SELECT_RESULTS, ([k[0] for k in distinct], [k[1] for k in distinct]))
                return {(d, s): (c, st, bytes(res), sp) for d, s, c, st, res, sp in cur.fetchall()}

        stored = self._run(op)
        return [
            StoredResult(r.device_id, r.seq, *stored[k]) if k in stored else r for r, k in zip(rows, keys, strict=True)
        ]

    def put_stats(self, device_id: str, stats_json: str) -> None:
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO device_stats (device_id, received_at, stats) VALUES (%s, %s, %s)",
                (device_id, now_us(), stats_json),
            )
        )

    def stats(self, device_id: str) -> list[tuple[int, str]]:
        def op(conn: Conn) -> list[tuple[int, str]]:
            rows = conn.execute(
                "SELECT received_at, stats FROM device_stats WHERE device_id = %s ORDER BY received_at, id",
                (device_id,),
            ).fetchall()
            return [(int(r[0]), str(r[1])) for r in rows]

        return self._run(op, transaction=False)

    def count(self) -> int:
        return int(self._run(lambda conn: self._scalar(conn, "SELECT count(*) FROM results"), transaction=False))

    def close(self) -> None:
        self._drop()
