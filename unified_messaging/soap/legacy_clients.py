"""What the ASMX-era services tolerated and legacy clients rely on, applied before validation.

Perl SOAP::Lite with autotype on writes ``xsi:type="xsd:long"`` on an SSIN (and ``xsd:string``,
``xsd:int``, ``xsd:date``... on every value, sometimes with an undeclared ``xsd`` prefix); its
``service(wsdl)`` stub qualifies the operation element only and sends its content unqualified.
The old services read a simple element's text whatever its ``xsi:type`` and took unqualified
content as theirs.  So, inside an operation element of the contract's namespace:

* an element in no namespace is taken as the contract's element of that name;
* a simple value (an element without child elements) loses its ``xsi:type``, so that the XSD
  checks its text against the type the contract declares: a lexically valid value is accepted
  whatever it was annotated with, an invalid one is refused as before.  A value annotated
  ``xsd:base64Binary`` (SOAP::Lite's autotype for any text that is not ASCII) is decoded first;
* an empty simple value marked ``xsi:nil="true"`` (what SOAP::Lite sends for ``undef``, and Axis or
  .NET clients for a null optional field) is left out, as the old services read it: absent.  The XSD
  then accepts it where the element is optional and says which element is missing where it is not.

Everything else is left to the XSD: unknown elements, wrong nesting, an element qualified in
another namespace, ``xsi:type`` on an element with content.  A Body element outside the contract's
namespace is refused here with a fault that names both namespaces.
"""
from __future__ import annotations

import base64
import binascii

from lxml import etree
from spyne.error import Fault

from unified_messaging.insurability.contract_xml import namespace_phrase
from unified_messaging.soap.contract import TNS

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
XSD = "http://www.w3.org/2001/XMLSchema"
_BODIES = ("{http://schemas.xmlsoap.org/soap/envelope/}Body", "{http://www.w3.org/2003/05/soap-envelope}Body")


def namespace_of(element: etree._Element) -> str:
    """The namespace URI of an element, "" when it has none."""
    return etree.QName(element).namespace or ""


def _operation_elements(root: etree._Element) -> list[etree._Element]:
    body = next((child for child in root if child.tag in _BODIES), None)
    return [] if body is None else [child for child in body if isinstance(child.tag, str)]


def accept_legacy_habits(root: etree._Element, operations: frozenset[str]) -> int:
    """Adjust the operation element of the envelope ``root`` in place; how many elements were changed.

    ``operations`` are the contract's operation names: a Body element of that name outside the
    contract's namespace is a Client fault that says which namespace is expected.
    """
    changed = 0
    for operation in _operation_elements(root):
        name = etree.QName(operation)
        if name.namespace != TNS:
            if name.localname in operations:
                raise Fault("Client.WrongNamespace", (
                    f"The operation element {operation.tag} {namespace_phrase(name.namespace or '')}; expected "
                    f"{{{TNS}}}{name.localname}: declare xmlns=\"{TNS}\" on it."))
            continue
        for element in list(operation.iterdescendants(tag=etree.Element)):
            if element.tag[0] == "{" and element.get(XSI_TYPE) is None and element.get(XSI_NIL) is None:
                continue  # qualified, neither typed nor nil: what a current client sends, nothing to change
            if _nil(element):
                element.getparent().remove(element)
                changed += 1
                continue
            before = (element.tag, element.get(XSI_TYPE))
            if not namespace_of(element):
                element.tag = f"{{{TNS}}}{element.tag}"
            if next(element.iterchildren(tag=etree.Element), None) is None:
                _plain_value(element)
            changed += before != (element.tag, element.get(XSI_TYPE))
    return changed


def _nil(element: etree._Element) -> bool:
    """Whether ``element`` is an empty value marked ``xsi:nil`` (one with content is left to the XSD)."""
    return (element.get(XSI_NIL, "").strip() in ("true", "1") and not (element.text or "").strip()
            and len(element) == 0)


def _plain_value(element: etree._Element) -> None:
    """Drop the ``xsi:type`` of a simple value; a value sent as ``xsd:base64Binary`` (what SOAP::Lite does
    with any text that is not ASCII, "hé" going out as "aMOp") is first decoded to the text it stands for."""
    annotation = element.attrib.pop(XSI_TYPE, None)
    if annotation is None or annotation.rpartition(":")[2] != "base64Binary":
        return
    prefix = annotation.rpartition(":")[0] or None
    if element.nsmap.get(prefix, XSD) != XSD:
        return
    try:
        element.text = base64.b64decode(element.text or "", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Fault("Client.SchemaValidation", (
            f"The request does not match the ConsultMyCareNet contract: element "
            f"{etree.QName(element).localname} is typed xsd:base64Binary, but its content is not the base64 "
            "of UTF-8 text: send the value as text (in Perl SOAP::Lite: SOAP::Data->type('string'))."))

