"""``verify_chain`` remembers a sound chain with its window of dates: inside it the answer is the
same without checking again; outside it (an injected clock after the certificate's or the CA's
end) the certificate is refused as before, and another trust anchor is never answered from it."""
from __future__ import annotations

from datetime import timedelta

from unified_messaging.mycarenet.keystore import chain, verify_chain


def test_a_sound_chain_is_remembered_within_its_dates_only(pki, monkeypatch) -> None:
    certificate, ca = pki.load("lab").authentication.certificate, pki.ca_certificate()
    monkeypatch.setattr(chain, "_SOUND", {})
    inside = certificate.not_valid_after_utc - timedelta(minutes=1)
    assert verify_chain(certificate, ca, inside) is None
    checked: list[object] = []
    monkeypatch.setattr(chain, "is_issued_by", lambda *args: checked.append(args) or True)
    assert verify_chain(certificate, ca, inside - timedelta(days=1)) is None
    assert checked == []  # answered from what was found
    after = certificate.not_valid_after_utc + timedelta(seconds=1)
    assert "expired on" in verify_chain(certificate, ca, after)
    before = max(certificate.not_valid_before_utc, ca.not_valid_before_utc) - timedelta(seconds=1)
    assert "not valid yet" in verify_chain(certificate, ca, before)


def test_the_window_ends_with_the_ca(pki, monkeypatch) -> None:
    certificate, ca = pki.load("lab").authentication.certificate, pki.ca_certificate()
    monkeypatch.setattr(chain, "_SOUND", {})
    assert verify_chain(certificate, ca, certificate.not_valid_before_utc + timedelta(minutes=1)) is None
    window = chain._SOUND[(certificate, (ca,), ())]
    assert window == (max(certificate.not_valid_before_utc, ca.not_valid_before_utc),
                      min(certificate.not_valid_after_utc, ca.not_valid_after_utc))


def test_another_anchor_is_checked_on_its_own(pki, monkeypatch) -> None:
    certificate = pki.load("lab").authentication.certificate
    monkeypatch.setattr(chain, "_SOUND", {})
    at = certificate.not_valid_before_utc + timedelta(minutes=1)
    assert verify_chain(certificate, pki.ca_certificate(), at) is None
    assert "not by the trusted CA" in verify_chain(certificate, pki.untrusted_ca_certificate(), at)
