"""GenAsync blobs and destinations: deflating a file as it is posted, inflating an answer, and the
destination (``urn:nip:destination:io:<n>``) of a federation.  ``genasync`` re-exports them."""
from __future__ import annotations

import zlib
from typing import BinaryIO, Callable

DESTINATIONS = frozenset({"100", "200", "300", "400", "500", "600", "900", "690"})
_CHUNK = 1 << 20


def deflate_stream(stream: BinaryIO, chunk_size: int = _CHUNK,
                   on_chunk: Callable[[bytes], object] | None = None) -> bytes:
    """Raw deflate (RFC 1951, as eHealth's connectors send it) of a stream read in chunks (each also
    given to ``on_chunk``: the client hashes the file for its XAdES in the same pass)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = []
    while chunk := stream.read(chunk_size):
        if on_chunk is not None:
            on_chunk(chunk)
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return b"".join(parts)


def inflate(data: bytes, *, limit: int | None = None) -> bytes:
    """Inflate raw deflate or zlib-wrapped data; ``limit`` refuses bombs (ValueError)."""
    for wbits in (-15, 15):
        inflater = zlib.decompressobj(wbits)
        try:
            result = inflater.decompress(data, limit or 0)
        except zlib.error:
            continue
        if limit and inflater.unconsumed_tail:
            raise ValueError(f"the content inflates to more than {limit} bytes")
        if inflater.eof:
            return result
    raise ValueError("the content is not deflated data")


def destination_for(federation_or_mutuality: str) -> str:
    """The GenAsync destination (100..900, 690) for a federation (``199``) or mutuality (``131``).

    The summary record 96 names the federation as its hundred plus 99 (``199`` for 100); a
    mutuality belongs to the federation of its hundred; 69x is Mediprima (690).
    """
    code = (federation_or_mutuality or "").strip()
    if len(code) != 3 or not code.isdigit():
        raise ValueError(f"{code!r} is not a federation or mutuality number (3 digits)")
    if code.startswith("69"):
        return "690"
    destination = f"{code[0]}00"
    if destination not in DESTINATIONS:
        raise ValueError(f"no GenAsync destination for federation {code}")
    return destination
