"""The secure space's rules: the one place they live.  Pure functions over records and dates.

Every interface (web UI, command line, SOAP front, folders, batch runner, configuration check)
asks these functions; none decides on its own.  "Now" and "today" are always passed in.

* **Certificate for a request.**  A request made for care provider X on date D for service S may
  use certificate C only if C is valid at the moment of use and C's holder is X, or C's holder
  holds a mandate from X for S that is *active* (both parties accepted, not suspended, not
  stopped or transferred) and whose period covers D (both ends inclusive; no end = open-ended).
  The mandant stays responsible and may still act itself with its own certificate.
* **Interactive use.**  A UM user may use C only when on C's access list; the secure space's owner
  (the user whose SSIN is the owner's) is on every list without being added.
* **Access list changes.**  Only C's responsible person (a UM user) may change C's access list.
* **Identifiers.**  SSIN, NIHII (both check-digit series; organisations' 8-digit numbers are
  checked as their 11-digit form with qualification 000) and CBE are checked before anything is
  stored or asked.
* **Mandate states.**  ``proposed`` -> accepted by one side -> ``active`` once both sides accepted;
  ``active`` <-> ``suspended``; any state but ``stopped`` -> ``stopped``.  A transfer creates a new
  mandate to the new mandataire, already accepted by the mandant; when the new mandataire accepts,
  the old mandate becomes ``stopped`` (transferred) and keeps its history.
* **Qualities per service**: which holder qualities may use a service in their own name, read
  from the qualities table (``mycarenet/qualities.toml``, its ``services``).  The table is the
  gateway's own assumption, not a published MyCareNet list: insurability is open to every care
  provider quality; eFact invoicing to the qualities that invoice third-party payment; MED_ADMIN
  (medical-administrative documents) to individual care providers and groups of nurses, not to
  labs.  A holder without an allowed quality may still act under a mandate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

from unified_messaging.identifiers import cbe_problem, nihii_problem, ssin_problem
from unified_messaging.mycarenet import qualities
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import (
    CertificateRecord, Establishment, Mandate, MandateState, Party, PartyKind, SecureSpace, Service, Side, User,
)

logger = logging.getLogger(__name__)

EXPIRY_WARNING = timedelta(days=30)
MIN_PASSWORD_LENGTH = 10


# --------------------------------------------------------------------------------------------
# Identifiers and inputs
# --------------------------------------------------------------------------------------------

def identifier_problem(party: Party) -> Refusal | None:
    """The refusal for an invalid identifier, or None."""
    if party.kind is PartyKind.SSIN:
        problem = ssin_problem(party.value)
        return Refusal("SS-BAD-SSIN", problem) if problem else None
    if party.kind is PartyKind.CBE:
        problem = cbe_problem(party.value)
        return Refusal("SS-BAD-CBE", problem) if problem else None
    value = party.value + "000" if len(party.value) == 8 else party.value
    problem = nihii_problem(value)
    return Refusal("SS-BAD-NIHII", problem) if problem else None


def check_party(party: Party) -> Party:
    refusal = identifier_problem(party)
    if refusal:
        raise refusal
    return party


def parse_party(text: str) -> Party:
    """A checked party from ``KIND=digits``; a bare 11-digit number is read as a NIHII."""
    text = (text or "").strip()
    if text.isdigit() and len(text) == 11:
        text = "NIHII=" + text
    try:
        party = Party.parse(text)
    except ValueError:
        raise Refusal("SS-BAD-IDENTIFIER", f"'{text[:6]}...' was given.") from None
    return check_party(party)


def check_ssin(ssin: str) -> str:
    problem = ssin_problem(ssin)
    if problem:
        raise Refusal("SS-BAD-SSIN", problem)
    return ssin


def check_period(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to < valid_from:
        raise Refusal("SS-BAD-DATES", f"From {valid_from} to {valid_to}.")


def check_service(service: str | Service) -> Service:
    try:
        return Service(str(getattr(service, "value", service)).upper())
    except ValueError:
        raise Refusal("SS-BAD-SERVICE", f"'{service}' was given.") from None


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Refusal("SS-WEAK-PASSWORD")


# --------------------------------------------------------------------------------------------
# Who is who
# --------------------------------------------------------------------------------------------

def same_party(a: Party, b: Party) -> bool:
    """Same identifier; an 8-digit organisation NIHII equals the 11-digit NIHII that starts with it."""
    if a.kind is not b.kind:
        return False
    if a.value == b.value:
        return True
    if a.kind is PartyKind.NIHII:
        short, long = sorted((a.value, b.value), key=len)
        return len(short) == 8 and len(long) == 11 and long.startswith(short)
    return False


def holder_parties(certificate: CertificateRecord) -> list[Party]:
    """Every party the certificate's holder is: its SSIN, NIHII (8 and 11 digits) and CBE."""
    parties = [certificate.holder]
    if certificate.ssin:
        parties.append(Party(PartyKind.SSIN, certificate.ssin))
    for nihii in (certificate.nihii, certificate.nihii11):
        if nihii:
            parties.append(Party(PartyKind.NIHII, nihii))
    if certificate.cbe:
        parties.append(Party(PartyKind.CBE, certificate.cbe))
    return parties


