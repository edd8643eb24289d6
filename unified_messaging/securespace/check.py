"""The configuration check: per certificate, is INSURABILITY, INVOICING and MED_ADMIN ``Active``?

For each certificate of the secure space, and each service the gateway offers, the answer is
``Active`` or ``Not active`` with the reasons (catalogue entries), plus warnings that do not stop
the service (a certificate expiring within 30 days, a mandate waiting for acceptance or
suspended); a service it does not offer is ``Not offered by this gateway`` (see the end).

What is checked, per certificate:

1. locally, by ``rules``: the certificate's dates; the licence is recorded; the holder's quality
   may use the service in its own name, or the holder holds an active mandate for it; for
   INVOICING, each establishment linked to the certificate that is not the holder itself is
   covered by an active INVOICING mandate to the holder;
2. live: a token request to the eHealth STS with the certificate (the STS's refusal, such as an
   expired or untrusted certificate, is reported with the platform's code);
3. live, with that token: a probe of each service.  INSURABILITY: a signed GenericInsurability
   call about a patient that cannot exist (mutuality 999), so that no real person's data is
   consulted; any business answer proves that the signature, token and licence were accepted, and
   a licence refusal is reported for every service (the licence is the same for all).  INVOICING:
   a signed GenAsync ``get`` of the mailbox that asks for nothing (``Max`` 0, ``Include`` false:
   the platform's lightest call, ``GenAsyncClient.probe``), for the holder's own NIHII or else
   its first INVOICING mandant's; it receives and confirms nothing, so the mailbox is left as it
   was.  A "Not enough time" answer (the platform throttles ``get`` and the invoicing pipeline may
   have polled just before) counts as accepted: the platform throttles only calls that passed its
   security checks.  Without an address the service is "not configured".

MED_ADMIN is not offered by this gateway (UM has no client for it): its line is neither Active nor
refused but ``Not offered by this gateway``, with no reasons.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

from cryptography import x509

from unified_messaging.domain.errors import UpstreamFault, UpstreamUnavailable
from unified_messaging.mycarenet.genasync import MailboxThrottled
from unified_messaging.domain.insurability import CareProvider, InsurabilityAnswer, InsurabilityQuery
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.sts import SamlToken
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import (
    CertificateRecord, Licence, Mandate, MandateState, Party, PartyKind, Service,
)
from unified_messaging.securespace.store import SecureSpaceStore

logger = logging.getLogger(__name__)

ACTIVE = "Active"
NOT_ACTIVE = "Not active"
NOT_OFFERED = "Not offered by this gateway"
NOT_OFFERED_NOTE = "This gateway has no client for this service: use the software that offers it."
NOT_OFFERED_SERVICES = frozenset({Service.MED_ADMIN})
LICENCE_CODES = ("SOA-01001",)  # the catalogue's "user not recognised": the licence's login
PROBE_MUTUALITY = "999"
PROBE_REGISTRATION = "0"

_QUALITY_BY_NIHII_PREFIX = (("94", "groupofnurses"), ("1", "doctor"), ("3", "dentist"), ("4", "nurse"),
                            ("5", "physiotherapist"), ("6", "pharmacist"), ("7", "hospital"), ("8", "labo"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Endpoints:
    """Where the platform's services are; an empty address means "not configured"."""

    sts_url: str = ""
    genericinsurability_url: str = ""
    invoicing_url: str = ""
    platform_ca: x509.Certificate | None = field(default=None, repr=False)
    is_test: bool = True
    timeout: float = 10.0
    ehealth_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)  # the STS token's signer chains to it


@dataclass(frozen=True)
class ServiceStatus:
    service: Service
    reasons: tuple[Refusal, ...]
    warnings: tuple[Refusal, ...]
    acts_for: tuple[str, ...]
    offered: bool = True

    @property
    def status(self) -> str:
        if not self.offered:
            return NOT_OFFERED
        return NOT_ACTIVE if self.reasons else ACTIVE

    @property
    def note(self) -> str:
        """What a neutral line says instead of reasons (a service this gateway does not offer)."""
        return "" if self.offered else NOT_OFFERED_NOTE

    def as_dict(self) -> dict[str, Any]:
        found = {"service": self.service.value, "status": self.status, "acts_for": list(self.acts_for),
                 "reasons": [r.as_dict() for r in self.reasons], "warnings": [w.as_dict() for w in self.warnings]}
        if self.note:
            found["note"] = self.note
        return found


