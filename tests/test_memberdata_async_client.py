"""The asynchronous MemberData client (MDA, #12 point 4): the AttributeQueryList as posted against the
official schema, the post through the GenAsync client as the invoicing posts go, and the answers read
back from a get: matched by InResponseTo, decrypted, mapped as the sync answers, then confirmed.

The round trips run against the real simulator (security checks, encrypted answers) over a socket."""
from __future__ import annotations

import datetime as dt
import io
import time

import pytest
from lxml import etree

from tests.conftest import official_schema, reference_path
from tests.support import LICENCE, patient, running_platform, wait_for
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.mycarenet.genasync import ReceivedMessage
from unified_messaging.mycarenet.memberdata_async import (
    QUERY_LIST, RESPONSE_LIST, MemberDataAsync,
)
from unified_messaging.mycarenet.memberdata_saml import SAML_NS, SAMLP_NS
from unified_messaging.mycarenet.xmlenc import encrypt_element
from unified_messaging.simulator.genasync import FeedbackTimings
from unified_messaging.simulator.memberdata_async import MEMBERDATA_ASYNC_PATH
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.upstream import UpstreamClients, UpstreamPlan
from unified_messaging.xmlsafe import parse_xml

LAB = CareProvider("81234530000", "labo")
TODAY = dt.date.today()
NOW = dt.datetime(2026, 1, 7, 8, 24, tzinfo=dt.timezone.utc)


def question(scenario: str = "insured", **changes) -> InsurabilityQuery:
    values = dict(care_provider=LAB, period_start=TODAY, period_end=TODAY, ssin=patient(scenario).ssin)
    values.update(changes)
    return InsurabilityQuery(**values)


def questions(reference: str, *scenarios: str) -> dict[str, InsurabilityQuery]:
    return {query_id(reference, n): question(s) for n, s in enumerate(scenarios, 1)}


def query_id(input_reference: str, line: int) -> str:
    return f"_{input_reference}-{line}"  # as the batch names its queries


class Unused:
    care_provider = LAB


def test_memberdata_async_query_list_follows_the_official_schema():
    schema = official_schema(reference_path("schemas", "memberdata-saml", "Extensions.xsd"))
    asked = questions("MDA00000000001", "insured", "unknown")
    asked[query_id("MDA00000000001", 3)] = question(ssin=None, mutuality="131", registration_number="12345678")
    blob = MemberDataAsync(Unused(), lambda: (), now=lambda: NOW).message(asked)
    document = parse_xml(blob)
    schema.assertValid(document)
    assert document.tag == QUERY_LIST
    assert [q.get("ID") for q in document] == ["_MDA00000000001-1", "_MDA00000000001-2", "_MDA00000000001-3"]
    assert all(q.findtext(f"{{{SAML_NS}}}Issuer") == LAB.nihii for q in document)
    assert not document.findall(".//{http://www.w3.org/2000/09/xmldsig#}Signature")  # no XAdES for MDA


def test_memberdata_async_refuses_queries_for_another_care_provider():
    other = question(care_provider=CareProvider("40000109003", "nurse"))
    with pytest.raises(ValueError, match="care provider"):
        MemberDataAsync(Unused(), lambda: ()).message({"_x-1": other})


def _message(content: bytes, reference: str = "R1", input_reference: str = "MDA00000000001") -> ReceivedMessage:
    return ReceivedMessage(input_reference, "NIP-1", reference, "MDA", reference, None, content, b"")


class Mailbox:
    """What a get brings, given by the test (for the reading rules; the round trip below is real)."""

    care_provider = LAB

    def __init__(self, messages: list[ReceivedMessage]) -> None:
        self.messages = messages

    def get(self, **options):
        from unified_messaging.mycarenet.genasync import MailboxContent
        return MailboxContent(self.messages, [])


