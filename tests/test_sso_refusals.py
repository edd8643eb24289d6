"""Issue 3 end to end: each refusal of the platform, through the real gateway and the real simulator.

The simulated platform runs on its own port (as MyCareNet would); the gateway is configured for a
remote upstream pointing at it. Where a refusal needs a broken message, a small HTTP proxy between
the two changes the bytes in flight; where it needs time to pass, the platform's clock is moved.
"""
from __future__ import annotations

import datetime as dt
import re
import threading

from lxml import etree
import zeep

from tests.conftest import gateway_against, make_config, official_schema, official_security_schema, reference_path
from tests.support import GENINS, LAB, LICENCE, MovableClock, consult, tampering_proxy
from unified_messaging.gateway import Gateway
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.security import SecurityCheck
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.simulator.sts import SimulatedSts
from unified_messaging.serving import serving

INSURED = next(p for p in TEST_PATIENTS if p.scenario == "insured")


def refused_with(result, code: str, *advice_words: str) -> None:
    assert result.Status == "ERROR"
    message = result.Messages.Message[0]
    assert message.Code == code, message
    assert message.Location == "MyCareNet"
    for word in advice_words:
        assert word in message.Text, message.Text
    assert INSURED.ssin not in message.Text


def test_a_good_setup_is_accepted_and_one_token_serves_many_calls(tmp_path, pki, platform):
    simulator, url, _ = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS) as gateway:
        client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl").service
        results = []

        def ask():
            for _ in range(5):
                results.append(client.GetInsurability(request={"CareProvider": LAB, "Ssin": INSURED.ssin,
                                                               "PeriodStart": dt.date.today()}).Status)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["OK"] * 40
        assert simulator.counters["sts.issued"] == 1
        assert simulator.counters["genericinsurability.getInsurability"] == 40


def test_unsigned_message_is_refused(tmp_path, pki, platform):
    _, url, _ = platform

    def strip_security(body: bytes) -> bytes:
        return re.sub(rb"<wsse:Security\b.*?</wsse:Security>", b"", body, flags=re.S)

    with serving(tampering_proxy(url, strip_security)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        refused_with(consult(gateway), "SIM-SEC-01", "proxy")


def test_tampered_body_is_refused(tmp_path, pki, platform):
    _, url, _ = platform
    other = next(p for p in TEST_PATIENTS if p.scenario == "deceased")

    def swap_patient(body: bytes) -> bytes:
        return body.replace(INSURED.ssin.encode(), other.ssin.encode())

    with serving(tampering_proxy(url, swap_patient)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        refused_with(consult(gateway), "SIM-SEC-03", "changed on its way")


def test_expired_timestamp_is_refused(tmp_path, pki, platform):
    _, url, clock = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS) as gateway:
        assert consult(gateway).Status == "OK"  # the token is now cached
        clock.offset = dt.timedelta(minutes=15)  # the platform is 15 minutes ahead of the gateway
        refused_with(consult(gateway), "SIM-SEC-08", "clock")


def test_timestamp_from_the_future_is_refused(tmp_path, pki, platform):
    _, url, clock = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS) as gateway:
        assert consult(gateway).Status == "OK"
        clock.offset = -dt.timedelta(minutes=15)
        refused_with(consult(gateway), "SIM-SEC-09", "clock")


def test_expired_assertion_is_refused(tmp_path, pki):
    """An STS whose clock is two hours behind issues one-hour tokens that are already over."""
    sts_clock = MovableClock()
    sts_clock.offset = -dt.timedelta(hours=2)
    simulator = Simulator()
    sts = SimulatedSts(pki.ca_certificate(), pki.load("sts").authentication, token_lifetime=dt.timedelta(hours=1),
                       now=sts_clock, max_clock_skew=dt.timedelta(hours=3), counters=simulator.counters)
    simulator.mount(STS_PATH, sts)
    simulator.interceptors.append(SecurityCheck(pki.ca_certificate(), sts.certificate, licences=dict([LICENCE]),
                                                counters=simulator.counters))
    with serving(simulator) as url, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS) as gateway:
        refused_with(consult(gateway), "SIM-SEC-14", "session")


def test_assertion_from_another_sts_is_refused(tmp_path, pki, platform):
    _, url, _ = platform
    foreign = SimulatedSts(pki.ca_certificate(), pki.load("nurse").authentication)  # right CA, wrong STS key
    with serving(foreign) as foreign_url, \
            gateway_against(tmp_path, pki, sts_url=foreign_url, genins_url=url + GENINS) as gateway:
        refused_with(consult(gateway), "SIM-SEC-12", "sts_url")


def test_certificate_from_another_ca_is_refused(tmp_path, pki, platform):
    simulator, url, _ = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS,
                         keystore="untrusted") as gateway:
        refused_with(consult(gateway), "SOA-01001", "certificate")
    assert simulator.counters["sts.refused.SOA-01001"] == 1


