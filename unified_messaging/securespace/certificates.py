"""The secure space's certificates (their keystores sealed, never in clear) and their access lists."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from unified_messaging.database import Transaction
from unified_messaging.mycarenet.keystore import Keystore, KeystoreError, TrustedCa, load_keystore, verify_chain
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.crypto import fingerprint
from unified_messaging.securespace.models import CertificateRecord, Party, PartyKind
from unified_messaging.securespace.space import SpaceStore
from unified_messaging.securespace.users import UserStore

logger = logging.getLogger(__name__)


class CertificateStore(UserStore, SpaceStore):
    """The ``certificates`` and ``access`` tables; a certificate needs its responsible user and the space owner."""

    def add_certificate(self, p12: bytes, password: str, *, responsible_login: str, label: str | None = None,
                        nihii11: str | None = None, trusted_ca: TrustedCa | None = None) -> CertificateRecord:
        """Verify the keystore, read who it belongs to, and keep it sealed (never in clear on disk).

        With ``trusted_ca`` (the eHealth CA, or a bundle: ``[upstream] ehealth_ca``) a certificate
        that does not chain to it is refused (SS-CERT-UNTRUSTED), and so is one that is not valid
        at upload (SS-CERT-EXPIRED, SS-CERT-NOT-YET-VALID).  Without it nothing is chain-checked
        and an expired certificate is kept (the configuration check then says so).
        """
        self.user(responsible_login)
        try:
            keystore = load_keystore(p12, password)
            entry = keystore.authentication
        except KeystoreError as exc:
            raise Refusal("SS-BAD-KEYSTORE", str(exc)) from None
        identity = entry.identity
        if trusted_ca is not None:
            at = min(max(self.clock(), identity.not_before), identity.not_after)
            problem = verify_chain(entry.certificate, trusted_ca, at,
                                   intermediates=[c for c in keystore.certificates if c != entry.certificate])
            if problem:
                raise Refusal("SS-CERT-UNTRUSTED", problem)
            _check_valid_at_upload(identity.not_before, identity.not_after, self.clock())
        nihii11 = _nihii11(identity.nihii, nihii11)
        print_ = fingerprint(entry.certificate.public_bytes(Encoding.DER))
        sealed = self._sealer.seal(p12, f"keystore:{print_}")
        sealed_password = self._sealer.seal(password.encode("utf-8"), f"keystore-password:{print_}")
        space = self.space_or_none()
        owner = self.user_by_ssin(space.owner_ssin) if space else None
        stamp = self._stamp()
        with self.write() as db:
            if db.query("SELECT 1 AS found FROM certificates WHERE fingerprint = :fingerprint", {"fingerprint": print_}):
                raise Refusal("SS-BAD-KEYSTORE", "This certificate is already in the secure space.")
            certificate_id = db.query(
                "INSERT INTO certificates (label, holder_name, kind, value, identifier_type, quality, ssin, nihii, "
                "nihii11, cbe, not_before, not_after, fingerprint, responsible_login, added_at, keystore, "
                "keystore_password) VALUES (:label, :holder_name, :kind, :value, :identifier_type, :quality, :ssin, "
                ":nihii, :nihii11, :cbe, :not_before, :not_after, :fingerprint, :responsible_login, :added_at, "
                ":keystore, :keystore_password) RETURNING id",
                {"label": label or identity.name or identity.identifier_type, "holder_name": identity.name,
                 "kind": identity.kind.value, "value": identity.value, "identifier_type": identity.identifier_type,
                 "quality": identity.quality, "ssin": identity.ssin, "nihii": identity.nihii, "nihii11": nihii11,
                 "cbe": identity.cbe, "not_before": identity.not_before.isoformat(),
                 "not_after": identity.not_after.isoformat(), "fingerprint": print_,
                 "responsible_login": responsible_login, "added_at": stamp, "keystore": sealed,
                 "keystore_password": sealed_password})[0]["id"]
            for login in dict.fromkeys([responsible_login] + ([owner.login] if owner else [])):
                _grant(db, certificate_id, login, "automatic", stamp)
        record = self.certificate(certificate_id)
        logger.info("certificate %s added, valid until %s, responsible %s", record.describe(),
                    record.not_after.date(), responsible_login)
        return record

    def certificate(self, certificate_id: int) -> CertificateRecord:
        rows = self._rows(f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE id = :id", {"id": certificate_id})
        if not rows:
            raise Refusal("SS-UNKNOWN-CERTIFICATE", f"Number {certificate_id}.")
        return _certificate(rows[0])

    def certificates(self) -> list[CertificateRecord]:
        return [_certificate(r) for r in self._rows(f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates ORDER BY id")]

    def open_keystore(self, certificate_id: int) -> Keystore:
        """Decrypt the certificate's keystore, in memory only."""
        rows = self._rows("SELECT fingerprint, keystore, keystore_password FROM certificates WHERE id = :id",
                          {"id": certificate_id})
        if not rows:
            raise Refusal("SS-UNKNOWN-CERTIFICATE", f"Number {certificate_id}.")
        print_ = rows[0]["fingerprint"]
        p12 = self._sealer.open(bytes(rows[0]["keystore"]), f"keystore:{print_}")
        password = self._sealer.open(bytes(rows[0]["keystore_password"]), f"keystore-password:{print_}").decode("utf-8")
        try:
            return load_keystore(p12, password)
        except KeystoreError as exc:
            raise Refusal("SS-CERT-UNREADABLE", str(exc)) from None

    def remove_certificate(self, certificate_id: int) -> None:
        record = self.certificate(certificate_id)
        with self.write() as db:
            db.execute("DELETE FROM certificates WHERE id = :id", {"id": certificate_id})
        logger.info("certificate %s removed", record.describe())

    def set_certificate_responsible(self, certificate_id: int, login: str, *, by: str) -> CertificateRecord:
        """Hand the responsibility over; only the current responsible person may."""
        self._check_may_change_access(certificate_id, by, login)
        with self.write() as db:
            db.execute("UPDATE certificates SET responsible_login = :login WHERE id = :id",
                       {"login": login, "id": certificate_id})
            _grant(db, certificate_id, login, by, self._stamp())
        return self.certificate(certificate_id)

    # ---------------------------------------------------------------- access lists

    def access_list(self, certificate_id: int) -> list[dict[str, str]]:
        self.certificate(certificate_id)
        return [dict(row) for row in self._rows(
            "SELECT login, granted_by, granted_at FROM access WHERE certificate_id = :id ORDER BY login",
            {"id": certificate_id})]

    def grant(self, certificate_id: int, login: str, *, by: str) -> None:
        self._check_may_change_access(certificate_id, by, login)
        with self.write() as db:
            _grant(db, certificate_id, login, by, self._stamp())
        logger.info("user %s granted certificate #%d by %s", login, certificate_id, by)

    def revoke(self, certificate_id: int, login: str, *, by: str) -> None:
        self._check_may_change_access(certificate_id, by)
        with self.write() as db:
            db.execute("DELETE FROM access WHERE certificate_id = :id AND login = :login",
                       {"id": certificate_id, "login": login})
        logger.info("user %s removed from certificate #%d by %s", login, certificate_id, by)

    def _check_may_change_access(self, certificate_id: int, by: str, login: str | None = None) -> None:
        """The certificate (and the user ``login``, when given) exist and ``by`` may change the access list."""
        record = self.certificate(certificate_id)
        if login is not None:
            self.user(login)
        refusal = rules.may_change_access_list(by, record)
        if refusal:
            raise refusal

    def check_user_may_use(self, login: str, certificate_id: int) -> CertificateRecord:
        """Rule for interactive use: the user is on the access list (or owns the space)."""
        user = self.user(login)
        record = self.certificate(certificate_id)
        logins = [row["login"] for row in self.access_list(certificate_id)]
        refusal = rules.may_use(user, record, logins, self.space_or_none())
        if refusal:
            raise refusal
        return record


