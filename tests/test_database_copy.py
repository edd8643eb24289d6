"""``db copy --to URL``: a real SQLite install (a secure space with a certificate, a mandate and its
history, a licence; a Mybox session) copied by the command into a throwaway PostgreSQL database,
then read back there; a second copy is refused, naming the table that holds rows."""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import CLI, MASTER, active_mandate, add, new_store
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.models import Service
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore
from unified_messaging.web.sessions import SessionStore, WebState

pytestmark = pytest.mark.postgres


def test_db_copy_moves_a_sqlite_install_into_postgresql_and_refuses_a_second_time(postgres_url, tmp_path, pki):
    data = tmp_path / "um-data"
    store = new_store(data)
    record = add(store, pki, "nursing_group")
    mandate = active_mandate(store)
    store.set_licence("lab-licence", "licence-secret-pw")
    history = store.mandate_history(mandate.id)
    store.close()
    state = WebState.in_data_folder(data)
    session = SessionStore(state, idle=timedelta(hours=1), lifetime=timedelta(hours=8),
                           clock=lambda: datetime.now(timezone.utc)).new("admin")
    state.close()
    conf = tmp_path / "um.toml"
    conf.write_text(f'[data]\nfolder = "{data}"\n')
    copied = subprocess.run([CLI, "db", "copy", "--to", postgres_url, "--config", str(conf)],
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    lines = copied.stdout.splitlines()
    assert lines[-2] == f"mybox: copied from SQLite {data / 'mybox.sqlite'}: sessions 1, login_failures 0, login_locks 0"
    assert lines[-1] == (f"securespace: copied from SQLite {data / STORE_FILE}: users 2, space 1, certificates 1, "
                         f"access 1, establishments 0, mandates 1, mandate_events 3, licence 1")
    assert any("applied migration 2" in line for line in lines)

    copy = SecureSpaceStore.open(postgres_url, tmp_path / "node", MASTER, hasher=PasswordHasher(cost=16))
    try:
        assert [u.login for u in copy.users()] == ["admin", "ann"]
        assert copy.certificate(record.id).fingerprint == record.fingerprint
        assert copy.open_keystore(record.id).authentication.certificate == \
            pki.load("nursing_group").authentication.certificate  # the sealed bytes came over intact
        assert copy.mandate_history(mandate.id) == history and copy.licence().password == "licence-secret-pw"
        later = copy.propose_mandate(mandate.mandant, mandate.mandataire, Service.INSURABILITY, by="admin",
                                     valid_from=mandate.valid_from)
        assert later.id == mandate.id + 1  # the numbering goes on after the copied rows
    finally:
        copy.close()
    web = WebState.open(postgres_url, tmp_path / "node")
    try:
        assert len(web.db.query("SELECT token_hash FROM sessions WHERE login = 'admin'")) == 1
        assert session.login == "admin"
    finally:
        web.close()

    again = subprocess.run([CLI, "db", "copy", "--to", postgres_url, "--config", str(conf)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "the table sessions already holds rows; db copy only fills an empty database (nothing was copied)" in again.stderr
    assert postgres_url.split(":")[2].split("@")[0] not in again.stdout + again.stderr  # no password shown
