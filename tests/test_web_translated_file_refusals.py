"""Why a toQuery or batch file was refused, in the reader's language (#14 point 6).

These refusals have no journal row with message ids: a toQuery file goes to ``error/`` with an English
``.reason`` file, a batch run keeps its English reason.  Each is written from a registered text, so Mybox
recognises the English line (``texts.recognise``) and shows it in Dutch or French.  A real gateway with
its toQuery folders, a real batch run, the real pages.
"""
from __future__ import annotations

import string

import pytest

from tests.invoicing_support import wait_for
from tests.test_web_translated_reasons import fixed_part, text_of
from tests.test_web_translated_reasons import page_of as page_html
from tests.web_support import login, start_mybox
from unified_messaging.folders.watcher import CRASHED, MARKER_ALONE
from unified_messaging.insurability.batch import BatchRunner
from unified_messaging.insurability.batch_input import EMPTY, MISSING_COLUMNS, NOT_IN_ENCODING, UNKNOWN_COLUMNS
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.insurability.folder import IN_NAMESPACE, NO_REQUEST, TOO_BIG, UNREADABLE, WRONG_ROOT
from unified_messaging.simulator.devpki import LAB_NIHII
from unified_messaging.texts import TEMPLATES, VERBATIM, recognise, text
from unified_messaging.web.i18n import CATALOGUES, Translator, load_texts


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translated-refusals")
    stack = start_mybox(folder, folders={"insurability": True})
    try:
        stack.gateway.securespace.set_language("admin", "nl")
        stack.gateway.securespace.set_language("office", "fr")
        to_query = stack.gateway.config.insurability_root / "toQuery"
        (to_query / "wrong-root.xml").write_bytes(b'<Other xmlns="urn:somewhere"/>')
        (to_query / "empty.xml").write_bytes(b'<?xml version="1.0"?><unreadable')
        for name in ("wrong-root.xml", "empty.xml"):
            (to_query / f"{name}.ok").write_bytes(b"")
        wait_for(lambda: len(list((stack.gateway.config.insurability_root / "error").glob("*.xml"))) == 2,
                 timeout=30, what="the two toQuery files in error/")
        batch = folder / "batch"
        for name in ("in", "out", "archive", "error"):
            (batch / name).mkdir(parents=True)
        (batch / "batch.properties").write_text(
            "mycarenet.connection=SSO\ninput.folder=in\noutput.folder=out\narchive.folder=archive\n"
            f"error.folder=error\ncareprovider.nihii={LAB_NIHII}\ncareprovider.quality=labo\n", encoding="latin-1")
        job = load_batch_job(batch / "batch.properties")
        (job.input_folder / "a-columns.csv").write_text("ssin;date;reference\n")
        (job.input_folder / "b-empty.csv").write_text("")
        summary = BatchRunner(job, stack.gateway.insurability, journal=stack.gateway.journal).run()
        assert [f.status for f in summary.files] == ["rejected", "rejected"]
        stack.sessions = {user: login(stack, user) for user in ("admin", "office")}
        yield stack
    finally:
        stack.gateway.stop()


def page_of(site, user: str, path: str) -> str:
    return text_of(page_html(site, user, path))


def test_the_error_folder_shows_toquery_refusals_in_the_users_language(site):
    error = site.gateway.config.insurability_root / "error"
    on_disk = (error / "wrong-root.xml.reason.txt").read_text("utf-8")
    assert on_disk.startswith("The root element is Other (namespace urn:somewhere); expected")  # English on disk
    dutch = page_of(site, "admin", "/admin/folders")
    site.gateway.securespace.set_language("admin", "fr")
    try:
        french = page_of(site, "admin", "/admin/folders")
    finally:
        site.gateway.securespace.set_language("admin", "nl")
    assert fixed_part(CATALOGUES["nl"][WRONG_ROOT]) in dutch and "The root element is" not in dutch
    assert "Other (namespace urn:somewhere)" in dutch  # the nested text, kept as Dutch writes it
    assert fixed_part(CATALOGUES["fr"][WRONG_ROOT]) in french and "Other (espace de noms urn:somewhere)" in french
    assert fixed_part(CATALOGUES["fr"][UNREADABLE]) in french and "The file cannot be read" not in french


def test_the_batch_page_shows_batch_refusals_in_the_users_language(site):
    french = page_of(site, "office", "/batch")
    assert fixed_part(CATALOGUES["fr"][UNKNOWN_COLUMNS]) in french and "'date'" in french
    assert CATALOGUES["fr"][EMPTY] in french
    assert "unknown column(s)" not in french and "The file is empty" not in french
    assert any("unknown column(s) 'date'" in (r["reason"] or "") for r in site.gateway.journal.batch_runs())


@pytest.mark.parametrize("template, values", [
    (TOO_BIG, {"size": 9000001, "limit": 5242880}),
    (NO_REQUEST, {"request": "SingleInsurabilityRequest", "root": "InsurabilityRequests"}),
    (UNREADABLE, {"problem": "the document is not well-formed (line 1)"}),
    (MARKER_ALONE, {"marker": "a.xml.ok", "payload": "a.xml", "folder": "/data/toQuery"}),
    (CRASHED, {"error": "ValueError: boom"}),
    (NOT_IN_ENCODING, {"encoding": "UTF-8", "byte": "0xe9", "line": 2}),
    (MISSING_COLUMNS, {"columns": "period_start", "example": "ssin;period_start;period_end;reference"}),
])
def test_each_refusal_reads_back_from_its_english_text(template, values):
    english = str(text(template, **values))
    found = recognise(english)
    assert found is not None and found.template == template
    assert {key: str(value) for key, value in found.values.items()} == {k: str(v) for k, v in values.items()}
    for language in ("nl", "fr"):
        assert Translator(language).english(english) == [CATALOGUES[language][template].format(**values)]


def test_a_nested_text_is_recognised_too():
    english = str(text(WRONG_ROOT, found=str(text(IN_NAMESPACE, local="Other", namespace="urn:x")),
                       root="InsurabilityRequests", request="SingleInsurabilityRequest", namespace="urn:be"))
    assert "(espace de noms urn:x)" in Translator("fr").english(english)[0]


def test_lines_that_are_no_registered_text_stay_as_they_are():
    assert Translator("nl").english("See received/\n920999: something") == ["See received/", "920999: something"]
    assert Translator("en").english("The file is empty: it needs a header line, then one line per patient.") == [
        "The file is empty: it needs a header line, then one line per patient."]
    assert Translator("fr").english(None) == []


def test_every_registered_text_is_told_apart_from_the_others():
    """Filled with distinct values, each registered template is recognised as itself: no two templates
    can be mistaken for each other when Mybox reads an English line back."""
    load_texts()
    formatter = string.Formatter()
    mistaken = {}
    for template in sorted(TEMPLATES - {VERBATIM}):
        literal = "".join(part for part, *_ in formatter.parse(template))
        if not any(c.isalpha() for c in literal):
            continue  # placeholders and punctuation only: never read back (it would match anything)
        names = dict.fromkeys(name for _, name, _, _ in formatter.parse(template) if name)
        found = recognise(template.format(**{name: f"V{i}x" for i, name in enumerate(names)}))
        if found is None or found.template != template:
            mistaken[template] = found and found.template
    assert mistaken == {}


def test_amounts_inside_findings_use_each_languages_decimal_mark():
    from unified_messaging.efact.values import euros

    assert str(euros(-1234)) == "-12.34 EUR"  # the .reason file and the command line
    assert Translator("nl").text(euros(-1234)) == "-12,34 EUR"
    assert Translator("fr").text(euros(5)) == "0,05 EUR"