_CERTIFICATE_COLUMNS = ("id, label, holder_name, kind, value, identifier_type, quality, ssin, nihii, nihii11, cbe, "
                        "not_before, not_after, fingerprint, responsible_login, added_at")


def _grant(db: Transaction, certificate_id: int, login: str, by: str, at: str) -> None:
    """Put ``login`` on the certificate's access list (nothing when it is on it already)."""
    db.execute("INSERT INTO access (certificate_id, login, granted_by, granted_at) VALUES (:id, :login, :by, :at) "
               "ON CONFLICT DO NOTHING", {"id": certificate_id, "login": login, "by": by, "at": at})


def _check_valid_at_upload(not_before: datetime, not_after: datetime, now: datetime) -> None:
    """A certificate checked against the eHealth CA must also be usable now."""
    if now > not_after:
        raise Refusal("SS-CERT-EXPIRED", f"It expired on {not_after:%Y-%m-%d}.")
    if now < not_before:
        raise Refusal("SS-CERT-NOT-YET-VALID", f"It is valid from {not_before:%Y-%m-%d %H:%M} UTC.")


def _nihii11(certificate_nihii: str | None, given: str | None) -> str | None:
    """The holder's 11-digit NIHII: from the certificate, or given and consistent with its 8 digits."""
    if given:
        rules.check_party(Party(PartyKind.NIHII, given))
        if len(given) != 11 or (certificate_nihii and not given.startswith(certificate_nihii[:8])):
            raise Refusal("SS-BAD-NIHII", f"{given} is not the 11-digit form of the certificate's NIHII "
                          f"{certificate_nihii}.")
        return given
    return certificate_nihii if certificate_nihii and len(certificate_nihii) == 11 else None


def _certificate(row: dict[str, Any]) -> CertificateRecord:
    return CertificateRecord(
        id=row["id"], label=row["label"], holder_name=row["holder_name"], kind=row["kind"], value=row["value"],
        identifier_type=row["identifier_type"], quality=row["quality"], ssin=row["ssin"], nihii=row["nihii"],
        nihii11=row["nihii11"], cbe=row["cbe"], not_before=datetime.fromisoformat(row["not_before"]),
        not_after=datetime.fromisoformat(row["not_after"]), fingerprint=row["fingerprint"],
        responsible_login=row["responsible_login"], added_at=row["added_at"])

