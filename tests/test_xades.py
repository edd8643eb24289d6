"""XAdES on the eFact post (#15.1): the XAdES-BES the client signs, the simulator's checks of it
(real platform over sockets), the XAdES-T of the answers, and what the pipeline keeps in
probative-values/."""
from __future__ import annotations

import base64
import io
import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from tests.invoicing_support import client_for, run_until, status_of
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.journal.store import Journal
from unified_messaging.mycarenet.genasync import GENASYNC_NS, TACK_SUCCESS
from unified_messaging.mycarenet.wsse import RefusalCode, SecurityRefusal
from unified_messaging.mycarenet.xades import sign_blob, verify
from unified_messaging.mycarenet.xades_timestamp import stamp_signature
from unified_messaging.simulator.sending_writer import build_sending

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"


@pytest.fixture(scope="module")
def lab(pki):
    return pki.load("lab").authentication


@pytest.fixture(scope="module")
def sending() -> bytes:
    return build_sending(zone_204="20240223000901")


def test_a_deflated_blob_signs_and_verifies(pki, lab, sending):
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    xades = sign_blob(sending, "blob", lab, now)
    elapsed_ms = (time.perf_counter() - started) * 1000
    signature = etree.fromstring(xades)
    reference = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference[@URI='#blob']")
    assert [t.get("Algorithm") for t in reference.iter(f"{{{DS}}}Transform")] == [
        "http://www.w3.org/2000/09/xmldsig#base64", "urn:nippin:xml:sig:transform:optional-deflate"]
    assert signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference[@Type='http://uri.etsi.org/01903#SignedProperties']") \
        is not None
    assert signature.find(f".//{{{XADES}}}SigningCertificate/{{{XADES}}}Cert/{{{XADES}}}CertDigest") is not None
    verified = verify(xades, sending, trusted_ca=pki.ca_certificate(), blob_id="blob")
    assert verified.certificate == lab.certificate and verified.timestamp is None
    assert abs(verified.signing_time - now) < timedelta(milliseconds=1)
    assert elapsed_ms < 500


def _refusal(xades: bytes, content: bytes, pki, **options) -> SecurityRefusal:
    with pytest.raises(SecurityRefusal) as caught:
        verify(xades, content, trusted_ca=pki.ca_certificate(), **options)
    return caught.value


def test_a_changed_byte_of_the_file_is_refused(pki, lab, sending):
    xades = sign_blob(sending, "blob", lab, datetime.now(timezone.utc))
    changed = sending[:300] + (b"1" if sending[300:301] != b"1" else b"2") + sending[301:]
    refusal = _refusal(xades, changed, pki)
    assert refusal.code is RefusalCode.DIGEST_MISMATCH and "file was changed" in refusal.message


def test_a_changed_signing_time_is_refused(pki, lab, sending):
    xades = sign_blob(sending, "blob", lab, datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc))
    changed = xades.replace(b"2026-01-05T10:00:00.000Z", b"2026-01-04T10:00:00.000Z")
    assert changed != xades
    refusal = _refusal(changed, sending, pki)
    assert refusal.code is RefusalCode.DIGEST_MISMATCH and "SignedProperties" in refusal.message


def test_a_certificate_from_another_ca_is_refused(pki, sending):
    stranger = pki.load("untrusted").authentication
    refusal = _refusal(sign_blob(sending, "blob", stranger, datetime.now(timezone.utc)), sending, pki)
    assert refusal.code is RefusalCode.CERTIFICATE_UNTRUSTED


def test_xades_t_needs_its_time_stamp_over_the_signature_value(pki, lab, sending):
    platform = pki.load("sts").authentication
    now = datetime.now(timezone.utc)
    bes = sign_blob(sending, "blob", platform, now)
    assert _refusal(bes, sending, pki, require_timestamp=True).code is RefusalCode.TIMESTAMP_MISSING
    stamped = stamp_signature(bes, key=platform.private_key, certificate=platform.certificate, now=now)
    assert verify(stamped, sending, trusted_ca=pki.ca_certificate(), require_timestamp=True).timestamp.simulated
    # the time-stamp of another signature does not cover this one
    other = stamp_signature(sign_blob(sending, "blob", platform, now), key=platform.private_key,
                            certificate=platform.certificate, now=now)
    stamp = etree.fromstring(other).find(f".//{{{XADES}}}EncapsulatedTimeStamp").text
    mixed = etree.fromstring(stamped)
    mixed.find(f".//{{{XADES}}}EncapsulatedTimeStamp").text = stamp
    refusal = _refusal(etree.tostring(mixed), sending, pki, require_timestamp=True)
    assert refusal.code is RefusalCode.DIGEST_MISMATCH and "time-stamp" in refusal.message


