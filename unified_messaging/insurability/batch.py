"""The legacy batch runner: CSV files in, one answered CSV line per input line out.

For every file of the job's input folder matching its pattern, in name order:

* the file is decoded with ``file.encoding`` and its header checked; a file that cannot be read
  (wrong encoding, unknown or missing columns) goes to the error folder with ``<name>.reason.txt``;
* every line is asked through the core service (``interface="batch"``), up to ``max_parallel`` at
  a time, and its answer line is written in input order: the output has the input's header and
  columns followed by the answer columns, one line per input line. A bad line (bad date, bad SSIN,
  wrong number of fields) gets its error on its output line and the batch goes on;
* output lines go to ``<output>/.<output name>.part`` as they come, each with one ``write``
  system call, fsynced at least every ``FSYNC_SECONDS``. A sidecar ``.<input name>.job.json``
  records which input (by SHA-256) the part belongs to. After a crash, the next run finds the part,
  keeps its complete lines and continues at the first line without one: no line lost, none twice;
* at the end the part is renamed to the output name, the input moves to the archive folder and
  the sidecar is removed (in that order; a run that finds an output and its sidecar but no part
  only finishes the archiving);
* with a journal, every file processed (done, rejected or stopped) leaves one ``batch_files`` row
  with its counts and its reason, SSINs masked; a journal that cannot be written is logged, and
  the batch goes on.

MyCareNet unreachable: the line is asked again after ``retry_delays``; if it still fails, the run
**stops** (``status = "stopped"``) with every answered line kept, and the next run continues there.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from unified_messaging.folders.files import (
    REASON_SUFFIX,
    free_name,
    fsync_folder,
    taken_with_reason,
    write_atomically,
)
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.contract_xml import CONTACT_TYPES, REQUEST_TYPES
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.journal import BatchFileRun, Journal
from unified_messaging.journal.store import utc_now
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.domain.insurability import CareProvider, InsurabilityAnswer, InsurabilityQuery

log = logging.getLogger(__name__)

INTERFACE = "batch"
INPUT_COLUMNS = ("ssin", "mutuality", "registration_number", "period_start", "period_end",
                 "contact_type", "request_type", "reference", "nihii", "quality")
OUTPUT_COLUMNS = ("status", "code", "audit_reference", "last_name", "first_name", "birth_date",
                  "deceased_date", "insurer_mutuality", "insurer_registration_number", "insured_from",
                  "insured_until", "ct1", "ct2", "payment_by_io", "messages")
OUTPUT_SUFFIX = ".result.csv"
LOCK_NAME = ".unified-messaging.lock"
FSYNC_SECONDS = 0.5
MULTI = "|"  # joins the values of several insurability periods in one column


class FileRejected(Exception):
    """The whole input file cannot be used; the message says why and what to do."""


class BatchStopped(Exception):
    """The run stopped before the end of a file (MyCareNet unreachable, or UM stopping); resumable."""


@dataclass
class FileResult:
    input: str
    status: str  # "done" | "rejected" | "stopped" | "busy"
    lines: int = 0
    ok: int = 0
    errors: int = 0
    resumed_at: int = 0  # lines found already answered when the run started
    output: Path | None = None
    moved_to: Path | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.status == "done":
            resumed = f", continued after line {self.resumed_at}" if self.resumed_at else ""
            return (f"{self.input}: {self.lines} lines, {self.ok} OK, {self.errors} ERROR{resumed} -> "
                    f"{self.output}; input archived to {self.moved_to}")
        if self.status == "rejected":
            return f"{self.input}: not processed, moved to {self.moved_to}: {self.reason}"
        if self.status == "busy":
            return "skipped: another run of this job is in progress"
        return f"{self.input}: STOPPED after {self.ok + self.errors} of {self.lines} lines: {self.reason}"


@dataclass
class RunSummary:
    job: str
    files: list[FileResult] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(f.status == "done" for f in self.files)

    def describe(self) -> str:
        if not self.files:
            return f"{self.job}: no input file to process."
        lines = sum(f.lines for f in self.files if f.status == "done")
        ok = sum(f.ok for f in self.files if f.status == "done")
        errors = sum(f.errors for f in self.files if f.status == "done")
        counts = {s: sum(1 for f in self.files if f.status == s) for s in ("done", "rejected", "stopped", "busy")}
        head = (f"{self.job}: {counts['done']} file(s) done ({lines} lines: {ok} OK, {errors} ERROR), "
                f"{counts['rejected']} rejected, {counts['stopped']} stopped, {counts['busy']} busy")
        return "\n".join([head, *("  " + f.describe() for f in self.files)])


@dataclass(frozen=True)
class Line:
    """One input record: its number in the file (1 = first after the header) and its fields."""

    number: int
    fields: list[str]


Progress = Callable[[str, int, int], None]  # (input name, lines answered, lines in the file)


# ---------------------------------------------------------------------------------- CSV reading
def decode(data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRejected(
            f"The file is not written in {encoding} (file.encoding): byte 0x{data[exc.start]:02x} on line {line} "
            f"cannot be read. Save the file as {encoding}, or set file.encoding to the encoding it is written "
            "in (for example ISO-8859-1 or Cp1252)."
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_header(header: list[str], job: BatchJob) -> list[str]:
    """The lower-case column names; raises ``FileRejected`` when they cannot describe a request."""
    names = [h.strip().lower() for h in header]
    expected = job.separator.join(INPUT_COLUMNS)
    unknown = [h for h in names if h not in INPUT_COLUMNS]
    if unknown or not names:
        raise FileRejected(
            f"The header line has unknown column(s) {', '.join(repr(u) for u in unknown) or '(none)'}; the "
            f"columns, separated by {job.separator!r} (csv.separator), can be: {expected}."
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FileRejected(f"The header line names {', '.join(duplicates)} twice.")
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
        raise FileRejected(f"The header line lacks the column(s) {', '.join(missing)}. A header line such as "
                           f"{job.separator.join(('ssin', 'period_start', 'period_end', 'reference'))} comes first.")
    return names


class LineProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_date(text: str, column: str) -> date:
    text = text.strip()
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


# ---------------------------------------------------------------------------------- answers
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


# ---------------------------------------------------------------------------------- the runner
class BatchRunner:
    """Runs one job's input files through the core service (see the module docstring)."""

    def __init__(
        self,
        job: BatchJob,
        service: InsurabilityService,
        *,
        max_parallel: int = 8,
        retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0),
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        settle_seconds: float = 0.0,
        journal: Journal | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.job = job
        self.service = service
        self.max_parallel = job.max_parallel or max_parallel
        self.retry_delays = retry_delays
        self.stop_event = stop or threading.Event()
        self.progress = progress
        self.settle_seconds = settle_seconds
        self.journal = journal
        self.clock = clock

    def input_files(self) -> list[Path]:
        """Files to process now: matching the pattern, not hidden, unchanged for ``settle_seconds``."""
        now = time.time()
        found = []
        for path in sorted(self.job.input_folder.glob(self.job.input_pattern)):
            if not path.is_file() or path.name.startswith("."):
                continue
            if self.settle_seconds and now - path.stat().st_mtime < self.settle_seconds:
                continue
            found.append(path)
        return found

    def run(self) -> RunSummary:
        """Process every input file there is now; one run of a job at a time (a lock in the output folder)."""
        summary = RunSummary(self.job.name)
        with _exclusive(self.job.output_folder / LOCK_NAME) as locked:
            if not locked:
                summary.files.append(FileResult("(all files)", "busy"))
                return summary
            for path in self.input_files():
                if self.stop_event.is_set():
                    break
                started_at = self._now()
                result = self._run_locked(path)
                self._record(result, started_at)
                summary.files.append(result)
                if result.status == "stopped":
                    break  # MyCareNet unreachable: the next files would stop too
        log.info("%s", mask_ssins_in_text(summary.describe()))
        return summary

    def _now(self) -> str:
        return self.clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")

    def _record(self, result: FileResult, started_at: str) -> None:
        """One ``batch_files`` row for the file; a journal that cannot be written does not stop the batch."""
        if self.journal is None:
            return
        read = result.status != "rejected"
        run = BatchFileRun(
            job=mask_ssins_in_text(self.job.name), input=mask_ssins_in_text(result.input), status=result.status,
            started_at=started_at, finished_at=self._now(),
            lines=result.lines if read else None, ok=result.ok if read else None,
            errors=result.errors if read else None, resumed_at=result.resumed_at if read else None,
            output=mask_ssins_in_text(result.output.name) if result.status == "done" and result.output else None,
            reason=mask_ssins_in_text(result.reason) or None,
        )
        try:
            self.journal.record_batch_file(run)
        except Exception:
            log.exception("%s: the run could not be written to the journal; the batch goes on", run.input)

    # -------------------------------------------------------------- one file, under its lock
    def _run_locked(self, path: Path) -> FileResult:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        sidecar = self.job.output_folder / f".{path.name}.job.json"
        state = _read_json(sidecar)
        if state.get("sha256") != digest:
            if state:
                log.warning("%s changed since an interrupted run; starting it again from the first line", path.name)
                (self.job.output_folder / f".{state.get('output', '')}.part").unlink(missing_ok=True)
            name = free_name(self.job.output_folder, _output_name(path.name),
                             taken=lambda p: p.exists() or p.with_name(f".{p.name}.part").exists()).name
            state = {"input": path.name, "sha256": digest, "output": name}
            write_atomically(sidecar, json.dumps(state).encode("utf-8"))
        final = self.job.output_folder / state["output"]
        part = self.job.output_folder / f".{state['output']}.part"
        if final.exists() and not part.exists():
            result = FileResult(path.name, "done", output=final)  # interrupted while archiving
            _count_results(final, self.job, result)
            return self._finish(path, sidecar, result)
        try:
            text = decode(data, self.job.encoding)
            records = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.job.separator))
            if not records:
                raise FileRejected("The file is empty: it needs a header line, then one line per patient.")
            columns = read_header(records[0], self.job)
        except (FileRejected, csv.Error) as exc:
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            moved = _move_with_reason(path, self.job.error_folder, str(exc))
            return FileResult(path.name, "rejected", moved_to=moved, reason=str(exc))
        lines = [Line(n, fields) for n, fields in enumerate(records[1:], 1)]
        result = FileResult(path.name, "done", lines=len(lines), output=final)
        with _PartFile(part, records[0], self.job) as out:
            result.resumed_at = out.done
            if out.done:
                log.info("%s: continuing after line %d of %d", path.name, out.done, len(lines))
                _count_results(part, self.job, result)
            try:
                self._answer_lines(path.name, lines[out.done:], columns, out, result)
            except BatchStopped as exc:
                result.status, result.reason = "stopped", str(exc)
                return result
        os.replace(part, final)
        fsync_folder(self.job.output_folder)
        return self._finish(path, sidecar, result)

    def _finish(self, path: Path, sidecar: Path, result: FileResult) -> FileResult:
        result.moved_to = _move(path, self.job.archive_folder)
        sidecar.unlink(missing_ok=True)
        fsync_folder(self.job.output_folder)
        return result

    def _answer_lines(self, name: str, lines: list[Line], columns: list[str], out: "_PartFile",
                      result: FileResult) -> None:
        window: deque[tuple[Line, Future[list[str]]]] = deque()
        total = result.lines
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="um-batch") as pool:
            try:
                pending = iter(lines)
                while True:
                    while len(window) < self.max_parallel * 4 and not self.stop_event.is_set():
                        line = next(pending, None)
                        if line is None:
                            break
                        window.append((line, pool.submit(self._answer, line, columns)))
                    if not window:
                        break
                    line, future = window.popleft()
                    try:
                        answer = future.result()
                    except UpstreamUnavailable as exc:
                        raise BatchStopped(f"MyCareNet could not be reached for line {line.number}; every line "
                                           f"before it is answered. Run the job again to continue. ({exc})") from None
                    out.write(_pad(line.fields, len(columns)) + answer)
                    if answer[0] == "OK":
                        result.ok += 1
                    else:
                        result.errors += 1
                    if self.progress:
                        self.progress(name, out.done, total)
                if self.stop_event.is_set() and out.done < total:
                    raise BatchStopped(f"unified-messaging is stopping; {out.done} of {total} lines are answered "
                                       "and the next run continues there.")
            finally:
                for _, future in window:
                    future.cancel()

    def _answer(self, line: Line, columns: list[str]) -> list[str]:
        try:
            query = query_of(line, columns, self.job)
        except LineProblem as problem:
            return problem_columns(problem)
        for delay in (*self.retry_delays, None):
            try:
                return answer_columns(self.service.consult(query, interface=INTERFACE))
            except UpstreamUnavailable:
                if delay is None or self.stop_event.is_set():
                    raise
                log.warning("line %d: MyCareNet unreachable, asking again in %.0f s", line.number, delay)
                self.stop_event.wait(delay)
        raise AssertionError("unreachable")


