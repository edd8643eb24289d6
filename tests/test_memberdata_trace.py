"""The upstream trace names the service of each exchange (#12 point 6): GenericInsurability or
MemberData, synchronous or over GenAsync (MDA), read from the messages as really sent."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import zeep

from tests.conftest import make_config
from tests.support import LAB, LICENCE, patient
from unified_messaging.domain.insurability import CareProvider
from unified_messaging.mycarenet.genasync import GenAsyncClient
from unified_messaging.mycarenet.genasync_blobs import deflate_stream
from unified_messaging.mycarenet.trace import ExchangeTracer, exchange_service
from unified_messaging.simulator.devpki import NURSE_NIHII

NURSE = {"Nihii": NURSE_NIHII, "Quality": "nurse"}
PLATFORM_MDA = "https://prod.mycarenet.be:9443/mycarenet/bed/GenAsync/memberData"


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A gateway tracing its exchanges: GenericInsurability for labs, MemberData for nurses."""
    from unified_messaging.gateway import Gateway

    folder = tmp_path_factory.mktemp("memberdata-trace")
    config = make_config(folder, upstream={"insurability_service": "genins", "memberdata_qualities": ["nurse"],
                                           "trace_folder": str(folder / "trace")},
                         invoicing={"enabled": False})
    gateway = Gateway(config).start()
    yield gateway, folder / "trace"
    gateway.stop()


def _exchanges(trace) -> dict[str, str]:
    """Each response file's first line (the comment naming the service), by file name."""
    return {p.name: p.read_text("utf-8").splitlines()[0] for p in sorted(trace.iterdir())
            if p.name.endswith("-response.xml")}


def test_memberdata_trace_names_the_service_of_each_consultation(traced):
    gateway, trace = traced
    soap = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl").service
    insured = patient("insured")
    for care_provider, reference in ((LAB, "TRACE-GENINS"), (NURSE, "TRACE-MDA")):
        answer = soap.GetInsurability(request={"CareProvider": care_provider, "Ssin": insured.ssin,
                                               "PeriodStart": dt.date.today(), "Reference": reference})
        assert answer.Status == "OK", answer.Messages
    exchanges = _exchanges(trace)
    genins = {n: c for n, c in exchanges.items() if "-GenericInsurability-sync-" in n}
    memberdata = {n: c for n, c in exchanges.items() if "-MemberData-sync-" in n}
    assert len(genins) == 1 and len(memberdata) == 1, sorted(exchanges)
    [(genins_name, genins_comment)] = genins.items()
    [(memberdata_name, memberdata_comment)] = memberdata.items()
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}-\d{6}-GenericInsurability-sync-GenericInsurability-v1-response\.xml",
                        genins_name), genins_name
    assert memberdata_name.endswith("-MemberData-sync-MyCareNet-MemberData-v1-response.xml"), memberdata_name
    assert genins_comment.startswith("<!-- GenericInsurability (sync): HTTP 200 from http://")
    assert memberdata_comment.startswith("<!-- MemberData (sync): HTTP 200 from http://")
    assert memberdata_comment.endswith("/MyCareNet/MemberData/v1 -->")
    assert any("-STS-IAM-SecurityTokenService" in n for n in exchanges), sorted(exchanges)
    request = trace / memberdata_name.replace("-response.xml", "-request.xml")
    assert b"MemberDataConsultationRequest" in request.read_bytes()
    everything = b"".join(p.read_bytes() for p in trace.iterdir())
    assert insured.ssin.encode() not in everything and LICENCE[1].encode() not in everything
    journal = {r["reference"]: r["upstream_service"] for r in gateway.journal.consultations(limit=10)}
    assert (journal["TRACE-GENINS"], journal["TRACE-MDA"]) == ("genins", "memberdata")


def _genasync(endpoint: str) -> GenAsyncClient:
    return GenAsyncClient(endpoint, licence_username=LICENCE[0], licence_password=LICENCE[1],
                          care_provider=CareProvider("41234502404", "nurse"))


def _post(client: GenAsyncClient, message_name: str) -> bytes:
    message, _ = client.create_message("post", {
        "CommonInput": {"Request": {"IsTest": True}, "Origin": client._origin(), "InputReference": "20261207000001"},
        "Detail": {"_value_1": deflate_stream(io.BytesIO(b"<Request/>")), "ContentType": "text/xml",
                   "ContentEncoding": "deflate", "MessageName": message_name, "Id": "blob"}},
        to="urn:nip:destination:io:100")
    return message


def _get(client: GenAsyncClient, names: list[str]) -> bytes:
    message, _ = client.create_message("get", {"Origin": client._origin(),
                                               "MsgQuery": {"Max": 10, "MessageNames": names, "Include": True},
                                               "TAckQuery": {"Max": 10, "Include": True}})
    return message


def _confirm(client: GenAsyncClient) -> bytes:
    message, _ = client.create_message("confirm", {"Origin": client._origin()}, lists={"MsgRefValues": ["R1"]})
    return message


def test_memberdata_over_genasync_is_told_from_efact_in_the_trace(tmp_path):
    """Real GenAsync messages (as the client builds them): MDA posts and gets, and anything sent to a
    MemberData GenAsync address, are MemberData (async); eFact's are GenAsync."""
    efact = _genasync("http://localhost/GenericAsync/v1")
    mda = _genasync(PLATFORM_MDA)
    cases = [
        (efact.endpoint, _post(efact, "MDA"), "MemberData (async, GenAsync MDA post)"),
        (efact.endpoint, _get(efact, ["MDA"]), "MemberData (async, GenAsync MDA get)"),
        (mda.endpoint, _confirm(mda), "MemberData (async, GenAsync MDA confirm)"),
        (efact.endpoint, _post(efact, "HCPFAC"), "GenAsync post"),
        (efact.endpoint, _get(efact, ["HCPFAC", "HCPAFD", "HCPVWR"]), "GenAsync get"),
        (efact.endpoint, _confirm(efact), "GenAsync confirm"),
        ("http://localhost/elsewhere", b"<x/>", ""),
    ]
    for url, request, expected in cases:
        assert exchange_service(url, request) == expected, (url, expected)
    tracer = ExchangeTracer(tmp_path / "trace")
    written = tracer.record(PLATFORM_MDA, _post(mda, "MDA"), b"<answer/>", 200)
    assert written.name.endswith("-MemberData-async-GenAsync-MDA-post-mycarenet-bed-GenAsync-memberData-request.xml")
    response = written.with_name(written.name.replace("-request.xml", "-response.xml")).read_text("utf-8")
    assert response.startswith(f"<!-- MemberData (async, GenAsync MDA post): HTTP 200 from {PLATFORM_MDA} -->\n")
    unknown = tracer.record("http://localhost/elsewhere", b"<x/>", b"<y/>", 404)
    assert unknown.name.endswith("-000002-elsewhere-request.xml")
    assert unknown.with_name(unknown.name.replace("request", "response")).read_text("utf-8").startswith(
        "<!-- HTTP 404 from http://localhost/elsewhere -->")
