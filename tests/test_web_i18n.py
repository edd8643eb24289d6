"""Mybox speaks English, Dutch and French: every text shown has a Dutch and a French translation.

The extractor below collects every msgid (the English text given to ``_()``) from the templates
and the web code, plus the texts translated at display time (roles, statuses, mandate states and
actions, feedback names, eFact error categories and record names, folder labels, the secure
space's refusal catalogue).  Run this file as a script to list the msgids missing from a catalogue:

    python -m tests.test_web_i18n          # missing and stale msgids, per language
    python -m tests.test_web_i18n --all    # every msgid
"""
from __future__ import annotations

import ast
import re
import string
import sys
from pathlib import Path

import jinja2
from jinja2 import nodes

import unified_messaging.web as web_package
from unified_messaging.web.i18n import CATALOGUES, LANGUAGES, Translator

WEB = Path(web_package.__file__).resolve().parent
TEMPLATES = WEB / "templates"
NOT_SCANNED = {"i18n.py"}
BATCH_RESULTS = ("done", "rejected", "stopped")  # the batch runs page's result filter (batch_runs.html)
NNBSP = "\u202f"


# ------------------------------------------------------------------------------ the extractor

def _is_underscore(node: nodes.Node) -> bool:
    return (isinstance(node, nodes.Name) and node.name == "_") or (
        isinstance(node, nodes.Getattr) and node.attr == "_")


def template_msgids(source: str) -> set[str]:
    """The string literals given to ``_()`` (or ``page._()``) in one Jinja template.

    The first argument's literals count, also inside an expression (``_(r.status or "WAITING")``);
    keyword arguments (``_("Page {number}", number=...)``) only fill placeholders.
    """
    found: set[str] = set()
    for call in jinja2.Environment().parse(source).find_all(nodes.Call):
        if _is_underscore(call.node) and call.args:
            first = call.args[0]
            consts = [first] if isinstance(first, nodes.Const) else list(first.find_all(nodes.Const))
            found.update(c.value for c in consts if isinstance(c.value, str) and c.value)
    return found


