"""The database layer on both engines: one SQL text with ``:name`` parameters, dict rows,
transactions that commit or roll back, named locks that serialise read-then-write, numbered
migrations (per-engine SQL where types differ) that are idempotent, also run at once; the
``[database] url`` key; a PostgreSQL schema behind the code is refused at start-up."""
from __future__ import annotations

import sqlite3
import threading
from typing import Callable

import pytest

from unified_messaging.config import ConfigError, config_from_dict
from unified_messaging.database import DatabaseError, connect, open_store
from unified_messaging.database.migrations import Migration, applied, migrate, pending
from unified_messaging.database.postgres import masked_url, pyformat
from unified_messaging.database.schema import MIGRATIONS
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore
from unified_messaging.web.sessions import STATE_FILE, WebState

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

TEST_MIGRATIONS = (
    Migration(1, "mybox", "a table with a generated key", {
        "sqlite": "CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, n BIGINT)",
        "postgresql": "CREATE TABLE things (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                      "name TEXT NOT NULL, n BIGINT)"}),
    Migration(2, "mybox", "an index and a counter", """
CREATE INDEX things_name ON things (name);
CREATE TABLE counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counter (name, value) VALUES ('total', 0);
"""),
)


@pytest.fixture(params=ENGINES)
def database(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    db = connect(url, tmp_path)
    assert db.engine == request.param
    yield db
    db.close()


def test_one_sql_text_with_named_parameters_on_both_engines(database):
    assert migrate(database, TEST_MIGRATIONS) == list(TEST_MIGRATIONS)
    with database.transaction() as tx:
        for name, n in (("a", 1), ("b", 2_000_000_000_000), ("c%", None)):
            assert tx.execute("INSERT INTO things (name, n) VALUES (:name, :n)", {"name": name, "n": n}) == 1
    rows = database.query("SELECT id, name, n FROM things WHERE name LIKE :pattern OR name = 'c%' ORDER BY id",
                          {"pattern": "%"})
    assert rows == [{"id": 1, "name": "a", "n": 1}, {"id": 2, "name": "b", "n": 2_000_000_000_000},
                    {"id": 3, "name": "c%", "n": None}]  # dict rows, identity/autoincrement keys, BIGINT kept
    assert database.execute("UPDATE things SET n = :n WHERE name IN (:x, :y)", {"n": 7, "x": "a", "y": "c%"}) == 2
    assert database.query_one("SELECT COUNT(*) AS n FROM things WHERE n = :n", {"n": 7}) == {"n": 2}
    assert database.query_one("SELECT name FROM things WHERE name = :name", {"name": "zz"}) is None
    assert database.has_table("things") and not database.has_table("nothing_here")


def test_a_failed_transaction_leaves_nothing(database):
    migrate(database, TEST_MIGRATIONS)
    with pytest.raises(RuntimeError):
        with database.transaction() as tx:
            tx.execute("INSERT INTO things (name) VALUES (:name)", {"name": "half"})
            assert tx.query("SELECT name FROM things") == [{"name": "half"}]  # seen inside
            raise RuntimeError("stop here")
    assert database.query("SELECT name FROM things") == []


def in_threads(work: Callable[[], object], count: int) -> list[object]:
    """``work`` run by ``count`` threads at once; what each returned (or raised), in finishing order."""
    results: list[object] = []

    def run() -> None:
        try:
            results.append(work())
        except Exception as exc:  # noqa: BLE001 - returned, for the test to assert on
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_named_lock_serialises_read_then_write_across_connections(database):
    migrate(database, TEST_MIGRATIONS)

    def bump() -> None:
        for _ in range(25):
            with database.transaction(lock="counter") as tx:
                value = tx.query("SELECT value FROM counter WHERE name = 'total'")[0]["value"]
                tx.execute("UPDATE counter SET value = :v WHERE name = 'total'", {"v": value + 1})

    assert in_threads(bump, 6) == [None] * 6
    assert database.query_one("SELECT value FROM counter WHERE name = 'total'") == {"value": 150}  # none lost


def test_migrations_are_recorded_idempotent_and_only_the_new_ones_run(database):
    assert pending(database, TEST_MIGRATIONS[:1]) == [TEST_MIGRATIONS[0]] and applied(database) == set()
    assert migrate(database, TEST_MIGRATIONS[:1]) == [TEST_MIGRATIONS[0]]
    assert migrate(database, TEST_MIGRATIONS[:1]) == []
    assert migrate(database, TEST_MIGRATIONS) == [TEST_MIGRATIONS[1]]  # a later version brings number 2
    assert migrate(database, TEST_MIGRATIONS) == []
    assert applied(database) == {1, 2} and pending(database, TEST_MIGRATIONS) == []
    recorded = database.query("SELECT version, store, description FROM schema_migrations ORDER BY version")
    assert recorded == [{"version": 1, "store": "mybox", "description": "a table with a generated key"},
                        {"version": 2, "store": "mybox", "description": "an index and a counter"}]
    assert database.query("SELECT value FROM counter") == [{"value": 0}]  # migration 2's insert ran once


def test_migrating_from_several_connections_at_once_runs_each_migration_once(database):
    results = in_threads(lambda: migrate(database, TEST_MIGRATIONS), 4)
    assert sorted(results, key=len) == [[], [], [], list(TEST_MIGRATIONS)]
    assert database.query("SELECT value FROM counter") == [{"value": 0}]


def test_a_badly_numbered_or_one_engine_migration_list_is_refused(database):
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        migrate(database, TEST_MIGRATIONS[1:])
    with pytest.raises(ValueError, match="for both sqlite and postgresql"):
        migrate(database, (Migration(1, "mybox", "only one", {"sqlite": "CREATE TABLE x (a TEXT)"}),))
    assert not database.has_table("x")


def test_placeholders_become_psycopgs_leaving_literals_names_and_casts_alone():
    assert pyformat("SELECT * FROM t WHERE a = :a AND b IN (:b, :c2)") == \
        "SELECT * FROM t WHERE a = %(a)s AND b IN (%(b)s, %(c2)s)"
    assert pyformat("SELECT ':not_me', \"col:x\", 5::text, '50%', name LIKE :p || '%'") == \
        "SELECT ':not_me', \"col:x\", 5::text, '50%%', name LIKE %(p)s || '%%'"
    assert pyformat("SELECT 'it''s :x' WHERE y = :y") == "SELECT 'it''s :x' WHERE y = %(y)s"


def test_the_database_url_key():
    assert config_from_dict({}).database.url == ""
    url = "postgresql://um@db.example.be:5432/unified_messaging"
    assert config_from_dict({"database": {"url": url}}).database.url == url
    for wrong in ("mysql://um@db/um", "postgres:/db", "db.example.be", "sqlite:///um.sqlite"):
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"database": {"url": wrong}})
        assert "[database] url" in str(caught.value) and "postgresql://" in str(caught.value)
    with pytest.raises(ConfigError, match=r"\[database\] url = 5 is not valid: expected a string"):
        config_from_dict({"database": {"url": 5}})


