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

A large file whose lines go over MemberData (``memberdata_async``: more than ``[batch]
memberdata_async_min_lines`` lines) is asked with the asynchronous MemberData instead, in posted
chunks recorded in the same sidecar (``batch_mda``); the output is the same.

This module holds the runner of one job (one file at a time) and the scheduler; reading the input
is in ``batch_input``, the answer columns and the ``.part`` file in ``batch_output``, the lock,
sidecar and moves in ``batch_folders``, the reports in ``batch_results`` (all re-exported here).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.folders.files import free_name, fsync_folder, write_atomically
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.insurability.batch_folders import LOCK_NAME, exclusive, move, move_with_reason, read_json
from unified_messaging.insurability.batch_input import (
    EMPTY, INPUT_COLUMNS, FileRejected, Line, LineProblem, decode, parse_date, query_of, read_header,
)
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.batch_mda import SIDECAR_KEY as MDA_SIDECAR_KEY, MdaFile, MdaSettings, MdaStopped
from unified_messaging.insurability.batch_output import (
    FSYNC_SECONDS, MULTI, OUTPUT_COLUMNS, OUTPUT_SUFFIX, PartFile, answer_columns, count_results, output_name, pad,
    problem_columns,
)
from unified_messaging.insurability.batch_results import FileResult, RunSummary
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.journal import BatchFileRun, Journal
from unified_messaging.journal.store import utc_now
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.retry import RetryPolicy

__all__ = [
    "FSYNC_SECONDS", "INPUT_COLUMNS", "INTERFACE", "LOCK_NAME", "MULTI", "OUTPUT_COLUMNS", "OUTPUT_SUFFIX",
    "BatchRunner", "BatchScheduler", "BatchStopped", "FileRejected", "FileResult", "Line", "LineProblem",
    "Progress", "RunSummary", "answer_columns", "decode", "parse_date", "problem_columns", "query_of", "read_header",
]

log = logging.getLogger(__name__)

INTERFACE = "batch"
WINDOW = 4  # lines asked ahead of the first unwritten one, per parallel call


class BatchStopped(Exception):
    """The run stopped before the end of a file (MyCareNet unreachable, or UM stopping); resumable."""



