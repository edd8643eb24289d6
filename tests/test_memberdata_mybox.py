"""Mybox shows which MyCareNet service answered each consultation and filters by it (#12 point 6).

A real gateway with GenericInsurability by default and MemberData for nurses is called through its
SOAP front for a lab (GenericInsurability), for a nurse (MemberData) and with a NIHII that is
refused before anything is sent (no service); Mybox, read over HTTP as a logged-in user, shows
the three, filters on each, keeps the filter across pages, and says it in Dutch and French too.
The journal's own filter is checked on a real SQLite file, with its index.
"""
from __future__ import annotations

import datetime as dt
import re
import sqlite3
from dataclasses import replace

import pytest
import zeep

from tests.support import LAB, patient
from tests.test_journal_queries import FIRST_CONSULTATIONS
from tests.test_web_i18n import _html
from tests.test_web_pages import section, text_of
from tests.web_support import login, post_form, start_mybox
from unified_messaging.journal import Consultation, Journal
from unified_messaging.journal.store import NO_UPSTREAM, UPSTREAM_SERVICES
from unified_messaging.simulator.devpki import NURSE_NIHII
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.web.i18n import CATALOGUES
from unified_messaging.web.views.traffic import SERVICE_NAMES

NURSE = {"Nihii": NURSE_NIHII, "Quality": "nurse"}
NOT_A_NIHII = {"Nihii": "94123454", "Quality": "groupofnurses"}  # 8 digits: refused before sending
CALLS = [(LAB, "GENINS-1"), (NURSE, "MDA-1"), (LAB, "GENINS-2"), (NURSE, "MDA-2"), (NOT_A_NIHII, "NONE-1"),
         (NURSE, "MDA-3")]
AUDIT_COLUMN, SERVICE_COLUMN = 7, 8  # in the list: ... Code, Audit reference, MyCareNet service, ms


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    stack = start_mybox(tmp_path_factory.mktemp("memberdata-mybox"),
                        upstream={"insurability_service": "genins", "memberdata_qualities": ["nurse"]},
                        invoicing={"enabled": False}, web={"page_size": 2})
    soap = zeep.Client(f"{stack.gateway.services_url}/ConsultMyCareNetSoap?wsdl").service
    for care_provider, reference in CALLS:
        soap.GetInsurability(request={"CareProvider": care_provider, "Ssin": patient("insured").ssin,
                                      "PeriodStart": dt.date.today(), "Reference": reference})
    yield stack, login(stack, "nurse")
    stack.gateway.stop()