# -- the simulator checks the post's XAdES as the platform does --

def _post_values(client, content: bytes, zone_204: str, xades: bytes | None) -> dict:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    values = {"CommonInput": {"Request": {"IsTest": True}, "Origin": client._origin(), "InputReference": zone_204},
              "Detail": {"_value_1": deflater.compress(content) + deflater.flush(), "ContentType": "text/plain",
                         "ContentEncoding": "deflate", "MessageName": "HCPFAC", "Id": "blob"}}
    if xades is not None:
        values["Xades-t"] = xades
    return values


def _refused_post(client, values: dict) -> UpstreamFault:
    with pytest.raises(UpstreamFault) as caught:
        client._call("post", values, to="urn:nip:destination:io:100")
    return caught.value


def test_the_simulator_refuses_a_post_without_or_with_a_bad_xades(pki, platform, lab):
    renewing = client_for(pki, platform.url)
    client = renewing.client
    try:
        content = build_sending(zone_204="20240223000902")
        missing = _refused_post(client, _post_values(client, content, "20240223000902", None))
        assert missing.code == "SOA-03007" and "no XAdES" in missing.message
        other_file = sign_blob(build_sending(zone_204="20240223000903"), "blob", lab, datetime.now(timezone.utc))
        wrong = _refused_post(client, _post_values(client, content, "20240223000902", other_file))
        assert wrong.code == "SIM-SEC-23" and "does not match the XAdES digest" in wrong.message
        nurse = sign_blob(content, "blob", pki.load("nurse").authentication, datetime.now(timezone.utc))
        foreign = _refused_post(client, _post_values(client, content, "20240223000902", nurse))
        assert foreign.code == "SIM-SEC-24" and "not by the caller" in foreign.message
        assert platform.simulator.counters["genasync.posts.20240223000902"] == 0  # none reached the mailbox
        accepted = renewing.post(io.BytesIO(content), input_reference="20240223000902", destination="100",
                                 is_test=True)
        assert accepted.tack.result_major == TACK_SUCCESS
        assert verify(accepted.xades, content, trusted_ca=pki.ca_certificate(), blob_id="blob").certificate \
            == lab.certificate
    finally:
        renewing.close()


# -- a real pipeline run keeps every XAdES, each verifying --

def test_the_pipeline_keeps_the_post_tack_and_message_xades_and_each_verifies(tmp_path, pki, platform):
    pipeline = InvoicingPipeline(tmp_path / "invoicing", Journal(tmp_path / "journal.sqlite"),
                                 lambda: client_for(pki, platform.url), poll_interval=0.1, rescan_seconds=0.2)
    try:
        root = pipeline.folders.root
        content = build_sending(zone_204="20240223000904")
        (root / "toSend" / "FAC0904.txt").write_bytes(content)
        (root / "toSend" / "FAC0904.txt.ok").write_bytes(b"")
        run_until(pipeline, lambda: status_of(pipeline, "FAC0904.txt")["status"] == "DONE")
    finally:
        pipeline.stop()
    probative = root / "probative-values"
    ca = pki.ca_certificate()
    post = verify((probative / "FAC0904_post.xades.xml").read_bytes(), content, trusted_ca=ca, blob_id="blob")
    assert post.certificate == pki.load("lab").authentication.certificate
    [tack_xades] = probative.glob("FAC0904_tack_*.xades.xml")
    tack = etree.parse(str(tack_xades).replace(".xades.xml", ".xml")).getroot()
    assert tack.tag == f"{{{GENASYNC_NS}}}TAck"
    stamped = verify(tack_xades.read_bytes(), base64.b64decode(tack.text), trusted_ca=ca, require_timestamp=True)
    assert stamped.certificate == pki.load("sts").authentication.certificate and stamped.timestamp.time
    messages = sorted(p for p in probative.glob("FAC0904_9*.xades.xml"))
    assert [p.name.split("_")[1] for p in messages] == ["920098", "920900", "931000"]
    for path in messages:
        received = root / "received" / path.name.replace(".xades.xml", ".txt")
        assert verify(path.read_bytes(), received.read_bytes(), trusted_ca=ca, require_timestamp=True).timestamp
