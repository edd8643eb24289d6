"""Upstream chaos (issue 19 point 6): the simulator's fault injection, through the real gateway.

Every fault of ``simulator/chaos.py`` (slow answer, reset, HTML 502/503, malformed and truncated
XML, an expired platform certificate, one from another CA), over real sockets: the legacy SOAP
caller (zeep) gets a fault or ``Status=ERROR`` that says what happened and what to do, quickly;
the toQuery folder keeps the file and answers it once MyCareNet answers again; the invoicing
pipeline never marks a file NOK by itself, retries with its bounded backoff, and sends it once.
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest
import zeep
from lxml import etree

from tests.conftest import make_config
from tests.invoicing_support import client_for, status_of
from tests.support import GENINS, LAB, LICENCE, patient, running_platform
from unified_messaging.folders.watcher import REASON_SUFFIX
from unified_messaging.gateway import Gateway
from unified_messaging.insurability.contract_xml import TNS, E
from unified_messaging.insurability.folder import InsurabilityFolders
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.journal.store import Journal
from unified_messaging.simulator.chaos import FaultMode
from unified_messaging.simulator.devpki import PLATFORM_CBE
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.sending_writer import build_sending

TIMEOUT = 3.0  # the gateway's [upstream] timeout_seconds (room for a loaded machine: 1 s timed out)
LAB_NIHII = "81234530000"
SLOW = 6.0  # a slow answer comes after this (the simulator stops waiting when the fault is cleared)

# mode -> words the legacy caller must read: what happened, and what to do
TRANSPORT_FAULTS = {
    FaultMode.SLOW: ["did not answer in time", f"no answer within {TIMEOUT:g} s", "try again"],
    FaultMode.RESET: ["cut off or damaged", "closed in the middle of the answer", "try again"],
    FaultMode.HTML_502: ["not available", "HTTP 502 Bad Gateway", "HTML error page", "try again"],
    FaultMode.HTML_503: ["not available", "HTTP 503 Service Unavailable", "HTML error page", "try again"],
    FaultMode.MALFORMED_XML: ["cut off or damaged", "not acceptable XML", "try again"],
    FaultMode.TRUNCATED_XML: ["cut off or damaged", "not acceptable XML", "try again"],
}
SIGNER_FAULTS = {
    FaultMode.EXPIRED_SIGNER: ["expired on", "clock", "renew", "not used"],
    FaultMode.FOREIGN_SIGNER: ["Another CA", "platform_ca", "not used"],
}


def _config(folder: Path, url: str, pki, **sections):
    return make_config(
        folder,
        upstream={"mode": "remote", "sts_url": url + STS_PATH, "genericinsurability_url": url + GENINS,
                  "timeout_seconds": TIMEOUT, "platform_ca": str(pki.ca_certificate_path),
                  "platform_signer_cbe": PLATFORM_CBE},
        invoicing={"enabled": False}, folders={"insurability": False},
        identity={"keystore": str(pki.lab.path), "keystore_password": pki.password},
        licence={"username": LICENCE[0], "password": LICENCE[1]}, **sections)


@pytest.fixture(scope="module")
def chaos(pki, tmp_path_factory) -> Iterator[tuple]:
    """The platform (with fault injection) and a gateway against it, for the whole module."""
    with running_platform(pki, fault_slow_seconds=SLOW) as (simulator, url):
        gateway = Gateway(_config(tmp_path_factory.mktemp("chaos"), url, pki)).start()
        try:
            yield simulator, url, gateway
        finally:
            simulator.faults.clear()
            gateway.stop()


@pytest.fixture()
def faults(chaos):
    simulator = chaos[0]
    simulator.faults.clear()
    yield simulator.faults
    simulator.faults.clear()


def _ask(gateway: Gateway):
    client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
    return client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                   "PeriodStart": dt.date.today()})


def _refused_clearly(gateway: Gateway, words: list[str]) -> str:
    started = time.monotonic()
    with pytest.raises(zeep.exceptions.Fault) as caught:
        _ask(gateway)
    elapsed = time.monotonic() - started
    message = caught.value.message
    assert elapsed < TIMEOUT + 1.5, f"the caller waited {elapsed:.1f} s"
    assert caught.value.code.endswith("Server.UpstreamUnavailable")
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and 'File "' not in message
    return message


# -- (1) the legacy SOAP caller ------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(TRANSPORT_FAULTS), ids=lambda m: m.value)
def test_a_legacy_caller_gets_a_fault_that_says_what_happened_and_what_to_do(chaos, faults, mode):
    _, _, gateway = chaos
    _ask(gateway)  # a token first: the fault is in the insurability answer
    faults.set("genins", mode)
    _refused_clearly(gateway, TRANSPORT_FAULTS[mode])
    faults.clear()
    assert _ask(gateway).Status == "OK"  # and the next call, once MyCareNet answers, is answered
    rows = gateway.journal.consultations(limit=2)
    assert [r["outcome"] for r in rows] == ["OK", "UNAVAILABLE"]


@pytest.mark.parametrize("mode", list(SIGNER_FAULTS), ids=lambda m: m.value)
def test_an_answer_signed_by_a_wrong_platform_certificate_is_status_error_with_advice(chaos, faults, mode):
    _, _, gateway = chaos
    faults.set("genins", mode)
    result = _ask(gateway)
    assert result.Status == "ERROR"
    message = result.Messages.Message[0]
    assert message.Code == "UM-ANSWER-SIGNATURE"
    for word in SIGNER_FAULTS[mode]:
        assert word in message.Text, message.Text
    assert result.Insurabilities is None  # nothing of the untrusted answer is passed on


@pytest.mark.parametrize("mode", [FaultMode.SLOW, FaultMode.RESET, FaultMode.HTML_503, FaultMode.TRUNCATED_XML],
                         ids=lambda m: m.value)
def test_a_failing_sts_is_a_fault_that_says_what_to_do(pki, tmp_path, mode):
    with running_platform(pki, faults={"sts": mode.value}, fault_slow_seconds=SLOW) as (simulator, url):
        with Gateway(_config(tmp_path, url, pki)) as gateway:
            _refused_clearly(gateway, ["SecurityTokenService", TRANSPORT_FAULTS[mode][0], "try again"])
            simulator.faults.clear()
            assert _ask(gateway).Status == "OK"
        assert simulator.faults.injected == {f"sts.{mode.value}": 1}


def test_the_faults_come_from_the_configuration_and_are_checked(tmp_path, pki):
    shutil.copytree(pki.folder, tmp_path / "um-data" / "demo-pki")  # the built-in simulator's keys, made once
    config = make_config(tmp_path, simulator={"fault_genins": "html-502", "fault_slow_seconds": 1.0},
                         invoicing={"enabled": False}, folders={"insurability": False},
                         upstream={"timeout_seconds": TIMEOUT})
    with Gateway(config) as gateway:
        assert gateway.simulator.faults.mode("genins") is FaultMode.HTML_502
        assert gateway.simulator.faults.mode("sts") is FaultMode.NONE
        _refused_clearly(gateway, TRANSPORT_FAULTS[FaultMode.HTML_502])
    with pytest.raises(Exception, match="fault_sts"):
        make_config(tmp_path, simulator={"fault_sts": "sometimes"})
    with pytest.raises(Exception, match="fault_genasync"):
        make_config(tmp_path, simulator={"fault_genasync": "sometimes"})


# -- (2) the toQuery folder ----------------------------------------------------------------------

def _drop_request(root: Path, name: str) -> Path:
    request = E.InsurabilityRequest(E.CareProvider(E.Nihii(LAB_NIHII), E.Quality("labo")),
                                    E.Ssin(patient("insured").ssin), E.PeriodStart(dt.date.today().isoformat()))
    data = etree.tostring(E.InsurabilityRequests(request), xml_declaration=True, encoding="UTF-8")
    (root / "toQuery" / name).write_bytes(data)
    (root / "toQuery" / (name + ".ok")).write_bytes(b"")
    return root / "queried" / (name.removesuffix(".xml") + ".answer.xml")


def _wait_for_answer(root: Path, name: str, answer: Path, timeout: float = 20.0) -> list[etree._Element]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not (root / "error" / (name + REASON_SUFFIX)).exists(), "the file went to error/"
        if answer.with_name(answer.name + ".ok").exists():
            return list(etree.fromstring(answer.read_bytes()))
        time.sleep(0.05)
    raise AssertionError(f"{name} was not answered within {timeout} s")


def _answers_through_the_folders(gateway, root: Path, name: str) -> list:
    """Start the toQuery folders, drop one request, wait for its answer, stop the folders."""
    folders = InsurabilityFolders(gateway.insurability, root, first_backoff_seconds=0.2, rescan_seconds=3600)
    folders.start()
    try:
        return _wait_for_answer(root, name, _drop_request(root, name))
    finally:
        folders.stop()


@pytest.mark.parametrize("mode", list(TRANSPORT_FAULTS), ids=lambda m: m.value)
def test_a_toquery_file_waits_through_the_fault_and_is_answered_once_mycarenet_answers(chaos, faults, tmp_path,
                                                                                       mode):
    simulator, _, gateway = chaos
    _ask(gateway)  # a token first
    faults.set("genins", mode, count=2)  # the file's first two attempts fail, the third is answered
    responses = _answers_through_the_folders(gateway, tmp_path / "ins", "chaos.xml")
    assert simulator.faults.injected.get(f"genins.{mode.value}", 0) >= 2
    assert [r.findtext(f"{{{TNS}}}Status") for r in responses] == ["OK"]  # never an "unreachable" answer
    assert list((tmp_path / "ins" / "working").iterdir()) == []


@pytest.mark.parametrize("mode", list(SIGNER_FAULTS), ids=lambda m: m.value)
def test_a_toquery_request_answered_with_a_wrong_signature_gets_its_error_in_the_answer(chaos, faults, tmp_path,
                                                                                        mode):
    _, _, gateway = chaos
    faults.set("genins", mode)
    responses = _answers_through_the_folders(gateway, tmp_path / "ins", "signed.xml")
    ns = {"t": TNS}
    assert [r.findtext("t:Status", namespaces=ns) for r in responses] == ["ERROR"]
    assert responses[0].findtext("t:Messages/t:Message/t:Code", namespaces=ns) == "UM-ANSWER-SIGNATURE"
    text = responses[0].findtext("t:Messages/t:Message/t:Text", namespaces=ns)
    assert all(word in text for word in SIGNER_FAULTS[mode]), text


# -- (3) invoicing -------------------------------------------------------------------------------

BACKOFF = (0.1, 0.2, 0.4)
REPOST_GRACE = SLOW + 0.5  # a post the platform may still be handling is not sent again before this


@pytest.mark.parametrize("mode", [*TRANSPORT_FAULTS, *SIGNER_FAULTS], ids=lambda m: m.value)
def test_an_invoicing_file_is_never_nok_on_a_fault_and_is_sent_once_with_a_bounded_backoff(pki, tmp_path, mode):
    with running_platform(pki, fault_slow_seconds=SLOW) as (simulator, url):
        pipeline = InvoicingPipeline(tmp_path / "inv", Journal(tmp_path / "journal.sqlite"),
                                     lambda: client_for(pki, url, timeout=TIMEOUT), poll_interval=0.1,
                                     rescan_seconds=0.2, backoff=BACKOFF, repost_grace=REPOST_GRACE)
        try:
            simulator.faults.set("genasync", mode, count=3)
            zone_204 = "20240223000190"
            root = pipeline.folders.root
            (root / "toSend" / "CHAOS.txt").write_bytes(build_sending(zone_204=zone_204))
            (root / "toSend" / "CHAOS.txt.ok").write_bytes(b"")
            seen: list[dict] = []
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                pipeline.run_once(poll=True)
                rows = pipeline.store.files()
                if rows:
                    seen.append({**rows[0], "seen_at": dt.datetime.now(dt.timezone.utc)})
                    if rows[0]["status"] == "DONE":
                        break
                time.sleep(0.05)
            row = status_of(pipeline, "CHAOS.txt")
        finally:
            pipeline.stop()
        assert row["status"] == "DONE", row
        assert all(r["status"] != "NOK" and r["state"] not in ("refused", "error") for r in seen)
        assert simulator.faults.injected.get(f"genasync.{mode.value}", 0) == 3
        assert any(r["reason"] for r in seen), "the fault was never recorded as the reason of a retry"
        waits = [(dt.datetime.fromisoformat(r["next_attempt_at"]) - r["seen_at"]).total_seconds()
                 for r in seen if r["next_attempt_at"]]
        assert max(waits, default=0) <= max(BACKOFF) + 0.5  # the backoff is bounded
        assert simulator.counters[f"genasync.posts.{zone_204}"] == 1  # sent once: never NOK, never twice
        assert (root / "archive" / "CHAOS.txt").exists() and not list((root / "error").iterdir())


# -- the standalone simulator's test hook --------------------------------------------------------

def test_the_standalone_simulator_sets_and_lifts_faults_over_http(pki, tmp_path):
    import requests

    from unified_messaging.simulator.standalone import FAULTS_PATH, StandaloneSettings, StandaloneSimulator

    shutil.copytree(pki.folder, tmp_path / "sim" / "demo-pki")
    simulator = StandaloneSimulator(StandaloneSettings(tmp_path / "sim", licences=dict([LICENCE]))).start()
    try:
        hook = simulator.url + FAULTS_PATH
        assert requests.post(hook, params={"service": "genins", "mode": "html-503", "count": "1"},
                             timeout=5).json()["faults"]["genins"] == "html-503"
        answer = requests.post(simulator.url + GENINS, data=b"<x/>", headers={"Content-Type": "text/xml"}, timeout=5)
        assert answer.status_code == 503 and answer.headers["Content-Type"] == "text/html"
        state = requests.get(hook, timeout=5).json()
        assert state["faults"]["genins"] == "none" and state["injected"] == {"genins.html-503": 1}
        refused = requests.post(hook, params={"service": "genins", "mode": "sometimes"}, timeout=5)
        assert refused.status_code == 400 and "not one of" in refused.json()["error"]
        taken = requests.post(hook, params={"service": "sts", "mode": "foreign-signer"}, timeout=5)
        assert taken.status_code == 200 and taken.json()["faults"]["sts"] == "foreign-signer"  # re-signs the token
    finally:
        simulator.stop()
