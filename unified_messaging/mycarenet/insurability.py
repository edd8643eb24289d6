"""The upstream client for MyCareNet GenericInsurability v1 (``getInsurability``, XML variant).

zeep reads our own WSDL once per client and serialises the requests from it, so the request
always follows the contract (once per shape of request: ``templates``).  The answer is read with the hardened parser and mapped with plain
lxml: zeep 4.3 cannot deserialise the answer's ``choice`` between two sequences
(``CareReceiverId``+``MessageFault`` or ``CareReceiverDetail``+``InsurabilityResponseDetail``).

Outcomes:

* an insurability answer or a business refusal (``MessageFault``) -> ``InsurabilityAnswer``
  (a refusal is ``answer.fault``, never an exception);
* a SOAP fault -> ``UpstreamFault`` with the platform's code (``SOA-xxxxx``) and advice;
* no SOAP answer at all (connection refused, timeout, DNS, HTTP error page) -> ``UpstreamUnavailable``.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import requests
import zeep
from cryptography import x509
from lxml import etree
from zeep import plugins as zeep_plugins

from unified_messaging.identifiers import mask_ssin
from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.qualities import care_provider_values
from unified_messaging.mycarenet.faults import answer_trust_advice, soap_fault
from unified_messaging.mycarenet.keystore import describe_certificate
from unified_messaging.domain.insurability import (
    BusinessFault,
    FaultDetail,
    GeneralSituation,
    Hospitalized,
    InsurabilityAnswer,
    InsurabilityPeriod,
    InsurabilityQuery,
    MedicalHouse,
    Patient,
    Transfer,
)
from unified_messaging.mycarenet.templates import MessageTemplates
from unified_messaging.mycarenet.trace import ExchangeTracer
from unified_messaging.mycarenet.transport import GatewayTransport
from unified_messaging.mycarenet.wsse.plugin import outgoing_bytes
from unified_messaging.mycarenet.wsse import DS_NS, WSSE_NS, Clock, SecurityRefusal, utc_now, verify_envelope
from unified_messaging.xmlsafe import UnsafeXml, parse_xml

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().with_name("schemas")
WSDL_PATH = SCHEMA_DIR / "GenericInsurability-v1.wsdl"

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PROTOCOL_NS = "urn:be:fgov:ehealth:genericinsurability:protocol:v1"
CORE_NS = "urn:be:fgov:ehealth:genericinsurability:core:v1"
SOA_ERRORS_NS = "urn:be:fgov:ehealth:errors:soa:v1"
BINDING = f"{{{PROTOCOL_NS}}}GenericInsurabilitySoapBinding"
OPERATION = "getInsurability"

_PREFIXES = {"soapenv": SOAP11_ENV, "genins": PROTOCOL_NS, "gc": CORE_NS}

MessageHook = Callable[[etree._Element, dict[str, str]], tuple[bytes, dict[str, str]]]
"""Turns the finished envelope into the bytes to send (and may change the HTTP headers).

The default writes the envelope as UTF-8. A signing layer that must place a SAML assertion
byte for byte can take over serialisation here.
"""


class InputReferences:
    """Fresh numeric references (at most 14 digits) for ``RecordCommonInput/InputReference``.

    Milliseconds since the epoch (13 digits), bumped by one when two calls fall in the same
    millisecond, so references never repeat within a process and rarely across restarts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, int(time.time() * 1000))
            return self._last


_REFERENCE_REFUSED = re.compile(r"[^0-9A-ZÖËÜ '.*+,\-/:;=?()\[\]<>]")


def insurability_reference(reference: str | None) -> str | None:
    """The caller's reference in the alphabet the protocol allows (upper case, 25 characters)."""
    if not reference:
        return None
    cleaned = _REFERENCE_REFUSED.sub(" ", reference.upper())[:25].strip()
    return cleaned or None


