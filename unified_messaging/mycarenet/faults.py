"""SOAP faults from the platform, turned into ``UpstreamFault`` with advice a person can act on.

eHealth faults carry a ``SystemError`` detail (``urn:be:fgov:errors:soa:v1``) with a code such as
``SOA-01019``: the family (``SOA-01`` security, ``SOA-02`` availability, ``SOA-03`` message) is the
platform's; the security codes below ``SOA-01`` are the ones the built-in simulator uses (see
``simulator/security.py``), each with the one thing to do about it.
"""
from __future__ import annotations

from lxml import etree

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.mycarenet.wsse.refusals import RefusalCode

SOA_ERRORS_NS = "urn:be:fgov:ehealth:errors:soa:v1"

_ALTERED = ("The message was not signed as expected or was changed on its way to MyCareNet. Check that no "
            "proxy between the gateway and MyCareNet rewrites messages, then tell the gateway's administrator.")
_CLOCK = "This computer's clock is wrong: set it to the right time (automatic time / NTP) and try again."
_SESSION = "The gateway's eHealth session (STS token) was not accepted: try again; if it lasts, check the clock."
_CERTIFICATE_UNKNOWN = ("The eHealth certificate is not one the platform recognises: install the certificate "
                        "eHealth issued for this care provider (not a test certificate).")
_CERTIFICATE_EXPIRED = ("The eHealth certificate has expired or is not valid yet: renew it on the eHealth portal "
                        "and install the new .p12 in the gateway.")
_LICENCE = ("The MyCareNet software licence in the gateway's settings ([licence] username and password) is "
            "missing or wrong: ask the administrator to enter the licence MyCareNet issued for the package.")

ADVICE_BY_CODE = {
    **dict.fromkeys(("SOA-01001", "SOA-01002", "SOA-01003", "SOA-01004", "SOA-01005", "SOA-01006"), _ALTERED),
    "SOA-01007": _CLOCK, "SOA-01008": _CLOCK, "SOA-01009": _CLOCK,
    "SOA-01010": _SESSION, "SOA-01011": _SESSION, "SOA-01013": _SESSION,
    "SOA-01014": _SESSION, "SOA-01015": _CLOCK,
    "SOA-01012": ("The gateway's token comes from another STS than the platform's: check that [upstream] sts_url "
                  "and the service addresses belong to the same environment (acceptance or production)."),
    "SOA-01016": _CERTIFICATE_UNKNOWN,
    "SOA-01017": _CERTIFICATE_EXPIRED,
    "SOA-01018": _LICENCE, "SOA-01019": _LICENCE,
    "SOA-01021": _ALTERED,
    "SOA-01022": ("The gateway signed the message with a Timestamp that lasts too long: tell the gateway's "
                  "administrator (the software must sign every call with a short-lived Timestamp)."),
}

ADVICE_BY_FAMILY = {
    "SOA-00": "Call the MyCareNet helpdesk and quote the ticket number.",
    "SOA-01": "Check the eHealth certificate, its token and the MyCareNet licence in the gateway's settings; "
              "call the eHealth helpdesk if they are right.",
    "SOA-02": "The service is not available at the moment: try again in a few minutes, and call the MyCareNet "
              "helpdesk if it lasts.",
    "SOA-03": "MyCareNet did not accept the message the gateway sent: report it to the gateway's administrator "
              "with the ticket number.",
    "Client": "MyCareNet refused the message the gateway sent: report it to the gateway's administrator.",
    "Server": "MyCareNet could not answer: try again later, and call the MyCareNet helpdesk if it lasts.",
}


def advice_for(code: str, default: str | None = None) -> str:
    """What a person can do about a fault code, most specific first."""
    return (ADVICE_BY_CODE.get(code) or ADVICE_BY_FAMILY.get(code[:6]) or default
            or ADVICE_BY_FAMILY.get(code) or ADVICE_BY_FAMILY["Server"])


def soap_fault(node: etree._Element, *, default_advice: str | None = None) -> UpstreamFault:
    """An ``UpstreamFault`` from a SOAP 1.1 Fault element: the eHealth ``SystemError`` detail when
    there is one (code ``SOA-xxxxx``), else the plain faultcode (``Client``/``Server``) and text."""
    faultcode = (node.findtext("faultcode") or "").strip()
    faultstring = (node.findtext("faultstring") or "").strip()
    plain_code = faultcode.rpartition(":")[2] or "Server"
    error = next((e for e in node.iterfind("detail/*") if etree.QName(e).namespace == SOA_ERRORS_NS), None)
    if error is None:
        return UpstreamFault(plain_code, mask_ssins_in_text(faultstring or "no reason given"),
                             advice_for(plain_code, default_advice))
    code = (error.findtext("Code") or plain_code).strip()
    message = (error.findtext("Message") or faultstring or "no reason given").strip()
    environment = error.findtext(f"{{{SOA_ERRORS_NS}}}Environment")
    details = tuple(text for text in (
        f"eHealth ticket {error.get('Id')}" if error.get("Id") else None,
        f"environment {environment}" if environment else None,
    ) if text)
    return UpstreamFault(code, mask_ssins_in_text(message), advice_for(code, default_advice), details)


# Why the platform's answer signature was not trusted -> what to do (the answer was not used).
_ANSWER_TRUST_ADVICE = {
    RefusalCode.CERTIFICATE_EXPIRED: (
        "The platform's signing certificate is not valid at this computer's time. Check this computer's clock "
        "(automatic time / NTP); if it is right, MyCareNet must renew its certificate: try again later and call "
        "the MyCareNet helpdesk if it lasts. The answer was not used."),
    RefusalCode.CERTIFICATE_UNTRUSTED: (
        "The answer is signed by a certificate that [upstream] platform_ca does not vouch for. Check that "
        "platform_ca is the certificate authority of this environment (acceptance or production) and that no "
        "proxy answers in MyCareNet's place; tell the gateway's administrator. The answer was not used."),
}


def answer_trust_advice(code: RefusalCode, default: str) -> str:
    """What to do when a platform answer's signature was refused with ``code``."""
    return _ANSWER_TRUST_ADVICE.get(code, default)
