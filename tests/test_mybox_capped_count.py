"""The consultations list counts its matches up to 20 pages only, and says so (issue #16 point 5).

Counting every match of a filter reads every matching row (every row for a text the index does not
serve): on a year of traffic that count was most of the list's time. Mybox counts up to
``COUNTED_PAGES`` pages (``max(that, the page asked)``), says "more than" past it in the user's
language, and pages exactly as before: the same rows, in the same order, page after page through
the "Older" links, and the exact count once the page asked is within the count.
A real gateway (``[web] page_size = 2``: counted up to 40), a real SQLite journal, HTTP as a browser.
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.test_journal_queries import BASE
from tests.test_web_i18n import _html
from tests.test_web_pages import section, text_of
from tests.web_support import login, post_form, start_mybox
from unified_messaging.web.i18n import CATALOGUES
from unified_messaging.web.views.traffic import COUNTED_PAGES

SIZE = 2
COUNTED = COUNTED_PAGES * SIZE
WRITTEN = COUNTED + 7  # 47: past the bound, and a last page of one row


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    stack = start_mybox(tmp_path_factory.mktemp("capped-count"), invoicing={"enabled": False}, web={"page_size": SIZE})
    journal = stack.gateway.journal
    for number in range(WRITTEN):
        journal.record_consultation(replace(BASE, at=f"2026-11-{1 + number % 28:02d}T10:{number % 60:02d}:00Z",
                                            audit_reference=f"CAP-{number:03d}",
                                            outcome="OK" if number % 3 else "ERROR"))
    yield stack, login(stack, "nurse")
    stack.gateway.stop()


def references(page: str) -> list[str]:
    body = section(page, "consultations-table").split("<tbody>")[1]
    return re.findall(r"CAP-\d{3}", body)


def test_a_count_past_twenty_pages_says_more_than_and_pages_as_before(site):
    stack, session = site
    everything = [row["audit_reference"] for row in stack.gateway.journal.find_consultations(limit=1000)]
    first = session.get(stack.url("/insurability")).text
    assert f"More than {COUNTED} consultations (counted no further)." in text_of(first)
    assert f"Page 1 of more than {COUNTED_PAGES}" in text_of(first) and 'id="page-next"' in first
    seen, page, number = [], first, 1
    while True:  # the "Older" links walk every row once, newest first, past the counted pages
        seen += references(page)
        older = re.search(r'<a id="page-next" href="([^"]+)"', page)
        if not older:
            break
        number += 1
        page = session.get(stack.url("") + older.group(1).replace("&amp;", "&")[len("/unified-messaging/mybox"):]).text
        counted_past = number * SIZE >= WRITTEN  # the page asked is past the bound: counted to the end
        assert (f"{WRITTEN} consultation(s)." in text_of(page)) == counted_past, number
        assert (f"Page {number} of {-(-WRITTEN // SIZE)}" in text_of(page)) == counted_past, number
    assert seen == everything and number == -(-WRITTEN // SIZE)
    beyond = session.get(stack.url("/insurability"), params={"page": 999}).text  # past the last: the last
    assert references(beyond) == everything[-1:] and f"Page {number} of {number}" in text_of(beyond)


def test_a_filter_under_the_bound_is_counted_exactly(site):
    stack, session = site
    errors = [row["audit_reference"] for row in stack.gateway.journal.find_consultations(outcome="ERROR", limit=1000)]
    assert len(errors) < COUNTED
    page = session.get(stack.url("/insurability"), params={"outcome": "ERROR"}).text
    assert f"{len(errors)} consultation(s)." in text_of(page) and "counted no further" not in page
    assert references(page) == errors[:SIZE] and f"Page 1 of {-(-len(errors) // SIZE)}" in text_of(page)
    text = session.get(stack.url("/insurability"), params={"q": "cap-0"}).text  # 50 would match: 40 counted
    assert f"More than {COUNTED} consultations" in text_of(text) and references(text) == everything_with(stack, "CAP-0")


def everything_with(stack, text: str) -> list[str]:
    return [row["audit_reference"] for row in stack.gateway.journal.find_consultations(text=text, limit=SIZE)]


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_the_capped_count_is_said_in_the_user_s_language(site, language):
    stack, _session = site
    session = login(stack, "office")
    try:
        assert post_form(session, stack, "/account", "/account/language", {"language": language}).status_code == 200
        page = session.get(stack.url("/insurability")).text
        said = CATALOGUES[language]["More than {count} consultations (counted no further). Patients are shown masked."]
        assert _html(said.format(count=COUNTED)) in page
        pager = CATALOGUES[language]["Page {number} of more than {last}"]
        assert _html(pager.format(number=1, last=COUNTED_PAGES)) in page
    finally:
        post_form(session, stack, "/account", "/account/language", {"language": "en"})