def test_an_unreachable_postgresql_stops_start_up_without_showing_the_password():
    assert masked_url("postgresql://um:s3cret@db:5432/um") == "postgresql://um:***@db:5432/um"
    assert masked_url("postgresql://um@db/um") == "postgresql://um@db/um"
    with pytest.raises(DatabaseError) as caught:
        connect("postgresql://um:s3cret-word@127.0.0.1:1/um", ".")  # port 1: nothing listens
    message = str(caught.value)
    assert message.startswith("[database] url = 'postgresql://um:***@127.0.0.1:1/um': cannot connect to PostgreSQL")
    assert "s3cret-word" not in message and "PGPASSWORD" in message
    assert isinstance(caught.value, ConfigError)  # serve prints it as a configuration error


@pytest.mark.postgres
def test_a_postgresql_schema_behind_the_gateway_is_refused_until_db_migrate(postgres_url, tmp_path):
    with pytest.raises(DatabaseError) as caught:
        open_store(postgres_url, tmp_path)
    assert "lacks migrations 1, 2, 3, 4 (Mybox sessions and failed-login counters; the secure space: " in str(caught.value)
    assert "run 'unified-messaging db migrate'" in str(caught.value) and "***" in str(caught.value)
    db = connect(postgres_url, tmp_path)
    try:
        migrate(db, MIGRATIONS)
    finally:
        db.close()
    open_store(postgres_url, tmp_path).close()
    assert not (tmp_path / STATE_FILE).exists()  # nothing went to SQLite


def test_a_mybox_file_made_before_migrations_is_adopted_with_its_sessions(tmp_path):
    old = sqlite3.connect(tmp_path / STATE_FILE)
    old.executescript("""
        CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, created INTEGER NOT NULL,
            last_seen INTEGER NOT NULL, login TEXT, flash TEXT NOT NULL DEFAULT '[]');
        CREATE TABLE login_failures (key TEXT NOT NULL, at INTEGER NOT NULL);
        CREATE TABLE login_locks (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
        INSERT INTO sessions VALUES ('ab', 'csrf', 1, 2, 'admin', '[]');""")
    old.close()
    state = WebState.in_data_folder(tmp_path)
    try:
        assert state.db.query("SELECT token_hash, login FROM sessions") == [{"token_hash": "ab", "login": "admin"}]
        assert applied(state.db) == {1}
    finally:
        state.close()


def test_without_the_postgresql_binaries_the_postgres_tests_skip_saying_what_to_install(monkeypatch):
    import tests.postgres

    monkeypatch.setattr(tests.postgres, "binaries", lambda: None)
    with pytest.raises(pytest.skip.Exception, match=r"^PostgreSQL binaries not found: apt-get install postgresql$"):
        tests.postgres.start_cluster()


def test_a_secure_space_file_made_before_migrations_and_mybox_is_adopted_with_its_rows(tmp_path):
    old = sqlite3.connect(tmp_path / STORE_FILE)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE users (login TEXT PRIMARY KEY, name TEXT NOT NULL, ssin TEXT NOT NULL, roles TEXT NOT NULL,
            password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO users VALUES ('admin', 'Ada', '85073003328', 'administrator', 'scrypt$x', '2024-01-01');""")
    old.commit()
    old.close()
    store = SecureSpaceStore.in_data_folder(tmp_path, b"0123456789abcdef0123456789abcdef", hasher=PasswordHasher(16))
    try:
        assert [(u.login, u.language) for u in store.users()] == [("admin", "en")]  # the column added, rows kept
        assert store.set_language("admin", "nl").language == "nl"
        assert store.mandates() == [] and applied(store.db) == {2}
    finally:
        store.close()
