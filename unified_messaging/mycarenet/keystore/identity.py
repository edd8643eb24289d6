"""Who an eHealth certificate belongs to, read from its subject: ``Identity`` and ``IdentifierKind``.

The identifier (SSIN, NIHII, CBE, EHP), the quality (labo, nurse, group of nurses...) and the name
are read from the CN and OUs that eHealth writes (see ``Identity``).  An SSIN only ever appears
masked in what this module returns as text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from cryptography import x509
from cryptography.x509.oid import NameOID

from unified_messaging.identifiers import mask_ssin, mask_ssins_in_text
from unified_messaging.mycarenet.keystore.errors import KeystoreError


class IdentifierKind(str, Enum):
    SSIN = "SSIN"
    NIHII = "NIHII"
    CBE = "CBE"
    EHP = "EHP"


_EHEALTH_MARKER = "ehealth-platform belgium"
_TAGGED = re.compile(r'^"?\s*(SSIN|CBE|EHP|NIHII11|NIHII(?:-[A-Z_-]+)?)\s*=\s*([0-9]+)\s*(?:,\s*(.*?))?\s*"?$',
                     re.IGNORECASE)
_TYPE_QUALITIES = {
    "NIHII-LABO": "labo",
    "NIHII-HOSPITAL": "hospital",
    "NIHII-PHARMACY": "pharmacy",
    "NIHII-GROUP": "groupofnurses",
    "NIHII-GROUPOFNURSES": "groupofnurses",
    "NIHII-GROUP-OF-NURSES": "groupofnurses",
    "NIHII-NURSE": "nurse",
    "NIHII-DOCTOR": "doctor",
    "NIHII-OTD_PHARMACY": "otdpharmacy",
}
_NIHII_FIRST_DIGITS = {
    "94": "groupofnurses",
    "1": "doctor",
    "3": "dentist",
    "4": "nurse",
    "5": "physiotherapist",
    "6": "pharmacist",
    "7": "hospital",
    "8": "labo",
}


@dataclass(frozen=True)
class _Tag:
    type: str
    value: str
    rest: str | None


def _tag(text: str) -> _Tag | None:
    match = _TAGGED.match(text.strip())
    if not match:
        return None
    return _Tag(match.group(1).upper(), match.group(2), match.group(3) or None)


def _quality_of_type(identifier_type: str) -> str | None:
    if identifier_type in _TYPE_QUALITIES:
        return _TYPE_QUALITIES[identifier_type]
    if identifier_type.startswith("NIHII-"):
        return identifier_type[len("NIHII-"):].lower().replace("-", "").replace("_", "")
    return None


def _quality_of_nihii(nihii: str) -> str | None:
    for prefix, quality in _NIHII_FIRST_DIGITS.items():
        if nihii.startswith(prefix):
            return quality
    return None


@dataclass(frozen=True, repr=False)
class Identity:
    """Who an eHealth certificate belongs to, read from its subject.

    eHealth writes the holder's identifier as ``TYPE=digits`` in the CN and again in an OU, next to
    the marker OU ``eHealth-platform Belgium`` and an OU with the holder's name, for example::

        CN=SSIN=<ssin>, OU=eHealth-platform Belgium, OU=<first and last name>, OU=SSIN=<ssin>,
        O=Federal Government, C=BE                                     (a person)
        CN=NIHII-LABO=81234567, OU=eHealth-platform Belgium, OU=<lab name>, OU=NIHII-LABO=...
        CN=CBE=<cbe>, <APPLICATION>, OU=eHealth-platform Belgium, OU=<APPLICATION>, OU=<org name>, ...

    What this reads, and what it assumes:

    * ``kind`` and ``value`` come from the CN's identifier (else the first tagged OU).  Types are
      SSIN, CBE, EHP, NIHII and ``NIHII-<QUALITY>`` (NIHII-LABO, NIHII-HOSPITAL, NIHII-PHARMACY,
      NIHII-GROUP for groups of nurses...); organisations' NIHII numbers are written on 8 digits
      (no qualification), so ``value`` is what the certificate says, not an 11-digit NIHII.
    * ``quality`` comes from the ``NIHII-<QUALITY>`` type (``NIHII-LABO`` -> ``labo``,
      ``NIHII-GROUP`` -> ``groupofnurses``); for a plain NIHII, from its first digits (1 doctor,
      3 dentist, 4 nurse, 5 physiotherapist, 6 pharmacist, 7 hospital, 8 labo, 94 group of nurses).
      Personal eHealth certificates (``SSIN=``) do not state a quality: it is ``None`` unless an OU
      carries a NIHII (``OU=NIHII-NURSE=...``, as the development PKI writes).  The STS token's
      attributes remain the authority on qualities.
    * ``name``: for a person, the OU that is neither tagged nor the eHealth marker; for an
      organisation, that OU when it differs from the application named after the CN's comma
      (``CBE=<cbe>, <APPLICATION>``), else the application.
    * ``ssin``, ``nihii`` and ``cbe`` collect every identifier of that family found in the CN and
      OUs (``NIHII-...`` types count as NIHII).
    """

    kind: IdentifierKind
    value: str
    identifier_type: str
    quality: str | None
    name: str | None
    not_before: datetime
    not_after: datetime
    ssin: str | None = None
    nihii: str | None = None
    cbe: str | None = None
    application: str | None = None

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> Identity:
        """Read the identity; ``KeystoreError`` if the subject names no eHealth identifier."""
        common_names = _attribute_values(certificate.subject, NameOID.COMMON_NAME)
        units = _attribute_values(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        cn_tags = [t for t in map(_tag, common_names) if t]
        ou_tags = [t for t in map(_tag, units) if t]
        tags = cn_tags + ou_tags
        if not tags:
            raise KeystoreError(
                f"The certificate {masked_subject(certificate)} does not name an eHealth identifier "
                "(SSIN=, NIHII=, CBE=...). Use the keystore made by the eHealth certificate manager."
            )
        primary = tags[0]
        kind = _kind_of(primary.type)
        found = {family: next((t.value for t in tags if _kind_of(t.type) is family), None)
                 for family in IdentifierKind}
        application = next((t.rest for t in cn_tags if t.rest), None)
        plain_units = [u for u in units if not _tag(u) and u.strip().lower() != _EHEALTH_MARKER]
        return cls(
            kind=kind,
            value=primary.value,
            identifier_type=primary.type,
            quality=_quality_of_tags(primary, tags),
            name=_name_of(kind, plain_units, application, certificate.subject),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            ssin=found[IdentifierKind.SSIN],
            nihii=found[IdentifierKind.NIHII],
            cbe=found[IdentifierKind.CBE],
            application=application,
        )

    @property
    def masked_value(self) -> str:
        return mask_ssin(self.value) if self.kind is IdentifierKind.SSIN else self.value

    def __str__(self) -> str:
        text = f"{self.identifier_type} {self.masked_value}"
        if self.quality:
            text += f" ({self.quality})"
        if self.name:
            text += f" {self.name}"
        return mask_ssins_in_text(text)

    def __repr__(self) -> str:
        return mask_ssins_in_text(
            f"Identity(kind={self.kind.value}, value={self.masked_value}, quality={self.quality!r}, "
            f"name={self.name!r}, not_before={self.not_before:%Y-%m-%d}, "
            f"not_after={self.not_after:%Y-%m-%d})"
        )


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]


def _kind_of(identifier_type: str) -> IdentifierKind:
    if identifier_type.startswith("NIHII"):
        return IdentifierKind.NIHII
    return IdentifierKind(identifier_type)


def _quality_of_tags(primary: _Tag, tags: list[_Tag]) -> str | None:
    for tag in [primary] + tags:
        quality = _quality_of_type(tag.type)
        if quality:
            return quality
    for tag in [primary] + tags:
        if tag.type in ("NIHII", "NIHII11"):
            return _quality_of_nihii(tag.value)
    return None


def _name_of(kind: IdentifierKind, plain_units: list[str], application: str | None,
             subject: x509.Name) -> str | None:
    if kind is IdentifierKind.SSIN:
        given = _attribute_values(subject, NameOID.GIVEN_NAME)
        surname = _attribute_values(subject, NameOID.SURNAME)
        if given or surname:
            return " ".join(given + surname)
        return plain_units[0] if plain_units else None
    others = [u for u in plain_units if u != application]
    return others[0] if others else application


def masked_subject(certificate: x509.Certificate) -> str:
    """The certificate's subject as RFC 4514 text, SSINs masked (for messages and logs)."""
    return mask_ssins_in_text(certificate.subject.rfc4514_string())
