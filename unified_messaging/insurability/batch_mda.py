"""The batch over the asynchronous MemberData (MDA): a large file's lines posted in chunks, answered later.

When a file has more than ``[batch] memberdata_async_min_lines`` lines and MemberData answers its
care provider's quality, the runner hands it here.  The lines are taken in input order in
**chunks**: a run of consecutive lines holding at most ``[batch] memberdata_async_chunk`` lines
for MemberData, all for one care provider (the ``Issuer`` of the queries is the mailbox's owner).
Lines of a chunk that MemberData does not answer (a bad SSIN or date, answered locally; a quality
that goes over GenericInsurability) are answered synchronously when the chunk is written, so the
output is in input order with exactly the columns the synchronous path writes.  For each chunk:

1. the job's sidecar records the chunk (its InputReference, lines, care provider, ``posting``),
   fsynced, **before** the post;
2. the post (``MemberDataAsync.post``); the sidecar then says ``posted``;
3. ``get`` every ``poll_interval`` (waiting as the platform says when it throttles) until every
   line still to write has its answer;
4. the lines are written to the ``.part`` and fsynced, each journaled as a MemberData answer;
5. ``confirm`` (the answers and the post's TAck), then the chunk leaves the sidecar.

After a crash the next run first finishes the chunks the sidecar holds: ``posted`` ones are only
polled (unconfirmed answers come again), their lines already in the ``.part`` are kept and the rest
written; a ``posting`` one is looked for in the mailbox (its TAck or answers) and posted again,
with the same InputReference, only when nothing came within ``repost_grace`` of the record: a post
is never sent twice, a line never lost.  MyCareNet unreachable, or refusing the calls, stops the
run (``BatchStopped``) with every written line kept, as on the synchronous path.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.insurability.batch_input import Line, LineProblem, query_of
from unified_messaging.insurability.batch_job import BatchJob
from unified_messaging.insurability.batch_output import PartFile, answer_columns, pad
from unified_messaging.insurability.batch_results import FileResult
from unified_messaging.insurability.service import InsurabilityService

log = logging.getLogger(__name__)

INTERFACE = "batch"
SIDECAR_KEY = "memberdata_async"
POSTING, POSTED = "posting", "posted"


class MdaClient(Protocol):
    """The asynchronous MemberData of one care provider (``mycarenet.memberdata_async.MemberDataAsync``;
    the gateway gives it, so that this interface never imports the upstream client)."""

    def post(self, questions: Mapping[str, InsurabilityQuery], input_reference: str) -> Any:
        """The post's result: ``result.tack`` says whether the platform accepted it."""

    def collect(self, questions: Mapping[str, InsurabilityQuery], input_reference: str, *,
                max_messages: int = 1000) -> Any:
        """What one get brought: ``answers`` by query ID, ``tacks``, ``retry_after``, ``missing()``, ``merge()``."""

    def confirm(self, collected: Any) -> None:
        """Tell the platform the answers of ``collected`` are stored."""

    def empty(self) -> Any:
        """A ``Collected`` with nothing yet (what ``collect`` returns, to merge gets into)."""


def query_id(input_reference: str, line: int) -> str:
    """The XML ID of the query for ``line`` of the post ``input_reference`` (an NCName: ``_`` first)."""
    return f"_{input_reference}-{line}"


class MdaStopped(Exception):
    """The asynchronous path cannot go on now (the runner turns it into ``BatchStopped``)."""


@dataclass(frozen=True)
class MdaSettings:
    """How the batch uses MDA: ``mailboxes`` gives the MDA client of a care provider (None: the
    gateway cannot act for it, and its lines are asked synchronously, which says why)."""

    mailboxes: Callable[[CareProvider], MdaClient | None]
    min_lines: int = 50
    chunk: int = 500
    poll_interval: float = 15.0
    repost_grace: float = 120.0

    def applies(self, lines: int, state: dict) -> bool:
        """A file goes asynchronous when it is large enough, or when a run of it left chunks behind."""
        return bool(state.get(SIDECAR_KEY)) or (self.min_lines > 0 and lines > self.min_lines)


_sequence = itertools.count()
_sequence_lock = threading.Lock()


def new_input_reference() -> str:
    """A fresh 14-character InputReference for a post (``M`` + milliseconds + a counter digit)."""
    with _sequence_lock:
        return f"M{int(time.time() * 1000) % 10**12:012d}{next(_sequence) % 10}"


