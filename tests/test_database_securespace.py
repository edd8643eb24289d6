"""The secure space on PostgreSQL: every store test of ``test_securespace_store`` that works through
the ``store`` fixture run again on a throwaway PostgreSQL database (the fixture below replaces the
SQLite one for them), then what a shared database adds: two stores on it see each other's changes,
and the sealed values are no more in clear in the database than in the file."""
from __future__ import annotations

import pytest

from tests.support import MASTER, add, new_store
from tests.test_securespace_store import (
    selector, test_a_certificate_is_read_verified_and_kept_sealed,
    test_a_transfer_takes_effect_when_the_new_mandataire_accepts_and_keeps_the_history, test_bad_keystores_are_refused,
    test_bad_users_are_refused, test_establishments_have_checked_numbers_and_periods,
    test_an_expired_certificate_is_stored_for_the_check_to_report, test_mandate_dates_are_read_against_the_request_date,
    test_mandate_life_cycle_with_history, test_mandates_are_checked_when_proposed,
    test_only_the_responsible_person_changes_the_access_list, test_selection_refusals_for_configuration_and_identifiers,
    test_the_group_certificate_acts_for_a_nurse_under_mandate,
    test_the_holder_acts_for_itself_and_a_transferred_mandate_moves_the_right, test_the_secure_space_is_created_once,
    test_users_passwords_are_hashed_slowly_and_checked)
from unified_messaging.database import connect, migrate_store
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore

pytestmark = pytest.mark.postgres

__all__ = [  # collected here again, on PostgreSQL
    "selector", "test_a_certificate_is_read_verified_and_kept_sealed",
    "test_a_transfer_takes_effect_when_the_new_mandataire_accepts_and_keeps_the_history",
    "test_bad_keystores_are_refused", "test_bad_users_are_refused",
    "test_establishments_have_checked_numbers_and_periods",
    "test_an_expired_certificate_is_stored_for_the_check_to_report",
    "test_mandate_dates_are_read_against_the_request_date", "test_mandate_life_cycle_with_history",
    "test_mandates_are_checked_when_proposed", "test_only_the_responsible_person_changes_the_access_list",
    "test_selection_refusals_for_configuration_and_identifiers",
    "test_the_group_certificate_acts_for_a_nurse_under_mandate",
    "test_the_holder_acts_for_itself_and_a_transferred_mandate_moves_the_right",
    "test_the_secure_space_is_created_once", "test_users_passwords_are_hashed_slowly_and_checked"]


def _migrated(url: str, folder) -> None:
    db = connect(url, folder)
    try:
        migrate_store(db)
    finally:
        db.close()


@pytest.fixture()
def store(postgres_url, tmp_path):
    _migrated(postgres_url, tmp_path)
    s = new_store(tmp_path, postgres_url)
    assert s.db.engine == "postgresql" and s.path is None
    yield s
    s.close()
    assert not (tmp_path / STORE_FILE).exists()  # nothing went to SQLite


def test_two_stores_on_one_database_see_each_others_changes_and_secrets_stay_sealed(store, postgres_url, tmp_path,
                                                                                      pki):
    other = SecureSpaceStore.open(postgres_url, tmp_path / "other-node", MASTER, hasher=PasswordHasher(cost=16))
    try:
        record = add(store, pki, "lab")
        assert [c.fingerprint for c in other.certificates()] == [record.fingerprint]
        assert other.open_keystore(record.id).authentication.certificate == \
            pki.load("lab").authentication.certificate
        other.set_licence("lab-licence", "licence-secret-pw")
        assert store.licence().password == "licence-secret-pw"
        assert other.count_sealed() == 3
        raw = store._rows("SELECT keystore, keystore_password FROM certificates")[0]
        clear = pki.keystores["lab"].path.read_bytes()
        assert clear not in bytes(raw["keystore"]) and pki.password.encode() not in bytes(raw["keystore_password"])
        licence = store._rows("SELECT password FROM licence")[0]["password"]
        assert b"licence-secret-pw" not in bytes(licence)
    finally:
        other.close()
