"""The invoicing identity is chosen per file, from its sender and the secure space on that day (#18 point 3).

A real gateway and its simulator; a nursing group's secure space: the group's certificate, one of
its sites linked as an establishment, an INVOICING mandate from the lab and one from a nurse.
Real 920000 files (record 10 naming their sender) are dropped in ``toSend``; the journal, the
``error/`` folder, the simulator's post counter and the feedback each mailbox delivers say what
happened.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.invoicing_support import drop_file
from tests.support import wait_for
from unified_messaging.efact.validator import SendingValidator
from unified_messaging.gateway import Gateway
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.secrets import master_key
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.models import Party, PartyKind
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.simulator.devpki import GROUP_NUMBER, LAB_NIHII, NURSE_NIHII, NURSE_SSIN, with_mod97_check
from unified_messaging.simulator.platform import demo_pki
from unified_messaging.simulator.sending_writer import build_sending

TODAY = dt.date.today()
SITE_NIHII = with_mod97_check("941299") + "000"      # a site of the group, linked as an establishment
ENDED_SITE_NIHII = with_mod97_check("941377") + "000"  # a site whose establishment ended yesterday
STRANGER_NIHII = with_mod97_check("412399") + "404"  # a nurse who gave nobody a mandate
GROUP = Party(PartyKind.NIHII, GROUP_NUMBER)
FAST_SIMULATOR = {"genasync_acknowledgement_seconds": 0.2, "genasync_detailed_seconds": 0.4,
                  "genasync_settlement_seconds": 0.6, "genasync_min_get_interval_seconds": 0.0}
FAST_INVOICING = {"poll_interval_seconds": 0.3, "rescan_seconds": 0.3, "care_provider_nihii": ""}


def _mandate(store: SecureSpaceStore, mandant: str) -> int:
    mandate = store.propose_mandate(Party(PartyKind.NIHII, mandant), GROUP, "INVOICING", valid_from=TODAY, by="admin")
    store.accept_mandate(mandate.id, "mandant", by="admin")
    store.accept_mandate(mandate.id, "mandataire", by="admin")
    return mandate.id


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    folder = tmp_path_factory.mktemp("invoicing-identity")
    data = folder / "um-data"
    pki = demo_pki(data)
    store = SecureSpaceStore.in_data_folder(data, master_key(data), hasher=PasswordHasher(cost=16))
    store.create_space("Nursing group", "Olivia Owner", NURSE_SSIN, "Olivia Owner", NURSE_SSIN)
    store.add_user("admin", "Olivia Owner", NURSE_SSIN, ["administrator"], "Admin-Passw0rd-for-tests")
    certificate = store.add_certificate(pki.keystores["nursing_group"].path.read_bytes(), pki.password,
                                        responsible_login="admin")
    store.add_establishment(certificate.id, SITE_NIHII, ssin=None, valid_from=TODAY - dt.timedelta(days=30))
    store.add_establishment(certificate.id, ENDED_SITE_NIHII, ssin=None, valid_from=TODAY - dt.timedelta(days=30),
                            valid_to=TODAY - dt.timedelta(days=1))
    mandates = {"lab": _mandate(store, LAB_NIHII), "nurse": _mandate(store, NURSE_NIHII)}
    store.close()
    config = make_config(folder, simulator=FAST_SIMULATOR, invoicing=FAST_INVOICING,
                         securespace={"invoicing_folders": f"NIHII={GROUP_NUMBER}"})
    with Gateway(config) as gateway:
        gateway.mandates = mandates
        yield gateway


_numbers = iter(range(1, 10_000))


def _send(gateway: Gateway, sender: str) -> str:
    """Drop a real 920000 whose record 10 names ``sender`` (a NIHII, or "" for none); its name."""
    number = next(_numbers)
    name = f"SEND{number:04d}.txt"
    data = build_sending(zone_204=f"2026120700{number:04d}", sender_nihii=sender, sending_number=number)
    drop_file(gateway.config.invoicing_root / "toSend", name, data)
    return name


def _row(gateway: Gateway, name: str, *, settled: bool = True) -> dict:
    store = InvoicingStore(gateway.journal)

    def found():
        rows = [r for r in store.files() if r["name"] == name]
        return rows[0] if rows and (not settled or rows[0]["state"] in ("sent", "refused", "error")) else None
    return wait_for(found, timeout=30, what=f"{name} settled")


def _reason(gateway: Gateway, name: str) -> str:
    path = wait_for(lambda: next(iter((gateway.config.invoicing_root / "error").glob(f"{name}*.reason*")), None),
                    timeout=30, what=f"{name}'s reason in error/")
    return Path(path).read_text(encoding="utf-8")


def test_record_10_names_the_sender_and_the_validator_reads_it():
    data = build_sending(sender_nihii=SITE_NIHII, sender_cbe=with_mod97_check("08123456"))
    validator = SendingValidator(expect_test=True)
    validator.feed(data)
    summary = validator.finish().summary
    assert (summary.sender_nihii, summary.sender_cbe) == (SITE_NIHII, with_mod97_check("08123456"))
    assert data[227 + 55:227 + 67] == b"0" + SITE_NIHII.encode()


def test_the_real_reference_sending_names_its_sender():
    sample = Path(__file__).resolve().parents[2] / "shared" / "reference" / "efact" / "outgoing" / "TFAC1SC09.509E"
    if not sample.exists():
        pytest.skip(f"{sample} is absent (../shared is beside the clone in CI)")
    validator = SendingValidator(expect_test=True)
    validator.feed(sample.read_bytes())
    summary = validator.finish().summary
    assert summary.third_party == "018334780004" and summary.sender_nihii == "18334780004"
    assert summary.sender_cbe is None


@pytest.mark.parametrize("sender, via", [(SITE_NIHII, "for one of its establishments"),
                                         (LAB_NIHII, "under mandate #"),
                                         (GROUP_NUMBER + "000", "as holder")])
def test_each_sender_is_sent_for_its_own_mailbox_and_polled_there(group, sender, via):
    posts = group.simulator.counters["genasync.post"]
    name = _send(group, sender)
    row = _row(group, name)
    assert row["state"] == "sent", row["reason"]
    assert row["sender"] == f"NIHII={sender}" and row["mailbox_nihii"] == sender
    assert via in row["acting"]
    assert group.simulator.counters["genasync.post"] == posts + 1
    # the feedback is delivered only by a get of that sender's mailbox: it arrives, so that mailbox is polled
    store = InvoicingStore(group.journal)
    wait_for(lambda: store.file(row["id"])["status"] == "DONE", timeout=30, what=f"{name} DONE")
    assert {f["code"] for f in store.feedback_for(row["id"])} >= {"931000", "920900"}


def test_a_sender_nobody_may_act_for_goes_to_error_with_the_code_and_is_not_sent(group):
    posts = group.simulator.counters["genasync.post"]
    name = _send(group, STRANGER_NIHII)
    reason = _reason(group, name)
    assert "SS-NO-MANDATE" in reason and "mandates propose" in reason
    assert _row(group, name)["state"] == "error"
    assert group.simulator.counters["genasync.post"] == posts


def test_an_establishment_whose_period_ended_no_longer_sends(group):
    name = _send(group, ENDED_SITE_NIHII)
    assert "SS-NO-MANDATE" in _reason(group, name)


def test_a_file_that_names_no_sender_goes_to_error(group):
    name = _send(group, "")
    reason = _reason(group, name)
    assert "SS-NO-SENDER" in reason and "zone 14" in reason


def test_a_mandate_suspended_while_running_stops_the_next_file_without_a_restart(group):
    first = _row(group, _send(group, NURSE_NIHII))
    assert first["state"] == "sent" and "under mandate" in first["acting"]
    store = SecureSpaceStore.in_data_folder(group.config.data_folder, master_key(group.config.data_folder))
    store.suspend_mandate(group.mandates["nurse"], by="admin", note="test")
    try:
        posts = group.simulator.counters["genasync.post"]
        name = _send(group, NURSE_NIHII)
        assert "SS-MANDATE-SUSPENDED" in _reason(group, name)
        assert group.simulator.counters["genasync.post"] == posts
    finally:
        store.resume_mandate(group.mandates["nurse"], by="admin", note="test")
        store.close()
    again = _row(group, _send(group, NURSE_NIHII))
    assert again["state"] == "sent"


def test_one_care_provider_mode_refuses_another_sender(tmp_path):
    config = make_config(tmp_path, simulator=FAST_SIMULATOR, invoicing={**FAST_INVOICING,
                                                                        "care_provider_nihii": LAB_NIHII})
    with Gateway(config) as gateway:
        posts = gateway.simulator.counters["genasync.post"]
        other = _send(gateway, NURSE_NIHII)
        reason = _reason(gateway, other)
        assert "SS-SENDER-NOT-SERVED" in reason and f"NIHII={LAB_NIHII}" in reason
        assert gateway.simulator.counters["genasync.post"] == posts
        own = _row(gateway, _send(gateway, LAB_NIHII))
        assert own["state"] == "sent" and own["acting"] == "the configured keystore"


def test_mybox_shows_who_each_file_was_sent_as(group):
    from tests.web_support import MyboxStack, login

    row = _row(group, _send(group, SITE_NIHII))
    stack = MyboxStack(group, group.mybox_url, group.config.data_folder, passwords={"admin": "Admin-Passw0rd-for-tests"})
    session = login(stack, "admin")
    page = session.get(stack.url(f"/invoicing/{row['id']}"), timeout=30)
    assert page.status_code == 200
    assert f'id="file-sender">NIHII={SITE_NIHII}<' in page.text
    assert "for one of its establishments" in page.text and f"{SITE_NIHII} (groupofnurses)" in page.text
