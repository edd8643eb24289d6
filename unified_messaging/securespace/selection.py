"""Which certificate a legacy interface uses for a request.

The SOAP front, the folders and the batch runner have no user login.  The configuration names,
per interface, the identity (or identities) it acts as: ``NIHII=...``, ``CBE=...`` or ``SSIN=...``.
For each request, ``CertificateSelector`` takes the certificates of those identities from the
secure space and asks ``rules.may_act_for`` which one may act for the request's care provider on
that date for that service: the care provider's own certificate first, then (for invoicing) one
with the care provider among its establishments, else one whose holder holds an active mandate
from it; among several, the one valid the longest.  Otherwise the refusal comes
from the catalogue (the one about the newest candidate certificate, the one a person would fix).

Decrypted keystores are kept in memory only, per certificate fingerprint, so that the same
``KeyEntry`` object comes back for the same certificate (``TokenCache`` keys tokens by fingerprint
anyway).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable, Mapping, Sequence

from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import CertificateRecord, Mandate, Party, PartyKind, Service
from unified_messaging.securespace.store import SecureSpaceStore

logger = logging.getLogger(__name__)

SOAP = "soap"
INSURABILITY_FOLDERS = "insurability-folders"
INVOICING_FOLDERS = "invoicing-folders"
BATCH = "batch"
INTERFACES = (SOAP, INSURABILITY_FOLDERS, INVOICING_FOLDERS, BATCH)

ActingIdentity = str | Party | Sequence[str | Party]
# How a certificate may act for a care provider, least preferred first.
_PREFERENCE = ("mandate", "establishment", "holder")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Choice:
    """The certificate chosen for a request, and why it may be used."""

    certificate: CertificateRecord
    via: str  # "holder", "establishment" or "mandate"
    mandate: Mandate | None
    entry: KeyEntry = field(repr=False)

    def describe(self) -> str:
        how = (f"under mandate #{self.mandate.id}" if self.mandate else
               "for one of its establishments" if self.via == "establishment" else "as holder")
        return f"certificate {self.certificate.describe()} {how}"


def acting_parties(value: ActingIdentity | None) -> tuple[Party, ...]:
    """Parse an interface's configured acting identity: ``"NIHII=..."``, a list of them, or parties."""
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, (str, Party)) else list(value)
    parties = []
    for item in items:
        if isinstance(item, Party):
            parties.append(rules.check_party(item))
        else:
            parties.extend(rules.parse_party(part) for part in str(item).split(",") if part.strip())
    return tuple(parties)


class CertificateSelector:
    """``select(interface, care_provider_nihii, service, on_date)`` -> ``KeyEntry`` or ``Refusal``."""

    def __init__(self, store: SecureSpaceStore, acting: Mapping[str, ActingIdentity], *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock
        self._acting = {name: acting_parties(value) for name, value in acting.items()}
        self._entries: dict[str, KeyEntry] = {}
        self._lock = threading.Lock()

    def select(self, interface: str, care_provider_nihii: str, service: str | Service,
               on_date: date | None = None) -> KeyEntry:
        return self.choose(interface, care_provider_nihii, service, on_date).entry

    def choose(self, interface: str, care_provider_nihii: str, service: str | Service,
               on_date: date | None = None) -> Choice:
        """The certificate for this request, or raise the catalogue's ``Refusal``."""
        return self.choose_for(interface, Party(PartyKind.NIHII, (care_provider_nihii or "").strip()), service,
                               on_date)

    def choose_for(self, interface: str, party: Party, service: str | Service,
                   on_date: date | None = None) -> Choice:
        """The certificate that may act for ``party`` (a NIHII or a CBE), or raise the catalogue's ``Refusal``.

        For INVOICING, an establishment linked to a certificate (its third-party number or CBE, valid
        that day) lets that certificate send for it too: a group's own sites need no mandate.
        """
        service = rules.check_service(service)
        care_provider = rules.check_party(party)
        acting = self._acting.get(interface, ())
        if not acting:
            raise Refusal("SS-NO-ACTING-IDENTITY", f"Interface '{interface}'.")
        now = self.clock()
        day = on_date or now.date()
        candidates = [c for c in self.store.certificates() if any(rules.holder_is(c, p) for p in acting)]
        if not candidates:
            raise Refusal("SS-NO-CERTIFICATE", f"Interface '{interface}' acts as "
                          f"{', '.join(map(str, acting))}.")
        mandates = self.store.mandates(mandant=care_provider)
        establishments = self.store.establishments() if service is Service.INVOICING else []
        decided = []
        for certificate in candidates:
            decision = rules.may_act_for(certificate, care_provider, service, on=day, at=now, mandates=mandates)
            if decision.via != "holder" and rules.certificate_problem(certificate, now) is None:
                own = [e for e in establishments if e.certificate_id == certificate.id]
                if rules.establishment_for(own, care_provider, day) is not None:
                    decision = rules.Decision(None, "establishment")
            decided.append((certificate, decision))
        allowed = [(c, d) for c, d in decided if d.allowed]
        if not allowed:
            _, newest = max(decided, key=lambda cd: cd[0].not_after)
            logger.info("%s: no certificate for %s (%s, %s): %s", interface, care_provider, service.value, day,
                        newest.refusal.code if newest.refusal else "?")
            assert newest.refusal is not None
            raise newest.refusal
        certificate, decision = max(allowed, key=lambda cd: (_PREFERENCE.index(cd[1].via or "holder"),
                                                             cd[0].not_after))
        choice = Choice(certificate, decision.via or "holder", decision.mandate, self._entry(certificate))
        logger.debug("%s: %s for %s (%s, %s)", interface, choice.describe(), care_provider, service.value, day)
        return choice

    def forget(self) -> None:
        """Drop the decrypted keystores (after a certificate was replaced or removed)."""
        with self._lock:
            self._entries.clear()

    def _entry(self, certificate: CertificateRecord) -> KeyEntry:
        with self._lock:
            entry = self._entries.get(certificate.fingerprint)
            if entry is None:
                entry = self.store.open_keystore(certificate.id).authentication
                self._entries[certificate.fingerprint] = entry
            return entry
