"""Reading a batch input file: its encoding, its header, and each line as an insurability question.

A file that cannot be used at all raises ``FileRejected`` (it goes to the error folder with its
reason); a line that cannot be asked raises ``LineProblem`` (its error goes on its output line).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.contract_xml import CONTACT_TYPES, REQUEST_TYPES
from unified_messaging.texts import message, text

INPUT_COLUMNS = ("ssin", "mutuality", "registration_number", "period_start", "period_end",
                 "contact_type", "request_type", "reference", "nihii", "quality")


# Why a batch input file was refused (registered texts: Mybox shows them in the user's language).
NOT_IN_ENCODING = message("The file is not written in {encoding} (file.encoding): byte {byte} on line {line} cannot "
                          "be read. Save the file as {encoding}, or set file.encoding to the encoding it is written "
                          "in (for example ISO-8859-1 or Cp1252).")
UNKNOWN_COLUMNS = message("The header line has unknown column(s) {unknown}; the columns, separated by {separator} "
                          "(csv.separator), can be: {expected}.")
TWICE = message("The header line names {columns} twice.")
MISSING_COLUMNS = message("The header line lacks the column(s) {columns}. A header line such as {example} comes "
                          "first.")
EMPTY = message("The file is empty: it needs a header line, then one line per patient.")


class FileRejected(Exception):
    """The whole input file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Line:
    """One input record: its number in the file (1 = first after the header) and its fields."""

    number: int
    fields: list[str]


def decode(data: bytes, encoding: str) -> str:
    try:
        decoded = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRejected(str(text(NOT_IN_ENCODING, encoding=encoding, byte=f"0x{data[exc.start]:02x}",
                                    line=line))) from None
    return decoded[1:] if decoded.startswith("\ufeff") else decoded


def read_header(header: list[str], job: BatchJob) -> list[str]:
    """The lower-case column names; raises ``FileRejected`` when they cannot describe a request."""
    names = [h.strip().lower() for h in header]
    expected = job.separator.join(INPUT_COLUMNS)
    unknown = [h for h in names if h not in INPUT_COLUMNS]
    if unknown or not names:
        raise FileRejected(str(text(UNKNOWN_COLUMNS, unknown=", ".join(repr(u) for u in unknown) or "(none)",
                                    separator=repr(job.separator), expected=expected)))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FileRejected(str(text(TWICE, columns=", ".join(duplicates))))
    missing = []
    if "period_start" not in names:
        missing.append("period_start")
    if "ssin" not in names and not {"mutuality", "registration_number"} <= set(names):
        missing.append("ssin (or mutuality and registration_number)")
    if "nihii" not in names and not job.nihii:
        missing.append("nihii (or careprovider.nihii in the batch.properties)")
    if "quality" not in names and not job.quality:
        missing.append("quality (or careprovider.quality in the batch.properties)")
    if missing:
        raise FileRejected(str(text(MISSING_COLUMNS, columns=", ".join(missing),
                                    example=job.separator.join(("ssin", "period_start", "period_end", "reference")))))
    return names


class LineProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_date(text: str, column: str) -> date:
    text = text.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text.replace("-", "").isdigit() and text.isascii():
        try:  # the usual YYYY-MM-DD without strptime (2 us instead of 7); what it refuses goes below
            return date(int(text[:4]), int(text[5:7]), int(text[8:]))
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise LineProblem("UM-DATE", f"{column} = '{text}' is not a date: write it as YYYY-MM-DD (or DD/MM/YYYY).")


def query_of(line: Line, columns: list[str], job: BatchJob) -> InsurabilityQuery:
    if len(line.fields) != len(columns):
        raise LineProblem("UM-CSV", f"The line has {len(line.fields)} field(s) where the header has {len(columns)}.")
    row = {name: value.strip() for name, value in zip(columns, line.fields)}
    if not row.get("period_start"):
        raise LineProblem("UM-DATE", "period_start is empty: every line needs the first day of the period.")
    start = parse_date(row["period_start"], "period_start")
    end = parse_date(row["period_end"], "period_end") if row.get("period_end") else start
    contact = {k.lower(): v for k, v in CONTACT_TYPES.items()}.get((row.get("contact_type") or "ambulatory").lower())
    if contact is None:
        raise LineProblem("UM-VALUE", f"contact_type = '{row['contact_type']}' is not known: use one of "
                          + ", ".join(CONTACT_TYPES) + ".")
    request = {k.lower(): v for k, v in REQUEST_TYPES.items()}.get((row.get("request_type") or "information").lower())
    if request is None:
        raise LineProblem("UM-VALUE", f"request_type = '{row['request_type']}' is not known: use one of "
                          + ", ".join(REQUEST_TYPES) + ".")
    reference = row.get("reference") or None
    if reference and len(reference) > 25:
        raise LineProblem("UM-VALUE", "reference has more than 25 characters.")
    return InsurabilityQuery(
        care_provider=CareProvider(nihii=row.get("nihii") or job.nihii or "",
                                   quality=(row.get("quality") or job.quality or "").lower()),
        period_start=start, period_end=end,
        ssin=row.get("ssin") or None, mutuality=row.get("mutuality") or None,
        registration_number=row.get("registration_number") or None,
        contact_type=contact, request_type=request, reference=reference,
    )

