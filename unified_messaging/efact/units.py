"""Cutting a 920000 sending into its units (segment 200, segment 300, 350-character records).

The splitter works on a stream of bytes in chunks with a bounded buffer, so a 50 MB file needs a
few megabytes at most; :mod:`.validator` checks the units, :func:`iter_units` only reads them.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from unified_messaging.efact.layout import (
    HEADER_LENGTH,
    RECORD_LENGTH,
    SEGMENT_200_LENGTH,
    SEGMENT_300_LENGTH,
)
from unified_messaging.efact.report import EfactError, ValidationIssue
from unified_messaging.texts import Text, message, text

DEFAULT_CHUNK_SIZE = 1 << 20

_EMPTY = message("the file is empty")
_TOO_SHORT = message("the file is too short: {length} characters, fewer than the {header} of its header "
                     "(segments 200 and 300)")
_STRAY_BREAKS = message("stray line breaks after the last record; an eFact file is one single line")
_TRUNCATED = message("truncated record: the file ends {length} characters into this record, which needs {needed}")


@dataclass(frozen=True, slots=True)
class RawUnit:
    """One piece of the file: segment 200, segment 300 or a 350-character record.

    ``record_type`` is ``"200"``/``"300"`` for the segments, the first two characters otherwise.
    """

    kind: str  # "200", "300" or "record"
    index: int | None
    offset: int
    record_type: str
    text: str = field(repr=False)
    raw: bytes = field(repr=False)


class Splitter:
    """Cuts a byte stream into the file's units (67, 160, then 350 each) with a bounded buffer."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.offset = 0
        self.units = 0

    def _next_length(self) -> int:
        if self.units == 0:
            return SEGMENT_200_LENGTH
        if self.units == 1:
            return SEGMENT_300_LENGTH
        return RECORD_LENGTH

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        self._buffer += chunk
        position = 0
        try:
            while True:
                length = self._next_length()
                if len(self._buffer) - position < length:
                    return
                unit = bytes(self._buffer[position:position + length])
                position += length
                yield self.offset, unit
                self.offset += length
                self.units += 1
        finally:
            del self._buffer[:position]

    @property
    def leftover(self) -> bytes:
        return bytes(self._buffer)


def make_unit(splitter_units: int, offset: int, raw: bytes) -> RawUnit:
    text = raw.decode("latin-1")
    if splitter_units == 0:
        return RawUnit("200", None, offset, "200", text, raw)
    if splitter_units == 1:
        return RawUnit("300", None, offset, "300", text, raw)
    return RawUnit("record", splitter_units - 2, offset, text[:2], text, raw)


def iter_units(stream: BinaryIO, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[RawUnit]:
    """Read a 920000 file piece by piece without checking it (use :func:`.validator.validate_stream` for that).

    Raises :class:`EfactError` when the file ends inside a unit (a trailing newline is ignored).
    """
    splitter = Splitter()
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        for offset, raw in splitter.feed(chunk):
            yield make_unit(splitter.units, offset, raw)
    leftover = splitter.leftover
    if splitter.units < 2 or leftover not in (b"", b"\n", b"\r\n"):
        raise EfactError(truncation_issue(splitter.units, splitter.offset, leftover))


def truncation_issue(units: int, offset: int, leftover: bytes) -> ValidationIssue:
    """The issue for bytes left over after the last complete unit."""
    body = leftover.rstrip(b"\r\n")
    end = offset + len(body)
    if units < 2:
        if end == 0:
            return ValidationIssue.found(None, None, None, text(_EMPTY), offset=0)
        return ValidationIssue.found(None, None, None, text(_TOO_SHORT, length=end, header=HEADER_LENGTH),
                                     offset=end)
    index = units - 2
    record_type = body[:2].decode("latin-1") if len(body) >= 2 else None
    if not body or b"\n" in body or b"\r" in body:
        return ValidationIssue.found(None, None, None, text(_STRAY_BREAKS), offset=offset)
    return ValidationIssue.found(record_type, index, None,
                                 text(_TRUNCATED, length=len(body), needed=RECORD_LENGTH), offset=offset)


_PDF = message("a PDF document")
_ZIP = message("a ZIP archive (or an Office document)")
_GZIP = message("a gzip-compressed file")
_XML = message("an XML document")
_MARKUP = message("an XML or HTML document")
_JSON = message("a JSON document")
_UTF16 = message("a UTF-16 text file")
_DEFLATE = message("a deflate-compressed file (send the plain file, the gateway compresses it)")
_KINDS = ((b"%PDF", _PDF), (b"PK\x03\x04", _ZIP), (b"\x1f\x8b", _GZIP), (b"<?xml", _XML),
          (b"\xef\xbb\xbf<", _XML), (b"<", _MARKUP), (b"{", _JSON), (b"[", _JSON), (b"\xff\xfe", _UTF16),
          (b"\xfe\xff", _UTF16))


def sniff(prefix: bytes) -> Text | None:
    """Name the kind of file when it plainly is not an eFact flat file (``str()`` of it is English)."""
    for magic, name in _KINDS:
        if prefix.startswith(magic):
            return text(name)
    if prefix[:1] == b"\x78" and prefix[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
        return text(_DEFLATE)
    return None


def read_sending(data: bytes | str) -> list[RawUnit]:
    """All units of a (small) sending in memory; raises :class:`EfactError` when truncated."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    return list(iter_units(io.BytesIO(raw)))