class GenericInsurabilityClient:
    """Calls GenericInsurability for the gateway; one instance serves all server threads."""

    def __init__(
        self,
        endpoint: str,
        *,
        licence_username: str = "",
        licence_password: str = "",
        package_name: str = "unified-messaging",
        is_test: bool = True,
        timeout: float = 20.0,
        plugins: list | None = None,
        message_hook: MessageHook | None = None,
        tracer: ExchangeTracer | None = None,
        answer_ca: x509.Certificate | None = None,
        answer_signer_cbe: str | None = None,
        now: Clock = utc_now,
        licence_source: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        """``licence_source``, when given, is asked for the (username, password) of each call (the
        licence in force may change while serving); otherwise the licence given is used."""
        self.endpoint = endpoint
        self.timeout = timeout
        self._licence = licence_source or (lambda: (licence_username, licence_password))
        self._package_name = package_name
        self._is_test = is_test
        self._message_hook = message_hook
        self._answer_ca = answer_ca
        self._answer_signer_cbe = answer_signer_cbe
        self._now = now
        self._transport = GatewayTransport(timeout=timeout, tracer=tracer)
        settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        self._zeep = zeep.Client(str(WSDL_PATH), transport=self._transport, plugins=list(plugins or []),
                                 settings=settings)
        self._operation = self._zeep.wsdl.bindings[BINDING].get(OPERATION)
        self._templates = MessageTemplates(self._operation, _PREFIXES)  # zeep renders each shape once
        self._binding_options = {"address": endpoint}
        self._references = InputReferences()

    def get_insurability(self, query: InsurabilityQuery) -> InsurabilityAnswer:
        """Ask MyCareNet; business refusals come back in ``answer.fault``."""
        reference = self._references.next()
        payload, headers = self.create_message(query, reference)
        return logged_consultation("genins", query, reference, lambda: self._read_reply(
            query, self._transport.exchange(self.endpoint, payload, headers), reference))

    def create_message(self, query: InsurabilityQuery, input_reference: int) -> tuple[bytes, dict[str, str]]:
        """Build the request: the one place where a message is made (plugins, then the message hook)."""
        envelope = self._templates.envelope(self._request_values(query, input_reference))
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{self._operation.soapaction}"',
        }
        if self._message_hook is None:  # the envelope is this call's own: signed in place
            return outgoing_bytes(self._zeep.plugins, envelope, headers, self._operation, self._binding_options)
        envelope, headers = zeep_plugins.apply_egress(self._zeep, envelope, headers, self._operation,
                                                      self._binding_options)
        return self._message_hook(envelope, headers)

    def close(self) -> None:
        """Close the pooled connections of every thread."""
        self._transport.close()

    def _request_values(self, query: InsurabilityQuery, input_reference: int) -> dict:
        if query.ssin:
            receiver = {"Inss": query.ssin}
        else:
            receiver = {"RegNrWithMut": query.registration_number, "Mutuality": query.mutuality}
        detail = {
            "InsurabilityRequestType": query.request_type.value,
            "Period": {"PeriodStart": query.period_start, "PeriodEnd": query.period_end},
            "InsurabilityContactType": query.contact_type.value,
        }
        reference = insurability_reference(query.reference)
        if reference:
            detail["InsurabilityReference"] = reference
        username, password = self._licence()
        return {
            "CommonInput": {
                "Request": {"IsTest": self._is_test},
                "Origin": {
                    "Package": {
                        "Name": {"_value_1": self._package_name},
                        "License": {"Username": username, "Password": password},
                    },
                    "CareProvider": care_provider_values(query.care_provider.nihii, query.care_provider.quality),
                },
                "InputReference": str(input_reference),
            },
            "RecordCommonInput": {"InputReference": input_reference},
            "Request": {"CareReceiverId": receiver, "InsurabilityRequestDetail": detail},
        }

    def _read_reply(self, query: InsurabilityQuery, response: requests.Response, reference: int) -> InsurabilityAnswer:
        envelope = self._soap_envelope(response)
        fault = envelope.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
        self._check_answer_signature(envelope, response.content, is_fault=fault is not None)
        envelope, _ = zeep_plugins.apply_ingress(self._zeep, envelope, response.headers, self._operation)
        if fault is not None:
            raise soap_fault(fault)
        if response.status_code != 200:
            raise UpstreamUnavailable(self.endpoint, f"HTTP {response.status_code} without a SOAP fault")
        payload = envelope.find(f"{{{SOAP11_ENV}}}Body/{{{PROTOCOL_NS}}}GetInsurabilityResponse")
        if payload is None:
            raise UpstreamFault("UM-UNEXPECTED-ANSWER", "MyCareNet answered without a GetInsurabilityResponse",
                                "Check that the [upstream] address points at the GenericInsurability v1 service.")
        try:
            answer = AnswerReader(query).read(payload)
        except (AttributeError, ValueError) as exc:
            raise UpstreamFault("UM-UNEXPECTED-ANSWER", f"The insurability answer could not be read ({exc})",
                                "Report this to the gateway's administrator with the time of the call.") from None
        self._check_answer_matches(payload, query, answer, reference)
        return answer

    @staticmethod
    def _check_answer_matches(payload: etree._Element, query: InsurabilityQuery, answer: InsurabilityAnswer,
                              reference: int) -> None:
        """The answer must be the one to this question: our InputReference echoed, the patient asked."""
        echoed = _text(payload, "genins:RecordCommonOutput/gc:InputReference")
        wrong_patient = bool(query.ssin and answer.patient and answer.patient.ssin
                             and answer.patient.ssin != query.ssin)
        if (echoed is not None and echoed != str(reference)) or wrong_patient:
            raise UpstreamFault(
                "UM-ANSWER-MISMATCH", "MyCareNet's answer is not the answer to this request (another reference "
                "or another patient)", "Try again; if it happens again, tell the gateway's administrator: "
                "something between the gateway and MyCareNet replays or mixes answers.")

    def _check_answer_signature(self, envelope: etree._Element, raw: bytes, *, is_fault: bool) -> None:
        check_answer_signature(envelope, raw, is_fault=is_fault, answer_ca=self._answer_ca,
                               answer_signer_cbe=self._answer_signer_cbe, now=self._now)

    def _soap_envelope(self, response: requests.Response) -> etree._Element:
        return soap_envelope(response, self.endpoint)


