"""Mybox's pages over HTTP with real data: a real gateway sends real eFact files to its simulator,
consults real test patients and runs a real batch job; the pages are read and their forms sent as a
browser does (tests/web_support.py).  Lists page by two (``[web] page_size = 2``).

One piece because every test reads the same module-scoped site, whose real eFact exchanges,
consultations and batch run take seconds to build; split, each file would build it again.
"""
from __future__ import annotations

import html
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import requests

from tests.invoicing_support import drop_file, wait_for
from tests.web_support import MyboxStack, csrf_of, login, post_form, start_mybox
from unified_messaging.insurability.batch import BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.simulator.devpki import GROUP_NUMBER, LAB_NIHII
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.simulator.platform import demo_pki
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.web.context import PREFIX
from unified_messaging.web.i18n import CATALOGUES

TODAY = date.today()
MONTH = datetime.now(timezone.utc).strftime("%Y-%m")
PATIENT = {p.scenario: p for p in TEST_PATIENTS}
LAB = CareProvider(LAB_NIHII, "labo")
MARCH = datetime(2025, 3, 10, 8, 0, tzinfo=timezone.utc)
DOCTOR_NIHII = "19876561004"


# ------------------------------------------------------------------------------ reading pages

def flashes(page: str) -> list[tuple[str, str]]:
    return [(kind, html.unescape(re.sub(r"\s+", " ", text)).strip())
            for kind, text in re.findall(r'<p class="flash (\w+)"[^>]*>(.*?)</p>', page, re.S)]


def errors(page: str) -> list[str]:
    return [text for kind, text in flashes(page) if kind == "error"]


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def file_rows(page: str) -> list[tuple[int, str]]:
    """(id, shown status) of each row of the invoicing list, top to bottom."""
    return [(int(i), s) for s, i in re.findall(r'<tr data-status="(\w+)" id="file-(\d+)">', page)]


def section(page: str, element_id: str) -> str:
    """The element with ``id`` up to the next element of the same tag's end (enough for our templates)."""
    start = page.index(f'id="{element_id}"')
    tag = page.rfind("<", 0, start)
    name = re.match(r"<(\w+)", page[tag:]).group(1)
    return page[tag:page.index(f"</{name}>", start) + len(name) + 3]


def refusal_text(code: str) -> tuple[str, str]:
    refusal = Refusal(code)
    return refusal.entry.cause, refusal.remedy


# ------------------------------------------------------------------------------ the site

class Site:
    def __init__(self, stack: MyboxStack) -> None:
        self.stack = stack
        self.gateway = stack.gateway
        self.invoicing: InvoicingStore = stack.gateway.mybox.services.invoicing
        self.sessions = {user: login(stack, user) for user in ("admin", "office", "nurse")}
        self.pki = demo_pki(stack.data)
        self.job = None

    def get(self, user: str, path: str, **options) -> requests.Response:
        return self.sessions[user].get(self.stack.url(path), **options)

    def post(self, user: str, page: str, action: str, data: dict, files: dict | None = None) -> requests.Response:
        return post_form(self.sessions[user], self.stack, page, action, data, files)

    def file_named(self, name: str) -> dict:
        return next(f for f in self.invoicing.files() if f["name"] == name)

    def status(self, name: str) -> str | None:
        row = next((f for f in self.invoicing.files() if f["name"] == name), None)
        return row and row["status"]


