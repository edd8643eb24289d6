"""SOAP faults from the platform, turned into ``UpstreamFault`` with advice a person can act on.

eHealth faults carry a ``SystemError`` detail (``urn:be:fgov:errors:soa:v1``) with a code of the
platform's catalogue (the GenericInsurability error table): ``SOA-00001`` an undefined error,
``SOA-01001`` the user is not recognised (not logged in, username or password wrong: for the gateway
its MyCareNet licence or its certificate), ``SOA-01002`` the user has no access (its role: the
quality its token certifies, or the mandate it acts under), ``SOA-02001``/``SOA-02002`` the service
is (temporarily) not available, ``SOA-03001``..``SOA-03007`` the message is not conform.  The advice
for each follows that meaning (``tests/test_fault_catalogue.py`` checks it).

The built-in simulator also answers refusals the catalogue has no code for (a signature, a
Timestamp, a token's dates): those codes are its own, ``SIM-SEC-nn`` (see ``simulator/security.py``),
and each has the one thing to do about it here.
"""
from __future__ import annotations

from lxml import etree

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.texts import message
from unified_messaging.domain.errors import UpstreamFault
from unified_messaging.mycarenet.wsse.refusals import RefusalCode

SOA_ERRORS_NS = "urn:be:fgov:ehealth:errors:soa:v1"

# Every advice is a registered text (``texts.message``): Mybox translates it where a fault's English
# text is shown (an invoicing file waiting to be posted again), the legacy caller gets it in English.
_ALTERED = message("The message was not signed as expected or was changed on its way to MyCareNet. Check that "
                   "no proxy between the gateway and MyCareNet rewrites messages, then tell the gateway's "
                   "administrator.")
_CLOCK = message("This computer's clock is wrong: set it to the right time (automatic time / NTP) and try again.")
_SESSION = message("The gateway's eHealth session (STS token) was not accepted: try again; if it lasts, check the "
                   "clock.")
_CERTIFICATE_EXPIRED = message("The eHealth certificate has expired or is not valid yet: renew it on the eHealth "
                               "portal and install the new .p12 in the gateway.")
_NOT_RECOGNISED = message("MyCareNet did not recognise the user: check that the MyCareNet licence recorded for the "
                          "gateway (Mybox Administration or [licence]) has the username and password MyCareNet "
                          "issued for the software package, and that the eHealth certificate is the one eHealth "
                          "issued for this care provider (not a test certificate).")
_NO_ACCESS = message("MyCareNet recognised the user but gives it no access to this service: check the quality the "
                     "certificate's token certifies (eFact invoicing needs a quality that may invoice) and the "
                     "mandate of the care provider the gateway acts for; if they are right, call the MyCareNet "
                     "helpdesk.")
_CONTENT = message("MyCareNet found the content of the message not conform: check the data sent (numbers, dates, "
                   "codes); if they are right, report it to the gateway's administrator with the ticket number.")
_OTHER_STS = message("The gateway's token comes from another STS than the platform's: check that [upstream] sts_url "
                     "and the service addresses belong to the same environment (acceptance or production).")
_LONG_TIMESTAMP = message("The gateway signed the message with a Timestamp that lasts too long: tell the gateway's "
                          "administrator (the software must sign every call with a short-lived Timestamp).")

_XADES_SIGNER = message("The gateway signed the invoicing file (XAdES) with another certificate than the one it "
                        "acts with: tell the gateway's administrator.")

ADVICE_BY_CODE = {
    # the platform's catalogue
    "SOA-01001": _NOT_RECOGNISED,
    "SOA-01002": _NO_ACCESS,
    "SOA-03001": _CONTENT,
    "SOA-03007": _CONTENT,
    # the built-in simulator's own codes (not in the catalogue)
    **dict.fromkeys(("SIM-SEC-01", "SIM-SEC-02", "SIM-SEC-03", "SIM-SEC-04", "SIM-SEC-05", "SIM-SEC-06",
                     "SIM-SEC-21"), _ALTERED),
    "SIM-SEC-07": _CLOCK, "SIM-SEC-08": _CLOCK, "SIM-SEC-09": _CLOCK, "SIM-SEC-15": _CLOCK,
    "SIM-SEC-10": _SESSION, "SIM-SEC-11": _SESSION, "SIM-SEC-13": _SESSION, "SIM-SEC-14": _SESSION,
    "SIM-SEC-12": _OTHER_STS,
    "SIM-SEC-17": _CERTIFICATE_EXPIRED,
    "SIM-SEC-22": _LONG_TIMESTAMP,
    "SIM-SEC-23": _ALTERED,
    "SIM-SEC-24": _XADES_SIGNER,
    "SIM-SEC-25": message("MemberData answers are encrypted for the care provider's encryption certificate, and the "
                   "platform knows none for this certificate: renew the eHealth keystore (its encryption key "
                   "is published with it) or use the keystore registered at eHealth."),
}

ADVICE_BY_FAMILY = {
    "SOA-00": message("Call the MyCareNet helpdesk and quote the ticket number."),
    "SOA-01": message("Check the eHealth certificate, its token and the MyCareNet licence in the gateway's "
                      "settings; call the eHealth helpdesk if they are right."),
    "SOA-02": message("The service is not available at the moment: try again in a few minutes, and call the "
                      "MyCareNet helpdesk if it lasts."),
    "SOA-03": message("MyCareNet did not accept the message the gateway sent: report it to the gateway's "
                      "administrator with the ticket number."),
    "Client": message("MyCareNet refused the message the gateway sent: report it to the gateway's administrator."),
    "Server": message("MyCareNet could not answer: try again later, and call the MyCareNet helpdesk if it lasts."),
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
    RefusalCode.CERTIFICATE_EXPIRED: message(
        "The platform's signing certificate is not valid at this computer's time. Check this computer's clock "
        "(automatic time / NTP); if it is right, MyCareNet must renew its certificate: try again later and call "
        "the MyCareNet helpdesk if it lasts. The answer was not used."),
    RefusalCode.CERTIFICATE_UNTRUSTED: message(
        "The answer is signed by a certificate that [upstream] platform_ca does not vouch for. Check that "
        "platform_ca is the certificate authority of this environment (acceptance or production) and that no "
        "proxy answers in MyCareNet's place; tell the gateway's administrator. The answer was not used."),
}


def answer_trust_advice(code: RefusalCode, default: str) -> str:
    """What to do when a platform answer's signature was refused with ``code``."""
    return _ANSWER_TRUST_ADVICE.get(code, default)