def holder_is(certificate: CertificateRecord, party: Party) -> bool:
    return any(same_party(own, party) for own in holder_parties(certificate))


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

def certificate_problem(certificate: CertificateRecord, at: datetime) -> Refusal | None:
    """Expired or not yet valid at ``at`` (an aware datetime), or None."""
    if at < certificate.not_before:
        return Refusal("SS-CERT-NOT-YET-VALID", f"Certificate {certificate.describe()} is valid from "
                       f"{certificate.not_before:%Y-%m-%d %H:%M} UTC.")
    if at > certificate.not_after:
        return Refusal("SS-CERT-EXPIRED", f"Certificate {certificate.describe()} expired on "
                       f"{certificate.not_after:%Y-%m-%d}.")
    return None


def expiry_warning(certificate: CertificateRecord, at: datetime,
                   warn_before: timedelta = EXPIRY_WARNING) -> Refusal | None:
    """A warning when the certificate is valid but ends within ``warn_before``."""
    if certificate_problem(certificate, at) is None and certificate.not_after - at <= warn_before:
        days = (certificate.not_after - at).days
        return Refusal("SS-CERT-EXPIRING", f"Certificate {certificate.describe()} expires on "
                       f"{certificate.not_after:%Y-%m-%d} (in {days} day(s)).")
    return None


def quality_allowed(quality: str | None, service: Service) -> bool:
    return bool(quality) and quality.lower() in qualities.active().allowed(service.value.lower())


# --------------------------------------------------------------------------------------------
# Mandates
# --------------------------------------------------------------------------------------------

# What makes a mandate unusable, most useful explanation first.
_MANDATE_PRIORITY = ("SS-MANDATE-SUSPENDED", "SS-MANDATE-PENDING", "SS-MANDATE-OUT-OF-PERIOD",
                     "SS-MANDATE-STOPPED", "SS-MANDATE-OTHER-SERVICE")


def mandate_problem(mandate: Mandate, service: Service, on: date) -> Refusal | None:
    """Why this mandate does not cover ``service`` on ``on``, or None when it does."""
    where = f"Mandate #{mandate.id} from {mandate.mandant} to {mandate.mandataire}"
    if mandate.service is not service:
        return Refusal("SS-MANDATE-OTHER-SERVICE", f"{where} is for {mandate.service.value}, not {service.value}.")
    if mandate.state is MandateState.STOPPED:
        moved = f" (transferred: mandate #{mandate.transferred_to})" if mandate.transferred_to else ""
        return Refusal("SS-MANDATE-STOPPED", f"{where} is stopped{moved}.")
    if mandate.state is MandateState.SUSPENDED:
        return Refusal("SS-MANDATE-SUSPENDED", f"{where} is suspended.")
    if mandate.state is not MandateState.ACTIVE:
        return Refusal("SS-MANDATE-PENDING", f"{where} is {mandate.state.value}.")
    if on < mandate.valid_from or (mandate.valid_to is not None and on > mandate.valid_to):
        until = mandate.valid_to.isoformat() if mandate.valid_to else "open-ended"
        return Refusal("SS-MANDATE-OUT-OF-PERIOD", f"{where} runs from {mandate.valid_from} to {until}; "
                       f"the request is for {on}.")
    return None