def rows(page: str) -> list[list[str]]:
    body = section(page, "consultations-table").split("<tbody>")[1]
    return [[text_of(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "colspan" not in row]


def all_pages(session, stack, **params: str) -> list[list[str]]:
    """Every row of the list with ``params``, following the page's own "Older" link."""
    found: list[list[str]] = []
    page = session.get(stack.url("/insurability"), params=params).text
    while True:
        found.extend(rows(page))
        older = re.search(r'<a id="page-next" href="([^"]+)"', page)
        if not older:
            return found
        link = older.group(1).replace("&amp;", "&")
        for name, value in params.items():
            assert f"{name}={value}" in link, (link, params)  # the filter is kept from page to page
        page = session.get(stack.url("") + link[len("/unified-messaging/mybox"):]).text


def test_memberdata_and_genins_both_answered_and_the_journal_says_which(site):
    stack, _session = site
    counters = stack.gateway.simulator.counters
    assert (counters["memberdata.consult"], counters["genericinsurability.getInsurability"]) == (3, 2)
    journal = {r["reference"]: (r["outcome"], r["upstream_service"]) for r in stack.gateway.journal.consultations()}
    assert journal == {"GENINS-1": ("OK", "genins"), "GENINS-2": ("OK", "genins"), "MDA-1": ("OK", "memberdata"),
                       "MDA-2": ("OK", "memberdata"), "MDA-3": ("OK", "memberdata"), "NONE-1": ("REJECTED", None)}


def test_memberdata_mybox_list_shows_the_service_of_each_consultation(site):
    stack, session = site
    page = session.get(stack.url("/insurability")).text
    assert "6 consultation(s)" in text_of(page) and "Page 1 of 3" in text_of(page)
    assert "<th>MyCareNet service</th>" in page
    names = {**SERVICE_NAMES, None: "none (not sent)"}
    expected = [(r["audit_reference"] or "", names[r["upstream_service"]])
                for r in stack.gateway.journal.consultations()]  # newest first, as the list
    shown = [(row[AUDIT_COLUMN], row[SERVICE_COLUMN]) for row in all_pages(session, stack)]
    assert shown == expected
    assert sorted(name for _audit, name in shown) == ["GenericInsurability"] * 2 + ["MemberData"] * 3 + [
        "none (not sent)"]
    for p in TEST_PATIENTS:
        assert not p.ssin or p.ssin not in page


@pytest.mark.parametrize("service, expected", [("memberdata", {"MemberData": 3}),
                                               ("genins", {"GenericInsurability": 2}),
                                               ("none", {"none (not sent)": 1}),
                                               ("nonsense", {"MemberData": 3, "GenericInsurability": 2,
                                                             "none (not sent)": 1})])
def test_memberdata_mybox_filter_keeps_one_service_across_pages(site, service, expected):
    stack, session = site
    page = session.get(stack.url("/insurability"), params={"service": service}).text
    total = sum(expected.values())
    assert f"{total} consultation(s)" in text_of(page)
    select = section(page, "filter-service")
    if service in (*UPSTREAM_SERVICES, NO_UPSTREAM):
        assert f'<option value="{service}" selected>' in select
    else:  # an unknown value is no filter
        assert " selected" not in select
    found = all_pages(session, stack, **({"service": service} if service != "nonsense" else {}))
    counts: dict[str, int] = {}
    for row in found:
        counts[row[SERVICE_COLUMN]] = counts.get(row[SERVICE_COLUMN], 0) + 1
    assert counts == expected


def test_memberdata_mybox_filter_combines_with_the_others(site):
    stack, session = site
    page = session.get(stack.url("/insurability"), params={"service": "memberdata", "outcome": "REJECTED"}).text
    assert "0 consultation(s)" in text_of(page) and rows(page) == []
    page = session.get(stack.url("/insurability"), params={"service": "none", "outcome": "REJECTED",
                                                           "interface": "soap"}).text
    [row] = rows(page)
    assert row[5] == "REJECTED" and row[6] == "UM-NIHII" and row[SERVICE_COLUMN] == "none (not sent)"


def test_memberdata_mybox_consultation_page_names_the_service(site):
    stack, session = site
    journal = {r["reference"]: r for r in stack.gateway.journal.consultations()}
    for reference, shown in (("MDA-2", "MemberData"), ("GENINS-1", "GenericInsurability"),
                             ("NONE-1", "none (not sent)")):
        row = journal[reference]
        page = session.get(stack.url(f"/insurability/{row['id']}"))
        assert page.status_code == 200
        service = section(page.text, "consultation-service")
        assert text_of(service).strip() == shown, (reference, service)
        detail = text_of(section(page.text, "consultation-detail"))
        assert reference in detail and row["patient"] in detail and patient("insured").ssin not in page.text
    listed = session.get(stack.url("/insurability"), params={"service": "genins"}).text
    links = re.findall(r'<a href="/unified-messaging/mybox/insurability/(\d+)">', listed)
    assert {int(i) for i in links} == {journal["GENINS-1"]["id"], journal["GENINS-2"]["id"]}
    missing = session.get(stack.url("/insurability/999999"))
    assert missing.status_code == 404 and "There is no consultation #999999." in text_of(missing.text)


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_memberdata_mybox_service_texts_are_translated(site, language):
    stack, _session = site
    session = login(stack, "office")  # a session of its own: the language is the user's
    try:
        assert post_form(session, stack, "/account", "/account/language", {"language": language}).status_code == 200
        page = session.get(stack.url("/insurability")).text
        for english in ("MyCareNet service", "All MyCareNet services", "none (not sent)"):
            assert _html(CATALOGUES[language][english]) in page, (language, english)
            assert f">{english}<" not in page
        detail = session.get(stack.url(f"/insurability/{stack.gateway.journal.consultations()[0]['id']}")).text
        assert _html(CATALOGUES[language]["Consultation #{number}"].split("#")[0]) in detail
    finally:
        post_form(session, stack, "/account", "/account/language", {"language": "en"})


# ------------------------------------------------------------------------------ the journal's filter

BASE = Consultation(at="2026-12-01T10:00:00.000+00:00", interface="soap", care_provider="81234530000",
                    quality="labo", patient="850730*****", period_start="2026-12-01", period_end="2026-12-01",
                    outcome="OK", code=None, audit_reference=None, reference=None, duration_ms=3.0)


def test_memberdata_journal_filter_by_service_uses_its_index(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        for i, service in enumerate(["genins", "memberdata", None, "memberdata", "genins", "memberdata"]):
            journal.record_consultation(replace(BASE, reference=f"R{i}", upstream_service=service,
                                                outcome="REJECTED" if service is None else "OK"))
        refs = {s: [r["reference"] for r in journal.find_consultations(service=s)] for s in ("genins", "memberdata",
                                                                                             "none", None)}
        assert refs == {"genins": ["R4", "R0"], "memberdata": ["R5", "R3", "R1"], "none": ["R2"],
                        None: ["R5", "R4", "R3", "R2", "R1", "R0"]}
        assert [journal.count_consultations(service=s) for s in ("genins", "memberdata", "none", "")] == [2, 3, 1, 6]
        assert [r["reference"] for r in journal.find_consultations(service="memberdata", limit=2, offset=2)] == ["R1"]
        assert journal.count_consultations(service="memberdata", outcome="REJECTED") == 0
        assert journal.consultation(journal.find_consultations(service="none")[0]["id"])["reference"] == "R2"
        assert journal.consultation(12345) is None
        statements: list[str] = []
        journal.db.connection().set_trace_callback(statements.append)
        journal.find_consultations(service="memberdata", offset=1)
        journal.db.connection().set_trace_callback(None)
        [sql] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        conn = sqlite3.connect(journal.path)
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        conn.close()
        assert "consultations_service_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        journal.close()


def test_memberdata_every_recorded_service_has_a_name_in_mybox():
    assert set(SERVICE_NAMES) == set(UPSTREAM_SERVICES) and NO_UPSTREAM not in SERVICE_NAMES


def test_memberdata_consultations_journaled_before_the_column_were_genericinsurability_ones(tmp_path):
    """A journal from before ``upstream_service``: its sent consultations show GenericInsurability (the
    only service there was), its refused ones none; once, so that later NULLs are never touched."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(FIRST_CONSULTATIONS)
    for outcome in ("OK", "ERROR", "FAULT", "UNAVAILABLE", "REJECTED"):
        conn.execute("INSERT INTO consultations(at, interface, outcome, reference, duration_ms) "
                     "VALUES ('2026-01-05T10:00:00.000+00:00', 'soap', ?, ?, 3)", [outcome, outcome])
    conn.commit()
    conn.close()
    journal = Journal(path)
    try:
        services = {r["reference"]: r["upstream_service"] for r in journal.consultations()}
        assert services == {"OK": "genins", "ERROR": "genins", "FAULT": "genins", "UNAVAILABLE": "genins",
                            "REJECTED": None}
        journal.db.connection().execute("UPDATE consultations SET upstream_service = NULL WHERE reference = 'OK'")
    finally:
        journal.close()
    again = Journal(path)  # opened again: nothing is filled a second time
    try:
        assert {r["reference"]: r["upstream_service"] for r in again.consultations()}["OK"] is None
    finally:
        again.close()
