"""Writing a batch output file: the answer columns of each line, and the ``.part`` file they go to.

Output lines go to ``<output>/.<output name>.part`` as they come, each with one ``write`` system
call, fsynced at least every ``FSYNC_SECONDS``; a part found after a crash keeps its complete lines.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Iterator

from unified_messaging.domain.insurability import InsurabilityAnswer
from unified_messaging.folders.files import fsync_folder
from unified_messaging.insurability.batch_input import LineProblem
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.batch_results import FileResult

OUTPUT_COLUMNS = ("status", "code", "audit_reference", "last_name", "first_name", "birth_date",
                  "deceased_date", "insurer_mutuality", "insurer_registration_number", "insured_from",
                  "insured_until", "ct1", "ct2", "payment_by_io", "messages")
OUTPUT_SUFFIX = ".result.csv"
FSYNC_SECONDS = 0.5
MULTI = "|"  # joins the values of several insurability periods in one column


def _flat(text: str) -> str:
    return " ".join(text.split())


def answer_columns(answer: InsurabilityAnswer) -> list[str]:
    """The OUTPUT_COLUMNS values for an answer."""
    periods = answer.insurabilities

    def joined(values: Iterator[object]) -> str:
        return MULTI.join("" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v))
                          for v in values)

    patient = answer.patient
    messages: list[str] = []
    code = ""
    if answer.fault:
        f = answer.fault
        code = f.code
        messages.append(f"{f.code}: {_flat(f.message)}")
        if f.multi_io:
            messages.append("Insurers that know this patient: " + ", ".join(f.multi_io))
        messages += [f"{d.code}{' at ' + d.location if d.location else ''}: {_flat(d.message or '')}".rstrip(": ")
                     for d in f.details]
    if answer.general_situation:
        messages.append(f"Situation: {answer.general_situation.event}")
    if answer.medical_house:
        messages.append(f"Medical house since {answer.medical_house.period_start}")
    if answer.hospitalized:
        messages.append(f"Hospitalized in {answer.hospitalized.hospital} since {answer.hospitalized.admission_date}")
    return [
        "OK" if answer.ok else "ERROR", code, answer.audit_reference or "",
        (patient.last_name or "") if patient else "", (patient.first_name or "") if patient else "",
        str(patient.birth_date or "") if patient else "", str(patient.deceased_date or "") if patient else "",
        joined(p.mutuality for p in periods), joined(p.registration_number for p in periods),
        joined(p.period_start for p in periods), joined(p.period_end for p in periods),
        joined(p.ct1 for p in periods), joined(p.ct2 for p in periods),
        joined((p.payment_by_io if p.payment_by_io is not None else answer.payment_by_io) for p in periods),
        " | ".join(messages),
    ]


def problem_columns(problem: LineProblem) -> list[str]:
    row = [""] * len(OUTPUT_COLUMNS)
    row[0], row[1], row[-1] = "ERROR", problem.code, f"{problem.code}: {problem.message}"
    return row

def pad(fields: list[str], width: int) -> list[str]:
    return (fields + [""] * width)[:width]


def output_name(input_name: str) -> str:
    stem = input_name.rsplit(".", 1)[0] if "." in input_name[1:] else input_name
    return stem + OUTPUT_SUFFIX


class PartFile:
    """The output being written: complete lines only, one ``write`` each, fsynced regularly."""

    def __init__(self, path: Path, header: list[str], job: BatchJob) -> None:
        self.path = path
        self.header = header
        self.job = job
        self.done = 0
        self._fd = -1
        self._synced_at = 0.0

    def __enter__(self) -> "PartFile":
        exists = self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if exists:
            self.done = self._complete_lines()
        else:
            self.write(self.header + list(OUTPUT_COLUMNS), count=False)
            self.sync()
            fsync_folder(self.path.parent)
        return self

    def _complete_lines(self) -> int:
        """Answered lines already in the part; a torn last line (power loss) is cut off."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            os.truncate(self.path, end)
            data = data[:end]
        text = data.decode(self.job.encoding, errors="replace")
        records = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=self.job.separator))
        return max(records - 1, 0)

    def write(self, fields: list[str], *, count: bool = True) -> None:
        self.write_lines([fields], count=count)

    def write_lines(self, lines: list[list[str]], *, count: bool = True) -> None:
        """Complete lines in one ``write``: after a crash the part still ends with whole lines, or
        with a torn last one that the next run cuts off (``_complete_lines``). One system call for
        the lines ready together, not one each: the batch's writer thread waits for the GIL after
        every system call (up to the 5 ms switch interval while the answering threads compute)."""
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.job.separator, lineterminator="\r\n").writerows(lines)
        data = memoryview(buffer.getvalue().encode(self.job.encoding, errors="replace"))
        while data:
            data = data[os.write(self._fd, data):]
        if count:
            self.done += len(lines)
        if time.monotonic() - self._synced_at > FSYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._fd)
        self._synced_at = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.sync()
        os.close(self._fd)


def count_results(path: Path, job: BatchJob, result: FileResult) -> None:
    """Count the OK / ERROR lines already written (resumed or finished runs)."""
    text = path.read_bytes().decode(job.encoding, errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=job.separator))[1:]
    status_at = -len(OUTPUT_COLUMNS)
    result.ok = sum(1 for r in rows if len(r) >= len(OUTPUT_COLUMNS) and r[status_at] == "OK")
    result.errors = len(rows) - result.ok
    result.lines = result.lines or len(rows)

