"""Why a file was refused, in the reader's language (#14 point 6).

A real gateway refuses files itself (a wrong control number, the same file twice, a marker without its
file) and sends others that its simulator's insurers refuse (920099 with error slots, 920999 at
reception).  The journal keeps each reason as message ids with their values; Mybox shows the file page,
its feedback explanations and the error folder in the user's language (a Dutch and a French user here),
while the ``.reason`` files and the command line stay in English.
"""
from __future__ import annotations

import html
import re

import pytest

from tests.invoicing_support import drop_file, wait_for
from tests.web_support import login, start_mybox
from unified_messaging.texts import Reason, VERBATIM
from unified_messaging.invoicing.folders import REASON_SUFFIX
from unified_messaging.simulator.sending_writer import Defect, build_sending
from unified_messaging.web.i18n import CATALOGUES, Translator


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def block(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    tag = page.rfind("<", 0, start)
    name = re.match(r"<(\w+)", page[tag:]).group(1)
    return page[tag:page.index(f"</{name}>", start)]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fixed_part(template: str) -> str:
    """The longest piece of a template without placeholders (what must show, translated, on a page)."""
    return max(re.split(r"\{[^}]*\}", template), key=len).strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    stack = start_mybox(tmp_path_factory.mktemp("translated-reasons"))
    try:
        spaces = stack.gateway.securespace
        spaces.set_language("admin", "nl")
        spaces.set_language("office", "fr")
        to_send = stack.invoicing_root / "toSend"
        good = build_sending(zone_204="20240301000021")
        drop_file(to_send, "GOOD.txt", good)
        drop_file(to_send, "BLOCK.txt", build_sending(zone_204="20240301000022", nomenclature="9999991"))
        drop_file(to_send, "HEADER.txt", build_sending(zone_204="20240301000023", invoicing_month="202403",
                                                       creation_date="20240223"))
        drop_file(to_send, "CONTROL.txt", build_sending(zone_204="20240301000024",
                                                        defects=frozenset({Defect.CONTROL_NUMBER})))
        (to_send / "LONELY.txt.ok").write_bytes(b"")
        store = stack.gateway.mybox.services.invoicing

        def status(name: str) -> str | None:
            return next((f["status"] for f in store.files() if f["name"] == name), None)

        wait_for(lambda: (status("GOOD.txt"), status("BLOCK.txt"), status("HEADER.txt")) == ("DONE", "NOK", "NOK")
                 and status("CONTROL.txt") and status("LONELY.txt.ok"), timeout=90, what="the answers")
        drop_file(to_send, "AGAIN.txt", good)  # the same file again: refused, not sent twice
        wait_for(lambda: status("AGAIN.txt"), timeout=30, what="the second copy refused")
        stack.files = {f["name"]: f for f in store.files()}
        stack.sessions = {user: login(stack, user) for user in ("admin", "office")}
        yield stack
    finally:
        stack.gateway.stop()


def page_of(site, user: str, path: str) -> str:
    answer = site.sessions[user].get(site.url(path))
    assert answer.status_code == 200
    return answer.text


@pytest.mark.parametrize("name", ["CONTROL.txt", "AGAIN.txt", "BLOCK.txt", "HEADER.txt", "LONELY.txt.ok"])
@pytest.mark.parametrize("user, language", [("admin", "nl"), ("office", "fr")])
def test_the_file_page_gives_the_reason_in_the_users_language(site, name, user, language):
    row = site.files[name]
    stored = Reason.from_json(row["reason_text"])
    assert stored is not None, f"{name}: the journal kept no message ids for its reason"
    assert str(stored) == row["reason"]  # the English text kept beside them is the same reason
    shown = flat(text_of(block(page_of(site, user, f"/invoicing/{row['id']}"), "file-reason")))
    catalogue = CATALOGUES[language]
    for line in stored:
        if line.template == VERBATIM:  # the platform's or the validator's own words, as they are
            continue
        assert flat(Translator(language).text(line)) in shown
        assert fixed_part(catalogue[line.template]) in shown
        english = fixed_part(line.template)
        if english != fixed_part(catalogue[line.template]) and len(english) > 12:
            assert english not in shown, f"{name}: {english!r} left in English"


def test_the_gateways_own_refusals_are_translated(site):
    control = site.files["CONTROL.txt"]
    nl = CATALOGUES["nl"]
    shown = text_of(page_of(site, "admin", f"/invoicing/{control['id']}"))
    assert nl["{name} is not a valid eFact 920000 sending:"].format(name="CONTROL.txt") in shown
    assert "is not a valid eFact 920000 sending" not in shown
    again = text_of(page_of(site, "office", f"/invoicing/{site.files['AGAIN.txt']['id']}"))
    assert fixed_part(CATALOGUES["fr"]["{name} is the same file as {other} (#{number}), already sent on {sent_at} "
                                      "(status {status}, reference {reference}); it was not sent again."]) in again


def test_feedback_explanations_are_translated(site):
    nl, fr = CATALOGUES["nl"], CATALOGUES["fr"]
    refused = text_of(page_of(site, "admin", f"/invoicing/{site.files['BLOCK.txt']['id']}"))
    assert "B500401" in refused and nl["Blocking error"] in refused
    assert fixed_part(nl["The whole sending is blocked: correct the file and send a new one."]) in refused
    assert "whole sending is blocked" not in refused and "nomenclature code" not in refused
    header = text_of(page_of(site, "office", f"/invoicing/{site.files['HEADER.txt']['id']}"))
    assert fixed_part(fr["Refused at reception: {zone}, error {code} — {reason}."]) in header
    assert "Refused at reception" not in header and "invoicing year and month" not in header


def test_the_error_folder_page_shows_the_journals_reasons_translated(site):
    error = site.invoicing_root / "error"
    on_disk = (error / ("CONTROL.txt" + REASON_SUFFIX)).read_text("utf-8")
    assert "is not a valid eFact 920000 sending" in on_disk  # the reason file stays in English
    folders = text_of(page_of(site, "admin", "/admin/folders"))
    nl = CATALOGUES["nl"]
    assert nl["{name} is not a valid eFact 920000 sending:"].format(name="CONTROL.txt") in folders
    assert fixed_part(nl["The marker {marker} arrived without its file {name} (or the file was already picked up "
                         "with another marker). Put the file in toSend first, then its .ok marker."]) in folders
    assert "arrived without its file" not in folders


def test_a_reason_stored_before_message_ids_is_shown_in_english(site):
    assert Translator("nl").reason(None, "920999: Refused at reception (zone 300).\nSee received/") == [
        "920999: Refused at reception (zone 300).", "See received/"]
    assert Translator("fr").reason("not json", "Old reason") == ["Old reason"]
    assert Translator("fr").reason(None, None) == []
