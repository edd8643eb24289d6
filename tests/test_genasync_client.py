"""The GenAsync client and the simulated mailbox: requests as sent validate against the official
GenericAsync schemas; post/get/confirm with real signatures; throttling; redelivery; TAcks."""
from __future__ import annotations

import io
import time

import pytest
from lxml import etree

from tests.conftest import SHARED_REFERENCE
from tests.invoicing_support import LAB, client_for
from tests.support import LICENCE, running_platform
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.mycarenet.genasync import GenAsyncClient, MailboxThrottled
from unified_messaging.mycarenet.genasync_blobs import deflate_stream, destination_for, inflate
from unified_messaging.simulator.genasync import FeedbackTimings

OFFICIAL = SHARED_REFERENCE / "schemas" / "genasync" / "GenericAsync.xsd"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"


def unsigned_client() -> GenAsyncClient:
    return GenAsyncClient("http://localhost/GenericAsync/v1", licence_username=LICENCE[0],
                          licence_password=LICENCE[1], care_provider=LAB)


def body_of(message: bytes) -> etree._Element:
    return etree.fromstring(message).find(f"{{{SOAP}}}Body")[0]


def test_requests_are_valid_against_the_official_schemas():
    if not OFFICIAL.exists():
        pytest.skip("the official GenAsync schemas are not beside the checkout")
    schema = etree.XMLSchema(etree.parse(str(OFFICIAL)))
    client = unsigned_client()
    post, _ = client.create_message("post", {
        "CommonInput": {"Request": {"IsTest": True}, "Origin": client._origin(), "InputReference": "20240223000001"},
        "Detail": {"_value_1": deflate_stream(io.BytesIO(b"920000")), "ContentType": "text/plain",
                   "ContentEncoding": "deflate", "MessageName": "HCPFAC", "Id": "blob"}},
        to="urn:nip:destination:io:100")
    get, _ = client.create_message("get", {"Origin": client._origin(),
                                           "MsgQuery": {"Max": 10, "MessageNames": ["HCPFAC", "HCPAFD"], "Include": True},
                                           "TAckQuery": {"Max": 10, "Include": True}})
    confirm, headers = client.create_message("confirm", {"Origin": client._origin()},
                                             lists={"MsgHashValues": ["AAEC", "AwQF"], "TAckReferences": ["R1"]})
    for message in (post, get, confirm):
        schema.assertValid(body_of(message))
    header = etree.fromstring(post).find(f"{{{SOAP}}}Header")
    assert header.findtext(f"{{{WSA}}}To") == "urn:nip:destination:io:100"
    assert header.findtext(f"{{{WSA}}}Action") == "urn:be:cin:nip:async:generic:post:msg"
    assert header.findtext(f"{{{WSA}}}MessageID").startswith("urn:uuid:")
    assert headers["SOAPAction"] == '"urn:be:cin:nip:async:generic:confirm:hash"'


def test_deflate_round_trip_and_destinations():
    data = build_sending()
    assert inflate(deflate_stream(io.BytesIO(data), chunk_size=100)) == data
    assert [destination_for(x) for x in ("199", "131", "216", "690", "900")] == ["100", "100", "200", "690", "900"]
    with pytest.raises(ValueError):
        destination_for("12")


def test_post_get_confirm_with_signatures_and_redelivery(pki):
    with running_platform(pki) as (simulator, url):
        client = client_for(pki, url)
        result = client.post(io.BytesIO(build_sending(zone_204="20240223000301")), input_reference="20240223000301",
                             destination="100", is_test=True)
        assert result.tack.success and result.tack.input_reference == "20240223000301"
        assert len(result.tack.reference) == 14 and len(result.tack.content) == 32
        time.sleep(0.5)
        first = client.get()
        assert sorted(m.content[:6] for m in first.messages) == [b"920098", b"920900", b"931000"]
        assert [t.tack.reference for t in first.tacks] == [result.tack.reference]
        assert all(m.xades and m.hash_value for m in first.messages)
        again = client.get()  # nothing confirmed yet: delivered again
        assert {m.key for m in again.messages} == {m.key for m in first.messages}
        assert simulator.counters["genasync.redelivered"] == 4
        client.confirm(message_hashes=[m.hash_value for m in first.messages],
                       tack_references=[result.tack.reference])
        empty = client.get()
        assert not empty.messages and not empty.tacks


def test_too_frequent_get_is_refused_with_a_distinct_error(pki):
    with running_platform(pki, min_get_interval=30) as (simulator, url):
        client = client_for(pki, url)
        client.get()
        with pytest.raises(MailboxThrottled) as refused:
            client.get()
        assert "Not enough time" in refused.value.message
        assert simulator.counters["genasync.throttled"] == 1


def test_a_post_that_is_not_an_efact_sending_gets_a_failure_tack(pki):
    with running_platform(pki) as (_, url):
        client = client_for(pki, url)
        result = client.post(io.BytesIO(b"%PDF-1.4 not an invoice"), input_reference="20240223000302",
                             destination="100", is_test=True)
        assert not result.tack.success and "920000" in result.tack.result_message


