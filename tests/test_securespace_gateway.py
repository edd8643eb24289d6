"""The secure space's rules through the real gateway and simulator: who may act for whom."""
from __future__ import annotations

import datetime as dt

import pytest
import zeep

from tests.conftest import make_config
from unified_messaging.gateway import Gateway
from unified_messaging.simulator.devpki import GROUP_NUMBER, LAB_NIHII, NURSE_NIHII, NURSE_SSIN
from unified_messaging.secrets import master_key
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.models import Party, PartyKind
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.simulator.platform import demo_pki
from unified_messaging.simulator.population import TEST_PATIENTS

TODAY = dt.date.today()
INSURED = next(p for p in TEST_PATIENTS if p.scenario == "insured")
NURSE = Party(PartyKind.NIHII, NURSE_NIHII)
GROUP = Party(PartyKind.NIHII, GROUP_NUMBER)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A gateway whose SOAP front acts as the nursing group, which holds an INSURABILITY mandate
    from the nurse and an INVOICING mandate from the lab, but nothing from anyone else."""
    folder = tmp_path_factory.mktemp("securespace-gateway")
    data = folder / "um-data"
    pki = demo_pki(data)  # the keys the gateway's own simulator will trust
    store = SecureSpaceStore.in_data_folder(data, master_key(data), hasher=PasswordHasher(cost=16))
    store.create_space("Nursing group", "Olivia Owner", NURSE_SSIN, "Olivia Owner", NURSE_SSIN)
    store.add_user("admin", "Olivia Owner", NURSE_SSIN, ["administrator"], "Admin-Passw0rd-for-tests")
    group = store.add_certificate(pki.keystores["nursing_group"].path.read_bytes(), pki.password,
                                  responsible_login="admin")
    for mandant, service in ((NURSE, "INSURABILITY"), (Party(PartyKind.NIHII, LAB_NIHII), "INVOICING")):
        mandate = store.propose_mandate(mandant, GROUP, service, valid_from=TODAY, by="admin")
        store.accept_mandate(mandate.id, "mandant", by="admin")
        store.accept_mandate(mandate.id, "mandataire", by="admin")
    store.close()
    config = make_config(folder, securespace={"soap": f"NIHII={GROUP_NUMBER}"}, invoicing={"enabled": False})
    with Gateway(config) as running:
        running.group_certificate = group
        running.pki = pki
        yield running


def ask(gateway, nihii: str, quality: str):
    client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
    return client.service.GetInsurability(request={
        "CareProvider": {"Nihii": nihii, "Quality": quality}, "Ssin": INSURED.ssin, "PeriodStart": TODAY})


def test_a_request_covered_by_a_mandate_is_made_with_the_mandataires_certificate(gateway):
    result = ask(gateway, NURSE_NIHII, "nurse")
    assert result.Status == "OK", result.Messages
    group = gateway.pki.load("nursing_group").authentication.certificate
    lab = gateway.pki.load("lab").authentication.certificate
    assert gateway.token_cache.has_token(group)
    assert not gateway.token_cache.has_token(lab)
    assert gateway.simulator.counters["sts.issued"] == 1


def test_a_request_not_covered_is_refused_with_the_catalogues_code(gateway):
    before = gateway.simulator.counters["genericinsurability.getInsurability"]
    result = ask(gateway, LAB_NIHII, "labo")  # the lab gave the group INVOICING, not INSURABILITY
    assert result.Status == "ERROR"
    assert result.Messages.Message[0].Code == "SS-MANDATE-OTHER-SERVICE"
    assert "mandate for this service" in result.Messages.Message[0].Text
    assert gateway.simulator.counters["genericinsurability.getInsurability"] == before
    row = gateway.journal.consultations(limit=1)[0]
    assert row["outcome"] == "REJECTED" and row["code"] == result.Messages.Message[0].Code


def test_a_care_provider_nobody_acts_for_is_refused(gateway):
    other = "19876561004"  # a valid doctor NIHII that gave no mandate to anyone
    result = ask(gateway, other, "doctor")
    assert result.Status == "ERROR" and result.Messages.Message[0].Code == "SS-NO-MANDATE"


def _store_with_group(data, mandates):
    pki = demo_pki(data)
    store = SecureSpaceStore.in_data_folder(data, master_key(data), hasher=PasswordHasher(cost=16))
    store.create_space("Nursing group", "Olivia Owner", NURSE_SSIN, "Olivia Owner", NURSE_SSIN)
    store.add_user("admin", "Olivia Owner", NURSE_SSIN, ["administrator"], "Admin-Passw0rd-for-tests")
    store.add_certificate(pki.keystores["nursing_group"].path.read_bytes(), pki.password, responsible_login="admin")
    for mandant, service in mandates:
        mandate = store.propose_mandate(mandant, GROUP, service, valid_from=TODAY, by="admin")
        store.accept_mandate(mandate.id, "mandant", by="admin")
        store.accept_mandate(mandate.id, "mandataire", by="admin")
    store.close()
    return pki


def test_the_invoicing_folders_act_with_the_mandataires_certificate(tmp_path):
    data = tmp_path / "um-data"
    pki = _store_with_group(data, [(Party(PartyKind.NIHII, LAB_NIHII), "INVOICING")])
    config = make_config(tmp_path, securespace={"invoicing_folders": f"NIHII={GROUP_NUMBER}"},
                         invoicing={"care_provider_nihii": LAB_NIHII})
    with Gateway(config) as gateway:
        entry = gateway._invoicing_entry(LAB_NIHII)
        assert entry.certificate == pki.load("nursing_group").authentication.certificate


def test_invoicing_for_a_care_provider_without_mandate_stops_start_up(tmp_path):
    from unified_messaging.config import ConfigError

    data = tmp_path / "um-data"
    _store_with_group(data, [(NURSE, "INSURABILITY")])
    config = make_config(tmp_path, securespace={"invoicing_folders": f"NIHII={GROUP_NUMBER}"},
                         invoicing={"care_provider_nihii": NURSE_NIHII})
    with pytest.raises(ConfigError) as caught:
        Gateway(config).start()
    assert "[securespace] invoicing_folders" in str(caught.value)
    assert "SS-MANDATE-OTHER-SERVICE" in str(caught.value)
