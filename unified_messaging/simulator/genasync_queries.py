"""How the simulated GenAsync mailbox reads a request's addressing and its get queries, and how it
says "Not enough time" (the platform's throttling fault); shared by the eFact and MDA mailboxes."""
from __future__ import annotations

from lxml import etree

from unified_messaging.mycarenet.genasync import GENASYNC_NS, MULTICAST, TYPES_NS, WSA_NS
from unified_messaging.simulator.soap import MALFORMED_CONTENT, XML_NS, SoapFault, SoapRequest


def _g(name: str) -> str:
    return f"{{{GENASYNC_NS}}}{name}"


def _t(name: str) -> str:
    return f"{{{TYPES_NS}}}{name}"


def addressed_to(request: SoapRequest) -> str | None:
    if request.header is None:
        return None
    node = request.header.find(f"{{{WSA_NS}}}To")
    return node.text.strip() if node is not None and node.text else None


def check_mailbox_address(request: SoapRequest, operation: str) -> None:
    """A get or confirm concerns the whole mailbox: addressed to MULTICAST, as the official connector does,
    or to nobody (freehealth-connector leaves ``To`` empty); a federation or a URL is refused."""
    to = addressed_to(request)
    if to is not None and to != MULTICAST:
        raise SoapFault.client(MALFORMED_CONTENT, f"The WS-Addressing To of a {operation} is {to!r}: a {operation} "
                                                  f"concerns the whole mailbox and is addressed to {MULTICAST}.")


def included(query: etree._Element | None) -> bool:
    return query is not None and query.get("Include", "true") in ("true", "1")


def max_items(query: etree._Element | None) -> int:
    text = query.findtext(_g("Max")) if query is not None else None
    return int(text) if text and text.strip().isdigit() else 100


def throttled(wait: float) -> SoapFault:
    message = f"Not enough time between two get calls: wait {max(wait, 0.1):.1f} s before asking again."
    detail = etree.Element(_g("fault"), nsmap={"ga": GENASYNC_NS, "t": TYPES_NS})
    etree.SubElement(detail, _t("FaultCode")).text = "NOT_ENOUGH_TIME"
    etree.SubElement(detail, _t("FaultSource")).text = "MyCareNet"
    text = etree.SubElement(detail, _t("Message"))
    text.set(f"{{{XML_NS}}}lang", "en")
    text.text = message
    etree.SubElement(detail, _t("Details"))
    return SoapFault("Client", "NOT_ENOUGH_TIME", message, detail=detail)