def python_msgids(source: str) -> set[str]:
    """The first arguments of ``_("...")`` and ``page._("...")`` calls in Python code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "_") or (isinstance(func, ast.Attribute) and func.attr == "_"):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
                found.add(first.value)
    return found


def folder_labels(source: str) -> set[str]:
    """The folder labels of ``views/admin.py``'s ``folders`` page (shown as ``_(p.label)``).

    They are string constants like ``"Invoicing: to send"`` and f-strings like
    ``f"Insurability: {name}"`` inside ``for name in ("toQuery", ...)``.
    """
    tree = ast.parse(source)
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "folders")
    labels: set[str] = set()
    loops: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(function):
        if (isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple)
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.iter.elts)):
            loops[node.target.id] = tuple(e.value for e in node.iter.elts)
    in_fstrings = {id(part) for node in ast.walk(function) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(function):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings
                and re.match(r"^[A-Z][a-z]+: \S", node.value)):
            labels.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            parts = node.values
            if (len(parts) == 2 and isinstance(parts[0], ast.Constant) and isinstance(parts[1], ast.FormattedValue)
                    and isinstance(parts[1].value, ast.Name) and parts[1].value.id in loops):
                labels.update(parts[0].value + name for name in loops[parts[1].value.id])
    return labels


def dynamic_msgids() -> set[str]:
    """Texts chosen at run time and translated when shown."""
    from unified_messaging.efact.layout import RECORD_NAMES
    from unified_messaging.efact.explain import LETTERS
    from unified_messaging.securespace.catalogue import CATALOGUE
    from unified_messaging.securespace.check import ACTIVE, NOT_ACTIVE, NOT_OFFERED, NOT_OFFERED_NOTE
    from unified_messaging.securespace.models import HISTORY_ACTIONS, MandateState, Role
    from unified_messaging.web.views.admin import MANDATE_ACTIONS
    from unified_messaging.web.views.traffic import DELAY_BUCKETS, FEEDBACK_NAMES, FILE_STATUSES, OUTCOMES

    found = {r.value for r in Role} | set(FILE_STATUSES) | set(OUTCOMES) | set(BATCH_RESULTS)
    found |= {s.value for s in MandateState} | set(MANDATE_ACTIONS) | set(HISTORY_ACTIONS)
    found |= {ACTIVE, NOT_ACTIVE, NOT_OFFERED, NOT_OFFERED_NOTE}
    found |= set(FEEDBACK_NAMES.values()) | {title for title, _consequence in LETTERS.values()}
    found |= set(RECORD_NAMES.values()) | {label for _limit, label in DELAY_BUCKETS}
    found |= {entry.cause for entry in CATALOGUE.values()} | {entry.remedy for entry in CATALOGUE.values()}
    found |= folder_labels((WEB / "views" / "admin.py").read_text("utf-8"))
    found |= text_templates()
    return found


def text_templates() -> set[str]:
    """The message ids of texts built outside the web layer and translated when shown: eFact explanations,
    validator findings, the gateway's invoicing refusal reasons and why a toQuery or batch file was refused
    (registered with ``texts.message`` in ``i18n.TEXT_MODULES``)."""
    from unified_messaging.texts import TEMPLATES, VERBATIM
    from unified_messaging.web.i18n import load_texts

    load_texts()
    return TEMPLATES - {VERBATIM}


def sources() -> dict[str, set[str]]:
    """Every msgid, with where it was found (a file relative to the web package, or ``dynamic``)."""
    where: dict[str, set[str]] = {}
    for path in sorted(TEMPLATES.rglob("*.html")):
        for msgid in template_msgids(path.read_text("utf-8")):
            where.setdefault(msgid, set()).add(str(path.relative_to(WEB)))
    for path in sorted(WEB.rglob("*.py")):
        if path.name in NOT_SCANNED:
            continue
        for msgid in python_msgids(path.read_text("utf-8")):
            where.setdefault(msgid, set()).add(str(path.relative_to(WEB)))
    for msgid in dynamic_msgids():
        where.setdefault(msgid, set()).add("dynamic")
    return where


def msgids() -> set[str]:
    return set(sources())


def placeholders(text: str) -> set[str]:
    return {name for _literal, name, _spec, _conversion in string.Formatter().parse(text) if name is not None}


# ------------------------------------------------------------------------------ the catalogues

def test_the_extractor_finds_texts_of_every_kind():
    where = sources()
    for expected in ("Dashboard", "Page {number} of {last}", "WAITING", "message", "accept-mandataire",
                     "Invoicing: to send", "Insurability: toQuery", "Not active", "administrator",
                     "The secure space has not been created yet."):
        assert expected in where, expected
    assert "{name} is not a valid eFact 920000 sending:" in where  # a refusal reason
    assert "Refused at reception: {zone}, error {code} — {reason}." in where  # a feedback explanation
    places = set().union(*where.values())
    for place in ("templates/base.html", "views/traffic.py", "views/admin.py", "views/account.py", "app.py",
                  "dynamic"):
        assert place in places, place
    assert len(where) > 250


def test_every_text_has_a_dutch_and_a_french_translation():
    where = sources()
    missing = {language: sorted(set(where) - set(CATALOGUES[language])) for language in ("nl", "fr")}
    report = "\n".join(f"  {language}: {msgid!r}  ({', '.join(sorted(where[msgid]))})"
                       for language, ids in missing.items() for msgid in ids)
    assert not report, "texts without a translation in unified_messaging/web/locale/<language>/LC_MESSAGES/mybox.po:\n" + report


def test_no_translation_is_stale():
    found = msgids()
    stale = {language: sorted(set(CATALOGUES[language]) - found) for language in ("nl", "fr")}
    report = "\n".join(f"  {language}: {msgid!r}" for language, ids in stale.items() for msgid in ids)
    assert not report, "translations of texts no longer used anywhere (remove them):\n" + report


def test_translations_keep_the_placeholders_and_are_not_empty():
    problems = []
    for language in ("nl", "fr"):
        for msgid, text in CATALOGUES[language].items():
            if not text.strip():
                problems.append(f"  {language}: {msgid!r} is translated by an empty text")
            elif placeholders(text) != placeholders(msgid):
                problems.append(f"  {language}: {msgid!r} -> {text!r}: placeholders "
                                f"{sorted(placeholders(text))} instead of {sorted(placeholders(msgid))}")
            else:
                text.format(**{name: "x" for name in placeholders(msgid)})  # a stray brace would raise here
    assert not problems, "\n".join(problems)


def test_the_catalogues_cover_exactly_the_languages_of_mybox():
    assert set(CATALOGUES) == set(LANGUAGES) - {"en"}


def test_amounts_and_numbers_are_written_the_way_each_language_writes_them():
    en, nl, fr = Translator("en"), Translator("nl"), Translator("fr")
    assert en.euros(123456) == "€1,234.56"
    assert en.euros(-5) == "-€0.05"
    assert nl.euros(123456) == f"1{NNBSP}234,56 €"
    assert fr.euros(123456789) == f"1{NNBSP}234{NNBSP}567,89 €"
    assert fr.euros(-100) == "-1,00 €"
    assert nl.euros(None) == "" and en.euros(None) == ""
    assert en.number(1234567) == "1,234,567"
    assert nl.number(1234567) == f"1{NNBSP}234{NNBSP}567" == fr.number(1234567)
    assert Translator("de").language == "en"
    assert nl("Page {number} of {last}", number=2, last=7) == "Pagina 2 van 7"
    assert fr("Page {number} of {last}", number=2, last=7) == "Page 2 sur 7"
    assert en("Page {number} of {last}", number=2, last=7) == "Page 2 of 7"


# ------------------------------------------------------------------------------ the real pages

def test_mybox_pages_are_shown_in_the_user_s_language(tmp_path):
    from tests.web_support import login, post_form, start_mybox

    stack = start_mybox(tmp_path)
    try:
        session = login(stack, "admin")
        nav = ("Dashboard", "Invoicing", "Insurability", "Batch runs", "Certificates", "Mandates",
               "Administration", "Log out")
        for language in ("nl", "fr", "en"):
            answer = post_form(session, stack, "/account", "/account/language", {"language": language})
            assert answer.status_code == 200, answer.text[:500]
            expected = [CATALOGUES[language].get(text, text) if language != "en" else text
                        for text in ("Language changed.", "Your settings")]
            for text in expected:
                assert _html(text) in answer.text, (language, text)
            dashboard = session.get(stack.url("/"))
            invoicing = session.get(stack.url("/invoicing"))
            for page, texts in ((dashboard, nav + ("The last twelve months of traffic.",
                                                   "Invoicing files per status and month",
                                                   "Times are in Belgian time (Europe/Brussels).")),
                                (invoicing, ("Invoicing files", "All statuses", "All months", "Filter",
                                             "Status", "MyCareNet reference", "Accepted", "Rejected",
                                             "No file matches.", "WAITING", "DONE"))):
                assert page.status_code == 200
                assert f'<html lang="{language}">' in page.text
                for text in texts:
                    shown = CATALOGUES[language][text] if language != "en" else text
                    assert _html(shown) in page.text, (language, text, shown)
            if language != "en":  # and no English left where a translation exists
                for english in ("Log out", "Invoicing files per status and month", "All statuses"):
                    assert f">{english}<" not in dashboard.text + invoicing.text, (language, english)
        assert "<html lang=\"en\">" in session.get(stack.url("/")).text
    finally:
        stack.gateway.stop()


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace(
        "'", "&#39;")


# ------------------------------------------------------------------------------ as a script

def main(argv: list[str]) -> int:
    where = sources()
    if "--all" in argv:
        for msgid in sorted(where):
            print(repr(msgid), "  #", ", ".join(sorted(where[msgid])))
        print(len(where), "msgids")
        return 0
    status = 0
    for language in ("nl", "fr"):
        for msgid in sorted(set(where) - set(CATALOGUES[language])):
            print(f"missing {language}: {msgid!r}  # {', '.join(sorted(where[msgid]))}")
            status = 1
        for msgid in sorted(set(CATALOGUES[language]) - set(where)):
            print(f"stale {language}: {msgid!r}")
            status = 1
    print(len(where), "msgids")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ------------------------------------------------------------------------------ catalogues, login, times

def test_the_catalogues_are_gettext_files_that_babel_reads_whole():
    from babel.messages.pofile import read_po

    from unified_messaging.web.i18n import LOCALE

    for language in ("nl", "fr"):
        path = LOCALE / language / "LC_MESSAGES" / "mybox.po"
        with path.open("rb") as stream:
            catalogue = read_po(stream, locale=language)
        assert str(catalogue.locale) == language
        entries = [m for m in catalogue if m.id]
        assert len(entries) == len(CATALOGUES[language]) > 250  # nothing fuzzy, nothing left untranslated
        assert not [m.id for m in entries if m.fuzzy or not m.string]


def test_times_are_shown_in_belgian_time_summer_and_winter():
    en = Translator("en")
    assert en.when("2026-07-01T12:00:00.000+00:00") == "2026-07-01 14:00"
    assert en.when("2026-12-01T12:00:00.000+00:00") == "2026-12-01 13:00"
    assert en.when("2026-03-29T00:59:59+00:00") == "2026-03-29 01:59"  # the night the clocks go forward
    assert en.when("2026-03-29T01:00:00+00:00") == "2026-03-29 03:00"
    assert en.when("2026-12-01") == "2026-12-01" and en.when(None) == "" and en.when("") == ""


def test_the_login_page_offers_the_languages_and_follows_the_browser(tmp_path):
    import requests

    from tests.web_support import login, start_mybox

    stack = start_mybox(tmp_path)
    try:
        dutch = requests.get(stack.url("/login"), headers={"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"}, timeout=10)
        assert '<html lang="nl">' in dutch.text and _html(CATALOGUES["nl"]["Log in to Mybox"]) in dutch.text
        assert 'hreflang="fr"' in dutch.text and 'href="/unified-messaging/mybox/login?lang=fr"' in dutch.text
        browser = requests.Session()
        french = browser.get(stack.url("/login?lang=fr"), headers={"Accept-Language": "nl"}, timeout=10)
        assert '<html lang="fr">' in french.text and _html(CATALOGUES["fr"]["Log in to Mybox"]) in french.text
        again = browser.get(stack.url("/login"), headers={"Accept-Language": "nl"}, timeout=10)
        assert '<html lang="fr">' in again.text  # the choice is remembered over the browser's preference
        unknown = requests.get(stack.url("/login?lang=de"), timeout=10)
        assert '<html lang="en">' in unknown.text and "mybox_language" not in unknown.headers.get("Set-Cookie", "")
        # once logged in, the user's own language setting (English here) wins
        session = login(stack, "admin")
        session.cookies.set("mybox_language", "fr")
        assert '<html lang="en">' in session.get(stack.url("/")).text
    finally:
        stack.gateway.stop()


def test_mandate_history_and_the_upload_limit_are_translated(tmp_path):
    import requests

    from tests.support import active_mandate
    from tests.web_support import login, post_form, start_mybox

    stack = start_mybox(tmp_path, web={"max_upload_bytes": 1024})
    try:
        mandate = active_mandate(stack.gateway.securespace)
        session = login(stack, "admin")
        post_form(session, stack, "/account", "/account/language", {"language": "nl"})
        page = session.get(stack.url(f"/mandates/{mandate.id}")).text
        for action in ("propose", "accept by mandant", "accept by mandataire"):
            assert f"<td>{_html(CATALOGUES['nl'][action])}</td>" in page, action
            assert f"<td>{action}</td>" not in page
        limit_text = "The upload is larger than [web] max_upload_bytes ({limit} bytes): send a smaller file."
        session.headers["Accept-Language"] = "fr"  # the user's own setting (Dutch) wins over the browser
        too_big = post_form(session, stack, "/account", "/account/language", {"language": "x" * 200_000})
        assert too_big.status_code == 413
        assert too_big.text.strip() == CATALOGUES["nl"][limit_text].format(limit=1024)
        visitor = login(stack, "office")  # in English, with a French browser
        visitor.headers["Accept-Language"] = "fr"
        too_big = post_form(visitor, stack, "/account", "/account/language", {"language": "x" * 200_000})
        assert too_big.status_code == 413 and too_big.text.strip() == limit_text.format(limit=1024)
        browser = requests.Session()
        browser.headers["Accept-Language"] = "fr"
        anonymous = post_form(browser, stack, "/login", "/login", {"login": "x" * 200_000})
        assert anonymous.status_code == 413  # before login: the browser's language
        assert anonymous.text.strip() == CATALOGUES["fr"][limit_text].format(limit=1024)
    finally:
        stack.gateway.stop()