@dataclass(frozen=True)
class Decision:
    """May this certificate be used?  ``via`` is ``holder``, ``establishment`` or ``mandate`` when it may."""

    refusal: Refusal | None
    via: str | None = None
    mandate: Mandate | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def may_act_for(certificate: CertificateRecord, care_provider: Party, service: Service, *, on: date,
                at: datetime, mandates: Iterable[Mandate]) -> Decision:
    """Rule 1: may ``certificate`` be used for a request made for ``care_provider``?"""
    problem = certificate_problem(certificate, at)
    if problem:
        return Decision(problem)
    if holder_is(certificate, care_provider):
        return Decision(None, "holder")
    relevant = [m for m in mandates if same_party(m.mandant, care_provider) and holder_is(certificate, m.mandataire)]
    refusals = []
    for mandate in relevant:
        refusal = mandate_problem(mandate, service, on)
        if refusal is None:
            return Decision(None, "mandate", mandate)
        refusals.append(refusal)
    if refusals:
        return Decision(min(refusals, key=lambda r: _MANDATE_PRIORITY.index(r.code)))
    return Decision(Refusal("SS-NO-MANDATE", f"{certificate.describe()} may not act for {care_provider} "
                            f"({service.value}, {on})."))


def establishment_party(establishment: Establishment) -> Party:
    """The party an establishment stands for: its CBE, or its third-party (NIHII) number."""
    return Party(PartyKind.CBE if establishment.kind == "CBE" else PartyKind.NIHII, establishment.number)


def establishment_for(establishments: Iterable[Establishment], party: Party, on: date) -> Establishment | None:
    """The establishment among ``establishments`` that ``party`` is, valid on ``on``, or None."""
    for establishment in establishments:
        if not same_party(establishment_party(establishment), party):
            continue
        if establishment.valid_from <= on and (establishment.valid_to is None or on <= establishment.valid_to):
            return establishment
    return None


def next_mandate_state(state: MandateState, action: str, side: Side | None = None) -> MandateState:
    """The state after ``action`` (accept, suspend, resume, stop), or ``SS-MANDATE-TRANSITION``."""
    accepted = {Side.MANDANT: MandateState.ACCEPTED_BY_MANDANT, Side.MANDATAIRE: MandateState.ACCEPTED_BY_MANDATAIRE}
    if action == "accept" and side is not None:
        if state is MandateState.PROPOSED:
            return accepted[side]
        if state in accepted.values() and state is not accepted[side]:
            return MandateState.ACTIVE
    elif action == "suspend" and state is MandateState.ACTIVE:
        return MandateState.SUSPENDED
    elif action == "resume" and state is MandateState.SUSPENDED:
        return MandateState.ACTIVE
    elif action == "stop" and state is not MandateState.STOPPED:
        return MandateState.STOPPED
    elif action == "transfer" and state in (MandateState.ACTIVE, MandateState.SUSPENDED):
        return state
    who = f" by the {side.value}" if side else ""
    raise Refusal("SS-MANDATE-TRANSITION", f"'{action}'{who} is not possible from '{state.value}'.")


def check_new_mandate(mandant: Party, mandataire: Party, valid_from: date, valid_to: date | None) -> None:
    check_party(mandant)
    check_party(mandataire)
    if same_party(mandant, mandataire):
        raise Refusal("SS-MANDATE-SAME-PARTY", f"{mandant} was given twice.")
    check_period(valid_from, valid_to)


# --------------------------------------------------------------------------------------------
# Users and access lists
# --------------------------------------------------------------------------------------------

def is_owner(user: User, space: SecureSpace | None) -> bool:
    return space is not None and user.ssin == space.owner_ssin


def may_use(user: User, certificate: CertificateRecord, access_logins: Sequence[str],
            space: SecureSpace | None) -> Refusal | None:
    """Rule 2: an interactive user must be on the certificate's access list (the owner always is)."""
    if user.login in access_logins or is_owner(user, space):
        return None
    return Refusal("SS-NOT-ON-ACCESS-LIST", f"User '{user.login}' and certificate {certificate.describe()}.")


def may_change_access_list(login: str, certificate: CertificateRecord) -> Refusal | None:
    """Rule 3: only the certificate's responsible person changes its access list."""
    if login == certificate.responsible_login:
        return None
    return Refusal("SS-NOT-RESPONSIBLE", f"Certificate {certificate.describe()} is under the responsibility of "
                   f"'{certificate.responsible_login}', not '{login}'.")