def _pad(fields: list[str], width: int) -> list[str]:
    return (fields + [""] * width)[:width]


def _output_name(input_name: str) -> str:
    stem = input_name.rsplit(".", 1)[0] if "." in input_name[1:] else input_name
    return stem + OUTPUT_SUFFIX


class _PartFile:
    """The output being written: complete lines only, one ``write`` each, fsynced regularly."""

    def __init__(self, path: Path, header: list[str], job: BatchJob) -> None:
        self.path = path
        self.header = header
        self.job = job
        self.done = 0
        self._fd = -1
        self._synced_at = 0.0

    def __enter__(self) -> "_PartFile":
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
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.job.separator, lineterminator="\r\n").writerow(fields)
        os.write(self._fd, buffer.getvalue().encode(self.job.encoding, errors="replace"))
        if count:
            self.done += 1
        if time.monotonic() - self._synced_at > FSYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._fd)
        self._synced_at = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.sync()
        os.close(self._fd)


def _count_results(path: Path, job: BatchJob, result: FileResult) -> None:
    """Count the OK / ERROR lines already written (resumed or finished runs)."""
    text = path.read_bytes().decode(job.encoding, errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=job.separator))[1:]
    status_at = -len(OUTPUT_COLUMNS)
    result.ok = sum(1 for r in rows if len(r) >= len(OUTPUT_COLUMNS) and r[status_at] == "OK")
    result.errors = len(rows) - result.ok
    result.lines = result.lines or len(rows)


