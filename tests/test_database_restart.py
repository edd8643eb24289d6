"""Round trips and restarts on PostgreSQL: a pooled connection is taken without a checking round
trip, and a connection the server closed (a restart, an ended session) is noticed on its socket and
replaced, so a PostgreSQL restart costs no failed request after it. ``Database.insert`` is one
statement that commits on its own, on both engines."""
from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from tests.postgres import PostgresServer
from tests.test_database_layer import in_threads
from unified_messaging.database import JOURNAL, connect
from unified_messaging.database.postgres import hung_up
from unified_messaging.journal import Consultation, Journal

BASE = Consultation(
    at="2026-11-22T10:00:00.000+00:00", interface="soap", care_provider="81234530000", quality="labo",
    patient="850730*****", period_start="2026-11-22", period_end="2026-11-22", outcome="OK", code=None,
    audit_reference=None, reference=None, duration_ms=12.5,
)
CONNECTIONS = 4


def restart(server: PostgresServer) -> None:
    """``pg_ctl restart`` of the throwaway cluster, its output to the cluster's log (a pipe would be
    held open by the new server), with the options it was started with."""
    server._run("pg_ctl", "restart", "-m", "fast", "-w", "-t", "60", "-D", str(server.folder / "data"),
                "-l", str(server.folder / "server.log"))


def _fill_the_pool(journal: Journal) -> set[int]:
    """``CONNECTIONS`` transactions open at once, so the pool holds that many idle connections after;
    the server's process ids behind them."""
    barrier = threading.Barrier(CONNECTIONS)

    def hold() -> int:
        with journal.write() as tx:
            pid = tx.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
            barrier.wait(timeout=30)
        return pid

    pids = set(in_threads(hold, CONNECTIONS))
    assert len(pids) == CONNECTIONS, pids
    return pids


def _every_kind_of_request(journal: Journal, reference: str) -> None:
    journal.record_consultation(replace(BASE, reference=reference))  # the SOAP call's write, autocommit
    assert journal.find_consultations(text=reference)[0]["reference"] == reference
    assert journal.consultations_per_month()
    with journal.write(lock="restart-test") as tx:
        tx.execute("UPDATE consultations SET code = :code WHERE reference = :reference",
                   {"code": "RESTARTED", "reference": reference})


@pytest.mark.postgres
def test_a_postgresql_restart_costs_no_failed_request(postgres_server, migrated_postgres_url, tmp_path):
    journal = Journal(connect(migrated_postgres_url, tmp_path, store=JOURNAL))
    try:
        before = _fill_the_pool(journal)
        restart(postgres_server)
        for n in range(CONNECTIONS + 2):  # more requests than broken connections, each one succeeds
            _every_kind_of_request(journal, f"AFTER-RESTART-{n}")
        assert journal.count("consultations") == CONNECTIONS + 2
        after = {row["pid"] for row in journal.query("SELECT pg_backend_pid() AS pid")}
        assert not after & before  # served by the new server's processes

        _fill_the_pool(journal)  # the same with the requests arriving at once
        restart(postgres_server)
        numbers = itertools.count()
        results = in_threads(lambda: _every_kind_of_request(journal, f"CONCURRENT-{next(numbers)}"), CONNECTIONS)
        assert results == [None] * CONNECTIONS  # no exception
        assert journal.count_consultations(text="CONCURRENT-") == CONNECTIONS
    finally:
        journal.close()


@pytest.mark.postgres
def test_an_ended_session_is_noticed_without_a_round_trip(migrated_postgres_url, tmp_path):
    with psycopg.connect(migrated_postgres_url, autocommit=True) as conn, \
            psycopg.connect(migrated_postgres_url, autocommit=True) as admin:
        assert not hung_up(conn)  # idle and alive: nothing on its socket
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert not hung_up(conn)
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        assert hung_up(conn)
    journal = Journal(connect(migrated_postgres_url, tmp_path, store=JOURNAL))
    try:
        pids = _fill_the_pool(journal)
        with psycopg.connect(migrated_postgres_url, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        assert journal.record_consultation(BASE) >= 1 and journal.count("consultations") == 1
    finally:
        journal.close()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_lone_insert_commits_and_gives_its_id(engine, request, tmp_path: Path):
    url = request.getfixturevalue("migrated_postgres_url") if engine == "postgresql" else ""
    journal = Journal.open(url, tmp_path / "journal.sqlite")
    other = Journal.open(url, tmp_path / "journal.sqlite")  # another connection: sees only what is committed
    try:
        first, second = (journal.record_consultation(replace(BASE, reference=r)) for r in ("ONE", "TWO"))
        assert second > first >= 1
        assert [row["reference"] for row in other.consultations()] == ["TWO", "ONE"]
        assert other.consultation(first)["reference"] == "ONE"
    finally:
        other.close()
        journal.close()
