"""The ConsultMyCareNet contract files in ``wsdl/``, served verbatim with their addresses rewritten.

Spyne cannot reproduce a given legacy WSDL (names, soapActions, ``?xsd=``), so the files written
in ``wsdl/`` are the contract: this module finds them, reads what the services page needs from the
WSDL, validates request bodies against the XSD, and rewrites ``soap:address`` and
``schemaLocation`` for the address a client used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lxml import etree

from unified_messaging.insurability.contract_xml import (  # noqa: F401 - re-exported for the SOAP front
    TNS,
    WSDL_FILE,
    XSD_FILE,
    ContractNotFound,
    ContractSchema,
    find_wsdl_dir,
)
from unified_messaging.xmlsafe import safe_parser

__all__ = ["TNS", "WSDL_FILE", "XSD_FILE", "Contract", "ContractNotFound", "ContractSchema", "Endpoint",
           "find_wsdl_dir"]

_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


@dataclass(frozen=True)
class Endpoint:
    """One wsdl:port: its name is the last path segment of its address."""

    name: str
    binding: str
    soap_version: str  # "1.1" | "1.2"


class Contract:
    """The frozen contract files and what can be read off them."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or find_wsdl_dir()
        self.wsdl_text = (self.folder / WSDL_FILE).read_text(encoding="utf-8")
        self.xsd_text = (self.folder / XSD_FILE).read_text(encoding="utf-8")
        self._schema = ContractSchema(self.folder)
        self._wsdl = etree.fromstring(self.wsdl_text.encode("utf-8"), parser=safe_parser())

    @property
    def target_namespace(self) -> str:
        return self._wsdl.get("targetNamespace")

    @property
    def service_name(self) -> str:
        return self._wsdl.find(f"{{{_WSDL_NS}}}service").get("name")

    @cached_property
    def endpoints(self) -> tuple[Endpoint, ...]:
        found = []
        for port in self._wsdl.iterfind(f"{{{_WSDL_NS}}}service/{{{_WSDL_NS}}}port"):
            address = port[0]
            version = "1.2" if "soap12" in address.tag else "1.1"
            found.append(Endpoint(port.get("name"), port.get("binding").split(":")[-1], version))
        return tuple(found)

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def port_type_of(self, endpoint: Endpoint) -> str:
        binding = self._wsdl.find(f"{{{_WSDL_NS}}}binding[@name='{endpoint.binding}']")
        return binding.get("type").split(":")[-1]

    def operations(self, port_type: str) -> list[str]:
        pt = self._wsdl.find(f"{{{_WSDL_NS}}}portType[@name='{port_type}']")
        return [op.get("name") for op in pt.iterfind(f"{{{_WSDL_NS}}}operation")]

    @property
    def schema(self) -> etree.XMLSchema:
        """This thread's copy of the XSD validator (lxml validators are not shared across threads)."""
        return self._schema.schema

    def validation_error(self, element: etree._Element) -> str | None:
        """None when the element is valid against the contract XSD, else the first error."""
        return self._schema.validation_error(element)

    def render_wsdl(self, services_url: str) -> str:
        """The WSDL text with each port's address and the schema location pointed at ``services_url``."""

        text = re.sub(
            r'(<wsdl:port name="([^"]+)"[^>]*>\s*<soap(?:12)?:address location=")[^"]*(")',
            lambda m: f'{m.group(1)}{services_url}/{m.group(2)}{m.group(3)}',
            self.wsdl_text,
        )
        first = self.endpoints[0].name
        return text.replace(
            f'schemaLocation="{XSD_FILE}"', f'schemaLocation="{services_url}/{first}?xsd={XSD_FILE}"'
        )

    def render_xsd(self, name: str) -> str | None:
        return self.xsd_text if name == XSD_FILE else None