def _response(identifier: str, *, ssin: str, encrypt_for=None) -> etree._Element:
    response = etree.Element(f"{{{SAMLP_NS}}}Response", ID="_r" + identifier, InResponseTo=identifier,
                             Version="2.0", IssueInstant="2026-01-07T08:24:00")
    status = etree.SubElement(response, f"{{{SAMLP_NS}}}Status")
    etree.SubElement(status, f"{{{SAMLP_NS}}}StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    assertion = etree.SubElement(response, f"{{{SAML_NS}}}Assertion", ID="_a" + identifier)
    subject = etree.SubElement(assertion, f"{{{SAML_NS}}}Subject")
    etree.SubElement(subject, f"{{{SAML_NS}}}NameID", Format="urn:be:fgov:person:ssin").text = ssin
    if encrypt_for is not None:
        wrapper = etree.Element(f"{{{SAML_NS}}}EncryptedAssertion")
        wrapper.append(encrypt_element(assertion, encrypt_for))
        response.replace(assertion, wrapper)
    return response


def test_memberdata_async_answers_are_matched_by_in_response_to_and_decrypted(pki):
    keys = pki.load("lab").encryption_entries
    asked = questions("MDA00000000001", "insured", "insured", "insured")
    first, second, third = asked
    listed = etree.Element(RESPONSE_LIST)
    listed.append(_response(third, ssin=asked[third].ssin))  # a ResponseList, in another order
    listed.append(_response(first, ssin=asked[first].ssin, encrypt_for=keys[0].certificate))
    stray = _response("_elsewhere-1", ssin=asked[first].ssin)
    messages = [_message(etree.tostring(listed)),
                _message(etree.tostring(_response(second, ssin=patient("unknown").ssin)), "R2"),
                _message(etree.tostring(stray), "R3", input_reference="OTHER")]
    collected = MemberDataAsync(Mailbox(messages), lambda: keys).collect(asked, "MDA00000000001")
    assert collected.missing(list(asked)) == []
    assert collected.answers[first].patient.ssin == asked[first].ssin
    assert collected.answers[first].audit_reference == "NIP-1"
    assert isinstance(collected.answers[second], UpstreamFault)  # about another patient, as the sync client says
    assert collected.answers[second].code == "UM-ANSWER-MISMATCH"
    assert [m.reference for m in collected.messages] == ["R1", "R2"]  # the other post's message is left alone


def test_memberdata_async_answer_for_another_key_is_that_line_s_fault(pki):
    asked = questions("MDA00000000002", "insured")
    [identifier] = asked
    response = _response(identifier, ssin=asked[identifier].ssin,
                         encrypt_for=pki.load("nurse").encryption_entries[0].certificate)
    collected = MemberDataAsync(Mailbox([_message(etree.tostring(response), input_reference="MDA00000000002")]),
                                lambda: pki.load("lab").encryption_entries).collect(asked, "MDA00000000002")
    assert collected.answers[identifier].code == "UM-ANSWER-ENCRYPTION"


def mda_client(pki, url: str) -> MemberDataAsync:
    """MDA for the demo lab through the upstream seam's GenAsync client, at the simulator's memberData address."""
    plan = UpstreamPlan(sts_url=url + STS_PATH, genericinsurability_url="", genasync_url="",
                        keystore_path=pki.lab.path, keystore_password=pki.password,
                        platform_ca=pki.ca_certificate(), timeout=30.0)
    clients = UpstreamClients(plan, licence_username=LICENCE[0], licence_password=LICENCE[1])
    keystore = clients.read_keystore()
    mailbox = clients.genasync(keystore.authentication, LAB, endpoint=url + MEMBERDATA_ASYNC_PATH)
    return MemberDataAsync(mailbox, lambda: keystore.encryption_entries)


@pytest.fixture()
def mda(pki):
    timings = FeedbackTimings(acknowledgement=0.3, detailed=0.4, settlement=0.5)
    with running_platform(pki, timings=timings) as (simulator, url):
        client = mda_client(pki, url)
        yield simulator, client
        client.mailbox.close()


def test_memberdata_async_round_trip_through_the_simulator(mda):
    simulator, client = mda
    reference = "MDA00000000003"
    asked = questions(reference, "insured", "unknown", "several_insurers")
    result = client.post(asked, reference)
    assert result.tack.success, result.tack.describe()
    counters = simulator.counters
    assert counters[f"memberdata_async.posts.{reference}"] == 1 and counters["memberdata_async.queries"] == 3
    assert counters["memberdata.consult"] == 0  # nothing asked over the sync service
    early = client.collect(asked, reference)
    assert early.answers == {} and len(early.tacks) == 1  # the answers are not due yet; the TAck waits
    started = time.monotonic()
    collected = wait_for(lambda: (c := client.collect(asked, reference)).answers.keys() == asked.keys() and c,
                         timeout=10, what="the MDA answers")
    assert time.monotonic() - started < 10
    insured, unknown, several = (collected.answers[i] for i in asked)
    assert insured.ok and insured.patient.last_name == patient("insured").last_name and insured.insurabilities
    assert insured.audit_reference == result.tack.reference
    assert unknown.fault and "UNKNOWN_IO" in [d.code for d in unknown.fault.details]
    assert several.fault and "MULTIPLE_IO" in [d.code for d in several.fault.details]
    client.confirm(collected)
    assert simulator.memberdata_async.pending() == 0
    assert client.collect(asked, reference).answers == {}


def test_memberdata_async_refuses_a_blob_that_is_not_an_attribute_query_list(mda):
    simulator, client = mda
    result = client.mailbox.post(io.BytesIO(b"<notAList/>"), input_reference="MDA00000000004", destination=None,
                                 is_test=True, message_name="MDA", content_type="text/xml", deflate=False, xades=False)
    assert not result.tack.success and "AttributeQueryList" in result.tack.result_message
    assert simulator.memberdata_async.pending() == 0



def test_memberdata_async_get_asked_too_soon_says_how_long_to_wait(pki):
    with running_platform(pki, min_get_interval=5.0) as (simulator, url):
        client = mda_client(pki, url)
        asked = questions("MDA00000000005", "insured")
        assert client.collect(asked, "MDA00000000005").retry_after is None
        throttled = client.collect(asked, "MDA00000000005")
        client.mailbox.close()
    assert throttled.answers == {} and 4.0 < throttled.retry_after <= 5.0
    assert simulator.counters["memberdata_async.throttled"] == 1
