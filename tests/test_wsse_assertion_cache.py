"""A SAML assertion verified once is not verified again, and that changes no answer.

``saml.verify_assertion`` keeps the assertions whose signature verified (by canonical form and STS
certificate): the second call of a token skips reading it and checking its signature, never its
dates or its signer's chain, and an assertion changed by one character is verified (and refused)
as if it were new.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from unified_messaging.mycarenet.wsse import SecurityRefusal, saml
from unified_messaging.mycarenet.wsse.refusals import RefusalCode
from unified_messaging.mycarenet.wsse.saml import verify_assertion
from unified_messaging.simulator.sts import SimulatedSts

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def sts(pki) -> SimulatedSts:
    return SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"), now=lambda: NOW)


def in_envelope(assertion_xml: bytes) -> etree._Element:
    """The assertion placed in a Security header, as a business call carries it."""
    envelope = etree.fromstring(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
                                b'<w:Security xmlns:w="urn:wsse">' + assertion_xml + b"</w:Security></s:Header>"
                                b"</s:Envelope>")
    return envelope[0][0][0]


def test_the_second_call_of_a_token_is_answered_from_what_was_verified(pki, sts, monkeypatch) -> None:
    lab = pki.load("lab").authentication
    token = sts.issue_assertion(lab.certificate)
    first = verify_assertion(in_envelope(token), sts_certificate=sts.certificate, now=NOW)
    checked: list[object] = []
    monkeypatch.setattr(saml, "verify_signature", lambda *args, **kwargs: checked.append(args))
    second_element = in_envelope(token)
    second = verify_assertion(second_element, sts_certificate=sts.certificate, now=NOW + timedelta(seconds=5))
    assert checked == []  # not verified again
    assert second.element is second_element and second.assertion_id == first.assertion_id
    assert second.holder_certificate == lab.certificate and second.attributes == first.attributes


def test_a_changed_assertion_is_verified_again_and_refused(pki, sts) -> None:
    lab = pki.load("lab").authentication
    token = sts.issue_assertion(lab.certificate)
    verify_assertion(in_envelope(token), sts_certificate=sts.certificate, now=NOW)
    element = in_envelope(token)
    value = element.find(".//{urn:oasis:names:tc:SAML:1.0:assertion}AttributeValue")
    value.text = (value.text or "") + "x"
    with pytest.raises(SecurityRefusal) as refused:
        verify_assertion(element, sts_certificate=sts.certificate, now=NOW)
    assert refused.value.code is RefusalCode.ASSERTION_SIGNATURE_INVALID


def test_a_kept_assertion_still_expires_and_still_needs_its_sts(pki, sts) -> None:
    lab = pki.load("lab").authentication
    token = sts.issue_assertion(lab.certificate, lifetime=timedelta(minutes=10))
    verify_assertion(in_envelope(token), sts_certificate=sts.certificate, now=NOW)
    with pytest.raises(SecurityRefusal) as refused:
        verify_assertion(in_envelope(token), sts_certificate=sts.certificate, now=NOW + timedelta(hours=1))
    assert refused.value.code is RefusalCode.ASSERTION_EXPIRED
    other = pki.load("nurse").authentication.certificate
    with pytest.raises(SecurityRefusal) as foreign:
        verify_assertion(in_envelope(token), sts_certificate=other, now=NOW)
    assert foreign.value.code in (RefusalCode.ASSERTION_FOREIGN, RefusalCode.ASSERTION_SIGNATURE_INVALID)
