"""The secure space's store and certificate selection, with the development PKI's real keystores."""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import pytest

from tests.support import ADMIN_PASSWORD, GROUP, NURSE, OWNER_SSIN, active_mandate, add, new_store
from unified_messaging.simulator.devpki import EXPIRED_NIHII, GROUP_NUMBER, LAB_NIHII, NURSE_NIHII, NURSE_SSIN
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.models import MandateState, Party, PartyKind, Service, Side
from unified_messaging.securespace.selection import CertificateSelector
from unified_messaging.securespace.store import SecureSpaceStore

LAB = Party(PartyKind.NIHII, LAB_NIHII)
TODAY = datetime.now(timezone.utc).date()


@pytest.fixture()
def store(tmp_path):
    s = new_store(tmp_path)
    yield s
    s.close()


# ------------------------------------------------------------------ users

def test_users_passwords_are_hashed_slowly_and_checked(store):
    assert store.authenticate("ann", "ann-password-123").name == "Ann Clerk"
    for login, password in [("ann", "wrong-password"), ("nobody", "ann-password-123")]:
        with pytest.raises(Refusal) as caught:
            store.authenticate(login, password)
        assert caught.value.code == "SS-WRONG-PASSWORD"
    row = store._rows("SELECT password_hash FROM users WHERE login = 'ann'")[0]["password_hash"]
    assert row.startswith("scrypt$16$8$1$") and "ann-password" not in row
    store.set_password("ann", "another-password-456")
    assert store.authenticate("ann", "another-password-456")


def test_default_password_hashing_is_strong():
    hasher = PasswordHasher()
    stored = hasher.hash("a-long-password")
    assert stored.startswith("scrypt$32768$8$1$")
    assert hasher.verify("a-long-password", stored) and not hasher.verify("a-long-passworD", stored)
    assert hasher.hash("a-long-password") != stored  # salted


@pytest.mark.parametrize("args, code", [
    (("ann", "Dup", OWNER_SSIN, ["clinical"], "long-enough-pw"), "SS-USER-EXISTS"),
    (("bob", "Bob", "12345678901", ["clinical"], "long-enough-pw"), "SS-BAD-SSIN"),
    (("bob", "Bob", OWNER_SSIN, ["doctor"], "long-enough-pw"), "SS-BAD-ROLE"),
    (("bob", "Bob", OWNER_SSIN, ["clinical"], "short"), "SS-WEAK-PASSWORD"),
])
def test_bad_users_are_refused(store, args, code):
    with pytest.raises(Refusal) as caught:
        store.add_user(*args)
    assert caught.value.code == code


def test_the_secure_space_is_created_once(store):
    with pytest.raises(Refusal, match="SS-SECURE-SPACE-EXISTS"):
        store.create_space("again", "x", OWNER_SSIN, "y", OWNER_SSIN)
    assert store.update_space(responsible_name="New Person").responsible_name == "New Person"


# ------------------------------------------------------------------ certificates

def test_a_certificate_is_read_verified_and_kept_sealed(store, pki):
    record = add(store, pki, "nurse", trusted_ca=pki.ca_certificate())
    assert (record.kind, record.quality, record.nihii11, record.holder_name) == ("SSIN", "nurse", NURSE_NIHII,
                                                                                 "ANNE DEVNURSE")
    assert record.not_after > datetime.now(timezone.utc)
    entry = store.open_keystore(record.id).authentication
    assert entry.certificate == pki.load("nurse").authentication.certificate
    assert [a["login"] for a in store.access_list(record.id)] == ["admin"]  # responsible and owner


def test_bad_keystores_are_refused(store, pki):
    with pytest.raises(Refusal, match="SS-BAD-KEYSTORE"):
        store.add_certificate(pki.lab.path.read_bytes(), "not-the-password", responsible_login="admin")
    with pytest.raises(Refusal, match="SS-CERT-UNTRUSTED"):
        add(store, pki, "untrusted", trusted_ca=pki.ca_certificate())
    add(store, pki, "lab")
    with pytest.raises(Refusal, match="already in the secure space"):
        add(store, pki, "lab")
    with pytest.raises(Refusal, match="SS-BAD-NIHII"):
        add(store, pki, "nursing_group", nihii11=LAB_NIHII)


def test_an_expired_certificate_is_stored_for_the_check_to_report(store, pki):
    """Without the eHealth CA nothing is checked at upload (with it, see tests/test_ehealth_ca.py)."""
    record = add(store, pki, "expired")
    assert record.not_after < datetime.now(timezone.utc)


def test_another_master_secret_cannot_open_the_keystores(tmp_path, pki):
    store = new_store(tmp_path)
    record = add(store, pki, "lab")
    other = SecureSpaceStore.in_data_folder(tmp_path, b"another-master-secret-of-32-bytes!", hasher=PasswordHasher(16))
    with pytest.raises(Refusal, match="SS-CERT-UNREADABLE"):
        other.open_keystore(record.id)


