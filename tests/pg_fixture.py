"""A private PostgreSQL cluster for the tests (splitsdk.cloud.pg_local.LocalPostgres).

`pg_cluster` (one per test session) and `pg_private` (one per test, for tests that stop or restart the
server) run `initdb` into a fresh folder under the system temp dir on a free loopback port, as the
`postgres` system user when the tests run as root, and stop the server (`pg_ctl stop -m immediate`) at the
end; `pg_url` is a fresh, empty database on the session cluster. A test file imports the `*_fixture`
functions it uses (the fixtures keep the short names).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitsdk.cloud.pg_local import LocalPostgres

_databases = itertools.count()


def _cluster() -> Iterator[LocalPostgres]:
    # not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`
    root = Path(tempfile.mkdtemp(prefix="splitsdk-pg-"))
    pg = LocalPostgres(root, durable=False)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", name="pg_cluster")
def pg_cluster_fixture() -> Iterator[LocalPostgres]:
    yield from _cluster()


@pytest.fixture(name="pg_private")
def pg_private_fixture() -> Iterator[LocalPostgres]:
    yield from _cluster()


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_cluster: LocalPostgres) -> str:
    return pg_cluster.create_database(f"test_{next(_databases)}")
