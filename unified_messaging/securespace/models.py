"""The secure space's records, as the store returns them and the rules read them.

They hold no secret: a certificate record carries what was read from the certificate (holder,
quality, identifiers, validity), never the ``.p12`` nor its password; a user record never its
password hash.  Their ``repr`` masks SSINs.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from unified_messaging.identifiers import mask_ssin

logger = logging.getLogger(__name__)


class Service(str, Enum):
    INSURABILITY = "INSURABILITY"
    INVOICING = "INVOICING"
    MED_ADMIN = "MED_ADMIN"


class Role(str, Enum):
    ADMINISTRATOR = "administrator"
    ADMINISTRATIVE = "administrative"
    CLINICAL = "clinical"


LANGUAGES = ("en", "nl", "fr")
"""The languages of Mybox, English first (the default)."""


class PartyKind(str, Enum):
    NIHII = "NIHII"
    SSIN = "SSIN"
    CBE = "CBE"


class MandateState(str, Enum):
    PROPOSED = "proposed"
    ACCEPTED_BY_MANDANT = "accepted-by-mandant"
    ACCEPTED_BY_MANDATAIRE = "accepted-by-mandataire"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    STOPPED = "stopped"


# What a mandate's history records as its action (mandates.py), translated when shown.
HISTORY_ACTIONS = ("propose", "accept by mandant", "accept by mandataire", "suspend", "resume", "stop",
                   "transfer-proposed", "transferred")


class Side(str, Enum):
    MANDANT = "mandant"
    MANDATAIRE = "mandataire"


_PARTY = re.compile(r"^\s*(NIHII|SSIN|CBE)\s*[=:]\s*([0-9. ]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Party:
    """A care provider, person or organisation, named by one identifier (``NIHII=...``).

    An organisation's NIHII may be written on 8 digits (as eHealth certificates do) or on 11
    (with the qualification, as requests do); ``rules.same_party`` treats both as the same.
    """

    kind: PartyKind
    value: str

    @classmethod
    def parse(cls, text: str) -> Party:
        """``NIHII=81234567000``, ``CBE=0812345674`` or ``SSIN=...``; ``ValueError`` otherwise."""
        match = _PARTY.match(text or "")
        if not match:
            raise ValueError(text)
        kind = PartyKind(match.group(1).upper())
        return cls(kind, match.group(2).replace(".", "").replace(" ", ""))

    @property
    def masked(self) -> str:
        value = mask_ssin(self.value) if self.kind is PartyKind.SSIN else self.value
        return f"{self.kind.value}={value}"

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Party({self.masked})"


@dataclass(frozen=True)
class User:
    login: str
    name: str
    ssin: str = field(repr=False)
    roles: frozenset[Role]
    created_at: str
    language: str = "en"

    @property
    def masked_ssin(self) -> str:
        return mask_ssin(self.ssin)


@dataclass(frozen=True)
class SecureSpace:
    name: str
    owner_name: str
    owner_ssin: str = field(repr=False)
    responsible_name: str = ""
    responsible_ssin: str = field(default="", repr=False)
    created_at: str = ""


@dataclass(frozen=True)
class CertificateRecord:
    """What the store knows about an uploaded certificate; the keystore itself stays encrypted."""

    id: int
    label: str
    holder_name: str | None
    kind: str
    value: str = field(repr=False)
    identifier_type: str
    quality: str | None
    ssin: str | None = field(repr=False)
    nihii: str | None
    nihii11: str | None
    cbe: str | None
    not_before: datetime
    not_after: datetime
    fingerprint: str
    responsible_login: str
    added_at: str

    @property
    def holder(self) -> Party:
        """The holder as one party: its SSIN for a person, its NIHII for a care organisation, else its CBE."""
        if self.kind == PartyKind.SSIN.value:
            return Party(PartyKind.SSIN, self.value)
        if self.kind == PartyKind.NIHII.value:
            return Party(PartyKind.NIHII, self.nihii11 or self.value)
        return Party(PartyKind.CBE, self.cbe or self.value)

    @property
    def masked_value(self) -> str:
        return mask_ssin(self.value) if self.kind == "SSIN" else self.value

    def describe(self) -> str:
        quality = f" ({self.quality})" if self.quality else ""
        return f"#{self.id} {self.identifier_type}={self.masked_value}{quality} {self.holder_name or ''}".rstrip()


@dataclass(frozen=True)
class Establishment:
    id: int
    certificate_id: int
    number: str
    kind: str  # "third-party" (8-digit third-party number or 11-digit NIHII) or "CBE"
    ssin: str | None = field(repr=False)
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True)
class Mandate:
    id: int
    mandant: Party
    mandataire: Party
    service: Service
    valid_from: date
    valid_to: date | None
    state: MandateState
    transferred_from: int | None
    transferred_to: int | None
    created_at: str


@dataclass(frozen=True)
class MandateEvent:
    mandate_id: int
    at: str
    action: str
    from_state: MandateState | None
    to_state: MandateState
    by: str
    note: str


@dataclass(frozen=True)
class Licence:
    """The MyCareNet licence; ``password`` is in clear only in memory."""

    username: str
    password: str = field(repr=False)
