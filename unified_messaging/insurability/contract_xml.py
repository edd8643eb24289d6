"""The legacy ConsultMyCareNet XML shape (``InsurabilityRequest`` / ``InsurabilityResponse``).

Shared by the interfaces that speak it (the SOAP front and the toQuery folders): they validate
against ``wsdl/ConsultMyCareNet.xsd`` first (:class:`ContractSchema`, here so that neither
interface reaches into the other's package), then use these mappings to and from the core models.
"""
from __future__ import annotations

import re
import sys
import threading
from copy import deepcopy
from datetime import date
from pathlib import Path
from typing import Iterable

from lxml import etree
from lxml.builder import ElementMaker

from unified_messaging.domain.insurability import (
    CareProvider,
    ContactType,
    InsurabilityAnswer,
    InsurabilityQuery,
    RequestType,
)
from unified_messaging.xmlsafe import safe_parser

TNS = "http://unified-messaging.be/ConsultMyCareNet/"
E = ElementMaker(namespace=TNS, nsmap={None: TNS})
WSDL_FILE = "ConsultMyCareNet.wsdl"
XSD_FILE = "ConsultMyCareNet.xsd"


class ContractNotFound(RuntimeError):
    pass


def find_wsdl_dir() -> Path:
    """The project's ``wsdl/`` folder: beside the package in a checkout, else the installed copy."""
    candidates = (
        Path(__file__).resolve().parents[2] / "wsdl",
        Path(sys.prefix) / "share" / "unified-messaging" / "wsdl",
    )
    for candidate in candidates:
        if (candidate / WSDL_FILE).is_file():
            return candidate
    raise ContractNotFound(
        f"{WSDL_FILE} was not found in " + " or ".join(str(c) for c in candidates)
        + "; reinstall unified-messaging (pip install .) from its source folder."
    )