def logged_consultation(service: str, query: InsurabilityQuery, reference: int,
                        call: Callable[[], InsurabilityAnswer]) -> InsurabilityAnswer:
    """``call()``, with one log line for its outcome and duration (``service``: genins, memberdata):
    a warning when the call failed, a DEBUG line when it was answered (every consultation is in
    the journal already; at INFO, formatting and writing the line cost about 6 % of the gateway's
    CPU per call)."""
    started = time.perf_counter()
    try:
        answer = call()
    except UpstreamUnavailable as exc:
        log.warning("%s %s for %s: unavailable, %s (%.0f ms)", service, reference, who(query), exc.reason,
                    elapsed_ms(started))
        raise
    except UpstreamFault as fault:
        log.warning("%s %s for %s: SOAP fault %s (%.0f ms)", service, reference, who(query), fault.code,
                    elapsed_ms(started))
        raise
    if log.isEnabledFor(logging.DEBUG):
        outcome = answer.fault.code if answer.fault else f"{len(answer.insurabilities)} item(s)"
        log.debug("%s %s for %s: %s, NIP reference %s (%.0f ms)", service, reference, who(query), outcome,
                  answer.audit_reference, elapsed_ms(started))
    return answer


def check_answer_signature(envelope: etree._Element, raw: bytes, *, is_fault: bool,
                           answer_ca: x509.Certificate | None, answer_signer_cbe: str | None,
                           now: Clock = utc_now) -> None:
    """With ``answer_ca`` set, the platform signs its answers: an answer must carry a signature
    that verifies, by a certificate issued by ``answer_ca`` (and, with ``answer_signer_cbe``, the
    platform's own).  An unsigned fault is let through: only its code is used."""
    if answer_ca is None:
        return
    advice = ("The answer did not come unchanged from MyCareNet: check that no proxy rewrites messages and that "
              "[upstream] platform_ca is the platform's certificate authority; tell the administrator.")
    signature = envelope.find(f"{{{SOAP11_ENV}}}Header/{{{WSSE_NS}}}Security/{{{DS_NS}}}Signature")
    if signature is None:
        if is_fault:
            return
        raise UpstreamFault("UM-ANSWER-UNSIGNED", "The answer is not signed by the platform", advice)
    try:
        verified = verify_envelope(raw, trusted_ca=answer_ca, now=now, require_signed_token=True, parsed=envelope)
    except SecurityRefusal as refusal:
        raise UpstreamFault("UM-ANSWER-SIGNATURE", f"The answer's signature cannot be trusted: {refusal.message}",
                            answer_trust_advice(refusal.code, advice)) from None
    signer = verified.identity.cbe if verified.identity is not None else None
    if answer_signer_cbe and signer != answer_signer_cbe:
        raise UpstreamFault("UM-ANSWER-SIGNER", "The answer is signed, but not by the platform "
                            f"(signer {describe_certificate(verified.certificate)})", advice)


