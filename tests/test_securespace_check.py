"""The configuration check against the real simulated platform (STS, GenericInsurability, security checks)."""
from __future__ import annotations

from datetime import date

import pytest

from tests.support import GROUP, NURSE, active_mandate, add, new_store
from unified_messaging.simulator.devpki import NURSE_NIHII
from unified_messaging.securespace.check import ACTIVE, NOT_ACTIVE, ConfigurationCheck, Endpoints
from unified_messaging.securespace.models import Licence, Service
from unified_messaging.serving import serving
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.upstream import CheckProbe

LICENCE = Licence("lab-software", "the-right-licence-password")


def wsdl_stub(environ, start_response):
    """Stands in for a service address that answers ?wsdl (GenAsync is not in the simulator yet)."""
    start_response("200 OK", [("Content-Type", "text/xml")])
    return [b"<definitions/>"]


@pytest.fixture()
def endpoints(pki, platform):
    """The addresses of the ``platform`` fixture's services, GenAsync's being a stub that answers ?wsdl."""
    with serving(wsdl_stub) as stub:
        yield Endpoints(platform.url + STS_PATH, platform.url + Simulator.GENERICINSURABILITY_PATH,
                        invoicing_url=stub + "/GenAsync", platform_ca=pki.ca_certificate(), timeout=5)


@pytest.fixture()
def store(tmp_path):
    s = new_store(tmp_path)
    yield s
    s.close()


def codes(status) -> list[str]:
    return [r.code for r in status.reasons]


def test_a_good_setup_is_active(store, pki, platform, endpoints):
    simulator = platform.simulator
    before = simulator.counters["genericinsurability.getInsurability"]
    record = add(store, pki, "lab")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE).check(record)
    assert result.token.startswith("issued, valid until")
    assert result.service(Service.INSURABILITY).status == ACTIVE, result.service(Service.INSURABILITY).reasons
    assert result.service(Service.INSURABILITY).acts_for == ("itself",)
    assert result.service(Service.INVOICING).status == ACTIVE
    med_admin = result.service(Service.MED_ADMIN)
    assert med_admin.status == NOT_ACTIVE
    assert codes(med_admin) == ["SS-QUALITY-NOT-ALLOWED", "SS-UPSTREAM-NOT-CONFIGURED"]
    assert simulator.counters["genericinsurability.getInsurability"] == before + 1


def test_an_expired_certificate_is_reported_with_the_sts_refusal(store, pki, endpoints):
    record = add(store, pki, "expired")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE).check(record)
    assert result.token == "refused (SOA-01017)"
    for status in result.services:
        assert status.status == NOT_ACTIVE
        assert codes(status)[:2] == ["SS-CERT-EXPIRED", "SS-STS-REFUSED"]
        assert "SOA-01017" in status.reasons[1].cause


def test_a_wrong_licence_is_reported_for_every_service(store, pki, endpoints):
    record = add(store, pki, "lab")
    store.set_licence(LICENCE.username, "an-old-licence-password")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints)).check(record)
    assert result.token.startswith("issued")
    for status in result.services:
        assert "SS-LICENCE-REFUSED" in codes(status)
        assert "an-old-licence-password" not in str(status.as_dict())
    assert "SOA-01019" in result.service(Service.INSURABILITY).reasons[0].cause


def test_no_licence_at_all(store, pki, endpoints):
    record = add(store, pki, "lab")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints)).check(record)
    assert codes(result.service(Service.INSURABILITY)) == ["SS-NO-LICENCE"]


def test_a_missing_mandate_for_a_linked_establishment(store, pki, endpoints):
    record = add(store, pki, "nursing_group")
    store.add_establishment(record.id, NURSE_NIHII, ssin=None, valid_from=date(2020, 1, 1))
    check = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE)
    invoicing = check.check(record).service(Service.INVOICING)
    assert invoicing.status == NOT_ACTIVE
    assert codes(invoicing) == ["SS-NO-MANDATE"] and NURSE_NIHII in invoicing.reasons[0].cause
    assert check.check(record).service(Service.INSURABILITY).status == ACTIVE
    mandate = active_mandate(store, NURSE, GROUP, Service.INVOICING)
    invoicing = check.check(record).service(Service.INVOICING)
    assert invoicing.status == ACTIVE
    assert invoicing.acts_for == ("itself", f"NIHII={NURSE_NIHII} (mandate #{mandate.id})")
    store.suspend_mandate(mandate.id, by="nurse")
    invoicing = check.check(record).service(Service.INVOICING)
    assert codes(invoicing) == ["SS-NO-MANDATE"]
    assert [w.code for w in invoicing.warnings] == ["SS-MANDATE-SUSPENDED"]


def test_an_unreachable_upstream(store, pki):
    record = add(store, pki, "lab")
    endpoints = Endpoints("http://127.0.0.1:9/sts", "http://127.0.0.1:9/genins", timeout=2)
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE).check(record)
    assert result.token == "not obtained: the STS cannot be reached"
    assert codes(result.service(Service.INSURABILITY)) == ["SS-UPSTREAM-UNREACHABLE"]