class ContractSchema:
    """The contract XSD as a validator, one copy per thread (lxml validators are not thread-safe)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or find_wsdl_dir()
        self._local = threading.local()

    @property
    def schema(self) -> etree.XMLSchema:
        schema = getattr(self._local, "schema", None)
        if schema is None:
            doc = etree.parse(str(self.folder / XSD_FILE), parser=safe_parser())
            schema = self._local.schema = etree.XMLSchema(doc)
        return schema

    def first_error(self, element: etree._Element) -> str | None:
        """None when ``element`` (a global element of the XSD) is valid, else the first error: unqualified
        (the names say enough), except for an element in another namespace than the one expected."""
        schema = self.schema
        if schema.validate(element):
            return None
        message = schema.error_log.last_error.message
        return _wrong_namespace(message) or re.sub(r"\{[^}]*\}", "", message)

    def validation_error(self, element: etree._Element) -> str | None:
        """None when the element is valid against the contract XSD, else the first error."""
        message = self.first_error(element)
        return None if message is None else f"The request does not match the ConsultMyCareNet contract: {message}"

    def request_error(self, request: etree._Element) -> str | None:
        """Check one ``InsurabilityRequest``-shaped element (any element name) against its XSD type.

        The XSD has no global ``InsurabilityRequest`` element, so the children are checked inside
        the ``GetInsurability/request`` wrapper that has that type; the element is not modified.
        """
        wrapper = E.GetInsurability(E.request(*[deepcopy(child) for child in request]))
        message = self.first_error(wrapper)
        if message is None:
            return None
        return re.sub(r"^Element 'request': ", "", message)


def namespace_phrase(namespace: str) -> str:
    """How a text says which namespace an element is in."""
    return f"is in namespace '{namespace}'" if namespace else "has no namespace"


_UNEXPECTED = re.compile(r"^Element '(?:\{(?P<namespace>[^}]*)\})?(?P<name>[^']+)': This element is not expected\. "
                         r"Expected is (?:one of )?\( (?P<expected>.*) \)\.?$")


def _wrong_namespace(message: str) -> str | None:
    """lxml's "Element 'message' ... Expected is ( message )" once its namespaces are stripped: the text
    that says an element is in the wrong namespace, and in which one it is expected."""
    found = _UNEXPECTED.match(message)
    if found is None:
        return None
    namespace, name = found["namespace"] or "", found["name"]
    expected = [e.strip() for e in found["expected"].split(",")]
    namespaces = sorted({e[1:].split("}", 1)[0] for e in expected if e.startswith("{")})
    if not namespaces or namespace in namespaces:
        return None
    wanted = [e for e in expected if e.rsplit("}", 1)[-1] == name] or expected
    element = f"{{{namespace}}}{name}" if namespace else name
    return (f"Element {element} {namespace_phrase(namespace)}; expected {' or '.join(wanted)}: put it in "
            f"the namespace '{namespaces[0]}'.")


CONTACT_TYPES = {
    "Ambulatory": ContactType.AMBULATORY,
    "HospitalizedForDay": ContactType.HOSPITALIZED_FOR_DAY,
    "HospitalizedElsewhere": ContactType.HOSPITALIZED_ELSEWHERE,
    "Other": ContactType.OTHER,
}
REQUEST_TYPES = {"Information": RequestType.INFORMATION, "Invoicing": RequestType.INVOICING}


_QUALIFIED = f"{{{TNS}}}"


def _children(parent: etree._Element | None) -> dict[str, etree._Element]:
    """The contract's child elements of ``parent`` by local name, the first of each name (one pass, where a
    ``find`` per field costs a path lookup each)."""
    found: dict[str, etree._Element] = {}
    if parent is None:
        return found
    for child in parent:
        tag = child.tag
        if type(tag) is str and tag.startswith(_QUALIFIED):
            found.setdefault(tag[len(_QUALIFIED):], child)
    return found


def _value(element: etree._Element | None) -> str | None:
    text = None if element is None else element.text
    if text is None:
        return None
    return text.strip() or None


def query_from_xml(request: etree._Element) -> InsurabilityQuery:
    """Read an ``InsurabilityRequest`` element that is already valid against the contract XSD."""
    fields = _children(request)
    provider = _children(fields.get("CareProvider"))
    start = date.fromisoformat(_value(fields.get("PeriodStart"))[:10])
    end_text = _value(fields.get("PeriodEnd"))
    return InsurabilityQuery(
        care_provider=CareProvider(
            nihii=_value(provider.get("Nihii")) or "",
            quality=(_value(provider.get("Quality")) or "").lower(),
        ),
        period_start=start,
        period_end=date.fromisoformat(end_text[:10]) if end_text else start,
        ssin=_value(fields.get("Ssin")),
        mutuality=_value(fields.get("Mutuality")),
        registration_number=_value(fields.get("RegistrationNumber")),
        contact_type=CONTACT_TYPES[_value(fields.get("ContactType")) or "Ambulatory"],
        request_type=REQUEST_TYPES[_value(fields.get("RequestType")) or "Information"],
        reference=_value(fields.get("Reference")),
    )


# The answer as a tree of (name, text or children) items, written two ways from the same tree: as lxml
# elements (``answer_to_xml``, for the folders and Spyne) and as text (``answer_to_text``, the SOAP
# front's answer without building elements). A text is a str, or whatever an element was given.


def _opt(name: str, value: object) -> list[tuple[str, object]]:
    """An element only when there is a value (everything after Status is optional)."""
    if value is None or value == "":
        return []
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, date):
        value = value.isoformat()
    return [(name, str(value))]


def _group(name: str, children: Iterable[tuple[str, object]]) -> list[tuple[str, object]]:
    children = list(children)
    return [(name, children)] if children else []


def answer_items(answer: InsurabilityAnswer) -> list[tuple[str, object]]:
    """The children of the contract's ``InsurabilityResponse`` for an answer, in the contract's order."""
    body: list[tuple[str, object]] = [("Status", "OK" if answer.ok else "ERROR")]
    body += _opt("Reference", answer.query.reference)
    body += _opt("AuditReference", answer.audit_reference)
    if answer.patient:
        p = answer.patient
        body += _group("Patient", [
            *_opt("Ssin", p.ssin), *_opt("LastName", p.last_name), *_opt("FirstName", p.first_name),
            *_opt("BirthDate", p.birth_date), *_opt("Sex", p.sex), *_opt("DeceasedDate", p.deceased_date),
        ])
    body += _group("Insurabilities", [
        ("Insurability", [
            *_opt("Mutuality", i.mutuality), *_opt("RegistrationNumber", i.registration_number),
            *_opt("PeriodStart", i.period_start), *_opt("PeriodEnd", i.period_end),
            *_opt("CT1", i.ct1), *_opt("CT2", i.ct2),
            *_opt("PaymentByIo", i.payment_by_io if i.payment_by_io is not None else answer.payment_by_io),
            *_opt("InsurabilityDate", i.insurability_date),
        ])
        for i in answer.insurabilities
    ])
    if answer.general_situation:
        g = answer.general_situation
        body.append(("GeneralSituation", [
            *_opt("Event", g.event),
            *_group("Transfers", [
                ("Transfer", [*_opt("Direction", t.direction), *_opt("Mutuality", t.insurance_org),
                              *_opt("TransferDate", t.transfer_date)])
                for t in g.transfers
            ]),
        ]))
    if answer.medical_house:
        m = answer.medical_house
        body.append(("MedicalHouse", [
            *_opt("PeriodStart", m.period_start), *_opt("PeriodEnd", m.period_end),
            *_opt("Nurse", m.nurse), *_opt("Medical", m.medical), *_opt("Kine", m.kine),
        ]))
    if answer.hospitalized:
        h = answer.hospitalized
        body.append(("Hospitalized", [
            *_opt("Hospital", h.hospital), *_opt("AdmissionDate", h.admission_date),
            *_opt("AdmissionService", h.admission_service),
        ]))
    body += _group("MaxInvoicedYears", [("Year", str(y)) for y in answer.max_invoiced_years])
    if answer.fault:
        f = answer.fault
        messages = [("Message", [("Code", f.code), ("Severity", "Error"), ("Text", f.message),
                                 *_opt("Location", f.source)])]
        if f.multi_io:
            messages.append(("Message", [
                ("Code", f.code), ("Severity", "Information"),
                ("Text", "Insurers that know this patient: " + ", ".join(f.multi_io)), ("Location", "MultiIO"),
            ]))
        messages += [
            ("Message", [("Code", d.code), ("Severity", "Error"), *_opt("Text", d.message),
                         *_opt("Location", d.location)])
            for d in f.details
        ]
        body.append(("Messages", messages))
    return body


def _element(name: str, content: object) -> etree._Element:
    if isinstance(content, list):
        return getattr(E, name)(*[_element(*child) for child in content])
    return getattr(E, name)(content)


def answer_to_xml(answer: InsurabilityAnswer, element_name: str = "GetInsurabilityResult") -> etree._Element:
    """Build the contract's ``InsurabilityResponse`` (under ``element_name``) for an answer."""
    return _element(element_name, answer_items(answer))