def soap_envelope(response: requests.Response, endpoint: str) -> etree._Element:
    """The answer's SOAP envelope, or ``UpstreamUnavailable`` when it is none (an error page...)."""
    what = f"HTTP {response.status_code}"
    if response.content.strip():
        try:
            envelope = parse_xml(response.content)
        except UnsafeXml as exc:
            raise UpstreamUnavailable(endpoint, f"{what}, the answer is not acceptable XML: {exc}") from None
        if envelope.tag == f"{{{SOAP11_ENV}}}Envelope":
            return envelope
        raise UpstreamUnavailable(endpoint, f"{what}, the answer is not a SOAP message")
    raise UpstreamUnavailable(endpoint, f"{what} with an empty answer")


class AnswerReader:
    """Maps a GetInsurabilityResponse element onto ``InsurabilityAnswer``."""

    def __init__(self, query: InsurabilityQuery) -> None:
        self.query = query

    def read(self, payload: etree._Element) -> InsurabilityAnswer:
        audit_reference = _text(payload, "genins:CommonOutput/gc:NIPReference")
        response = _find(payload, "genins:Response")
        if response is None:
            raise ValueError("no Response element")
        fault = _find(response, "gc:MessageFault")
        if fault is not None:
            ssin = _text(response, "gc:CareReceiverId/gc:Inss")
            return InsurabilityAnswer(
                query=self.query, audit_reference=audit_reference,
                patient=Patient(ssin=ssin) if ssin else None, fault=self._fault(fault),
            )
        detail = _find(response, "gc:InsurabilityResponseDetail")
        if detail is None:
            raise ValueError("neither MessageFault nor InsurabilityResponseDetail")
        payment_by_io = _boolean(_text(detail, "gc:Payment/gc:PaymentByIo"))
        extra: dict[str, str] = {}
        special = _text(detail, "gc:Payment/gc:SpecialSocialCategory")
        if special is not None:
            extra["special_social_category"] = "true" if _boolean(special) else "false"
        listing = _find(detail, "gc:InsurabilityList")
        if listing is not None and _boolean(listing.get("Truncated")):
            extra["truncated"] = "true"
        return InsurabilityAnswer(
            query=self.query,
            audit_reference=audit_reference,
            patient=self._patient(_find(response, "gc:CareReceiverDetail")),
            insurabilities=tuple(
                self._item(item, payment_by_io)
                for item in _children(detail, "gc:InsurabilityList/gc:InsurabilityItem")
            ),
            general_situation=self._situation(_find(detail, "gc:GeneralSituation")),
            payment_by_io=payment_by_io,
            max_invoiced_years=tuple(
                int(year.text.strip()[:4]) for year in _children(detail, "gc:Payment/gc:MaxInvoiced")
            ),
            medical_house=self._medical_house(_find(detail, "gc:MedicalHouse")),
            hospitalized=self._hospitalized(_find(detail, "gc:Hospitalized")),
            extra=extra,
        )

    @staticmethod
    def _fault(node: etree._Element) -> BusinessFault:
        return BusinessFault(
            code=_text(node, "gc:FaultCode") or "",
            source=_text(node, "gc:FaultSource") or "",
            message=_text(node, "gc:Message") or "",
            details=tuple(
                FaultDetail(_text(d, "gc:DetailCode") or "", _text(d, "gc:Location"), _text(d, "gc:Message"))
                for d in _children(node, "gc:Details/gc:Detail")
            ),
            multi_io=tuple(io.text.strip() for io in _children(node, "gc:MultiIO/gc:IO") if io.text),
        )

    @staticmethod
    def _patient(node: etree._Element | None) -> Patient | None:
        if node is None:
            return None
        return Patient(
            ssin=_text(node, "gc:Inss"),
            last_name=_text(node, "gc:LastName"),
            first_name=_text(node, "gc:FirstName"),
            birth_date=_date(_text(node, "gc:Birthday")),
            sex=_text(node, "gc:Sex"),
            deceased_date=_date(_text(node, "gc:Deceased")),
        )

    def _item(self, node: etree._Element, payment_by_io: bool | None) -> InsurabilityPeriod:
        """One InsurabilityItem; the answer-wide PaymentByIo is repeated on each item."""
        return InsurabilityPeriod(
            mutuality=_text(node, "gc:Mutuality") or "",
            registration_number=_text(node, "gc:RegNrWithMut") or "",
            period_start=_date(_text(node, "gc:Period/gc:PeriodStart")) or self.query.period_start,
            period_end=_date(_text(node, "gc:Period/gc:PeriodEnd")),
            ct1=_text(node, "gc:CT1") or "",
            ct2=_text(node, "gc:CT2") or "",
            payment_by_io=payment_by_io,
            insurability_date=_date(_text(node, "gc:InsurabilityDate")),
        )

    @staticmethod
    def _situation(node: etree._Element | None) -> GeneralSituation | None:
        if node is None:
            return None
        return GeneralSituation(
            event=node.get("Event", ""),
            transfers=tuple(
                Transfer(t.get("Direction", ""), _text(t, "gc:InsuranceOrg"), _date(_text(t, "gc:TransferDate")))
                for t in _children(node, "gc:Transfer")
            ),
        )

    @staticmethod
    def _medical_house(node: etree._Element | None) -> MedicalHouse | None:
        if node is None:
            return None
        return MedicalHouse(
            period_start=_date(_text(node, "gc:PeriodStart")),
            period_end=_date(_text(node, "gc:PeriodEnd")),
            nurse=bool(_boolean(node.get("Nurse"))),
            medical=bool(_boolean(node.get("Medical"))),
            kine=bool(_boolean(node.get("Kine"))),
        )

    @staticmethod
    def _hospitalized(node: etree._Element | None) -> Hospitalized | None:
        if node is None:
            return None
        return Hospitalized(
            hospital=_text(node, "gc:Hospital") or "",
            admission_date=_date(_text(node, "gc:AdmissionDate")),
            admission_service=_text(node, "gc:AdmissionService"),
        )