@dataclass(frozen=True)
class CertificateCheck:
    certificate: CertificateRecord
    token: str
    services: tuple[ServiceStatus, ...]

    def service(self, service: Service | str) -> ServiceStatus:
        wanted = Service(getattr(service, "value", service))
        return next(s for s in self.services if s.service is wanted)

    def as_dict(self) -> dict[str, Any]:
        c = self.certificate
        return {"certificate": c.id, "holder": c.holder_name, "identifier": f"{c.identifier_type}={c.masked_value}",
                "quality": c.quality, "not_after": c.not_after.isoformat(), "sts_token": self.token,
                "services": [s.as_dict() for s in self.services]}


class LiveProbe(Protocol):
    """The live calls of the check, made by the upstream seam (``unified_messaging.upstream.CheckProbe``)."""

    def request_token(self, entry: KeyEntry) -> SamlToken:
        """An STS token for ``entry``; raises UpstreamFault / UpstreamUnavailable."""

    def get_insurability(self, entry: KeyEntry, token: SamlToken, query: InsurabilityQuery,
                         licence: Licence) -> InsurabilityAnswer:
        """One GenericInsurability call signed with ``entry`` and ``token``, with ``licence``."""

    def probe_mailbox(self, entry: KeyEntry, token: SamlToken, care_provider: CareProvider,
                      licence: Licence) -> None:
        """The lightest signed GenAsync call on ``care_provider``'s mailbox; confirms nothing."""


@dataclass
class _Live:
    """What the live part found for one certificate."""

    token: SamlToken | None = None
    token_text: str = "not requested"
    common: list[Refusal] = field(default_factory=list)
    per_service: dict[Service, list[Refusal]] = field(default_factory=dict)


NOT_REQUESTED_NO_ACCESS = "not requested: you are not on this certificate's access list"


