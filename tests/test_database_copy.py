"""``db copy --to URL``: a real SQLite install (a secure space with a certificate, a mandate and its
history, a licence; a Mybox session; a journal with consultations, a batch run and an invoicing file
resent after a refusal, with its TAck and feedback) copied by the command into a throwaway
PostgreSQL database, then read back there; a second copy is refused, naming the table that holds
rows."""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import CLI, MASTER, active_mandate, add, new_store
from tests.test_journal_queries import BASE, run_of
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Journal
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
    journal = Journal(data / "journal.sqlite")
    consultations = [journal.record_consultation(BASE), journal.record_consultation(BASE)]
    journal.record_batch_file(run_of())
    invoicing = InvoicingStore(journal)
    refused = invoicing.record_file(name="FAC1.txt", size=10, sha256="a" * 64, zone_204="1", destination="100",
                                    is_test=True, state="refused", work_name="FAC1.work", status="NOK")
    invoicing.link_resend("b" * 64, refused)
    resent = invoicing.record_file(name="FAC1.txt", size=11, sha256="b" * 64, zone_204="2", destination="100",
                                   is_test=True, state="sent", work_name="FAC1b.work")
    invoicing.record_tack(tack_key="t1", file_id=resent, input_reference="2", reference="R2", success=True,
                          message=None, probative_name=None)
    invoicing.record_feedback(message_key="m1", file_id=resent, zone_204="2", code="931000", nip_reference=None,
                              output_reference=None, received_name="r1", probative_name=None, status="ONGOING",
                              error_counts={"B": 1})
    journal.close()
    conf = tmp_path / "um.toml"
    conf.write_text(f'[data]\nfolder = "{data}"\n')
    copied = subprocess.run([CLI, "db", "copy", "--to", postgres_url, "--config", str(conf)],
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    lines = copied.stdout.splitlines()
    assert lines[-3] == f"mybox: copied from SQLite {data / 'mybox.sqlite'}: sessions 1, login_failures 0, login_locks 0"
    assert lines[-2] == (f"securespace: copied from SQLite {data / STORE_FILE}: users 2, space 1, certificates 1, "
                         f"access 1, establishments 0, mandates 1, mandate_events 3, licence 1")
    assert lines[-1] == (f"journal: copied from SQLite {data / 'journal.sqlite'}: meta 2, consultations 2, "
                         "batch_files 1, invoicing_files 2, invoicing_feedback 1, invoicing_tacks 1, "
                         "invoicing_resends 0")
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
    journal = Journal.open(postgres_url, tmp_path / "node" / "journal.sqlite")
    try:
        assert [row["id"] for row in journal.find_consultations()] == consultations[::-1]
        assert journal.record_consultation(BASE) == consultations[-1] + 1  # the numbering goes on
        assert journal.batch_runs()[0]["input"] == run_of().input
        copied_store = InvoicingStore(journal)
        assert [r["resend_of"] for r in copied_store.resent_as(refused)] == [refused]
        assert copied_store.file(resent)["shown_status"] == "ONGOING" and copied_store.has_tack("t1")
        assert copied_store.feedback(copied_store.feedback_for(resent)[0]["id"])["error_counts"] == {"B": 1}
        assert copied_store.record_file(name="FAC2.txt", size=1, sha256="c" * 64, zone_204="3", destination=None,
                                        is_test=True, state="claimed", work_name=None) == resent + 1
    finally:
        journal.close()
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