# ------------------------------------------------------------------ access lists

def test_only_the_responsible_person_changes_the_access_list(store, pki):
    record = add(store, pki, "lab")
    with pytest.raises(Refusal) as caught:
        store.check_user_may_use("ann", record.id)
    assert caught.value.code == "SS-NOT-ON-ACCESS-LIST"
    with pytest.raises(Refusal, match="SS-NOT-RESPONSIBLE"):
        store.grant(record.id, "ann", by="ann")
    store.grant(record.id, "ann", by="admin")
    assert store.check_user_may_use("ann", record.id) == record
    store.revoke(record.id, "ann", by="admin")
    with pytest.raises(Refusal, match="SS-NOT-ON-ACCESS-LIST"):
        store.check_user_may_use("ann", record.id)
    store.check_user_may_use("admin", record.id)


def test_establishments_have_checked_numbers_and_periods(store, pki):
    record = add(store, pki, "nursing_group")
    est = store.add_establishment(record.id, GROUP_NUMBER, ssin=OWNER_SSIN, valid_from=date(2025, 1, 1))
    assert (est.kind, est.valid_to) == ("third-party", None)
    with pytest.raises(Refusal, match="SS-BAD-CBE"):
        store.add_establishment(record.id, "0123456789", ssin=None, valid_from=date(2025, 1, 1))
    with pytest.raises(Refusal, match="SS-BAD-DATES"):
        store.add_establishment(record.id, GROUP_NUMBER, ssin=None, valid_from=date(2025, 2, 1),
                                valid_to=date(2025, 1, 1))


# ------------------------------------------------------------------ mandates

def test_mandate_life_cycle_with_history(store):
    m = store.propose_mandate(NURSE, GROUP, "insurability", valid_from=TODAY, by="admin")
    assert m.state is MandateState.PROPOSED
    assert store.accept_mandate(m.id, "mandataire", by="group").state is MandateState.ACCEPTED_BY_MANDATAIRE
    with pytest.raises(Refusal, match="SS-MANDATE-TRANSITION"):
        store.accept_mandate(m.id, "mandataire", by="group")
    assert store.accept_mandate(m.id, "mandant", by="nurse").state is MandateState.ACTIVE
    assert store.suspend_mandate(m.id, by="nurse").state is MandateState.SUSPENDED
    assert store.resume_mandate(m.id, by="nurse").state is MandateState.ACTIVE
    assert store.stop_mandate(m.id, by="nurse").state is MandateState.STOPPED
    with pytest.raises(Refusal, match="SS-MANDATE-TRANSITION"):
        store.resume_mandate(m.id, by="nurse")
    history = [(e.action, e.to_state.value) for e in store.mandate_history(m.id)]
    assert history == [("propose", "proposed"), ("accept by mandataire", "accepted-by-mandataire"),
                       ("accept by mandant", "active"), ("suspend", "suspended"), ("resume", "active"),
                       ("stop", "stopped")]


def test_a_transfer_takes_effect_when_the_new_mandataire_accepts_and_keeps_the_history(store):
    old = active_mandate(store)
    new = store.transfer_mandate(old.id, LAB, by="nurse", on=TODAY)
    assert (new.state, new.transferred_from, new.mandataire) == (MandateState.ACCEPTED_BY_MANDANT, old.id, LAB)
    assert store.mandate(old.id).state is MandateState.ACTIVE  # still working until the new one accepts
    store.accept_mandate(new.id, Side.MANDATAIRE, by="lab")
    old_now = store.mandate(old.id)
    assert (old_now.state, old_now.transferred_to) == (MandateState.STOPPED, new.id)
    assert store.mandate(new.id).state is MandateState.ACTIVE
    history = [(e.mandate_id, e.action) for e in store.mandate_history(new.id)]
    assert history == [(old.id, "propose"), (old.id, "accept by mandant"), (old.id, "accept by mandataire"),
                       (new.id, "transfer-proposed"), (old.id, "transfer-proposed"),
                       (new.id, "accept by mandataire"), (old.id, "transferred")]
    assert store.mandate_history(old.id) == store.mandate_history(new.id)


def test_mandates_are_checked_when_proposed(store):
    with pytest.raises(Refusal, match="SS-MANDATE-SAME-PARTY"):
        store.propose_mandate(LAB, Party(PartyKind.NIHII, LAB_NIHII[:8]), "INVOICING", valid_from=TODAY, by="a")
    with pytest.raises(Refusal, match="SS-BAD-SERVICE"):
        store.propose_mandate(NURSE, GROUP, "EHBOX", valid_from=TODAY, by="a")


# ------------------------------------------------------------------ selection

