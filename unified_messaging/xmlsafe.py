"""One hardened lxml parser for everything that arrives from outside.

No DTD loading, no entity expansion, no network access, no huge trees: an XML bomb or an
external-entity trick gets a clear ``UnsafeXml`` error instead of being resolved.
"""
from __future__ import annotations

import threading

from lxml import etree


class UnsafeXml(ValueError):
    """The document is not well-formed or uses a forbidden XML feature (DTD, entities)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        # Comments and processing instructions never carry data here, and a comment inserted in a
        # signed value would not break the signature (C14N drops it) yet truncate ``.text``.
        remove_comments=True,
        remove_pis=True,
    )


_local = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's parser, built once: an lxml parser may not be used by two threads at a time,
    and building one per call cost more than parsing a small SOAP message."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _parser()
    return parser


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted bytes; refuse any document with a DOCTYPE (where entities hide)."""
    try:
        root = etree.fromstring(data, parser=_thread_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"The XML is not well-formed: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise UnsafeXml("The XML declares a DOCTYPE; document type declarations and entities are not accepted.")
    return root


def safe_parser() -> etree.XMLParser:
    """A parser with the same hardening, for APIs (zeep, schemas) that want a parser object."""
    return _parser()