_NS = {"genins": PROTOCOL_NS, "gc": CORE_NS, "err": SOA_ERRORS_NS}



@lru_cache(maxsize=None)
def _tags(path: str) -> tuple[str, ...]:
    """``gc:A/gc:B`` as the Clark names of its steps."""
    return tuple(f"{{{_NS[prefix]}}}{name}" for prefix, _, name in (step.partition(":") for step in path.split("/")))


def _children(node: etree._Element, path: str, start: int = 0) -> Iterator[etree._Element]:
    """What ``node.iterfind(path, _NS)`` finds for a path of child steps, in the same order, without
    ElementPath's work per call (compiling the path and its namespaces: about 10 us a step, and an
    answer is read with about 30 of them)."""
    tags = _tags(path)
    if start == len(tags) - 1:
        yield from node.iterchildren(tags[start])
        return
    for child in node.iterchildren(tags[start]):
        yield from _children(child, path, start + 1)


def _find(node: etree._Element, path: str) -> etree._Element | None:
    """The first element ``_children(node, path)`` gives, as ``node.find(path, _NS)``; for a path of
    one step, straight from lxml's iterator (no generator of ours)."""
    tags = _tags(path)
    if len(tags) == 1:
        return next(node.iterchildren(tags[0]), None)
    return next(_children(node, path), None)


def _text(node: etree._Element, path: str) -> str | None:
    found = _find(node, path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def _boolean(text: str | None) -> bool | None:
    if text is None:
        return None
    return text.strip() in ("true", "1")


def who(query: InsurabilityQuery) -> str:
    if query.ssin:
        return mask_ssin(query.ssin)
    return f"{query.mutuality}/{(query.registration_number or '')[:3]}***"


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
