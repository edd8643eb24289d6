"""``signed_envelope_bytes`` (the business call signed in place, never parsed again) writes the
bytes ``sign_envelope`` and serialisation wrote, and the platform's check accepts them."""
from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone

import pytest
from lxml import etree

from unified_messaging.mycarenet.wsse import sign_envelope, verify_envelope
from unified_messaging.mycarenet.wsse.signing import signed_envelope_bytes
from unified_messaging.simulator.sts import SimulatedSts

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ENVELOPE = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:g="urn:g">'
            b"<soapenv:Body><g:Ask><g:Who>a &amp; b</g:Who><g:When>2024-01-01</g:When></g:Ask></soapenv:Body>"
            b"</soapenv:Envelope>")


@pytest.fixture(scope="module")
def sts(pki) -> SimulatedSts:
    return SimulatedSts(pki.ca_certificate(), pki.load("sts").entry("sts"), now=lambda: NOW)


def _counted_uuids(monkeypatch) -> None:
    numbers = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(numbers)))


def test_the_bytes_are_those_of_sign_envelope_serialised(pki, sts, monkeypatch) -> None:
    lab = pki.load("lab").authentication
    token = sts.issue_assertion(lab.certificate)
    options = {"assertion_xml": token, "key": lab.private_key, "certificate": lab.certificate, "now": lambda: NOW}
    _counted_uuids(monkeypatch)
    expected = etree.tostring(sign_envelope(etree.fromstring(ENVELOPE), **options), xml_declaration=True,
                              encoding="UTF-8")
    _counted_uuids(monkeypatch)
    ours = signed_envelope_bytes(etree.fromstring(ENVELOPE), **options)
    assert ours == expected
    assert token.split(b"?>")[-1].strip() in ours  # the assertion as received
    verified = verify_envelope(ours, trusted_ca=pki.ca_certificate(), now=NOW, sts_certificate=sts.certificate)
    assert verified.assertion is not None and verified.certificate == lab.certificate


def test_an_envelope_already_signed_is_refused(pki, sts) -> None:
    lab = pki.load("lab").authentication
    options = {"assertion_xml": sts.issue_assertion(lab.certificate), "key": lab.private_key,
               "certificate": lab.certificate, "now": lambda: NOW}
    signed = sign_envelope(etree.fromstring(ENVELOPE), **options)
    with pytest.raises(ValueError, match="already signed"):
        signed_envelope_bytes(signed, **options)