Answer = Callable[[Line], list[str]]
Save = Callable[[], None]


class MdaFile:
    """The asynchronous path of one file (see the module docstring)."""

    def __init__(self, settings: MdaSettings, service: InsurabilityService, job: BatchJob, *, state: dict,
                 save: Save, answer_sync: Answer, stop: threading.Event,
                 progress: Callable[[int], None] | None = None) -> None:
        self.settings, self.service, self.job = settings, service, job
        self.state, self.save, self.answer_sync, self.stop = state, save, answer_sync, stop
        self.progress = progress
        self._mailboxes: dict[tuple[str, str], MdaClient | None] = {}

    def run(self, lines: list[Line], columns: list[str], out: PartFile, result: FileResult,
            answer_range: Callable[[list[Line]], None]) -> None:
        """Answer every line after ``out.done``; ``answer_range`` answers lines synchronously (the runner's)."""
        self.columns = columns
        for record in list(self.state.get(SIDECAR_KEY, [])):
            self._finish(record, lines, out, result)
        while out.done < len(lines):
            if self.stop.is_set():
                raise MdaStopped(f"unified-messaging is stopping; {out.done} of {len(lines)} lines are answered "
                                 "and the next run continues there.")
            span, asked, provider = self._next_chunk(lines, out.done)
            mailbox = self._mailbox(provider) if asked else None
            if mailbox is None:
                answer_range(span)
                continue
            record = {"ref": new_input_reference(), "first": span[0].number, "last": span[-1].number,
                      "lines": [line.number for line in asked], "nihii": provider.nihii,
                      "quality": provider.quality, "state": POSTING,
                      "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self._records().append(record)
            self.save()
            if not self._post(mailbox, record, lines):
                self._records().remove(record)
                self.save()
                answer_range(span)
                continue
            self._finish(record, lines, out, result)

    # -- one chunk --

    def _next_chunk(self, lines: list[Line], start: int) -> tuple[list[Line], list[Line], CareProvider | None]:
        """The lines from ``start`` making the next chunk, those of them for MemberData, and their care provider."""
        span: list[Line] = []
        asked: list[Line] = []
        provider: CareProvider | None = None
        for line in lines[start:]:
            query = self._query(line)
            if query is not None:
                if provider is not None and (query.care_provider.nihii, query.care_provider.quality) != (
                        provider.nihii, provider.quality):
                    break
                if len(asked) == self.settings.chunk:
                    break
                provider = provider or query.care_provider
                asked.append(line)
            span.append(line)
        return span, asked, provider

    def _query(self, line: Line) -> InsurabilityQuery | None:
        """The line's question when MemberData answers it asynchronously, else None."""
        try:
            query = query_of(line, self.columns, self.job)
        except LineProblem:
            return None
        return query if self.service.asks_memberdata(query) else None

    def _mailbox(self, provider: CareProvider) -> MdaClient | None:
        key = (provider.nihii, provider.quality)
        if key not in self._mailboxes:
            self._mailboxes[key] = self.settings.mailboxes(provider)
        return self._mailboxes[key]

    def _questions(self, record: dict, lines: list[Line]) -> dict[str, InsurabilityQuery]:
        return {query_id(record["ref"], n): query_of(lines[n - 1], self.columns, self.job) for n in record["lines"]}

    def _post(self, mailbox: MdaClient, record: dict, lines: list[Line]) -> bool:
        """Post the chunk; False when the platform refused it (its lines are then asked synchronously)."""
        try:
            result = mailbox.post(self._questions(record, lines), record["ref"])
        except UpstreamUnavailable as exc:
            raise MdaStopped(f"MyCareNet could not be reached to post lines {record['first']}-{record['last']}; "
                             f"run the job again to continue. ({exc})") from None
        except UpstreamFault as fault:
            raise MdaStopped(f"MyCareNet refused the post of lines {record['first']}-{record['last']}: "
                             f"{fault.code} {fault.message}") from None
        if not result.tack.success:
            log.warning("%s: MyCareNet refused the MDA post of lines %d-%d (%s); asking them one by one",
                        self.job.name, record["first"], record["last"], result.tack.describe())
            return False
        record["state"], record["tack"] = POSTED, result.tack.reference
        self.save()
        return True

    def _finish(self, record: dict, lines: list[Line], out: PartFile, result: FileResult) -> None:
        """Poll for the chunk's answers, write its lines still to write, confirm, forget the chunk."""
        provider = CareProvider(record["nihii"], record["quality"])
        mailbox = self._mailbox(provider)
        if mailbox is None:
            raise MdaStopped(f"lines {record['first']}-{record['last']} were posted for {provider.nihii}, for whom "
                             "the gateway cannot act now; they stay posted for the next run.")
        questions = self._questions(record, lines)
        started = self.service.monotonic()
        needed = [query_id(record["ref"], n) for n in record["lines"] if n > out.done]
        collected = self._poll(mailbox, record, questions, needed, lines)
        by_number = {n: query_id(record["ref"], n) for n in record["lines"]}
        for line in lines[out.done:record["last"]]:
            identifier = by_number.get(line.number)
            if identifier is None:
                try:
                    columns = self.answer_sync(line)
                except UpstreamUnavailable as exc:
                    raise MdaStopped(f"MyCareNet could not be reached for line {line.number}; every line before "
                                     f"it is answered. Run the job again to continue. ({exc})") from None
            else:
                columns = answer_columns(self.service.record_answer(
                    questions[identifier], collected.answers[identifier], interface=INTERFACE, started=started))
            out.write(pad(line.fields, len(self.columns)) + columns)
            if columns[0] == "OK":
                result.ok += 1
            else:
                result.errors += 1
            if self.progress:
                self.progress(out.done)
        out.sync()  # written durably before the platform is told it may forget the answers
        try:
            mailbox.confirm(collected)
        except UpstreamUnavailable as exc:
            raise MdaStopped(f"MyCareNet could not be reached to confirm lines {record['first']}-{record['last']} "
                             f"(answered and written); the next run confirms them. ({exc})") from None
        self._records().remove(record)
        self.save()
        log.info("%s: lines %d-%d answered over MDA (%s, %d queries)", self.job.name, record["first"],
                 record["last"], record["ref"], len(record["lines"]))

    def _poll(self, mailbox: MdaClient, record: dict, questions: dict[str, InsurabilityQuery],
              needed: list[str], lines: list[Line]) -> Any:
        """Gets until every needed answer is there; reposts a ``posting`` chunk the platform never saw."""
        collected = mailbox.empty()
        while True:
            try:
                got = mailbox.collect(questions, record["ref"], max_messages=max(1000, len(questions)))
            except UpstreamUnavailable as exc:
                raise MdaStopped(f"MyCareNet could not be reached for the answers to lines {record['first']}-"
                                 f"{record['last']} (posted as {record['ref']}); the next run asks again. "
                                 f"({exc})") from None
            except UpstreamFault as fault:
                raise MdaStopped(f"MyCareNet refused the get of the answers to lines {record['first']}-"
                                 f"{record['last']}: {fault.code} {fault.message}") from None
            if got.retry_after is not None:  # asked too soon: wait as the platform says
                if self.stop.wait(got.retry_after):
                    raise self._stopping(record)
                continue
            collected.merge(got)
            if record["state"] == POSTING and (got.tacks or got.answers):
                record["state"] = POSTED  # the platform had it: the post is not sent again
                self.save()
            if not collected.missing(needed):
                return collected
            if record["state"] == POSTING and self._grace_over(record):
                log.warning("%s: the MDA post %s of lines %d-%d never reached MyCareNet; posting it now",
                            self.job.name, record["ref"], record["first"], record["last"])
                if not self._post(mailbox, record, lines):
                    raise MdaStopped(f"MyCareNet refused the post of lines {record['first']}-{record['last']}.")
                continue
            if self.stop.wait(self.settings.poll_interval):
                raise self._stopping(record)

    def _grace_over(self, record: dict) -> bool:
        at = datetime.fromisoformat(record["at"])
        return (datetime.now(timezone.utc) - at).total_seconds() >= self.settings.repost_grace

    @staticmethod
    def _stopping(record: dict) -> MdaStopped:
        return MdaStopped(f"unified-messaging is stopping; lines {record['first']}-{record['last']} are posted "
                          f"({record['ref']}) and the next run writes their answers.")

    def _records(self) -> list[dict]:
        return self.state.setdefault(SIDECAR_KEY, [])