class NotPlainText(ValueError):
    """A text ``answer_to_text`` does not write as lxml would (not a str, or a character XML cannot
    hold): build the answer with ``answer_to_xml``, which refuses or writes it as before."""


_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def _write(name: str, content: object, prefix: str, out: list[str]) -> None:
    if isinstance(content, list):
        if not content:
            out.append(f"<{prefix}{name}/>")
            return
        out.append(f"<{prefix}{name}>")
        for child in content:
            _write(*child, prefix, out)
        out.append(f"</{prefix}{name}>")
        return
    if type(content) is not str or _XML_UNSAFE.search(content):
        raise NotPlainText(f"{name}: {type(content).__name__} text that only lxml may judge")
    out.append(f"<{prefix}{name}>{content.translate(_ESCAPES)}</{prefix}{name}>" if content
               else f"<{prefix}{name}></{prefix}{name}>")


def answer_to_text(answer: InsurabilityAnswer, element_name: str = "GetInsurabilityResult",
                   prefix: str = "tns:") -> str:
    """The same element as ``answer_to_xml``, written as lxml writes it (UTF-8, the contract's namespace
    bound to ``prefix`` by an ancestor) without building it; raises ``NotPlainText`` for a text it
    cannot write exactly so."""
    out: list[str] = []
    _write(element_name, answer_items(answer), prefix, out)
    return "".join(out)


def error_to_xml(code: str, text: str, *, location: str | None = None, reference: str | None = None,
                 element_name: str = "InsurabilityResponse") -> etree._Element:
    """An ``InsurabilityResponse`` with ``Status=ERROR`` for a request that could not even be asked."""
    return _element(element_name, [
        ("Status", "ERROR"), *_opt("Reference", reference),
        ("Messages", [("Message", [("Code", code), ("Severity", "Error"), ("Text", text),
                                   *_opt("Location", location)])]),
    ])
