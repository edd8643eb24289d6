"""The eFact folder pipeline: pick up 920000 files from ``toSend``, post them, poll the feedback.

Every step leaves the disk and the journal in a state a restart can continue from:

1. **claim**: the ``.ok`` marker, then its payload, are moved (atomic ``os.replace``) into the
   gateway's working folder ``.work``; a payload without its marker is never touched;
2. **record**: one streaming pass validates the 920000 and hashes it; a bad file goes to
   ``error/`` with a reason file, a good one is recorded (name, size, sha256, zone 204) *before*
   anything is sent;
3. **post**: the file is marked ``posting`` (committed) and posted; its TAck moves it to
   ``archive/`` (OK) or ``error/`` (NOK).  A file left ``posting`` by a crash or a network failure
   is never posted again blindly: the mailbox's TAcks say whether the post arrived
   (``FeedbackPoller``), and only a post that a complete ``get`` shows no TAck for is sent again,
   and only when that ``get`` began ``repost_grace`` after the post (a post cut off by a crash may
   still be on its way, or being handled by the platform, for a while);
4. **poll**: see ``poller.py``.

The pass runs on the folder watcher every folder interface uses
(:class:`~unified_messaging.folders.events.WatchLoop`): a marker's raw file-system event starts
it at once; the truth is the rescan (at start, after each event, and every ``rescan_seconds``),
so markers missed on a network share are still found (``polling=True`` uses watchdog's polling
observer there).  One worker thread does all the work, so the send and poll steps never race
each other.

**Several nodes** on one shared root: the leader only runs it (``database/leader.py``); the claim's
rename of the marker is won by one node; ``.work`` is the leader's queue, whoever claimed it; and
``may_act`` false (the leadership may be lost) stops it before each claim, record, post and get.

It is one piece (past 500 lines) because the four steps share one worker thread, one set of
crash checkpoints and one rule for what a restart may redo; split, each part would need the
others' state to know whether a file may be sent.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from unified_messaging.efact.report import ValidationReport
from unified_messaging.efact.validator import SendingValidator
from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.efact.feedback import FileStatus
from unified_messaging.folders.events import WatchLoop
from unified_messaging.folders.files import move_to
from unified_messaging.texts import Reason
from unified_messaging.invoicing import reasons
from unified_messaging.invoicing.folders import MARKER_SUFFIX, Folders
from unified_messaging.invoicing.identity import Identities, Mailbox, SingleMailbox
from unified_messaging.invoicing.pacing import PollPacing
from unified_messaging.invoicing.poller import Checkpoint, FeedbackPoller
from unified_messaging.invoicing.store import AlreadyRecorded, InvoicingStore
from unified_messaging.journal.store import Journal
from unified_messaging.domain.errors import UpstreamError, UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.genasync import GenAsyncClient, MailboxThrottled
from unified_messaging.mycarenet.genasync_blobs import destination_for
from unified_messaging.folders.watcher import describe_storage_fault, is_storage_fault
from unified_messaging.retry import RetryPolicy
from unified_messaging.securespace.catalogue import Refusal

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (1.0, 2.0, 5.0, 15.0, 60.0, 300.0)
_CHUNK = 1 << 20
# Faults that are the file's fault (the message itself was refused): the file is NOK.
_FILE_FAULT_PREFIXES = ("SOA-03",)
# Faults after which the post may have been accepted anyway: settle through the mailbox.
_UNCERTAIN_FAULTS = ("UM-ANSWER-SIGNATURE", "UM-UNEXPECTED-ANSWER")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Checked:
    """A claimed file after its one validating, hashing pass."""

    size: int
    sha256: str
    report: ValidationReport


def check_file(path: Path, *, expect_test: bool) -> Checked:
    """Validate and hash in one streaming pass (memory stays at a few chunks for any size)."""
    validator = SendingValidator(expect_test=expect_test)
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            validator.feed(chunk)
            size += len(chunk)
    return Checked(size, digest.hexdigest(), validator.finish())


def _is_marker(name: str) -> bool:
    return name.endswith(MARKER_SUFFIX)


class InvoicingPipeline:
    """The folder pipeline the gateway starts and stops (``start()``, ``stop()``, ``run_once()``)."""

    def __init__(self, root: Path, journal: Journal, client_factory: Callable[[], GenAsyncClient], *,
                 rescan_seconds: float = 10.0, poll_interval: float = 15.0, is_test: bool = True,
                 clock: Callable[[], datetime] = _utc_now, polling: bool = False,
                 checkpoint: Checkpoint | None = None, backoff: tuple[float, ...] | RetryPolicy = BACKOFF_SECONDS,
                 repost_grace: float | None = None, throttle_retries: int = 8,
                 identities: Identities | None = None, may_act: Callable[[], bool] = lambda: True) -> None:
        self.folders = Folders(Path(root))
        self.journal = journal
        self.rescan_seconds = rescan_seconds
        self.is_test = is_test
        # who each file is sent as (identity.py): ``client_factory``'s one mailbox unless told otherwise
        self.identities: Identities = identities or SingleMailbox(client_factory)
        self._clock = clock
        self._polling = polling
        self._checkpoint = checkpoint or (lambda step: None)
        self._may_act = may_act
        # the shared policy (unified_messaging.retry); a tuple is read as its explicit schedule
        self.storage_fault: str | None = None  # the last full/read-only data folder error, until a pass succeeds
        self._backoff = backoff if isinstance(backoff, RetryPolicy) else RetryPolicy.from_schedule(backoff)
        self._repost_grace = repost_grace
        self.folders.create()
        self.store = InvoicingStore(journal, clock=clock)
        self.poller = FeedbackPoller(self.store, self.folders, checkpoint=self._checkpoint,
                                     on_settled=self._finish_settled)
        self._stopping = threading.Event()
        self._watch: WatchLoop | None = None
        self._poll_interval, self._throttle_retries = poll_interval, throttle_retries
        self._pacings: dict[Mailbox, PollPacing] = {}
        self._unusable: dict[Mailbox, str] = {}  # mailboxes no certificate may poll today, and why

    # -- life cycle --

    def start(self) -> "InvoicingPipeline":
        self._stopping.clear()
        self._watch = WatchLoop(self.folders.to_send, self._pass, poll=self._polling,
                                rescan_seconds=self.rescan_seconds, next_wait=self._next_wait,
                                wake_on=_is_marker, name="invoicing").start()
        log.info("invoicing pipeline watching %s (%s events)", self.folders.to_send, self._watch.events)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop(timeout=30)
            self._watch = None
        self.identities.close()

    def wake(self) -> None:
        if self._watch is not None:
            self._watch.wake()

    def _pass(self) -> None:
        try:
            self.run_once()
            self.storage_fault = None
        except Exception as exc:
            if not is_storage_fault(exc):
                log.exception("invoicing pipeline step failed; retrying")
                return
            # full or read-only data folder or journal (#19 point 5): every step is journalled and
            # resumable, so the next pass picks up where this one stopped once space returns
            self.storage_fault = describe_storage_fault(exc, self.folders.work)
            log.error("storage fault in the invoicing pipeline (%s); nothing is lost, trying again on the next pass",
                      self.storage_fault)

    def _next_wait(self) -> float:
        pace = min((p.wait() for p in self._pacings.values()), default=self.rescan_seconds)
        return max(0.05, min(self.rescan_seconds, pace, self._next_attempt_wait()))

    # -- one pass --

    def run_once(self, *, poll: bool | None = None) -> None:
        """Recover, claim what waits in ``toSend``, post what is due, and poll when due (or when told)."""
        if self._fenced():
            return
        self._finish_leftovers()
        self._claim_all()
        self._send_due()
        for mailbox in self._mailboxes():
            if (poll or (poll is None and self.pacing_of(mailbox).due())) and not self._fenced():
                self._poll(mailbox)

    def _fenced(self) -> bool:
        """This node may have lost the leadership (another node may run the pipeline): no next step."""
        return not self._may_act()

    def _today(self):
        return self._clock().date()

    @property
    def client(self) -> GenAsyncClient:
        """The client of the default mailbox (the configured care provider's)."""
        return self.identities.client(self._mailboxes()[0], self._today())

    @property
    def pacing(self) -> PollPacing:
        """The default mailbox's pace of gets."""
        return self.pacing_of(self._mailboxes()[0])

    def pacing_of(self, mailbox: Mailbox) -> PollPacing:
        """Each mailbox has its own pace: the platform throttles the gets of one mailbox."""
        pacing = self._pacings.get(mailbox)
        if pacing is None:
            pacing = self._pacings[mailbox] = PollPacing(self._poll_interval, backoff=self._backoff,
                                                         throttle_retries=self._throttle_retries)
        return pacing

    def _mailboxes(self) -> list[Mailbox]:
        """The standing mailboxes, then those of files whose feedback may still come."""
        found = list(self.identities.standing())
        for nihii, quality in self.store.mailboxes_in_flight():
            mailbox = Mailbox(nihii, quality)
            if mailbox not in found:
                found.append(mailbox)
        return found

    def _mailbox_of(self, row: dict) -> Mailbox:
        """The mailbox a file is sent to (a file recorded before mailboxes were: the default one)."""
        if row.get("mailbox_nihii"):
            return Mailbox(row["mailbox_nihii"], row["mailbox_quality"])
        return self._mailboxes()[0]

    # -- claim and record --

    def _claim_all(self) -> None:
        for marker in sorted(self.folders.to_send.glob(f"*{MARKER_SUFFIX}")):
            if marker.is_file() and not self._fenced():
                self._claim(marker)
        for marker in sorted(self.folders.work.glob(f"*{MARKER_SUFFIX}")):
            if not self._fenced():
                self._record_claimed(marker)

    def _claim(self, marker: Path) -> None:
        payload = self._payload_for(marker)
        token = f"{time.time_ns()}"
        payload_name = payload.name if payload is not None else marker.name[:-len(MARKER_SUFFIX)]
        try:  # the one atomic step: of two nodes (or two passes), one only moves the marker
            os.replace(marker, self.folders.work / f"{token}-{payload_name}{MARKER_SUFFIX}")
        except FileNotFoundError:
            return
        if payload is not None:
            try:
                os.replace(payload, self.folders.work / f"{token}-{payload_name}")
            except FileNotFoundError:
                pass  # a new leader already completed this claim (``_record_claimed``)
        self._checkpoint("after-claim")

    def _payload_for(self, marker: Path) -> Path | None:
        base = marker.name[:-len(MARKER_SUFFIX)]
        exact = marker.with_name(base)
        if exact.is_file():
            return exact
        candidates = [p for p in marker.parent.iterdir()
                      if p.is_file() and p.stem == base and not p.name.endswith(MARKER_SUFFIX)
                      and not p.name.startswith(".")]
        return candidates[0] if len(candidates) == 1 else None

    def _record_claimed(self, work_marker: Path) -> None:
        """Record a claimed file (validated, hashed), then drop its marker; idempotent on restart."""
        work_name = work_marker.name[:-len(MARKER_SUFFIX)]
        token, _, name = work_name.partition("-")
        payload = self.folders.work / work_name
        if not payload.exists() and (self.folders.to_send / name).is_file():
            os.replace(self.folders.to_send / name, payload)  # a crash came between the two moves of the claim
        if self.store.by_work_name(work_name) is None:
            if not payload.exists():
                self._refuse_marker(work_marker, name)
                return
            self._record(payload, name, work_name)
        work_marker.unlink(missing_ok=True)

    def _refuse_marker(self, work_marker: Path, name: str) -> None:
        reason = reasons.marker_alone(f"{name}{MARKER_SUFFIX}", name)
        move_to(work_marker, self.folders.error, f"{name}{MARKER_SUFFIX}", reason=str(reason))
        self.store.record_file(name=f"{name}{MARKER_SUFFIX}", size=0, sha256="", zone_204=None, destination=None,
                               is_test=None, state="error", work_name=None, status=FileStatus.NOK.value,
                               reason=reason)
        log.warning("marker %s without a file: moved to error/", mask_ssins_in_text(name))

    def _record(self, payload: Path, name: str, work_name: str) -> None:
        checked = check_file(payload, expect_test=self.is_test)
        summary = checked.report.summary
        reason = self._refusal(checked, name)
        destination = None
        if reason is None:
            try:
                destination = destination_for(summary.federation or (summary.mutualities[0].mutuality
                                                                     if summary.mutualities else ""))
            except ValueError as exc:
                reason = reasons.no_federation(str(exc))
        acting = None
        if reason is None:
            try:
                acting = self.identities.for_file(summary, self._today())
            except Refusal as refusal:
                reason = reasons.identity_refused(refusal)
        if reason is not None or acting is None:
            self._to_error(payload, name, reason or reasons.empty(), size=checked.size, sha256=checked.sha256,
                           zone_204=summary.zone_204)
            return
        mailbox = acting.mailbox
        if self._fenced():
            return
        try:  # the store refuses a second row: recorded meanwhile by the node that leads now (a long pass)
            file_id = self.store.record_file(name=name, size=checked.size, sha256=checked.sha256,
                                             zone_204=summary.zone_204, destination=destination,
                                             is_test=summary.is_test, state="claimed", work_name=work_name,
                                             sender=acting.sender, mailbox=(mailbox.nihii, mailbox.quality),
                                             acting=acting.acting)
        except AlreadyRecorded as exc:
            log.info("invoicing file %s: %s", mask_ssins_in_text(name), exc)
            return
        log.info("invoicing file %s recorded as #%d (zone 204 %s, %d bytes, to %s, for %s with %s)", name, file_id,
                 summary.zone_204, checked.size, destination, mailbox, acting.acting)
        self._checkpoint("after-record")

    def _refusal(self, checked: Checked, name: str) -> Reason | None:
        report = checked.report
        if checked.size == 0:
            return reasons.empty()
        if not report.ok:
            return reasons.invalid(name, report)
        zone_204 = report.summary.zone_204
        for row in self.store.by_zone_204(zone_204 or ""):
            if row["state"] == "error":
                continue
            if row["sha256"] == checked.sha256:
                return reasons.same_file(name, row)
            return reasons.zone_204_used(zone_204, row)
        return None

    def _to_error(self, source: Path, name: str, reason: str | Reason, *, size: int = 0, sha256: str = "",
                  zone_204: str | None = None, file_id: int | None = None) -> None:
        move_to(source, self.folders.error, name, reason=str(reason))
        if file_id is None:
            self.store.record_file(name=name, size=size, sha256=sha256, zone_204=zone_204, destination=None,
                                   is_test=None, state="error", work_name=None, status=FileStatus.NOK.value,
                                   reason=reason)
        else:
            self.store.update_file(file_id, work_name=None)
        log.warning("invoicing file %s moved to error/: %s", mask_ssins_in_text(name),
                    mask_ssins_in_text(str(reason).splitlines()[0]))

    # -- post --

    def _send_due(self) -> None:
        now = _iso(self._clock())
        for row in reversed(self.store.files(states=("claimed",))):
            if self._stopping.is_set():
                return
            if row["next_attempt_at"] and row["next_attempt_at"] > now:
                continue
            if self._fenced():
                return
            row = self.store.file(row["id"])  # as it is now: a node that led meanwhile may have posted it
            if row is not None and row["state"] == "claimed":
                self._post(row)

    def _post(self, row: dict) -> None:
        payload = self.folders.work / row["work_name"]
        try:  # chosen again on the day of each post: a mandate may have been suspended since the file came
            client = self.identities.client(self._mailbox_of(row), self._today())
        except Refusal as refusal:
            reason = reasons.identity_refused(refusal)
            self.store.update_file(row["id"], state="error", status=FileStatus.NOK.value, reason=reason)
            self._to_error(payload, row["name"], reason, file_id=row["id"])
            return
        if not self.store.start_posting(row["id"]):
            log.info("invoicing file %s: its post was begun or settled by another node meanwhile; not posted here",
                     row["name"])
            return
        self._checkpoint("before-post")
        try:
            with open(payload, "rb") as stream:
                result = client.post(stream, input_reference=row["zone_204"], destination=row["destination"],
                                     is_test=bool(row["is_test"]))
        except UpstreamUnavailable as exc:
            self._retry_later(row, str(exc), settled=False)
            return
        except UpstreamFault as fault:
            self._post_refused(row, fault)
            return
        self._checkpoint("after-post")
        self.poller.store_post_xades(row, result.xades)
        self.poller.store_tack(result.tack)
        self._checkpoint("after-tack")

    def _post_refused(self, row: dict, fault: UpstreamFault) -> None:
        if fault.code in _UNCERTAIN_FAULTS:
            self._retry_later(row, str(fault), settled=False)
        elif fault.code.startswith(_FILE_FAULT_PREFIXES) or fault.code == "Client":
            reason = reasons.platform_fault(fault.code, fault.message)
            self.store.update_file(row["id"], state="refused", status=FileStatus.NOK.value, reason=reason)
            self._to_error(self.folders.work / row["work_name"], row["name"], reason, file_id=row["id"])
        else:
            self._retry_later(row, str(fault), settled=True)

    def _retry_later(self, row: dict, reason: str, *, settled: bool) -> None:
        """A post that did not get an answer: retry with backoff.  ``settled`` says the platform surely
        did not take it (a fault); otherwise the mailbox must settle it first (see the module docstring)."""
        delay = self._backoff.delay(row["attempts"] + 1)
        next_attempt = _iso(self._clock() + timedelta(seconds=delay))
        state = "claimed" if settled else "posting"
        self.store.update_file(row["id"], state=state, reason=reason, next_attempt_at=next_attempt)
        log.warning("post of %s failed (%s); next attempt in %.0f s", row["name"], reason.splitlines()[0], delay)
        if not settled:
            self.pacing_of(self._mailbox_of(row)).no_later_than(delay)

    def _finish_settled(self, file_id: int) -> None:
        row = self.store.file(file_id)
        if row is None or not row["work_name"]:
            return
        payload = self.folders.work / row["work_name"]
        if not payload.exists():
            self.store.update_file(file_id, work_name=None)
            return
        if row["state"] == "sent":
            move_to(payload, self.folders.archive, row["name"])
            self.store.update_file(file_id, work_name=None)
            log.info("invoicing file %s accepted by MyCareNet (reference %s), archived", row["name"],
                     row["reference"])
        elif row["state"] == "refused":
            self._to_error(payload, row["name"], row["reason"] or "MyCareNet refused the file.", file_id=file_id)

    def _finish_leftovers(self) -> None:
        """Moves a crash interrupted: settled files still in the working folder."""
        for row in self.store.files(states=("sent", "refused")):
            if row["work_name"]:
                self._finish_settled(row["id"])

    def _next_attempt_wait(self) -> float:
        rows = self.store.files(states=("claimed",), limit=1000)
        if not rows:
            return self.rescan_seconds
        now = self._clock()
        waits = [0.0 if not r["next_attempt_at"] else
                 (datetime.fromisoformat(r["next_attempt_at"]) - now).total_seconds() for r in rows]
        return max(0.05, min(waits))

    # -- poll --

    def _poll(self, mailbox: Mailbox) -> None:
        started = _iso(self._clock())
        pacing = self.pacing_of(mailbox)
        pacing.started()
        try:
            client = self.identities.client(mailbox, self._today())
        except Refusal as refusal:
            delay = pacing.failed()
            if self._unusable.get(mailbox) != refusal.code:
                log.error("the mailbox of %s cannot be polled: %s Next try in %.0f s", mailbox, refusal, delay)
            self._unusable[mailbox] = refusal.code
            return
        self._unusable.pop(mailbox, None)
        try:
            outcome = self.poller.poll(client)
        except MailboxThrottled as throttled:
            if not pacing.throttled(throttled):
                log.info("MyCareNet asks to wait %.1f s before the next get of %s", throttled.wait_seconds, mailbox)
                return
            delay = pacing.failed()
            log.error("MyCareNet refused %d gets in a row as too soon (%s): another program may be polling this "
                      "mailbox with the same certificate; stop it. Next try in %.0f s",
                      pacing.throttle_retries, throttled.message, delay)
            return
        except UpstreamError as exc:
            delay = pacing.failed()
            log.warning("polling the mailbox of %s failed (%s); next try in %.0f s", mailbox, exc, delay)
            return
        pacing.answered(more_waiting=not outcome.complete and bool(outcome.messages or outcome.tacks))
        if outcome.complete:
            self._repost_unsettled(started, mailbox, self.repost_grace(client))

    def repost_grace(self, client: GenAsyncClient) -> float:
        """How long a post may still be on its way, or being handled, after it began.

        A post cut off by a crash or a timeout may still reach the platform and be handled after
        the gateway gave up on it (the request was sent; only the answer was lost).  A ``get``
        that shows no TAck proves nothing until then; by default twice the client's timeout.
        """
        if self._repost_grace is not None:
            return self._repost_grace
        return 2 * float(getattr(client, "timeout", 60.0) or 60.0)

    def _repost_unsettled(self, get_started: str, mailbox: Mailbox, grace: float) -> None:
        """Posts to ``mailbox`` begun at least ``repost_grace`` before a complete get of it that showed no
        TAck for them never reached the platform: they may be sent again."""
        cutoff = _iso(datetime.fromisoformat(get_started) - timedelta(seconds=grace))
        for row in self.store.files(states=("posting",)):
            if self._mailbox_of(row) != mailbox:
                continue  # another mailbox's get says nothing about this post
            if row["posting_since"] and row["posting_since"] < cutoff and not self.store.tacks_for(row["id"]):
                log.warning("the post of %s (zone 204 %s) did not reach MyCareNet: it will be sent again",
                            row["name"], row["zone_204"])
                self.store.update_file(row["id"], state="claimed")


__all__ = ["InvoicingPipeline", "check_file"]