class ConfigurationCheck:
    """Runs the check against ``endpoints`` with the secure space's certificates and licence."""

    def __init__(self, store: SecureSpaceStore, endpoints: Endpoints, *, probe: LiveProbe,
                 licence: Licence | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.endpoints = endpoints
        self.probe = probe
        self.licence = licence if licence is not None else store.licence()
        self.clock = clock

    def run(self, certificate_ids: Sequence[int] | None = None, *, by: str | None = None) -> list[CertificateCheck]:
        """Check the certificates (all, or ``certificate_ids``).  Run for the UM user ``by`` (Mybox, or the
        command's ``--by``), a certificate that user may not use (its access list, #18 point 2) is not
        used at all: no token is asked with it, and each service says why."""
        records = self.store.certificates()
        if certificate_ids:
            records = [self.store.certificate(i) for i in certificate_ids]
        results = []
        for record in records:
            refusal = self._may_not_use(by, record)
            results.append(self.check(record) if refusal is None else self._not_used(record, refusal))
        return results

    def _may_not_use(self, by: str | None, record: CertificateRecord) -> Refusal | None:
        if by is None:
            return None
        try:
            self.store.check_user_may_use(by, record.id)
        except Refusal as refusal:
            logger.warning("configuration check: %s may not use certificate %s (%s)", by, record.describe(),
                           refusal.code)
            return refusal
        return None

    @staticmethod
    def _not_used(record: CertificateRecord, refusal: Refusal) -> CertificateCheck:
        statuses = tuple(ServiceStatus(service, (), (), (), offered=False) if service in NOT_OFFERED_SERVICES
                         else ServiceStatus(service, (refusal,), (), ()) for service in Service)
        return CertificateCheck(record, NOT_REQUESTED_NO_ACCESS, statuses)

    def check(self, certificate: CertificateRecord) -> CertificateCheck:
        now = self.clock()
        today = now.date()
        common: list[Refusal] = []
        warnings: list[Refusal] = []
        problem = rules.certificate_problem(certificate, now)
        if problem:
            common.append(problem)
        expiring = rules.expiry_warning(certificate, now)
        if expiring:
            warnings.append(expiring)
        if self.licence is None:
            common.append(Refusal("SS-NO-LICENCE"))
        mandates = [m for m in self.store.mandates() if rules.holder_is(certificate, m.mandataire)]
        live = self._live(certificate, mandates, today)
        statuses = []
        for service in Service:
            if service in NOT_OFFERED_SERVICES:
                statuses.append(ServiceStatus(service, (), (), (), offered=False))
                continue
            reasons = list(common) + list(live.common)
            acts_for, own = self._acts_for(certificate, mandates, service, today)
            reasons.extend(own)
            reasons.extend(live.per_service.get(service, []))
            statuses.append(ServiceStatus(service, tuple(_unique(reasons)),
                                          tuple(warnings + self._mandate_warnings(mandates, service)),
                                          () if problem else tuple(acts_for)))
        result = CertificateCheck(certificate, live.token_text, tuple(statuses))
        logger.info("configuration check of certificate %s: %s", certificate.describe(),
                    ", ".join(f"{s.service.value} {s.status}" for s in statuses))
        return result

    # ------------------------------------------------------------------ local rules

    def _acts_for(self, certificate: CertificateRecord, mandates: list[Mandate], service: Service,
                  today: Any) -> tuple[list[str], list[Refusal]]:
        acts_for, reasons = [], []
        if rules.quality_allowed(certificate.quality, service):
            acts_for.append("itself")
        active = [m for m in mandates if rules.mandate_problem(m, service, today) is None]
        acts_for.extend(f"{m.mandant} (mandate #{m.id})" for m in active)
        if not acts_for:
            if certificate.quality:
                reasons.append(Refusal("SS-QUALITY-NOT-ALLOWED", f"'{certificate.quality}' may not use "
                                       f"{service.value} in its own name, and the holder holds no active "
                                       f"{service.value} mandate."))
            else:
                reasons.append(Refusal("SS-NO-MANDATE", f"The holder of {certificate.describe()} has no quality "
                                       f"of its own and holds no active {service.value} mandate."))
        if service is Service.INVOICING:
            for establishment in self.store.establishments(certificate.id):
                if establishment.valid_from > today or (establishment.valid_to and establishment.valid_to < today):
                    continue
                party = Party(PartyKind.CBE if establishment.kind == "CBE" else PartyKind.NIHII, establishment.number)
                if rules.holder_is(certificate, party):
                    continue
                if not any(rules.same_party(m.mandant, party) for m in active):
                    reasons.append(Refusal("SS-NO-MANDATE", f"Establishment {party} is linked to this certificate "
                                           f"but gave the holder no active INVOICING mandate."))
        return acts_for, reasons

    @staticmethod
    def _mandate_warnings(mandates: list[Mandate], service: Service) -> list[Refusal]:
        waiting = (MandateState.PROPOSED, MandateState.ACCEPTED_BY_MANDANT, MandateState.ACCEPTED_BY_MANDATAIRE,
                   MandateState.SUSPENDED)
        found = []
        for mandate in mandates:
            if mandate.service is service and mandate.state in waiting:
                refusal = rules.mandate_problem(mandate, service, mandate.valid_from)
                if refusal:
                    found.append(refusal)
        return found

    # ------------------------------------------------------------------ live probes

    def _live(self, certificate: CertificateRecord, mandates: list[Mandate], today: Any) -> _Live:
        live = _Live()
        if not self.endpoints.sts_url:
            live.common.append(Refusal("SS-UPSTREAM-NOT-CONFIGURED", "(the eHealth STS)"))
            live.token_text = "not requested: no STS address"
            return live
        try:
            entry = self.store.open_keystore(certificate.id).authentication
        except Refusal as refusal:
            live.common.append(refusal)
            live.token_text = "not requested: the keystore cannot be opened"
            return live
        try:
            live.token = self.probe.request_token(entry)
            live.token_text = f"issued, valid until {live.token.not_after:%Y-%m-%d %H:%M} UTC"
        except UpstreamFault as fault:
            live.common.append(Refusal("SS-STS-REFUSED", f"{fault.code}: {fault.message.rstrip('. ')}."))
            live.token_text = f"refused ({fault.code})"
            return live
        except UpstreamUnavailable as exc:
            live.common.append(Refusal("SS-UPSTREAM-UNREACHABLE", f"The eHealth STS: {exc.reason}."))
            live.token_text = "not obtained: the STS cannot be reached"
            return live
        self._probe_insurability(certificate, entry, live.token, mandates, today, live)
        self._probe_invoicing(certificate, entry, live.token, mandates, live)
        return live

    def _probe_insurability(self, certificate: CertificateRecord, entry: KeyEntry, token: SamlToken,
                            mandates: list[Mandate], today: Any, live: _Live) -> None:
        url = self.endpoints.genericinsurability_url
        if not url:
            live.per_service[Service.INSURABILITY] = [Refusal("SS-UPSTREAM-NOT-CONFIGURED", "(GenericInsurability)")]
            return
        if self.licence is None:
            return
        care_provider = _probe_care_provider(certificate, mandates)
        if care_provider is None:
            live.per_service[Service.INSURABILITY] = [Refusal(
                "SS-UPSTREAM-REFUSED", "No NIHII to probe GenericInsurability with: the holder has none and "
                "holds no mandate from a care provider.")]
            return
        query = InsurabilityQuery(care_provider=care_provider, period_start=today, period_end=today,
                                  mutuality=PROBE_MUTUALITY, registration_number=PROBE_REGISTRATION,
                                  reference="UM CONFIGURATION CHECK")
        try:
            self.probe.get_insurability(entry, token, query, self.licence)
        except UpstreamFault as fault:
            self._refused(Service.INSURABILITY, fault, live)
        except UpstreamUnavailable as exc:
            live.per_service[Service.INSURABILITY] = [Refusal("SS-UPSTREAM-UNREACHABLE", f"GenericInsurability: {exc.reason}.")]

    def _probe_invoicing(self, certificate: CertificateRecord, entry: KeyEntry, token: SamlToken,
                         mandates: list[Mandate], live: _Live) -> None:
        if not self.endpoints.invoicing_url:
            live.per_service[Service.INVOICING] = [Refusal("SS-UPSTREAM-NOT-CONFIGURED", "(INVOICING: GenAsync)")]
            return
        if self.licence is None:
            return
        care_provider = _probe_care_provider(certificate, [m for m in mandates if m.service is Service.INVOICING])
        if care_provider is None:
            live.per_service[Service.INVOICING] = [Refusal(
                "SS-UPSTREAM-REFUSED", "No NIHII whose mailbox to probe: the holder has none and holds no "
                "INVOICING mandate from a care provider.")]
            return
        try:
            self.probe.probe_mailbox(entry, token, care_provider, self.licence)
        except MailboxThrottled:
            logger.info("configuration check: the GenAsync mailbox answered 'not enough time' (polled just before): "
                        "the call passed the platform's security checks")
        except UpstreamFault as fault:
            self._refused(Service.INVOICING, fault, live)
        except UpstreamUnavailable as exc:
            live.per_service[Service.INVOICING] = [Refusal("SS-UPSTREAM-UNREACHABLE", f"GenAsync: {exc.reason}.")]

    @staticmethod
    def _refused(service: Service, fault: UpstreamFault, live: _Live) -> None:
        """A platform refusal: the licence's for every service, any other for ``service``."""
        cause = f"{fault.code}: {fault.message.rstrip('. ')}."
        if fault.code in LICENCE_CODES:
            live.common.append(Refusal("SS-LICENCE-REFUSED", cause))
        else:
            live.per_service[service] = [Refusal("SS-UPSTREAM-REFUSED", cause)]


def _probe_care_provider(certificate: CertificateRecord, mandates: list[Mandate]) -> CareProvider | None:
    """The holder's own NIHII (11 digits) when it has one, else the first mandant's."""
    nihii = certificate.nihii11 or (certificate.nihii + "000" if certificate.nihii and len(certificate.nihii) == 8
                                     else certificate.nihii)
    if nihii:
        return CareProvider(nihii, certificate.quality or _quality_of(nihii))
    for mandate in mandates:
        if mandate.mandant.kind is PartyKind.NIHII and mandate.state is MandateState.ACTIVE:
            value = mandate.mandant.value if len(mandate.mandant.value) == 11 else mandate.mandant.value + "000"
            return CareProvider(value, _quality_of(value))
    return None


def _quality_of(nihii: str) -> str:
    return next((q for prefix, q in _QUALITY_BY_NIHII_PREFIX if nihii.startswith(prefix)), "doctor")


def _unique(refusals: list[Refusal]) -> list[Refusal]:
    seen, kept = set(), []
    for refusal in refusals:
        key = (refusal.code, refusal.detail)
        if key not in seen:
            seen.add(key)
            kept.append(refusal)
    return kept