class _exclusive:
    """A non-blocking ``flock`` on a lock file: two runs never write the same output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> bool:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _move(path: Path, folder: Path) -> Path:
    target = free_name(folder, path.name)
    shutil.move(str(path), str(target))
    fsync_folder(folder)
    return target


def _move_with_reason(path: Path, folder: Path, reason: str) -> Path:
    target = free_name(folder, path.name, taken=taken_with_reason)
    write_atomically(target.with_name(target.name + REASON_SUFFIX), (reason + "\n").encode("utf-8"))
    shutil.move(str(path), str(target))
    fsync_folder(folder)
    log.warning("%s moved to %s: %s", path.name, folder, reason)
    return target


class BatchScheduler:
    """What ``serve`` does with ``[batch] jobs``: run each job now and every ``rescan_seconds``.

    Files are taken once unchanged for ``settle_seconds`` (a batch file has no ``.ok`` marker, so
    a file still being copied in is left alone). A run stopped because MyCareNet was unreachable
    continues at the next round.
    """

    def __init__(self, jobs: list[BatchJob], service: InsurabilityService, *, max_parallel: int,
                 rescan_seconds: float, settle_seconds: float = 10.0, journal: Journal | None = None) -> None:
        self.jobs = jobs
        self.service = service
        self.journal = journal
        self.max_parallel = max_parallel
        self.rescan_seconds = rescan_seconds
        self.settle_seconds = settle_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BatchScheduler":
        if self.jobs:
            self._thread = threading.Thread(target=self._run, name="um-batch-jobs", daemon=True)
            self._thread.start()
            log.info("running %d batch job(s) every %.0f s: %s", len(self.jobs), self.rescan_seconds,
                     ", ".join(j.name for j in self.jobs))
        return self

    def run_once(self) -> list[RunSummary]:
        summaries = []
        for job in self.jobs:
            if self._stop.is_set():
                break
            runner = BatchRunner(job, self.service, max_parallel=self.max_parallel, stop=self._stop,
                                 settle_seconds=self.settle_seconds, journal=self.journal)
            try:
                summaries.append(runner.run())
            except OSError:
                log.exception("batch job %s failed; trying again in %.0f s", job.name, self.rescan_seconds)
        return summaries

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.rescan_seconds)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the lines in flight: they are written, the rest waits for the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
