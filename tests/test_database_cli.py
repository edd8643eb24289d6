"""``unified-messaging db migrate`` as an operator runs it, on SQLite (the default) and on PostgreSQL:
it creates the schema and says what it applied, says there is nothing to do the second time, and
refuses a wrong url naming the key."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import CLI
from unified_messaging.database import connect
from unified_messaging.database.migrations import applied
from unified_messaging.database.postgres import masked_url


def _migrate(tmp_path: Path, url: str = "") -> subprocess.CompletedProcess:
    conf = tmp_path / "um.toml"
    conf.write_text(f'[data]\nfolder = "{tmp_path / "um-data"}"\n[database]\nurl = "{url}"\n')
    return subprocess.run([CLI, "db", "migrate", "--config", str(conf)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_db_migrate_creates_the_schema_then_has_nothing_to_do(engine, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else ""
    data = tmp_path / "um-data"
    mybox = "applied migration 1 (mybox) Mybox sessions and failed-login counters"
    space = ("applied migration 2 (securespace) the secure space: users, certificates and access lists, "
             "establishments, mandates, the licence")
    journal = "applied migration 3 (journal) the journal (consultations, batch files) and the invoicing state"
    work_names = "applied migration 4 (journal) invoicing: one row per file of the working folder"
    if url:  # one database holds every store
        where = f"PostgreSQL {masked_url(url)}"
        expected = [f"{where}: {mybox}", f"{where}: {space}", f"{where}: {journal}", f"{where}: {work_names}",
                    f"{where}: now at migration 4"]
        nothing = [f"{where}: up to date at migration 4, nothing to do"]
    else:  # a file per store
        files = [f"SQLite {data / 'mybox.sqlite'}", f"SQLite {data / 'securespace.sqlite'}",
                 f"SQLite {data / 'journal.sqlite'}"]
        expected = [f"{files[0]}: {mybox}", f"{files[0]}: now at migration 1",
                    f"{files[1]}: {space}", f"{files[1]}: now at migration 2",
                    f"{files[2]}: {journal}", f"{files[2]}: {work_names}",
                    f"{files[2]}: now at migration 4"]
        nothing = [f"{files[0]}: up to date at migration 1, nothing to do",
                   f"{files[1]}: up to date at migration 2, nothing to do",
                   f"{files[2]}: up to date at migration 4, nothing to do"]
    first = _migrate(tmp_path, url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == expected
    again = _migrate(tmp_path, url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == nothing
    db = connect(url, tmp_path / "um-data")
    try:
        assert applied(db) == ({1, 2, 3, 4} if url else {1}) and db.has_table("sessions") and db.has_table("login_locks")
    finally:
        db.close()
    assert (data / "mybox.sqlite").exists() == (data / "securespace.sqlite").exists() == \
        (data / "journal.sqlite").exists() == (engine == "sqlite")
    if url:
        assert url.split(":")[2].split("@")[0] not in first.stdout + first.stderr  # the password is never shown


def test_db_migrate_refuses_a_wrong_url_naming_the_key(tmp_path):
    wrong = _migrate(tmp_path, "mysql://um@127.0.0.1/um")
    assert wrong.returncode == 1
    assert "[database] url = 'mysql://um@127.0.0.1/um' is not valid: expected a postgresql://" in wrong.stderr
    unreachable = _migrate(tmp_path, "postgresql://um:pw-not-shown@127.0.0.1:1/um")
    assert unreachable.returncode == 1
    assert "cannot connect to PostgreSQL" in unreachable.stderr and "pw-not-shown" not in unreachable.stderr
