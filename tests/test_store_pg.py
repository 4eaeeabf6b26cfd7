"""The PostgreSQL result store as receivers share it: several stores on one database, concurrent
overlapping batches, a server that goes down and comes back, the synchronous mapping, and the
LocalPostgres cluster helper."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pg_fixture import pg_cluster_fixture, pg_private_fixture, pg_url_fixture  # noqa: F401 (fixtures)

from splitsdk.cloud.pg_local import LocalPostgres, free_port, server_bin
from splitsdk.cloud.store import POSTGRES, StoredResult, StoreError, migrations, open_store
from splitsdk.cloud.store_pg import PostgresStore, redact


def row(seq: int, body: bytes, device: str = "cam-1") -> StoredResult:
    return StoredResult(device, seq, 1000 + seq % 1000, 0, body)


def in_threads(work: Callable[[int], None], n: int) -> None:
    """Run work(0..n-1) in n threads started together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def test_a_frame_stored_by_one_receiver_is_answered_by_another(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    assert a.put_many([row(7, b"from A")])[0].result == b"from A"
    # the camera resends seq 7 to receiver B, which ran its own inference
    assert b.put_many([row(7, b"from B"), row(8, b"new")])[0].result == b"from A"
    assert a.count() == b.count() == 2
    assert a.get("cam-1", 8) == b.get("cam-1", 8) == row(8, b"new")
    a.close()
    b.close()


def test_two_receivers_storing_overlapping_frames_concurrently_store_each_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url), PostgresStore(pg_url)]
    seqs = [k if k % 2 else 2**64 - 1 - k for k in range(300)]  # both ends of the u64 range
    mine = [seqs[0:200], seqs[100:300]]  # seqs[100:200] go to both receivers
    answers: list[dict[int, bytes]] = [{}, {}]

    def receiver(n: int) -> None:
        for i in range(0, len(mine[n]), 10):
            batch = [row(s, f"receiver {n}".encode()) for s in mine[n][i : i + 10]]
            if n == 1:
                batch.reverse()  # the opposite order inside each batch: inserts must not deadlock
            out = stores[n].put_many(batch)
            assert [r.seq for r in out] == [r.seq for r in batch]
            answers[n].update((r.seq, r.result) for r in out)

    in_threads(receiver, 2)
    assert stores[0].count() == 300
    for s in seqs[100:200]:
        stored = stores[0].get("cam-1", s)
        assert stored is not None and answers[0][s] == answers[1][s] == stored.result
    for n, own in ((0, seqs[:100]), (1, seqs[200:])):
        assert {answers[n][s] for s in own} == {f"receiver {n}".encode()}
    for store in stores:
        store.close()


def test_receivers_opening_a_fresh_database_together_migrate_it_once(pg_url: str) -> None:
    stores: list[PostgresStore] = []
    in_threads(lambda _: stores.append(PostgresStore(pg_url)), 4)
    assert [s.version() for s in stores] == [len(migrations(POSTGRES))] * 4 == [2, 2, 2, 2]
    for s in stores:
        s.close()


def test_a_server_outage_fails_calls_with_one_line_and_the_store_reconnects(pg_private: LocalPostgres) -> None:
    url = pg_private.create_database("results")
    store = PostgresStore(url)
    assert store.put_many([row(1, b"before")])[0].result == b"before"
    pg_private.stop("immediate")
    for call in (lambda: store.put_many([row(2, b"during")]), lambda: store.get("cam-1", 1), store.count):
        with pytest.raises(StoreError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"{url}: ") and "\n" not in msg and "Connection refused" in msg
    pg_private.start()
    # the same store object, no reopen: the next call connects again
    assert store.put_many([row(2, b"after")])[0].result == b"after"
    assert store.count() == 2 and store.get("cam-1", 1) == row(1, b"before")
    store.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_restart_between_calls_goes_unnoticed(pg_private: LocalPostgres, mode: str) -> None:
    url = pg_private.create_database("results")
    store = PostgresStore(url)
    store.put_many([row(1, b"one")])
    store.put_stats("cam-1", '{"n": 1}')
    pg_private.restart(mode)
    # the connection died while idle: replaced at once, the call succeeds
    assert store.put_many([row(1, b"ONE"), row(2, b"two")])[0].result == b"one"
    pg_private.restart(mode)
    store.put_stats("cam-1", '{"n": 2}')
    assert [t for _, t in store.stats("cam-1")] == ['{"n": 1}', '{"n": 2}']
    store.close()


def test_an_unreachable_server_is_one_typed_line_without_the_password() -> None:
    url = f"postgresql://receiver:s3cret@127.0.0.1:{free_port('127.0.0.1')}/results?connect_timeout=2"
    with pytest.raises(StoreError) as err:
        open_store(url)
    msg = str(err.value)
    assert "s3cret" not in msg and "\n" not in msg and "Connection refused" in msg
    assert msg.startswith("postgresql://receiver:***@127.0.0.1:")


def test_redact_hides_passwords_in_the_url_and_its_query() -> None:
    assert redact("postgresql://u:p%40ss@h:5/d?password=x&sslmode=require") == (
        "postgresql://u:***@h:5/d?password=%2A%2A%2A&sslmode=require"
    )
    assert redact("postgres://u@h/d") == "postgres://u@h/d"


@pytest.mark.parametrize(("synchronous", "expected"), [("full", "on"), ("normal", "off")])
def test_synchronous_sets_the_sessions_synchronous_commit(pg_url: str, synchronous: str, expected: str) -> None:
    store = PostgresStore(pg_url, synchronous)
    assert store._run(lambda conn: conn.execute("SHOW synchronous_commit").fetchall()) == [(expected,)]
    store.close()


def test_a_cluster_with_a_password_refuses_a_wrong_one() -> None:
    root = Path(tempfile.mkdtemp(prefix="splitsdk-pg-"))
    pg = LocalPostgres(root, user="fleet", password="p@ss word", durable=False)
    try:
        pg.start()
        url = pg.create_database("results")
        store = open_store(url)
        assert store.put_many([row(1, b"x")])[0].result == b"x"
        store.close()
        with pytest.raises(StoreError, match="password authentication failed") as err:
            open_store(url.replace("p%40ss%20word", "wrong"))
        assert "wrong" not in str(err.value)
        # the port and settings survive: a second LocalPostgres on the same folder finds the cluster
        pg.stop()
        again = LocalPostgres(root, user="fleet", password="p@ss word")
        assert again.initialized and again.port == pg.port
        again.start()
        assert again.pid() is not None and open_store(url).count() == 1
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    assert pg.pid() is None


def test_server_programs_are_found_off_path_in_debians_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a fresh Debian has initdb/pg_ctl only under /usr/lib/postgresql
    initdb = server_bin("initdb")
    assert initdb.parent.parent.parent == Path("/usr/lib/postgresql") and initdb.name == "initdb"
    with pytest.raises(StoreError, match="no-such-program: PostgreSQL server not found"):
        server_bin("no-such-program")
