"""The insurability folder interface: ``toQuery`` -> ``queried`` (or ``error``).

The lab software writes a request file in ``toQuery`` (one or many ``InsurabilityRequest``
elements under an ``InsurabilityRequests`` root, see README), then its marker ``<name>.ok``.
UM claims the pair into ``working/`` (see :mod:`unified_messaging.folders.watcher`), asks every
request through the core service, and then, in this order:

1. writes the answer file ``queried/<stem>.answer.xml`` atomically (one ``InsurabilityResponse``
   per request, in the order of the requests);
2. moves the request file to ``queried/<name>``;
3. writes ``queried/<stem>.answer.xml.ok`` atomically, last, so the lab never reads half an answer.

A request that fails (not valid against the contract, bad SSIN, patient unknown...) gets its error
inside its ``InsurabilityResponse``; a file that cannot be read at all (not XML, too large, wrong
root) goes to ``error/`` with ``<name>.reason.txt``. When MyCareNet cannot be reached for any
request of a file, no answer is written: the file stays in ``working/`` and the whole file is asked
again later (backoff), so a lab never receives an "unreachable" answer for a request UM can still
answer. A crash anywhere leaves either the file in ``working/`` (asked again, the answer replaced
under the same name) or an answer without its ``.ok`` beside its request in ``queried/``, which
start-up completes.

A storage fault (the data folder full or read-only, or the journal's disk) at any of these writes
leaves the file where it is, and the watcher tries again by the shared policy until the disk can
be written, without a restart. The answer already obtained is kept in memory meanwhile and
written as it was, so MyCareNet is not asked again for it; only a consultation whose journal line
could not be written is asked again (an unrecorded consultation is never answered).
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lxml import etree

from unified_messaging.folders.files import MARKER, free_name, fsync_folder, write_atomically
from unified_messaging.folders.watcher import FolderWatcher, Rejected, RetryLater, WatchedFolders
from unified_messaging.insurability.contract_xml import (
    TNS,
    ContractSchema,
    E,
    answer_to_xml,
    error_to_xml,
    query_from_xml,
)
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.domain.errors import UpstreamUnavailable
from unified_messaging.xmlsafe import UnsafeXml, parse_xml
from unified_messaging.texts import message, text

log = logging.getLogger(__name__)

INTERFACE = "folder"
REQUESTS_ROOT = "InsurabilityRequests"
REQUEST = "InsurabilityRequest"
RESPONSES_ROOT = "InsurabilityResponses"
RESPONSE = "InsurabilityResponse"
ANSWER_SUFFIX = ".answer.xml"
CONTRACT_CODE = "UM-CONTRACT"


@dataclass(frozen=True)
class InsurabilityFolderLayout:
    """``toQuery``, ``queried``, ``error`` (the lab's) and ``working`` (UM's) under one root."""

    root: Path

    @property
    def to_query(self) -> Path:
        return self.root / "toQuery"

    @property
    def queried(self) -> Path:
        return self.root / "queried"

    @property
    def error(self) -> Path:
        return self.root / "error"

    @property
    def working(self) -> Path:
        return self.root / "working"

    def watched(self) -> WatchedFolders:
        return WatchedFolders(inbox=self.to_query, work=self.working, error=self.error)

    def create(self) -> None:
        for folder in (self.to_query, self.queried, self.error, self.working):
            folder.mkdir(parents=True, exist_ok=True)


def answer_name(request_name: str) -> str:
    """``lab-0001.xml`` -> ``lab-0001.answer.xml``; a name without ``.xml`` gets the suffix appended."""
    stem = request_name[:-4] if request_name.lower().endswith(".xml") else request_name
    return stem + ANSWER_SUFFIX


def read_request_elements(data: bytes, *, max_bytes: int) -> list[etree._Element]:
    """The request elements of a request file; raises ``Rejected`` when the file cannot be read at all."""
    if len(data) > max_bytes:
        raise Rejected(str(text(TOO_BIG, size=len(data), limit=max_bytes)))
    try:
        root = parse_xml(data)
    except UnsafeXml as exc:
        raise Rejected(str(text(UNREADABLE, problem=str(exc)))) from None
    if root.tag == f"{{{TNS}}}{REQUEST}":
        return [root]
    if root.tag != f"{{{TNS}}}{REQUESTS_ROOT}":
        raise Rejected(str(text(WRONG_ROOT, found=_readable(root.tag), root=REQUESTS_ROOT, request=REQUEST,
                                namespace=TNS)))
    requests = [child for child in root if isinstance(child.tag, str)]
    if not requests:
        raise Rejected(str(text(NO_REQUEST, root=REQUESTS_ROOT, request=REQUEST)))
    return requests


# Why a toQuery file went to error/: registered texts, so that Mybox shows them in the user's language.
TOO_BIG = message("The file has {size} bytes, more than the {limit} accepted ([folders] max_request_file_bytes); "
                  "split it into several files.")
UNREADABLE = message("The file cannot be read: {problem}")
WRONG_ROOT = message("The root element is {found}; expected {root} (or a single {request}) in the namespace "
                     "{namespace}, e.g. <{root} xmlns=\"{namespace}\"><{request}>...</{request}></{root}>.")
NO_REQUEST = message("The file holds no {request}: put one or more inside <{root}>.")
IN_NAMESPACE = message("{local} (namespace {namespace})")
IN_NO_NAMESPACE = message("{local} (no namespace)")


def _readable(tag: str) -> str:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return str(text(IN_NAMESPACE, local=local, namespace=namespace) if namespace
               else text(IN_NO_NAMESPACE, local=local))


class InsurabilityRequestFile:
    """Answers the requests of one file, in order, through the core service."""

    def __init__(self, service: InsurabilityService, schema: ContractSchema, pool: ThreadPoolExecutor) -> None:
        self.service = service
        self.schema = schema
        self.pool = pool

    def answer(self, requests: list[etree._Element]) -> etree._Element:
        """The ``InsurabilityResponses`` document; raises ``RetryLater`` when MyCareNet cannot be reached."""
        futures = [self.pool.submit(self._one, index, request) for index, request in enumerate(requests, 1)]
        responses: list[etree._Element] = []
        unavailable: UpstreamUnavailable | None = None
        for future in futures:
            try:
                responses.append(future.result())
            except UpstreamUnavailable as exc:
                unavailable = exc
        if unavailable is not None:
            raise RetryLater(str(unavailable))
        return E(RESPONSES_ROOT, *responses)

    def _one(self, index: int, request: etree._Element) -> etree._Element:
        location = f"{REQUEST}[{index}]"
        if request.tag != f"{{{TNS}}}{REQUEST}":
            return error_to_xml(CONTRACT_CODE, f"Request {index} is a {_readable(request.tag)} element; expected "
                                f"{REQUEST} in the namespace {TNS}.", location=location, element_name=RESPONSE)
        problem = self.schema.request_error(request)
        if problem:
            reference = request.findtext(f"{{{TNS}}}Reference")
            return error_to_xml(
                CONTRACT_CODE, f"Request {index} does not match the ConsultMyCareNet contract: {problem}",
                location=location, reference=reference if reference and len(reference) <= 25 else None,
                element_name=RESPONSE,
            )
        query = query_from_xml(request)
        return answer_to_xml(self.service.consult(query, interface=INTERFACE), element_name=RESPONSE)


class InsurabilityFolders:
    """The running folder interface: a :class:`FolderWatcher` on ``toQuery`` and the handler."""

    def __init__(
        self,
        service: InsurabilityService,
        root: Path,
        *,
        schema: ContractSchema | None = None,
        max_request_file_bytes: int = 5 * 1024 * 1024,
        max_parallel: int = 8,
        poll: bool = False,
        rescan_seconds: float = 30.0,
        orphan_grace_seconds: float = 5.0,
        first_backoff_seconds: float = 5.0,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.layout = InsurabilityFolderLayout(Path(root))
        self.max_request_file_bytes = max_request_file_bytes
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="um-folder")
        self._file = InsurabilityRequestFile(service, schema or ContractSchema(), self._pool)
        self.watcher = FolderWatcher(
            self.layout.watched(), self.handle, poll=poll, rescan_seconds=rescan_seconds,
            orphan_grace_seconds=orphan_grace_seconds, first_backoff_seconds=first_backoff_seconds,
            name="toQuery", finish=self.finish_answers, may_act=may_act,
        )
        self._unfinished: set[Path] = set()  # answers whose .ok a storage fault kept from being written
        self._unwritten: dict[tuple[str, bytes], etree._Element] = {}  # answers a storage fault kept on hold

    def start(self) -> "InsurabilityFolders":
        self.layout.create()
        self.complete_interrupted()
        self.watcher.start()
        return self

    def stop(self) -> None:
        self.watcher.stop()
        self._pool.shutdown(wait=True)

    def complete_interrupted(self) -> int:
        """Write the ``.ok`` of every answer whose request was moved but whose marker was not written."""
        done = 0
        for answer in self.layout.queried.glob("*" + ANSWER_SUFFIX):
            marker = answer.with_name(answer.name + MARKER)
            if marker.exists():
                continue
            if any(answer_name(r.name) == answer.name for r in self._requests_for(answer)):
                write_atomically(marker, b"")
                log.info("completed the interrupted answer %s", answer.name)
                done += 1
        return done

    def finish_answers(self) -> None:
        """Write the ``.ok`` a storage fault stopped after the request was moved (each pass, no restart)."""
        for marker in sorted(self._unfinished):
            write_atomically(marker, b"")
            self._unfinished.discard(marker)
            log.info("completed the answer %s once the data folder could be written again", marker.name[:-len(MARKER)])

    def _requests_for(self, answer: Path) -> list[Path]:
        stem = answer.name[: -len(ANSWER_SUFFIX)]
        return [p for p in (answer.with_name(stem + ".xml"), answer.with_name(stem)) if p.is_file()]

    def handle(self, claimed: Path) -> None:
        """Answer one claimed request file (the FolderWatcher's handler)."""
        data = claimed.read_bytes()
        requests = read_request_elements(data, max_bytes=self.max_request_file_bytes)
        # An answer a storage fault kept from being written is written as it was: not asked again.
        key = (claimed.name, hashlib.sha256(data).digest())
        document = self._unwritten.get(key)
        if document is None:
            document = self._unwritten[key] = self._file.answer(requests)
        queried = self.layout.queried
        # A free request name whose answer has no .ok yet: a leftover answer of an interrupted
        # attempt for this very file is replaced, an answered earlier file of the same name is not.
        target = free_name(queried, claimed.name, taken=lambda p: p.exists() or (
            queried / (answer_name(p.name) + MARKER)).exists())
        answer = queried / answer_name(target.name)
        write_atomically(answer, etree.tostring(document, xml_declaration=True, encoding="UTF-8"))
        os.replace(claimed, target)
        del self._unwritten[key]
        marker = answer.with_name(answer.name + MARKER)
        self._unfinished.add(marker)  # from here on the request is out of working/: finish_answers completes it
        fsync_folder(queried)
        write_atomically(marker, b"")
        self._unfinished.discard(marker)
        log.info("answered %s: %d request(s) -> %s", claimed.name, len(requests), answer.name)
