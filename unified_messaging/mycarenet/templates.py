"""Requests that zeep renders once per shape and that are then filled in, call after call.

zeep builds a request from the WSDL by walking its XSD types for every value of every call:
about 0.9 ms of CPU for a GetInsurability request, a quarter of the gateway's CPU per call, to
give the same elements in the same order each time. Here zeep renders a request once per
**shape** (the same keys, the same booleans and absent values; the texts and numbers replaced by
placeholders), the rendered envelope is kept as bytes cut at the placeholders, and a call only
puts its own texts (XML-escaped) between the pieces and parses the result. The envelope is the one
zeep would have made for those values: ``tests/test_upstream_templates.py`` compares them byte
for byte.

A value this does not know how to write as zeep does (a type other than text, integer or date,
or a text with characters XML cannot hold) makes the call go through zeep itself, which then
renders or refuses it exactly as before.
"""
from __future__ import annotations

import re
import threading
from datetime import date
from typing import Any

from lxml import etree

_SLOT = "UMSLOT{}Z"
_SLOT_BYTES = re.compile(rb"UMSLOT(\d+)Z")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;",
                          "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})
_local = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser for what this module renders from zeep's output and our escaped texts.

    One per thread: lxml lets one thread at a time use a parser and makes the others wait on a lock,
    which under load put every front thread's message building in one queue.
    """
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                 remove_blank_text=False)
    return parser


class Unsupported(Exception):
    """A value the template cannot write as zeep would: zeep renders the call."""


def _text(value: Any) -> str:
    """The text zeep writes for a leaf value (its ``xmlvalue`` for strings, integers and dates)."""
    if isinstance(value, bool):
        raise Unsupported("booleans are part of the shape")
    if isinstance(value, str):
        if _NOT_XML.search(value):
            raise Unsupported("a character XML cannot hold")
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    raise Unsupported(type(value).__name__)


def _shape(values: Any, texts: list[str]) -> Any:
    """A hashable picture of ``values`` with each text, number and date replaced by a placeholder
    (its own text appended to ``texts``, in order); booleans and ``None`` stay in the picture."""
    if isinstance(values, dict):
        return tuple([(key, _shape(value, texts)) for key, value in values.items()])
    if isinstance(values, (list, tuple)):
        return ("[]", *[_shape(value, texts) for value in values])
    if values is None or isinstance(values, bool):
        return values
    texts.append(_text(values))
    return ("slot", type(values).__name__)


def _with_slots(values: Any, counter: list[int]) -> Any:
    """``values`` with each leaf that ``_shape`` replaces given as a placeholder text for zeep."""
    if isinstance(values, dict):
        return {key: _with_slots(value, counter) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [_with_slots(value, counter) for value in values]
    if values is None or isinstance(values, bool):
        return values
    counter[0] += 1
    return _SLOT.format(counter[0] - 1)


class MessageTemplates:
    """The envelopes of one zeep operation, a template per shape of the values (see the module)."""

    def __init__(self, operation: Any, top_nsmap: dict[str, str]) -> None:
        self._operation = operation
        self._top_nsmap = top_nsmap
        self._templates: dict[Any, tuple[list[bytes], list[int]]] = {}
        self._lock = threading.Lock()

    def render_with_zeep(self, values: dict) -> etree._Element:
        """The envelope as zeep renders it, namespaces declared at the top: the reference."""
        envelope = self._operation.create(**values).content
        etree.cleanup_namespaces(envelope, top_nsmap=self._top_nsmap)
        return envelope

    def envelope(self, values: dict) -> etree._Element:
        """The envelope for ``values``, the one ``render_with_zeep(values)`` gives."""
        texts: list[str] = []
        try:
            shape = _shape(values, texts)
        except Unsupported:
            return self.render_with_zeep(values)
        template = self._templates.get(shape)
        if template is None:
            template = self._template(values)
            with self._lock:
                self._templates[shape] = template
        pieces, order = template
        escaped = [text.translate(_ESCAPES).encode("utf-8") for text in texts]
        out = [pieces[0]]
        for index, piece in zip(order, pieces[1:]):
            out.append(escaped[index])
            out.append(piece)
        return etree.fromstring(b"".join(out), parser=_parser())

    def _template(self, values: dict) -> tuple[list[bytes], list[int]]:
        rendered = etree.tostring(self.render_with_zeep(_with_slots(values, [0])), encoding="UTF-8")
        parts = _SLOT_BYTES.split(rendered)  # text, slot number, text, slot number, ..., text
        return parts[0::2], [int(number) for number in parts[1::2]]