@pytest.fixture()
def selector(store, pki):
    add(store, pki, "nursing_group")
    add(store, pki, "lab")
    add(store, pki, "expired")
    return CertificateSelector(store, {"soap": f"NIHII={GROUP_NUMBER}", "batch": ["NIHII=" + LAB_NIHII],
                                       "folders-expired": "NIHII=" + EXPIRED_NIHII})


def test_the_group_certificate_acts_for_a_nurse_under_mandate(store, selector, pki):
    with pytest.raises(Refusal) as caught:
        selector.select("soap", NURSE_NIHII, "INSURABILITY")
    assert caught.value.code == "SS-NO-MANDATE"
    m = active_mandate(store)
    choice = selector.choose("soap", NURSE_NIHII, "INSURABILITY")
    assert choice.via == "mandate" and choice.mandate.id == m.id
    assert choice.entry.certificate == pki.load("nursing_group").authentication.certificate
    assert selector.select("soap", NURSE_NIHII, Service.INSURABILITY) is choice.entry  # cached in memory
    with pytest.raises(Refusal, match="SS-MANDATE-OTHER-SERVICE"):
        selector.select("soap", NURSE_NIHII, "INVOICING")
    store.suspend_mandate(m.id, by="nurse")
    with pytest.raises(Refusal, match="SS-MANDATE-SUSPENDED"):
        selector.select("soap", NURSE_NIHII, "INSURABILITY")


def test_mandate_dates_are_read_against_the_request_date(store, selector):
    active_mandate(store, valid_from=date(2025, 1, 1), valid_to=date(2025, 3, 31))
    assert selector.select("soap", NURSE_NIHII, "INSURABILITY", date(2025, 3, 31))
    with pytest.raises(Refusal, match="SS-MANDATE-OUT-OF-PERIOD"):
        selector.select("soap", NURSE_NIHII, "INSURABILITY", date(2025, 4, 1))


def test_the_holder_acts_for_itself_and_a_transferred_mandate_moves_the_right(store, selector):
    assert selector.choose("batch", LAB_NIHII, "INVOICING").via == "holder"
    old = active_mandate(store)
    new = store.transfer_mandate(old.id, LAB, by="nurse", on=TODAY)
    assert selector.choose("soap", NURSE_NIHII, "INSURABILITY").mandate.id == old.id
    with pytest.raises(Refusal, match="SS-MANDATE-PENDING"):
        selector.select("batch", NURSE_NIHII, "INSURABILITY")
    store.accept_mandate(new.id, Side.MANDATAIRE, by="lab")
    with pytest.raises(Refusal) as caught:
        selector.select("soap", NURSE_NIHII, "INSURABILITY")
    assert caught.value.code == "SS-MANDATE-STOPPED" and f"mandate #{new.id}" in caught.value.cause
    assert selector.choose("batch", NURSE_NIHII, "INSURABILITY").mandate.id == new.id


def test_selection_refusals_for_configuration_and_identifiers(selector):
    with pytest.raises(Refusal, match="SS-NO-ACTING-IDENTITY"):
        selector.select("invoicing-folders", NURSE_NIHII, "INVOICING")
    with pytest.raises(Refusal, match="SS-BAD-NIHII"):
        selector.select("soap", "12345678901", "INSURABILITY")
    with pytest.raises(Refusal, match="SS-CERT-EXPIRED"):
        selector.select("folders-expired", EXPIRED_NIHII, "INSURABILITY")
    empty = CertificateSelector(selector.store, {"soap": "CBE=0403170701"})
    with pytest.raises(Refusal, match="SS-NO-CERTIFICATE"):
        empty.select("soap", NURSE_NIHII, "INSURABILITY")


# ------------------------------------------------------------------ nothing in clear

def test_keystores_and_passwords_are_never_in_clear_in_the_files_or_logs(tmp_path, pki, caplog):
    caplog.set_level(logging.DEBUG)
    store = new_store(tmp_path)
    for name in ("lab", "nurse", "nursing_group", "expired"):
        record = add(store, pki, name)
        store.open_keystore(record.id)
    store.set_licence("lab-software", "Distinctive-Licence-Secret-42")
    assert store.licence().password == "Distinctive-Licence-Secret-42"
    store.authenticate("admin", ADMIN_PASSWORD)
    store.close()
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("securespace.sqlite"))
    assert len(files) > 10_000
    secrets = [pki.password, ADMIN_PASSWORD, "ann-password-123", "Distinctive-Licence-Secret-42"]
    for secret in secrets:
        for encoding in ("utf-8", "utf-16-be", "utf-16-le"):
            assert secret.encode(encoding) not in files, secret
            assert secret.encode(encoding) not in caplog.text.encode(encoding), secret
    for name in ("lab", "nurse", "nursing_group", "expired"):
        p12 = pki.keystores[name].path.read_bytes()
        for start in range(0, len(p12) - 32, 512):
            assert p12[start:start + 32] not in files, (name, start)
    assert NURSE_SSIN not in caplog.text and OWNER_SSIN not in caplog.text
