"""The traffic pages: the dashboard, the invoicing files, the insurability consultations, the batch runs.

Lists are read page by page from the journal (newest first, filtered in SQL), so they stay fast
with a year of traffic; a file's feedback messages are read from ``received/`` only on its detail
page, to explain every error per invoice line.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.efact.layout import RECORD_NAMES
from unified_messaging.efact.explain import (
    LETTERS,
    explain_text,
    message_texts,
    zone_error_code_text,
    zone_error_text,
)
from unified_messaging.efact.feedback import FeedbackError, read_feedback
from unified_messaging.invoicing.folders import Folders
from unified_messaging.invoicing.resend import ResendRefused, queue_resend
from unified_messaging.invoicing.store import SHOWN_STATUSES
from unified_messaging.journal.store import NO_UPSTREAM, UPSTREAM_SERVICES
from unified_messaging.web.charts import Series, horizontal_bars, stacked_columns
from unified_messaging.web.context import Page
from unified_messaging.web.figures import DELAY_BUCKETS
from unified_messaging.web.permissions import Permission
from unified_messaging.web.routing import route

log = logging.getLogger(__name__)

FILE_STATUSES = SHOWN_STATUSES
OUTCOMES = ("OK", "ERROR", "FAULT", "REJECTED", "UNAVAILABLE")
SERVICE_NAMES = {"genins": "GenericInsurability", "memberdata": "MemberData"}  # MyCareNet's names, not translated
FEEDBACK_NAMES = {"931000": "acknowledgement", "920098": "detailed check (accepted)",
                  "920099": "detailed check (refused)", "920999": "reception refusal", "920900": "settlement"}
PENDING_STATUSES = ("WAITING", "OK", "ONGOING")  # MyCareNet still has something to say
ERROR_CODES = ("920098", "920099", "920999")  # a 920900 repeats its 920098's errors: not counted twice
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
COUNTED_PAGES = 20  # the consultations are counted up to 20 pages (1,000 at 50 a page), then "more than"


def _month(page: Page) -> str | None:
    month = page.query("month")
    return month if _MONTH.match(month) else None


def _page_number(page: Page) -> int:
    try:
        return max(1, min(int(page.query("page") or 1), 1_000_000))
    except ValueError:
        return 1


def _pages(page: Page, total: int) -> dict[str, Any]:
    size = page.services.config.web.page_size
    number = _page_number(page)
    last = max(1, -(-total // size))
    number = min(number, last)
    return {"number": number, "last": last, "size": size, "offset": (number - 1) * size, "total": total}


def _choice(value: str, choices: tuple[str, ...]) -> str | None:
    value = value.upper()
    return value if value in choices else None


# ------------------------------------------------------------------------------ dashboard

@route("/", permission=Permission.DASHBOARD)
def dashboard(page: Page) -> Response:
    charts: list[dict[str, Any]] = []
    if page.can(Permission.INVOICING):
        charts.extend(_invoicing_charts(page))
    charts.extend(_consultation_charts(page))
    return page.render("dashboard.html", charts=charts)


def _columns_chart(chart_id: str, title: str, first: str, categories: list[str], series: list[Series],
                   values: dict[tuple[str, str], int], empty: str) -> dict[str, Any]:
    """A stacked-columns chart and the same figures as a table (``first`` heads the category column)."""
    return {"id": chart_id, "title": title, "svg": stacked_columns(title, categories, series, values, empty=empty),
            "table": {"head": [first] + [s.label for s in series],
                      "rows": [[c] + [values.get((c, s.key), 0) for s in series] for c in categories]}}


def _bars_chart(chart_id: str, title: str, head: list[str], items: list[tuple[str, int]], key: str,
               empty: str) -> dict[str, Any]:
    return {"id": chart_id, "title": title, "svg": horizontal_bars(title, items, key=key, empty=empty),
            "table": {"head": head, "rows": [list(item) for item in items]}}


def _per_month(rows: list[dict], column: str) -> tuple[list[str], dict[tuple[str, str], int]]:
    months = sorted({r["month"] for r in rows})
    return months, {(r["month"], (r[column] or "WAITING").lower()): r["n"] for r in rows}


def _invoicing_charts(page: Page) -> list[dict[str, Any]]:
    _, store = page._, page.services.invoicing
    months, values = _per_month(store.files_per_status_per_month(months=12), "status")
    charts = [_columns_chart("chart-files", _("Invoicing files per status and month"), _("Month"), months,
                             [Series(s.lower(), _(s)) for s in FILE_STATUSES], values, _("No data"))]
    figures = page.mybox.figures.invoicing(store, ERROR_CODES)
    codes = [c for c in FEEDBACK_NAMES if c in figures.codes]
    counts = {(_(label), f"c{code}"): n for (label, code), n in figures.delays.items()}
    charts.append(_columns_chart("chart-delays", _("Feedback delays after sending"), _("Delay"),
                                 [_(label) for _limit, label in DELAY_BUCKETS],
                                 [Series(f"c{code}", f"{code} {_(FEEDBACK_NAMES[code])}") for code in codes], counts,
                                 _("No data")))
    items = sorted(((f"{key} · {_(LETTERS[key][0]) if key in LETTERS else _('header or summary zone')}", n)
                    for key, n in figures.categories.items() if n), key=lambda item: -item[1])
    charts.append(_bars_chart("chart-errors", _("Invoicing errors by category"), [_("Category"), _("Errors")],
                              items, "nok", _("No data")))
    return charts


def _consultation_charts(page: Page) -> list[dict[str, Any]]:
    _, journal = page._, page.services.journal
    months, values = _per_month(page.mybox.figures.consultations_per_month(journal), "outcome")
    codes = [(r["code"] or _("no code"), r["n"]) for r in journal.consultation_codes(months=12, top=10)]
    return [
        _columns_chart("chart-consultations", _("Insurability consultations per outcome and month"), _("Month"),
                       months, [Series(o.lower(), _(o)) for o in OUTCOMES], values, _("No data")),
        _bars_chart("chart-codes", _("Refused consultations by code"), [_("Code"), _("Consultations")], codes,
                    "error", _("No data")),
    ]


# ------------------------------------------------------------------------------ invoicing

@route("/invoicing", permission=Permission.INVOICING)
def invoicing_files(page: Page) -> Response:
    store = page.services.invoicing
    filters = {"status": _choice(page.query("status"), FILE_STATUSES), "month": _month(page),
               "text": page.query("q")[:100] or None}
    pages = _pages(page, store.count_files(**filters))
    files = store.list_files(**filters, limit=pages["size"], offset=pages["offset"])
    return page.render("invoicing_list.html", files=files, filters=filters, pages=pages, statuses=FILE_STATUSES,
                       months=store.file_months(),
                       live=any(f["shown_status"] in PENDING_STATUSES for f in files))


@route("/invoicing/<int:file_id>", permission=Permission.INVOICING)
def invoicing_file(page: Page, file_id: int) -> Response:
    store = page.services.invoicing
    row = store.file(file_id)
    if row is None:
        return page.render("refused.html", status=404,
                           message=page._("There is no invoicing file #{number}.", number=file_id))
    messages = [_feedback_view(page, message) for message in store.feedback_for(file_id)]
    return page.render("invoicing_file.html", file=row, file_status=row["shown_status"], pending=PENDING_STATUSES,
                       messages=messages, reason=page._.reason(row["reason_text"], row["reason"]),
                       tacks=store.tacks_for(file_id), resent_as=store.resent_as(file_id),
                       resend_of=store.file(row["resend_of"]) if row["resend_of"] else None,
                       feedback_names=FEEDBACK_NAMES)


def _folders(page: Page) -> Folders | None:
    root = page.services.invoicing_root
    return Folders(root) if root else None


def _stored(folder: Path, name: str | None) -> Path | None:
    """``folder/name`` when ``name`` is a plain file name there (never a path leaving the folder)."""
    if not name or Path(name).name != name or name.startswith("."):
        return None
    path = folder / name
    return path if path.is_file() else None


def _feedback_view(page: Page, message: dict) -> dict[str, Any]:
    """One feedback message, read from ``received/`` and explained line by line."""
    folders = _folders(page)
    path = _stored(folders.received, message["received_name"]) if folders else None
    view: dict[str, Any] = {"row": message, "available": path is not None, "lines": [], "records": [],
                            "settlements": [], "zone_errors": []}
    if path is None:
        return view
    try:
        parsed = read_feedback(path.read_bytes())
    except (FeedbackError, ValueError, OSError) as exc:
        view["problem"] = str(exc)
        return view
    say = page._.text
    view["lines"] = [say(line) for line in message_texts(parsed)[:1]]
    view["zone_errors"] = [say(zone_error_text(e.zone, e.code)) for e in parsed.zone_errors]
    for record in parsed.records:
        slots = [(slot.code, say(explain_text(slot))) for slot in record.slots]
        zones = [say(zone_error_code_text(error.zone, error.code)) for error in record.zone_errors]
        if slots or zones:
            view["records"].append({"index": record.index, "type": record.record_type,
                                    "name": RECORD_NAMES.get(record.record_type, ""), "sequence": record.sequence,
                                    "slots": slots, "zones": zones})
    view["settlements"] = list(parsed.settlements)
    view["total"] = parsed.settlement_total
    return view


def _download(path: Path | None, name: str, kind: str, page: Page) -> Response:
    if path is None:
        return page.render("refused.html", status=404,
                           message=page._("This file is no longer in the invoicing folders."))
    return Response(path.read_bytes(), content_type=kind,
                    headers={"Content-Disposition": f'attachment; filename="{mask_ssins_in_text(name)}"'})


@route("/invoicing/<int:file_id>/feedback/<int:feedback_id>", permission=Permission.INVOICING)
def feedback_download(page: Page, file_id: int, feedback_id: int) -> Response:
    message = next((m for m in page.services.invoicing.feedback_for(file_id) if m["id"] == feedback_id), None)
    folders = _folders(page)
    path = _stored(folders.received, message["received_name"]) if message and folders else None
    return _download(path, message["received_name"] if message else "", "text/plain; charset=latin-1", page)


@route("/invoicing/<int:file_id>/feedback/<int:feedback_id>/probative", permission=Permission.INVOICING)
def feedback_probative(page: Page, file_id: int, feedback_id: int) -> Response:
    message = next((m for m in page.services.invoicing.feedback_for(file_id) if m["id"] == feedback_id), None)
    folders = _folders(page)
    path = _stored(folders.probative, message["probative_name"]) if message and folders else None
    return _download(path, message["probative_name"] or "" if message else "", "application/xml", page)


@route("/invoicing/<int:file_id>/tack/<int:tack_id>/probative", permission=Permission.INVOICING)
def tack_probative(page: Page, file_id: int, tack_id: int) -> Response:
    tack = next((t for t in page.services.invoicing.tacks_for(file_id) if t["id"] == tack_id), None)
    folders = _folders(page)
    path = _stored(folders.probative, tack["probative_name"]) if tack and folders else None
    return _download(path, tack["probative_name"] or "" if tack else "", "application/xml", page)


@route("/invoicing/<int:file_id>/resend", methods=("POST",), permission=Permission.INVOICING)
def invoicing_resend(page: Page, file_id: int) -> Response:
    upload = page.request.files.get("corrected")
    root = page.services.invoicing_root
    if upload is None or not upload.filename:
        page.flash("error", page._("Choose the corrected eFact file to send."))
    elif root is None:
        page.flash("error", page._("Invoicing is not enabled on this gateway ([invoicing] enabled)."))
    else:
        try:
            queued = queue_resend(page.services.invoicing, root, file_id, upload.filename, upload.read())
        except ResendRefused as exc:
            page.flash("error", mask_ssins_in_text(str(exc)))
        else:
            page.flash("ok", page._("{name} is queued as the corrected version of {original}; it appears in the "
                                    "list as soon as the gateway takes it.", name=mask_ssins_in_text(queued.name),
                                    original=mask_ssins_in_text(queued.original_name)))
    return page.redirect("invoicing_file", file_id=file_id)


# ------------------------------------------------------------------------------ insurability and batch

@route("/insurability", permission=Permission.INSURABILITY)
def consultations(page: Page) -> Response:
    journal = page.services.journal
    typed = page.query("q")
    if mask_ssins_in_text(typed) != typed:
        # A full national number finds the same (masked) rows; keep it out of the page, links and history.
        query = {k: v for k, v in page.request.args.items() if k != "page"}
        return page.redirect("consultations", {**query, "q": mask_ssins_in_text(typed)})
    interface, service = page.query("interface"), page.query("service")
    filters = {"outcome": _choice(page.query("outcome"), OUTCOMES), "month": _month(page),
               "text": page.query("q")[:100] or None,
               "interface": interface if interface in ("soap", "folder", "batch") else None,
               "service": service if service in (*UPSTREAM_SERVICES, NO_UPSTREAM) else None}
    found = journal.consultation_page(**filters, number=_page_number(page), size=page.services.config.web.page_size,
                                      counted=COUNTED_PAGES * page.services.config.web.page_size)
    pages = {"number": found.number, "last": found.last, "size": found.size, "total": found.total,
             "more": found.more}
    rows = found.rows
    return page.render("consultations.html", rows=rows, filters=filters, pages=pages, outcomes=OUTCOMES,
                       months=journal.consultation_months(), services=SERVICE_NAMES, no_service=NO_UPSTREAM)


@route("/insurability/<int:consultation_id>", permission=Permission.INSURABILITY)
def consultation(page: Page, consultation_id: int) -> Response:
    row = page.services.journal.consultation(consultation_id)
    if row is None:
        return page.render("refused.html", status=404,
                           message=page._("There is no consultation #{number}.", number=consultation_id))
    return page.render("consultation.html", c=row, services=SERVICE_NAMES, no_service=NO_UPSTREAM)


@route("/batch", permission=Permission.BATCH)
def batch_runs(page: Page) -> Response:
    journal = page.services.journal
    job = page.query("job")
    jobs = journal.batch_jobs()
    filters = {"job": job if job in jobs else None,
               "status": page.query("status") if page.query("status") in ("done", "rejected", "stopped") else None}
    pages = _pages(page, journal.count_batch_runs(**filters))
    rows = journal.batch_runs(**filters, limit=pages["size"], offset=pages["offset"])
    return page.render("batch_runs.html", rows=rows, filters=filters, pages=pages, jobs=jobs)