Progress = Callable[[str, int, int], None]  # (input name, lines answered, lines in the file)


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
        memberdata_async: MdaSettings | None = None,
    ) -> None:
        """``memberdata_async``: large files whose lines go over MemberData are asked with MDA (``batch_mda``)."""
        self.memberdata_async = memberdata_async
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
        with exclusive(self.job.output_folder / LOCK_NAME) as locked:
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
        state = read_json(sidecar)
        if state.get("sha256") != digest:
            if state:
                log.warning("%s changed since an interrupted run; starting it again from the first line", path.name)
                if state.get(MDA_SIDECAR_KEY):
                    log.warning("%s: the answers to %d MDA post(s) of its previous version stay unconfirmed in "
                                "the mailbox", path.name, len(state[MDA_SIDECAR_KEY]))
                (self.job.output_folder / f".{state.get('output', '')}.part").unlink(missing_ok=True)
            name = free_name(self.job.output_folder, output_name(path.name),
                             taken=lambda p: p.exists() or p.with_name(f".{p.name}.part").exists()).name
            state = {"input": path.name, "sha256": digest, "output": name}
            write_atomically(sidecar, json.dumps(state).encode("utf-8"))
        final = self.job.output_folder / state["output"]
        part = self.job.output_folder / f".{state['output']}.part"
        if final.exists() and not part.exists():
            result = FileResult(path.name, "done", output=final)  # interrupted while archiving
            count_results(final, self.job, result)
            return self._finish(path, sidecar, result)
        try:
            text = decode(data, self.job.encoding)
            records = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.job.separator))
            if not records:
                raise FileRejected(EMPTY)
            columns = read_header(records[0], self.job)
        except (FileRejected, csv.Error) as exc:
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            moved = move_with_reason(path, self.job.error_folder, str(exc))
            return FileResult(path.name, "rejected", moved_to=moved, reason=str(exc))
        lines = [Line(n, fields) for n, fields in enumerate(records[1:], 1)]
        result = FileResult(path.name, "done", lines=len(lines), output=final)
        with PartFile(part, records[0], self.job) as out:
            result.resumed_at = out.done
            if out.done:
                log.info("%s: continuing after line %d of %d", path.name, out.done, len(lines))
                count_results(part, self.job, result)
            try:
                if self.memberdata_async is not None and self.memberdata_async.applies(len(lines), state):
                    self._answer_async(path.name, lines, columns, out, result, state, sidecar)
                else:
                    self._answer_lines(path.name, lines[out.done:], columns, out, result)
            except BatchStopped as exc:
                result.status, result.reason = "stopped", str(exc)
                return result
        os.replace(part, final)
        fsync_folder(self.job.output_folder)
        return self._finish(path, sidecar, result)

    def _finish(self, path: Path, sidecar: Path, result: FileResult) -> FileResult:
        result.moved_to = move(path, self.job.archive_folder)
        sidecar.unlink(missing_ok=True)
        fsync_folder(self.job.output_folder)
        return result

    def _answer_lines(self, name: str, lines: list[Line], columns: list[str], out: "PartFile",
                      result: FileResult) -> None:
        """Answers ``lines`` ``max_parallel`` at a time and writes them in order as they come.

        Up to ``max_parallel * WINDOW`` lines are asked ahead of the first unwritten one, so that a
        slow line does not leave the threads idle behind it; the answered lines that follow the
        first one without a gap are written together (one ``write``)."""
        window: deque[tuple[Line, Future[list[str]]]] = deque()
        total = result.lines
        width = len(columns)
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="um-batch") as pool:
            try:
                pending = iter(lines)
                while True:
                    while len(window) < self.max_parallel * WINDOW and not self.stop_event.is_set():
                        line = next(pending, None)
                        if line is None:
                            break
                        window.append((line, pool.submit(self._answer, line, columns)))
                    if not window:
                        break
                    ready: list[list[str]] = []
                    try:
                        while window and (not ready or window[0][1].done()):
                            line, future = window[0]
                            answer = future.result()
                            window.popleft()
                            ready.append(pad(line.fields, width) + answer)
                            if answer[0] == "OK":
                                result.ok += 1
                            else:
                                result.errors += 1
                    except UpstreamUnavailable as exc:
                        raise BatchStopped(f"MyCareNet could not be reached for line {line.number}; every line "
                                           f"before it is answered. Run the job again to continue. ({exc})") from None
                    finally:
                        self._write(name, ready, out, total)
                if self.stop_event.is_set() and out.done < total:
                    raise BatchStopped(f"unified-messaging is stopping; {out.done} of {total} lines are answered "
                                       "and the next run continues there.")
            finally:
                for _, future in window:
                    future.cancel()

    def _write(self, name: str, rows: list[list[str]], out: PartFile, total: int) -> None:
        if not rows:
            return
        first = out.done
        out.write_lines(rows)
        if self.progress:
            for done in range(first + 1, out.done + 1):
                self.progress(name, done, total)

    def _answer_async(self, name: str, lines: list[Line], columns: list[str], out: PartFile, result: FileResult,
                      state: dict, sidecar: Path) -> None:
        """The file over the asynchronous MemberData, its progress in the sidecar (``batch_mda``)."""
        progress = self.progress
        mda = MdaFile(self.memberdata_async, self.service, self.job, state=state,
                      save=lambda: write_atomically(sidecar, json.dumps(state).encode("utf-8")),
                      answer_sync=lambda line: self._answer(line, columns), stop=self.stop_event,
                      progress=(lambda done: progress(name, done, result.lines)) if progress else None)
        try:
            mda.run(lines, columns, out, result, lambda span: self._answer_lines(name, span, columns, out, result))
        except MdaStopped as exc:
            raise BatchStopped(str(exc)) from None

    def _answer(self, line: Line, columns: list[str]) -> list[str]:
        try:
            query = query_of(line, columns, self.job)
        except LineProblem as problem:
            return problem_columns(problem)
        policy = RetryPolicy.from_schedule(self.retry_delays) if self.retry_delays else None  # shared policy
        delays = [policy.delay(n) for n in range(1, len(self.retry_delays) + 1)] if policy else []
        for delay in (*delays, None):
            try:
                return answer_columns(self.service.consult(query, interface=INTERFACE))
            except UpstreamUnavailable:
                if delay is None or self.stop_event.is_set():
                    raise
                log.warning("line %d: MyCareNet unreachable, asking again in %.0f s", line.number, delay)
                self.stop_event.wait(delay)
        raise AssertionError("unreachable")



class BatchScheduler:
    """What ``serve`` does with ``[batch] jobs``: run each job now and every ``rescan_seconds``.

    Files are taken once unchanged for ``settle_seconds`` (a batch file has no ``.ok`` marker, so
    a file still being copied in is left alone). A run stopped because MyCareNet was unreachable
    continues at the next round.
    """

    def __init__(self, jobs: list[BatchJob], service: InsurabilityService, *, max_parallel: int,
                 rescan_seconds: float, settle_seconds: float = 10.0, journal: Journal | None = None,
                 memberdata_async: MdaSettings | None = None) -> None:
        self.memberdata_async = memberdata_async
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
                                 settle_seconds=self.settle_seconds, journal=self.journal,
                                 memberdata_async=self.memberdata_async)
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
