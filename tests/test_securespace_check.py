"""The configuration check against the real simulated platform (STS, GenericInsurability, the
GenAsync mailbox, security checks)."""
from __future__ import annotations

import datetime as dt
import io
from datetime import date

import pytest

from tests.invoicing_support import client_for
from tests.support import GROUP, NURSE, active_mandate, add, new_store, running_platform, wait_for
from unified_messaging.mycarenet.keystore import dump_keystore
from unified_messaging.simulator.devpki import NURSE_NIHII, ehealth_subject
from unified_messaging.securespace.check import (
    ACTIVE, NOT_ACTIVE, NOT_OFFERED, NOT_OFFERED_NOTE, ConfigurationCheck, Endpoints,
)
from unified_messaging.securespace.models import Licence, Service
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.genasync import GENASYNC_PATH
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.upstream import CheckProbe

LICENCE = Licence("lab-software", "the-right-licence-password")


def platform_endpoints(pki, url: str) -> Endpoints:
    return Endpoints(url + STS_PATH, url + Simulator.GENERICINSURABILITY_PATH, invoicing_url=url + GENASYNC_PATH,
                     platform_ca=pki.ca_certificate(), timeout=5)


@pytest.fixture()
def endpoints(pki, platform):
    """The addresses of the ``platform`` fixture's services (its GenAsync mailbox is INVOICING's)."""
    return platform_endpoints(pki, platform.url)


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
    invoicing = result.service(Service.INVOICING)
    assert invoicing.status == ACTIVE, invoicing.reasons
    assert invoicing.acts_for == ("itself",)
    assert simulator.counters["genericinsurability.getInsurability"] == before + 1
    assert simulator.counters["genasync.get"] == 1  # one signed get of the lab's mailbox, accepted
    assert simulator.counters["security.accepted"] == 2 and simulator.counters["genasync.soapFault"] == 0


def test_med_admin_is_not_offered_by_this_gateway(store, pki, endpoints):
    """UM has no MED_ADMIN client: a neutral line, for a quality that may use it (a nurse) or not (a lab)."""
    for name in ("lab", "nurse"):
        result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints),
                                    licence=LICENCE).check(add(store, pki, name))
        med_admin = result.service(Service.MED_ADMIN)
        assert (med_admin.status, med_admin.reasons, med_admin.acts_for) == (NOT_OFFERED, (), ())
        assert med_admin.as_dict()["note"] == NOT_OFFERED_NOTE
        assert result.service(Service.INVOICING).status == ACTIVE


def test_the_probe_leaves_the_mailbox_as_it_was(store, pki, platform, endpoints):
    """A sending's feedback waits in the lab's mailbox: the probe receives nothing and confirms nothing."""
    simulator = platform.simulator
    pipeline = client_for(pki, platform.url)
    pipeline.post(io.BytesIO(build_sending(zone_204="20240223000401")), input_reference="20240223000401",
                  destination="100", is_test=True)
    wait_for(lambda: len(pipeline.get().messages) == 3, what="the feedback of the sending")
    pending = simulator.genasync.pending_messages()
    delivered = simulator.counters["genasync.delivered"] + simulator.counters["genasync.redelivered"]
    record = add(store, pki, "lab")
    check = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE)
    for _ in range(2):
        assert check.check(record).service(Service.INVOICING).status == ACTIVE
    assert simulator.genasync.pending_messages() == pending == 3
    assert simulator.counters["genasync.delivered"] + simulator.counters["genasync.redelivered"] == delivered
    assert simulator.counters["genasync.confirm"] == 0
    assert len(pipeline.get().messages) == 3  # still there for the pipeline


def test_a_probe_right_after_the_pipeline_polled_is_not_refused(store, pki):
    """The platform throttles every get; "Not enough time" comes after its security checks, so it
    proves the certificate, token and licence were accepted: the line stays Active."""
    with running_platform(pki, min_get_interval=600) as (simulator, url):
        client_for(pki, url).get()  # the invoicing pipeline's poll of the lab's mailbox
        endpoints = platform_endpoints(pki, url)
        result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints),
                                    licence=LICENCE).check(add(store, pki, "lab"))
        assert result.service(Service.INVOICING).status == ACTIVE, result.service(Service.INVOICING).reasons
        assert simulator.counters["genasync.throttled"] == 1
        assert simulator.counters["security.refused.SOA-01001"] == 0


def _pharmacist_keystore(pki) -> bytes:
    """A pharmacist's certificate of the dev CA: a quality that may not invoice (the qualities table)."""
    now = dt.datetime.now(dt.timezone.utc)
    subject = ehealth_subject("SSIN=85073003328", "Test Pharmacist", "NIHII-PHARMACIST=61234567890")
    entries = pki.ca().ehealth_entries(subject, not_before=now - dt.timedelta(days=1),
                                       not_after=now + dt.timedelta(days=30))
    return dump_keystore(entries, pki.password)


def test_a_quality_that_cannot_invoice_is_refused_by_the_mailbox(store, pki, platform, endpoints):
    record = store.add_certificate(_pharmacist_keystore(pki), pki.password, responsible_login="admin")
    assert record.quality == "pharmacist"
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE).check(record)
    assert result.service(Service.INSURABILITY).status == ACTIVE, result.service(Service.INSURABILITY).reasons
    invoicing = result.service(Service.INVOICING)
    assert codes(invoicing) == ["SS-QUALITY-NOT-ALLOWED", "SS-UPSTREAM-REFUSED"]
    assert invoicing.reasons[1].detail.startswith("SOA-01002: The user has no access")
    assert platform.simulator.counters["security.accepted"] == 2  # the call itself passed the security checks
    assert platform.simulator.counters["genasync.get"] == 1


def test_an_expired_certificate_is_reported_with_the_sts_refusal(store, pki, endpoints):
    record = add(store, pki, "expired")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=LICENCE).check(record)
    assert result.token == "refused (SIM-SEC-17)"
    for service in (Service.INSURABILITY, Service.INVOICING):
        status = result.service(service)
        assert status.status == NOT_ACTIVE
        assert codes(status)[:2] == ["SS-CERT-EXPIRED", "SS-STS-REFUSED"]
        assert "SIM-SEC-17" in status.reasons[1].cause


def test_a_wrong_licence_is_reported_for_every_service(store, pki, endpoints):
    record = add(store, pki, "lab")
    store.set_licence(LICENCE.username, "an-old-licence-password")
    result = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints)).check(record)
    assert result.token.startswith("issued")
    for service in (Service.INSURABILITY, Service.INVOICING):
        status = result.service(service)
        assert codes(status) == ["SS-LICENCE-REFUSED"], status.reasons
        assert "an-old-licence-password" not in str(status.as_dict())
        assert status.reasons[0].detail.startswith("SOA-01001")
    assert result.service(Service.MED_ADMIN).status == NOT_OFFERED


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