def test_expired_certificate_is_refused(tmp_path, pki, platform):
    _, url, _ = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS,
                         keystore="expired") as gateway:
        refused_with(consult(gateway), "SIM-SEC-17", "renew")


def test_wrong_licence_is_refused(tmp_path, pki, platform):
    simulator, url, _ = platform
    with gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=url + GENINS,
                         licence_password="an-old-licence") as gateway:
        result = consult(gateway)
        refused_with(result, "SOA-01001", "[licence]")
        assert "an-old-licence" not in str(result)
        row = gateway.journal.consultations(limit=1)[0]
        assert (row["outcome"], row["code"]) == ("FAULT", "SOA-01001")
    assert simulator.counters["security.refused.SOA-01001"] == 1


def test_tracing_writes_masked_exchanges(tmp_path, pki, platform):
    _, url, _ = platform
    trace = tmp_path / "trace"
    config_extra = {"trace_folder": str(trace)}
    config = make_config(
        tmp_path,
        upstream={"mode": "remote", "sts_url": url + STS_PATH, "genericinsurability_url": url + GENINS, **config_extra},
        invoicing={"enabled": False},
        identity={"keystore": str(pki.lab.path), "keystore_password": pki.password},
        licence={"username": LICENCE[0], "password": LICENCE[1]},
    )
    with Gateway(config) as gateway:
        assert consult(gateway).Status == "OK"
    files = sorted(p.name for p in trace.iterdir())
    assert any("IAM-SecurityTokenService" in f for f in files)
    assert any("GenericInsurability" in f and f.endswith("-request.xml") for f in files)
    assert any("GenericInsurability" in f and f.endswith("-response.xml") for f in files)
    everything = b"".join(p.read_bytes() for p in trace.iterdir())
    assert LICENCE[1].encode() not in everything
    assert INSURED.ssin.encode() not in everything
    assert b"masked" in everything and b"Password" in everything
    lab_certificate = pki.load("lab").authentication.certificate
    from cryptography.hazmat.primitives.serialization import Encoding
    import base64
    assert base64.b64encode(lab_certificate.public_bytes(Encoding.DER))[:60] not in everything


def test_platform_answers_are_signed_and_verified(tmp_path, pki, platform):
    _, url, _ = platform
    seen = []

    def keep(answer: bytes) -> bytes:
        seen.append(answer)
        return answer

    with serving(tampering_proxy(url, change_answer=keep)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        assert consult(gateway).Status == "OK"
    assert b"BinarySecurityToken" in seen[-1] and b"SignatureValue" in seen[-1]


def test_an_altered_platform_answer_is_refused(tmp_path, pki, platform):
    _, url, _ = platform

    def make_insurer_pay(answer: bytes) -> bytes:
        changed = answer.replace(b"PaymentByIo>false<", b"PaymentByIo>true<")
        assert changed != answer
        return changed

    with serving(tampering_proxy(url, change_answer=make_insurer_pay)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=url + STS_PATH, genins_url=proxy + GENINS) as gateway:
        result = consult(gateway)
    assert result.Status == "ERROR"
    assert result.Messages.Message[0].Code == "UM-ANSWER-SIGNATURE"
    assert "proxy" in result.Messages.Message[0].Text


def test_signed_business_messages_validate_against_the_official_schemas(tmp_path, pki, platform):
    """What the gateway really sends upstream: Body against GenericInsurability, header against WSS/SAML."""
    genins_schema = official_schema(reference_path("schemas", "genericinsurability",
                                                   "gen_ins_services_protocol-1_0.xsd"))
    wss_schema = official_security_schema()
    _, url, _ = platform
    sent, answered = [], []

    def keep_request(body: bytes) -> bytes:
        sent.append(body)
        return body

    def keep_answer(body: bytes) -> bytes:
        answered.append(body)
        return body

    with serving(tampering_proxy(url, keep_request, keep_answer)) as proxy, \
            gateway_against(tmp_path, pki, sts_url=proxy + STS_PATH, genins_url=proxy + GENINS) as gateway:
        assert consult(gateway).Status == "OK"
    soap = "{http://schemas.xmlsoap.org/soap/envelope/}"
    wsse = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security"
    sts_request, business = (etree.fromstring(m) for m in sent)
    for envelope in (sts_request, business, etree.fromstring(answered[1])):
        security = envelope.find(f"{soap}Header/{wsse}")
        assert wss_schema.validate(security), wss_schema.error_log
    assert wss_schema.validate(sts_request.find(f"{soap}Body")[0]), wss_schema.error_log  # the RST
    assert genins_schema.validate(business.find(f"{soap}Body")[0]), genins_schema.error_log
    assert genins_schema.validate(etree.fromstring(answered[1]).find(f"{soap}Body")[0]), genins_schema.error_log
