"""Errors the upstream seam raises and callers (interfaces, core services) handle.

Business answers (patient unknown, several insurers...) are not errors: they come back inside an
``InsurabilityAnswer``.  These exceptions are for calls that did not get a business answer.
"""
from __future__ import annotations


class UpstreamError(Exception):
    """Base class: the upstream call did not produce a business answer."""


class UpstreamUnavailable(UpstreamError):
    """MyCareNet (or the simulator) could not be reached, or did not answer in time."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(
            f"MyCareNet cannot be reached at {endpoint} ({reason}). Check the network connection and "
            "the [upstream] settings; try again later, or call the MyCareNet helpdesk if it lasts."
        )


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
        text = f"MyCareNet refused the request ({code}): {message.rstrip('. ')}"
        super().__init__(f"{text}. {advice}" if advice else text)
