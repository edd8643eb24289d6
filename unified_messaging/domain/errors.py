"""Errors the upstream seam raises and callers (interfaces, core services) handle.

Business answers (patient unknown, several insurers...) are not errors: they come back inside an
``InsurabilityAnswer``.  These exceptions are for calls that did not get a business answer.
"""
from __future__ import annotations

from unified_messaging.texts import message as register

# registered texts, so that Mybox translates a fault shown as its English text (the advice is one too)
_REFUSED = register("MyCareNet refused the request ({code}): {message}")
_REFUSED_ADVICE = register("MyCareNet refused the request ({code}): {message}. {advice}")


class UpstreamError(Exception):
    """Base class: the upstream call did not produce a business answer."""


class UpstreamUnavailable(UpstreamError):
    """MyCareNet (or the simulator) could not be reached, or did not answer in time, or its answer
    could not be used (an error page, a cut or damaged message).  Nothing was answered: the caller
    may try again.  The message says which of these happened and what to do (``unavailable_text``)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(unavailable_text(endpoint, reason))


# What happened -> (headline, advice), by a phrase of the reason the clients give (see
# ``mycarenet.transport.network_reason`` and the clients' answer checks); first match wins.
_UNAVAILABLE_KINDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("no answer within",), "MyCareNet did not answer in time",
     "MyCareNet is slow or overloaded: try again in a few minutes; call the MyCareNet helpdesk if it lasts."),
    (("HTTP 404 ",), "There is no MyCareNet service at this address",
     "Check the [upstream] addresses (acceptance and production differ); tell the gateway's administrator."),
    (("error page",), "MyCareNet is not available",
     "The service (or a proxy in front of it) is down or overloaded: try again in a few minutes; call the "
     "MyCareNet helpdesk if it lasts."),
    (("closed in the middle", "not acceptable XML", "not a SOAP message", "empty answer"),
     "MyCareNet's answer was cut off or damaged on its way",
     "Nothing was answered: try again; if it happens again, check the network between the gateway and "
     "MyCareNet (proxy, firewall) and call the MyCareNet helpdesk."),
)
_UNREACHABLE_ADVICE = ("Check the network connection and the [upstream] settings; try again later, or call the "
                       "MyCareNet helpdesk if it lasts.")


def unavailable_text(endpoint: str, reason: str) -> str:
    """What a person reads when MyCareNet gave no usable answer: what happened, then what to do."""
    for phrases, headline, advice in _UNAVAILABLE_KINDS:
        if any(phrase in reason for phrase in phrases):
            return f"{headline} ({reason}; {endpoint}). {advice}"
    return f"MyCareNet cannot be reached at {endpoint} ({reason}). {_UNREACHABLE_ADVICE}"


class UpstreamFault(UpstreamError):
    """MyCareNet answered with a SOAP fault (security refusal, system error...).

    ``code`` is the platform's code (for example ``SOA-02001``), ``message`` its text, and
    ``advice`` what a person at the desk can do about it.
    """

    def __init__(self, code: str, message: str, advice: str = "", details: tuple[str, ...] = ()) -> None:
        self.code = code
        self.message = message
        self.advice = advice
        self.details = details
        shown = message.rstrip(". ")
        super().__init__(_REFUSED_ADVICE.format(code=code, message=shown, advice=advice) if advice
                         else _REFUSED.format(code=code, message=shown))