def test_a_wrong_licence_is_a_fault(pki):
    with running_platform(pki) as (_, url):
        client = client_for(pki, url, licence=(LICENCE[0], "wrong"))
        with pytest.raises(UpstreamFault) as refused:
            client.get()
        assert refused.value.code == "SOA-01001"


def test_answers_follow_the_timings(pki):
    with running_platform(pki, timings=FeedbackTimings(0.0, 0.6, 1.2)) as (_, url):
        client = client_for(pki, url)
        client.post(io.BytesIO(build_sending(zone_204="20240223000303")), input_reference="20240223000303",
                    destination="100", is_test=True)
        assert [m.content[:6] for m in client.get().messages] == [b"931000"]
        time.sleep(1.3)
        assert [m.content[:6] for m in client.get().messages] == [b"931000", b"920098", b"920900"]


def test_the_probe_asks_for_nothing_with_a_request_of_the_official_schema(pki):
    """The configuration check's probe: a signed get with Max 0 and Include false, valid against the
    official GenericAsync schema; it receives nothing, though feedback waits, and confirms nothing."""
    from tests.support import tampering_proxy
    from unified_messaging.serving import serving

    sent: list[bytes] = []

    def record(body: bytes) -> bytes:
        sent.append(body)
        return body

    with running_platform(pki) as (simulator, url), serving(tampering_proxy(url, record)) as proxy:
        pipeline = client_for(pki, url)
        pipeline.post(io.BytesIO(build_sending(zone_204="20240223000501")), input_reference="20240223000501",
                      destination="100", is_test=True)
        time.sleep(0.5)
        assert len(pipeline.get().messages) == 3
        delivered = simulator.counters["genasync.delivered"] + simulator.counters["genasync.redelivered"]
        client_for(pki, proxy).client.probe()
        assert simulator.counters["genasync.get"] == 2 and simulator.counters["genasync.confirm"] == 0
        assert simulator.counters["genasync.delivered"] + simulator.counters["genasync.redelivered"] == delivered
        assert simulator.genasync.pending_messages() == 3
    request = body_of(sent[-1])
    assert etree.QName(request).localname == "get"
    queries = [request.find(f"{{urn:be:cin:nip:async:generic}}{name}") for name in ("MsgQuery", "TAckQuery")]
    assert [(q.get("Include"), q.findtext("{urn:be:cin:nip:async:generic}Max")) for q in queries] == [("false", "0")] * 2
    if OFFICIAL.exists():
        etree.XMLSchema(etree.parse(str(OFFICIAL))).assertValid(request)


def test_get_and_confirm_are_addressed_to_the_mailbox_not_the_url():
    """#15 point 2: the official connector sends ``urn:nip:destination:io:MULTICAST`` as WS-Addressing
    ``To`` on get and confirm (a post goes to its federation); the endpoint's URL is sent nowhere."""
    client = unsigned_client()
    get, _ = client.create_message("get", {"Origin": client._origin(),
                                           "MsgQuery": {"Max": 1, "MessageNames": ["HCPFAC"], "Include": True},
                                           "TAckQuery": {"Max": 1, "Include": True}})
    confirm, _ = client.create_message("confirm", {"Origin": client._origin()}, lists={"TAckReferences": ["R1"]})
    for message in (get, confirm):
        header = etree.fromstring(message).find(f"{{{SOAP}}}Header")
        assert header.findtext(f"{{{WSA}}}To") == "urn:nip:destination:io:MULTICAST"
        assert b"http://localhost/GenericAsync" not in message


@pytest.mark.parametrize("to, accepted", [("urn:nip:destination:io:MULTICAST", True), (None, True),
                                          ("http://localhost/GenericAsync/v1", False),
                                          ("urn:nip:destination:io:100", False)])
def test_the_simulator_checks_the_address_of_a_get(pki, to, accepted):
    """The simulator takes MULTICAST or no ``To`` (freehealth-connector's way) and refuses the URL or a
    federation, naming what it expects."""
    with running_platform(pki) as (simulator, url):
        client = client_for(pki, url).client
        original = client.create_message

        def addressed(operation_name, values, **options):
            message, headers = original(operation_name, values, **options)
            if operation_name != "get":
                return message, headers
            envelope = etree.fromstring(message)
            node = envelope.find(f"{{{SOAP}}}Header/{{{WSA}}}To")
            if to is None:
                node.getparent().remove(node)
            else:
                node.text = to
            return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), headers

        client.create_message = addressed  # the signature covers Body and Timestamp only, as the platform's
        if accepted:
            assert client.get().messages == []
        else:
            with pytest.raises(UpstreamFault) as refused:
                client.get()
            assert "urn:nip:destination:io:MULTICAST" in str(refused.value) and to in str(refused.value)