def _write_job(folder: Path) -> Path:
    props = {"mycarenet.connection": "SSO", "input.folder": "in", "output.folder": "out", "archive.folder": "archive",
             "error.folder": "error", "careprovider.nihii": LAB_NIHII, "careprovider.quality": "labo"}
    for key in ("input.folder", "output.folder", "archive.folder", "error.folder"):
        (folder / props[key]).mkdir(parents=True, exist_ok=True)
    (folder / "batch.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="latin-1")
    return folder / "batch.properties"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mybox-pages")
    stack = start_mybox(folder, web={"page_size": 2})
    try:
        to_send = stack.invoicing_root / "toSend"
        drop_file(to_send, "GOOD.txt", build_sending(zone_204="20240301000011"))
        drop_file(to_send, "HEADER.txt", build_sending(zone_204="20240301000012", invoicing_month="202403",
                                                       creation_date="20240223"))
        drop_file(to_send, "BLOCK.txt", build_sending(zone_204="20240301000013", nomenclature="9999991"))
        site = Site(stack)
        # Two files of March 2025, written as the pipeline writes its rows (on a clock of that day).
        march = InvoicingStore(stack.gateway.journal, clock=lambda: MARCH)
        for name, status, reason in (("MARCH-1.txt", "DONE", None),
                                     ("MARCH-2.txt", "NOK", "920999: Refused at reception (zone 300).")):
            march.record_file(name=name, size=1234, sha256=name.encode().hex().ljust(64, "0"),
                              zone_204="2025031000000" + name[-5], destination="131", is_test=True, state="sent",
                              work_name=None, status=status, reason=reason)
        service = stack.gateway.insurability
        for patient in (PATIENT["insured"], PATIENT["unknown"], PATIENT["bad_check_digit"]):
            service.consult(InsurabilityQuery(LAB, TODAY, TODAY, ssin=patient.ssin), interface="soap")
        site.job = load_batch_job(_write_job(folder / "batch"))
        (site.job.input_folder / "a-lot.csv").write_text(
            f"ssin;period_start;period_end;reference\n{PATIENT['insured'].ssin};{TODAY};;A-1\n"
            f"{PATIENT['deceased'].ssin};{TODAY};;A-2\n{PATIENT['insured'].ssin};31/02/2025;;A-3\n")
        (site.job.input_folder / "b-wrong.csv").write_text("ssin;date;reference\n")
        summary = BatchRunner(site.job, service, journal=stack.gateway.journal).run()
        assert [f.status for f in summary.files] == ["done", "rejected"]
        wait_for(lambda: (site.status("GOOD.txt"), site.status("HEADER.txt"), site.status("BLOCK.txt"))
                 == ("DONE", "NOK", "NOK"), timeout=60, what="the invoicing files' answers")
        yield site
    finally:
        stack.gateway.stop()


# ------------------------------------------------------------------------------ invoicing

def test_the_invoicing_list_filters_by_status_month_and_text(site):
    everything = site.invoicing.files()
    noks = {f["id"] for f in everything if f["status"] == "NOK"}
    page = site.get("office", "/invoicing", params={"status": "NOK"}).text
    assert {i for i, _ in file_rows(page)} | {i for i, _ in file_rows(site.get(
        "office", "/invoicing", params={"status": "NOK", "page": 2}).text)} == noks
    assert {s for _, s in file_rows(page)} == {"NOK"} and f"{len(noks)} file(s)" in text_of(page)
    assert '<option value="NOK" selected>' in page

    march = site.get("office", "/invoicing", params={"month": "2025-03"}).text
    assert [site.invoicing.file(i)["name"] for i, _ in file_rows(march)] == ["MARCH-2.txt", "MARCH-1.txt"]
    assert '<option value="2025-03" selected>' in march and f'<option value="{MONTH}">' in march

    both = site.get("office", "/invoicing", params={"month": "2025-03", "status": "DONE"}).text
    assert [site.invoicing.file(i)["name"] for i, _ in file_rows(both)] == ["MARCH-1.txt"]

    block = site.file_named("BLOCK.txt")
    for text in ("block", block["reference"], block["zone_204"]):
        found = site.get("office", "/invoicing", params={"q": text}).text
        assert [i for i, _ in file_rows(found)] == [block["id"]], text
    nothing = site.get("office", "/invoicing", params={"q": "no-such-file%_"}).text
    assert file_rows(nothing) == [] and "No file matches." in nothing

    ignored = site.get("office", "/invoicing", params={"status": "EVIL", "month": "2025-13"}).text
    assert f"{len(everything)} file(s)" in text_of(ignored)


def test_the_invoicing_list_pages_by_two_newest_first_and_keeps_its_filters(site):
    everything = site.invoicing.list_files(limit=100)
    last = -(-len(everything) // 2)
    assert last >= 3
    seen = []
    for number in range(1, last + 1):
        page = site.get("office", "/invoicing", params={"page": number}).text
        rows = file_rows(page)
        assert len(rows) == (2 if number < last else len(everything) - 2 * (last - 1))
        assert f"Page {number} of {last}" in text_of(page)
        assert ('id="page-previous"' in page) == (number > 1) and ('id="page-next"' in page) == (number < last)
        seen += [i for i, _ in rows]
    assert seen == [f["id"] for f in everything]  # newest first, each file once
    beyond = site.get("office", "/invoicing", params={"page": 999}).text
    assert f"Page {last} of {last}" in text_of(beyond)
    assert file_rows(site.get("office", "/invoicing", params={"page": "x"}).text) == \
        [(f["id"], f["shown_status"]) for f in everything[:2]]

    filtered = site.get("office", "/invoicing", params={"status": "NOK"}).text
    next_link = html.unescape(re.search(r'id="page-next" href="([^"]+)"', filtered).group(1))
    assert next_link.startswith(PREFIX + "/invoicing?") and "status=NOK" in next_link and "page=2" in next_link
    second = site.sessions["office"].get(site.stack.base.removesuffix(PREFIX) + next_link).text
    assert {s for _, s in file_rows(second)} == {"NOK"} and "Page 2 of 2" in text_of(second)


def test_the_detail_page_explains_each_feedback_line(site):
    block = site.file_named("BLOCK.txt")
    page = site.get("office", f"/invoicing/{block['id']}").text
    assert 'data-refresh-status="NOK"' in page and '<div id="file-detail">' in page  # final: no refreshing
    assert block["reference"] in section(page, "file-reference")
    assert "920099" in section(page, "file-reason") and "zone 311 = 01" in text_of(section(page, "file-reason"))
    codes = re.findall(r'<section class="card feedback" id="feedback-\d+" data-code="(\d+)">', page)
    assert codes == [m["code"] for m in site.invoicing.feedback_for(block["id"])] and "920099" in codes
    refused = text_of(section(page, f"feedback-{site.invoicing.feedback_for(block['id'])[-1]['id']}"))
    assert "920099 · detailed check (refused)" in refused
    assert "B500401" in refused and "record 50 zone 04 error 01" in refused and "nomenclature code" in refused
    assert "service line" in refused and "whole sending is blocked" in refused
    assert 'id="resend-form"' in page
    tacks = text_of(section(page, "tacks"))
    assert "accepted" in tacks and block["reference"] in tacks

    header = site.get("office", f"/invoicing/{site.file_named('HEADER.txt')['id']}").text
    assert "920999 · reception refusal" in text_of(header) and "Refused at reception" in text_of(header)
    assert "zone 300 (invoicing year and month)" in text_of(header)

    good = site.file_named("GOOD.txt")
    done = site.get("office", f"/invoicing/{good['id']}").text
    assert 'data-refresh-status="DONE"' in done and 'id="resend-form"' not in done
    assert re.findall(r'data-code="(\d+)"', done) == ["931000", "920098", "920900"]
    settlement = section(done, f"feedback-{site.invoicing.feedback_for(good['id'])[-1]['id']}")
    assert 'class="list settlements"' in settlement and "€" in settlement
    assert text_of(section(done, "amount-accepted")).strip() == f"€{good['amount_accepted'] / 100:,.2f}"
    missing = site.get("office", "/invoicing/99999")
    assert missing.status_code == 404 and "There is no invoicing file #99999." in missing.text


def test_the_downloads_are_the_received_and_probative_files_byte_for_byte(site):
    root = site.stack.invoicing_root
    downloads = 0
    for name in ("GOOD.txt", "BLOCK.txt", "HEADER.txt"):
        row = site.file_named(name)
        detail = site.get("office", f"/invoicing/{row['id']}").text
        for message in site.invoicing.feedback_for(row["id"]):
            link = f"/invoicing/{row['id']}/feedback/{message['id']}"
            assert f'href="{PREFIX}{link}"' in detail
            answer = site.get("office", link)
            assert answer.status_code == 200 and answer.content == (root / "received" / message["received_name"]).read_bytes()
            assert answer.headers["Content-Disposition"] == f'attachment; filename="{message["received_name"]}"'
            assert answer.headers["Content-Type"].startswith("text/plain") and answer.headers["Cache-Control"] == "no-store"
            probative = site.get("office", link + "/probative")
            assert probative.content == (root / "probative-values" / message["probative_name"]).read_bytes()
            downloads += 2
        for tack in site.invoicing.tacks_for(row["id"]):
            answer = site.get("office", f"/invoicing/{row['id']}/tack/{tack['id']}/probative")
            assert answer.content == (root / "probative-values" / tack["probative_name"]).read_bytes()
            downloads += 1
    assert downloads >= 12
    good, block = site.file_named("GOOD.txt"), site.file_named("BLOCK.txt")
    other = site.invoicing.feedback_for(good["id"])[0]["id"]  # another file's message: not served here
    crossed = site.get("office", f"/invoicing/{block['id']}/feedback/{other}")
    assert crossed.status_code == 404 and "no longer in the invoicing folders" in crossed.text


def test_a_refused_file_is_sent_again_through_the_form(site):
    block = site.file_named("BLOCK.txt")
    to_send = site.stack.invoicing_root / "toSend"
    detail = f"/invoicing/{block['id']}"

    def resend(name: str, data: bytes | None, file_id: int = block["id"]) -> requests.Response:
        files = {"corrected": (name, data)} if data is not None else None
        return site.post("office", detail, f"/invoicing/{file_id}/resend", {}, files)

    answer = resend("GARBAGE.txt", b"%PDF-1.4 not an eFact" + b" " * 400)
    assert answer.url == site.stack.url(detail)
    assert any("GARBAGE.txt is not a valid eFact 920000 sending, so it was not queued" in e for e in errors(answer.text))
    assert not [p for p in to_send.iterdir() if p.name.startswith("GARBAGE")]
    assert any("Choose the corrected eFact file" in e for e in errors(resend("", None).text))
    good = site.file_named("GOOD.txt")
    refused = resend("AGAIN.txt", build_sending(zone_204="20240301000014"), good["id"])
    assert any("only a refused file can be sent again" in e for e in errors(refused.text))

    answer = resend("../BLOCK-FIXED.txt", build_sending(zone_204="20240301000015"))
    assert answer.url == site.stack.url(detail)
    assert ("ok", "BLOCK-FIXED.txt is queued as the corrected version of BLOCK.txt; it appears in the list as soon "
                  "as the gateway takes it.") in flashes(answer.text)
    fixed = wait_for(lambda: next((f for f in site.invoicing.files() if f["name"] == "BLOCK-FIXED.txt"), None),
                     what="the corrected file in the journal")
    assert fixed["resend_of"] == block["id"]
    assert not (to_send.parent / "BLOCK-FIXED.txt").exists()  # the ../ was dropped
    wait_for(lambda: site.status("BLOCK-FIXED.txt") == "DONE", timeout=30, what="the corrected file DONE")
    original = site.get("office", detail).text
    assert f'href="{PREFIX}/invoicing/{fixed["id"]}">#{fixed["id"]} BLOCK-FIXED.txt</a> (DONE)' in original
    corrected = site.get("office", f"/invoicing/{fixed['id']}").text
    assert f'#{block["id"]} BLOCK.txt</a>' in section(corrected, "resend-of")
    listed = site.get("office", "/invoicing", params={"q": "BLOCK-FIXED"}).text
    assert f"(resends #{block['id']})" in text_of(listed)


# ------------------------------------------------------------------------------ consultations, batch runs, dashboard

def _consultation_rows(page: str) -> list[list[str]]:
    body = section(page, "consultations-table").split("<tbody>")[1]
    return [[text_of(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "colspan" not in row]


def test_consultations_are_filtered_and_show_patients_masked(site):
    journal = site.gateway.journal
    total = journal.count_consultations()
    page = site.get("nurse", "/insurability").text  # clinical users see the consultations
    assert f"{total} consultation(s)" in text_of(page) and len(_consultation_rows(page)) == 2
    assert f"Page 1 of {-(-total // 2)}" in text_of(page)
    for patient in TEST_PATIENTS:
        assert not patient.ssin or patient.ssin not in page

    ok = _consultation_rows(site.get("nurse", "/insurability", params={"outcome": "OK", "interface": "soap"}).text)
    assert ok and all(row[1] == "soap" and row[5] == "OK" for row in ok)
    assert ok[0][3] == PATIENT["insured"].ssin[:6] + "*****" and ok[0][2] == f"{LAB_NIHII} labo"
    rejected = _consultation_rows(site.get("nurse", "/insurability", params={"outcome": "rejected"}).text)
    assert [row[3] for row in rejected] == [PATIENT["bad_check_digit"].ssin[:6] + "*****"]
    assert rejected[0][6] and rejected[0][6] == journal.find_consultations(outcome="REJECTED")[0]["code"]

    batch = journal.find_consultations(interface="batch", limit=100)
    assert len(batch) == 2  # the batch file's two readable lines
    shown = site.get("nurse", "/insurability", params={"interface": "batch"}).text
    assert f"{len(batch)} consultation(s)" in text_of(shown) and {r[1] for r in _consultation_rows(shown)} == {"batch"}

    audit = journal.find_consultations(outcome="OK", interface="soap")[0]["audit_reference"]
    found = _consultation_rows(site.get("nurse", "/insurability", params={"q": audit}).text)
    assert [row[7] for row in found] == [audit]
    month = site.get("nurse", "/insurability", params={"month": MONTH}).text
    assert f"{total} consultation(s)" in text_of(month)
    assert "0 consultation(s)" in text_of(site.get("nurse", "/insurability", params={"month": "2001-01"}).text)


def test_the_batch_runs_page_shows_the_real_run(site):
    job = str(site.job.source)
    page = site.get("office", "/batch").text
    table = section(page, "batch-table")
    rows = [[text_of(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]
    done_run = site.gateway.journal.batch_runs(status="done")[0]
    assert done_run["lines"] == 3 and done_run["ok"] >= 1 and done_run["ok"] + done_run["errors"] == 3
    assert [r[1:8] for r in rows] == [[job, "b-wrong.csv", "rejected", "0", "0", "0", ""],
                                      [job, "a-lot.csv", "done", "3", str(done_run["ok"]), str(done_run["errors"]),
                                       "a-lot.result.csv"]]
    assert "unknown column(s) 'date'" in rows[0][8]
    assert "2 file(s) processed." in text_of(page) and f'<option value="{job}">' in page
    done = site.get("office", "/batch", params={"status": "done", "job": job}).text
    assert "1 file(s) processed." in text_of(done) and "a-lot.csv" in done and "b-wrong.csv" not in done
    assert "0 file(s) processed." in text_of(site.get("office", "/batch", params={"status": "stopped"}).text)
    assert site.get("nurse", "/batch").status_code == 403


def _svg_charts(page: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="card" id="(chart-[a-z-]+)">(.*?)</figure>', page, re.S))


def test_the_dashboard_draws_the_traffic_as_charts_with_titles_and_figures(site):
    charts = _svg_charts(site.get("office", "/").text)
    assert set(charts) == {"chart-files", "chart-delays", "chart-errors", "chart-consultations", "chart-codes"}
    for name, chart in charts.items():
        svg = re.search(r"<svg [^>]*role=\"img\"[^>]*>(.*?)</svg>", chart, re.S)
        assert svg and re.match(r"\s*<title>[^<]+</title>", svg.group(1)), name
        assert "<table class=\"figures\">" in chart, name
    per_month = {(r["month"], r["status"]): r["n"] for r in site.invoicing.files_per_status_per_month()}
    files = charts["chart-files"]
    assert f"<title>{MONTH}: DONE {per_month[(MONTH, 'DONE')]}</title>" in files
    assert f"<title>{MONTH}: NOK {per_month[(MONTH, 'NOK')]}</title>" in files
    assert "2025-03" not in files  # older than twelve months
    figures = re.findall(r"<tr>((?:<td>[^<]*</td>)+)</tr>", files)
    assert any(f"<td>{MONTH}</td>" in row for row in figures)
    assert "<title>" in charts["chart-errors"] and "B · " in charts["chart-errors"]
    assert re.search(r"<title>[^<]*920099[^<]*</title>", charts["chart-delays"])
    consultations = charts["chart-consultations"]
    ok = site.gateway.journal.count_consultations(outcome="OK")
    assert f"<title>{MONTH}: OK {ok}</title>" in consultations
    rejected_code = site.gateway.journal.find_consultations(outcome="REJECTED")[0]["code"]
    assert re.search(rf"<title>{re.escape(rejected_code)}[^<]*</title>", charts["chart-codes"])
    clinical = _svg_charts(site.get("nurse", "/").text)
    assert set(clinical) == {"chart-consultations", "chart-codes"}  # no invoicing figures without the role


# ------------------------------------------------------------------------------ administration

def _user_row(page: str, login_: str) -> str:
    match = re.search(rf'<tr id="user-{re.escape(login_)}">(.*?)</tr>', page, re.S)
    return match.group(1) if match else ""


def test_users_are_added_given_roles_and_removed(site):
    store, ssin = site.gateway.securespace, PATIENT["medical_house"].ssin
    form = {"login": "carla", "name": "Carla Clerk", "ssin": ssin, "roles": ["administrative"],
            "password": "Carla-password-1", "again": "Carla-password-2"}
    differ = site.post("admin", "/admin/users", "/admin/users", form)
    assert any("The two passwords differ" in e for e in errors(differ.text)) and _user_row(differ.text, "carla") == ""
    weak = site.post("admin", "/admin/users", "/admin/users", {**form, "password": "short", "again": "short"})
    assert any(e.startswith("SS-WEAK-PASSWORD") for e in errors(weak.text))
    bad = site.post("admin", "/admin/users", "/admin/users", {**form, "ssin": ssin[:-1] + "0", "again": form["password"]})
    assert any(e.startswith("SS-BAD-SSIN") for e in errors(bad.text))
    assert [u.login for u in store.users()] == ["admin", "nurse", "office"]

    added = site.post("admin", "/admin/users", "/admin/users", {**form, "again": form["password"]})
    assert ("ok", "User carla created.") in flashes(added.text)
    row = _user_row(added.text, "carla")
    assert "Carla Clerk" in row and ssin[:6] + "*****" in row and ssin not in added.text
    assert 'value="administrative" checked' in row and 'value="clinical" checked' not in row
    again = site.post("admin", "/admin/users", "/admin/users", {**form, "again": form["password"]})
    assert any(e.startswith("SS-USER-EXISTS") for e in errors(again.text))

    roles = site.post("admin", "/admin/users", "/admin/users/carla/roles", {"roles": ["administrative", "clinical"]})
    assert ("ok", "Roles of carla changed.") in flashes(roles.text)
    assert {r.value for r in store.user("carla").roles} == {"administrative", "clinical"}
    assert 'value="clinical" checked' in _user_row(roles.text, "carla")
    none = site.post("admin", "/admin/users", "/admin/users/carla/roles", {})
    assert any(e.startswith("SS-BAD-ROLE") for e in errors(none.text))
    own = site.post("admin", "/admin/users", "/admin/users/admin/roles", {"roles": ["clinical"]})
    assert any("cannot remove your own administrator role" in e for e in errors(own.text))
    assert {r.value for r in store.user("admin").roles} == {"administrator"}

    carla = login(site.stack, "carla", form["password"])
    assert carla.get(site.stack.url("/invoicing")).status_code == 200
    assert "Remove" not in _user_row(site.get("admin", "/admin/users").text, "admin")
    yourself = site.post("admin", "/admin/users", "/admin/users/admin/remove", {})
    assert any("You cannot remove yourself." in e for e in errors(yourself.text))
    removed = site.post("admin", "/admin/users", "/admin/users/carla/remove", {})
    assert ("ok", "User carla removed.") in flashes(removed.text) and _user_row(removed.text, "carla") == ""
    assert "carla" not in [u.login for u in store.users()]
    assert carla.get(site.stack.url("/invoicing"), allow_redirects=False).status_code == 303
    gone = site.post("admin", "/admin/users", "/admin/users/carla/remove", {})
    assert any(e.startswith("SS-UNKNOWN-USER") for e in errors(gone.text))


def test_the_secure_space_is_created_then_updated(site):
    store = site.gateway.securespace
    assert store.space_or_none() is None
    first = site.get("admin", "/admin/securespace").text
    assert "has not been created yet" in first and "Create the secure space" in first
    owner, responsible = PATIENT["third_party_payment"].ssin, PATIENT["preferential_rate"].ssin
    values = {"name": "Lab Dupont", "owner_name": "Olivier Dupont", "owner_ssin": owner,
              "responsible_name": "Rita Dupont", "responsible_ssin": responsible}
    bad = site.post("admin", "/admin/securespace", "/admin/securespace", {**values, "owner_ssin": "12345678901"})
    assert any(e.startswith("SS-BAD-SSIN") for e in errors(bad.text)) and store.space_or_none() is None
    created = site.post("admin", "/admin/securespace", "/admin/securespace", values)
    assert ("ok", "Secure space created.") in flashes(created.text)
    facts = text_of(section(created.text, "space-facts"))
    assert f"Olivier Dupont ({owner[:6]}*****)" in facts and f"Rita Dupont ({responsible[:6]}*****)" in facts
    assert owner not in created.text and responsible not in created.text
    updated = site.post("admin", "/admin/securespace", "/admin/securespace",
                        {"name": "Lab Dupont & Fils", "owner_name": "", "owner_ssin": "", "responsible_name": "",
                         "responsible_ssin": ""})
    assert ("ok", "Secure space updated.") in flashes(updated.text)
    space = store.space()
    assert (space.name, space.owner_name, space.owner_ssin) == ("Lab Dupont & Fils", "Olivier Dupont", owner)
    assert "Lab Dupont &amp; Fils" in updated.text
    assert "Lab Dupont &amp; Fils" in site.get("admin", "/admin").text


def test_a_certificate_with_a_wrong_password_is_refused_with_the_remedy(site):
    store = site.gateway.securespace
    before = len(store.certificates())
    p12 = site.pki.keystores["lab"].path.read_bytes()
    answer = site.post("admin", "/certificates", "/certificates", {"password": "not-the-password"},
                       {"p12": ("lab.p12", p12)})
    cause, remedy = refusal_text("SS-BAD-KEYSTORE")
    shown = errors(answer.text)
    assert len(shown) == 1 and shown[0].startswith(f"SS-BAD-KEYSTORE: {cause}") and shown[0].endswith(remedy)
    assert "not-the-password" not in answer.text and len(store.certificates()) == before
    empty = site.post("admin", "/certificates", "/certificates", {"password": "x"})
    assert any("Choose the .p12 file" in e for e in errors(empty.text))
    assert 'id="certificate-upload"' not in site.get("office", "/certificates").text  # only administrators add


def test_a_refused_form_comes_back_to_its_own_page(site):
    form = site.get("admin", "/certificates").text
    here = re.search(r'name="next" value="([^"]+)"', form).group(1)
    answer = site.post("admin", "/certificates", "/certificates", {"password": "not-the-password", "next": here},
                       {"p12": ("lab.p12", site.pki.keystores["lab"].path.read_bytes())})
    assert errors(answer.text) and answer.url == site.stack.url("/certificates")


def _certificate(site: Site, keystore: str) -> int:
    found = [c for c in site.gateway.securespace.certificates() if c.label == keystore]
    if found:
        return found[0].id
    answer = site.post("admin", "/certificates", "/certificates", {"password": site.pki.password, "label": keystore},
                       {"p12": (f"{keystore}.p12", site.pki.keystores[keystore].path.read_bytes())})
    assert not errors(answer.text), errors(answer.text)
    number = int(re.search(r"/certificates/(\d+)$", answer.url).group(1))
    assert f"Certificate #{number} added" in text_of(answer.text)
    return number


def test_establishments_are_added_and_removed(site):
    number = _certificate(site, "nursing_group")
    page = f"/certificates/{number}"
    ssin = PATIENT["several_insurers"].ssin
    added = site.post("admin", page, f"{page}/establishments",
                      {"number": LAB_NIHII, "ssin": ssin, "valid_from": TODAY.isoformat(), "valid_to": ""})
    assert ("ok", "Establishment added.") in flashes(added.text)
    table = text_of(section(added.text, "establishments-table"))
    assert f"{LAB_NIHII} third-party {ssin[:6]}***** {TODAY.isoformat()} open-ended" in table and ssin not in added.text
    for form, code in (({"number": "12345", "valid_from": TODAY.isoformat()}, "SS-BAD-NIHII"),
                       ({"number": LAB_NIHII, "valid_from": "yesterday"}, "SS-BAD-DATES"),
                       ({"number": LAB_NIHII, "valid_from": "2026-01-02", "valid_to": "2026-01-01"}, "SS-BAD-DATES")):
        refused = site.post("admin", page, f"{page}/establishments", form)
        assert any(e.startswith(code) for e in errors(refused.text)), (form, errors(refused.text))
    establishment, = site.gateway.securespace.establishments(number)
    elsewhere = _certificate(site, "nurse")
    crossed = site.post("admin", page, f"/certificates/{elsewhere}/establishments/{establishment.id}/remove", {})
    assert any(e.startswith("SS-UNKNOWN-ESTABLISHMENT") for e in errors(crossed.text))
    removed = site.post("admin", page, f"{page}/establishments/{establishment.id}/remove", {})
    assert ("ok", "Establishment removed.") in flashes(removed.text)
    assert site.gateway.securespace.establishments(number) == [] and "None." in section(removed.text, "establishments-table")


def _state(page: str) -> str:
    return re.search(r'id="mandate-state" data-state="([a-z-]+)"', page).group(1)


def _actions(page: str) -> list[str]:
    return re.findall(r'<button type="submit" id="action-([a-z-]+)">', page)


def test_a_mandate_goes_through_its_life_and_impossible_steps_are_refused(site):
    store = site.gateway.securespace
    proposed = site.post("office", "/mandates", "/mandates", {
        "mandant": f"NIHII={LAB_NIHII}", "mandataire": f"NIHII={GROUP_NUMBER}", "service": "INVOICING",
        "valid_from": TODAY.isoformat(), "valid_to": ""})
    number = int(re.search(r"/mandates/(\d+)$", proposed.url).group(1))
    page = f"/mandates/{number}"
    assert _state(proposed.text) == "proposed" and _actions(proposed.text) == ["accept-mandant", "accept-mandataire", "stop"]
    assert f"NIHII={LAB_NIHII}" in text_of(proposed.text) and 'id="mandate-form"' not in proposed.text

    def act(action: str, on: int = number) -> requests.Response:
        return site.post("office", f"/mandates/{on}", f"/mandates/{on}/action", {"action": action, "note": "by test"})

    assert _state(act("accept-mandant").text) == "accepted-by-mandant"
    impossible = act("accept-mandant")
    assert any(e.startswith("SS-MANDATE-TRANSITION") and "'accept' by the mandant is not possible from "
               "'accepted-by-mandant'" in e for e in errors(impossible.text))
    active = act("accept-mandataire")
    assert _state(active.text) == "active" and _actions(active.text) == ["suspend", "stop"]
    assert "Transfer to another mandataire" in active.text
    resume = act("resume")
    assert any(e.startswith("SS-MANDATE-TRANSITION") for e in errors(resume.text))
    assert store.mandate(number).state.value == "active"
    assert _state(act("suspend").text) == "suspended"
    assert _state(act("resume").text) == "active"
    unknown = act("delete")
    assert any(e.startswith("SS-MANDATE-TRANSITION") and "'delete' is not an action" in e for e in errors(unknown.text))

    same = site.post("office", page, f"{page}/transfer", {"mandataire": f"NIHII={LAB_NIHII}", "on": ""})
    assert any(e.startswith("SS-MANDATE-SAME-PARTY") for e in errors(same.text))
    transfer = site.post("office", page, f"{page}/transfer", {"mandataire": f"NIHII={DOCTOR_NIHII}", "on": ""})
    new = int(re.search(r"/mandates/(\d+)$", transfer.url).group(1))
    assert new != number and _state(transfer.text) == "accepted-by-mandant"
    assert f'href="{PREFIX}/mandates/{number}">#{number}</a>' in transfer.text  # transferred from
    assert store.mandate(number).state.value == "active"  # until the new mandataire accepts
    assert _state(act("accept-mandataire", new).text) == "active"
    old = site.get("office", page).text
    assert _state(old) == "stopped" and f'href="{PREFIX}/mandates/{new}">#{new}</a>' in old
    history = text_of(section(old, "mandate-history"))
    for step in ("propose", "accept by mandant", "accept by mandataire", "suspend", "resume", "transfer-proposed",
                 "transferred"):
        assert step in history, step
    assert _state(act("stop", new).text) == "stopped" and _actions(site.get("office", f"/mandates/{new}").text) == []

    for mandant, code in (("the lab", "SS-BAD-IDENTIFIER"), ("NIHII=123", "SS-BAD-NIHII")):
        bad = site.post("office", "/mandates", "/mandates", {"mandant": mandant, "mandataire": f"NIHII={GROUP_NUMBER}",
                                                             "service": "INVOICING", "valid_from": TODAY.isoformat()})
        assert any(e.startswith(code) for e in errors(bad.text)), (mandant, errors(bad.text))
    wrong = site.post("office", "/mandates", "/mandates", {"mandant": f"NIHII={LAB_NIHII}", "mandataire":
                                                           f"NIHII={GROUP_NUMBER}", "service": "PAYROLL",
                                                           "valid_from": TODAY.isoformat()})
    assert any(e.startswith("SS-BAD-SERVICE") for e in errors(wrong.text))
    listed = section(site.get("office", "/mandates").text, "mandates-table")
    assert f'id="mandate-{number}"' in listed and f'id="mandate-{new}"' in listed
    assert site.get("office", "/mandates/9999").status_code == 404


def test_the_configuration_check_shows_a_row_per_service(site):
    group, nurse = _certificate(site, "nursing_group"), _certificate(site, "nurse")
    page = site.get("admin", "/admin/check").text
    assert f'name="certificate" value="{group}"' in page and f'name="certificate" value="{nurse}"' in page
    answer = site.post("admin", "/admin/check", "/admin/check", {"certificate": [str(nurse)]})
    assert answer.status_code == 200
    sections = re.findall(r'<section class="card check-result" id="check-(\d+)">', answer.text)
    assert sections == [str(nurse)]
    result = section(answer.text, f"check-{nurse}")
    rows = dict(re.findall(r'<tr class="service" data-service="(\w+)" data-status="([^"]+)">', result))
    assert rows == {"INSURABILITY": "Active", "INVOICING": "Active", "MED_ADMIN": "Not offered by this gateway"}, rows
    assert "STS token: issued" in text_of(result) and "SS-" not in text_of(result)  # no refusal at all
    assert "This gateway has no client for this service" in text_of(result)
    everything = site.post("admin", "/admin/check", "/admin/check", {})
    assert sorted(re.findall(r'id="check-(\d+)"', everything.text)) == sorted([str(group), str(nurse)])


def test_the_folders_page_lists_the_files_in_error_with_their_reason(site):
    drop_file(site.stack.invoicing_root / "toSend", "NOTEFACT.pdf", b"%PDF-1.4 a pdf" + b" " * 400)
    wait_for(lambda: (site.stack.invoicing_root / "error" / "NOTEFACT.pdf.reason.txt").exists(), what="error/")
    page = site.get("admin", "/admin/folders").text
    errors_table = text_of(section(page, "error-files"))
    assert "invoicing/error NOTEFACT.pdf" in errors_table and "not an eFact" in errors_table
    assert str(site.stack.invoicing_root / "toSend") in text_of(section(page, "folders-table"))


def test_the_licence_is_recorded_without_showing_its_password(site):
    answer = site.post("admin", "/admin", "/admin/licence", {"username": "lab-licence", "password": "Licence-pw-123"})
    assert ("ok", "Licence lab-licence recorded (its password is stored encrypted).") in flashes(answer.text)
    assert "lab-licence" in section(answer.text, "licence-status") and "Licence-pw-123" not in answer.text
    assert site.gateway.securespace.licence_username() == "lab-licence"
    missing = site.post("admin", "/admin", "/admin/licence", {"username": "lab-licence", "password": ""})
    assert any("Give the licence's username and its password." in e for e in errors(missing.text))


# ------------------------------------------------------------------------------ the user's own settings

def _new_user(site: Site, login_: str, password: str, roles: list[str]) -> None:
    site.gateway.securespace.add_user(login_, login_.title(), PATIENT["insured"].ssin, roles, password)
    site.stack.passwords[login_] = password


def test_the_language_is_kept_across_logins(site):
    _new_user(site, "lingua", "Lingua-password-1", ["clinical"])
    session = login(site.stack, "lingua")
    assert '<html lang="en">' in session.get(site.stack.url("/account")).text
    changed = post_form(session, site.stack, "/account", "/account/language", {"language": "nl"})
    assert changed.url == site.stack.url("/account") and '<html lang="nl">' in changed.text
    assert '<option value="nl" selected>' in changed.text
    post_form(session, site.stack, "/account", "/logout", {})
    again = login(site.stack, "lingua")
    page = again.get(site.stack.url("/account")).text
    assert '<html lang="nl">' in page and '<option value="nl" selected>' in page
    assert CATALOGUES["nl"]["Your settings"] in page
    assert site.gateway.securespace.user("lingua").language == "nl"
    refused = post_form(again, site.stack, "/account", "/account/language", {"language": "xx"})
    assert any(e.startswith("SS-BAD-LANGUAGE") for e in errors(refused.text))
    assert site.gateway.securespace.user("lingua").language == "nl"
    anonymous = requests.get(site.stack.url("/login"), headers={"Accept-Language": "fr-BE,fr;q=0.9"})
    assert '<html lang="fr">' in anonymous.text


def test_the_password_is_changed_by_its_owner(site):
    _new_user(site, "changer", "Changer-password-1", ["administrative"])
    session, other = login(site.stack, "changer"), login(site.stack, "changer")

    def change(current: str, new: str, again: str) -> requests.Response:
        return post_form(session, site.stack, "/account", "/account/password",
                         {"current": current, "new": new, "again": again})

    wrong = change("not-my-password", "Changer-password-2", "Changer-password-2")
    assert any("Your current password is wrong" in e for e in errors(wrong.text))
    differ = change("Changer-password-1", "Changer-password-2", "Changer-password-3")
    assert any("The two new passwords differ" in e for e in errors(differ.text))
    weak = change("Changer-password-1", "short", "short")
    assert any(e.startswith("SS-WEAK-PASSWORD") for e in errors(weak.text))
    assert site.gateway.securespace.authenticate("changer", "Changer-password-1")
    assert other.get(site.stack.url("/account"), allow_redirects=False).status_code == 200

    done = change("Changer-password-1", "Changer-password-2", "Changer-password-2")
    assert ("ok", "Password changed. Your other sessions were closed.") in flashes(done.text)
    assert session.get(site.stack.url("/invoicing")).status_code == 200  # this session goes on
    assert other.get(site.stack.url("/account"), allow_redirects=False).status_code == 303
    old = requests.Session()
    form = old.get(site.stack.url("/login")).text
    assert old.post(site.stack.url("/login"), data={"login": "changer", "password": "Changer-password-1",
                                                    "csrf_token": csrf_of(form)}).status_code == 401
    login(site.stack, "changer", "Changer-password-2")
