"""The secure space's store: one SQLite file, ``<data folder>/securespace.sqlite``.

Same conventions as the journal: WAL mode, one connection per thread, every writing transaction
opened with ``BEGIN IMMEDIATE``; ``secure_delete`` is on so that a removed row is overwritten.

What is never in the file in clear: the ``.p12`` bytes, its password and the licence password
(sealed with ``crypto.Sealer`` under the master secret), user passwords (scrypt hashes only).
Every decision (may this change be made, is this identifier valid) is taken by ``rules``.
"""
from __future__ import annotations

import logging
import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from unified_messaging.identifiers import mask_ssin
from unified_messaging.mycarenet.keystore import Keystore, KeystoreError, load_keystore, verify_chain
from unified_messaging.journal.sqlite import SqliteFile
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.crypto import PasswordHasher, Sealer, fingerprint
from unified_messaging.securespace.models import (
    LANGUAGES, CertificateRecord, Establishment, Licence, Mandate, MandateEvent, MandateState, Party, PartyKind,
    Role, SecureSpace, Service, Side, User,
)

logger = logging.getLogger(__name__)

STORE_FILE = "securespace.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    login TEXT PRIMARY KEY, name TEXT NOT NULL, ssin TEXT NOT NULL, roles TEXT NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS space (
    id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, owner_name TEXT NOT NULL,
    owner_ssin TEXT NOT NULL, responsible_name TEXT NOT NULL, responsible_ssin TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY, label TEXT NOT NULL, holder_name TEXT, kind TEXT NOT NULL, value TEXT NOT NULL,
    identifier_type TEXT NOT NULL, quality TEXT, ssin TEXT, nihii TEXT, nihii11 TEXT, cbe TEXT,
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,
    responsible_login TEXT NOT NULL, added_at TEXT NOT NULL,
    keystore BLOB NOT NULL, keystore_password BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS access (
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    login TEXT NOT NULL, granted_by TEXT NOT NULL, granted_at TEXT NOT NULL,
    PRIMARY KEY (certificate_id, login));
CREATE TABLE IF NOT EXISTS establishments (
    id INTEGER PRIMARY KEY,
    certificate_id INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    number TEXT NOT NULL, kind TEXT NOT NULL, ssin TEXT, valid_from TEXT NOT NULL, valid_to TEXT);
CREATE TABLE IF NOT EXISTS mandates (
    id INTEGER PRIMARY KEY, mandant_kind TEXT NOT NULL, mandant_value TEXT NOT NULL,
    mandataire_kind TEXT NOT NULL, mandataire_value TEXT NOT NULL, service TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_to TEXT, state TEXT NOT NULL,
    transferred_from INTEGER REFERENCES mandates(id), transferred_to INTEGER REFERENCES mandates(id),
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mandates_mandant ON mandates(mandant_value, service);
CREATE TABLE IF NOT EXISTS mandate_events (
    id INTEGER PRIMARY KEY, mandate_id INTEGER NOT NULL REFERENCES mandates(id), at TEXT NOT NULL,
    action TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licence (
    id INTEGER PRIMARY KEY CHECK (id = 1), username TEXT NOT NULL, password BLOB NOT NULL,
    updated_at TEXT NOT NULL);
"""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SecureSpaceStore(SqliteFile):
    extra_pragmas = ("foreign_keys=ON", "secure_delete=ON")

    """Thread-safe access to the secure space file; each thread gets its own connection.

    ``master_secret`` is the installation's master key (``secrets.master_key``); ``hasher`` may be
    given a lower cost in tests; ``clock`` stamps the rows and is "now" for validity checks.
    """

    def __init__(self, path: Path, master_secret: bytes, *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(path)
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        self._sealer = Sealer(master_secret)
        self._connection().executescript(_SCHEMA)
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
            if "language" not in columns:  # a secure space made before Mybox
                db.execute("ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en'")

    @classmethod
    def in_data_folder(cls, data_folder: Path, master_secret: bytes, **options: Any) -> SecureSpaceStore:
        return cls(Path(data_folder) / STORE_FILE, master_secret, **options)

    # ---------------------------------------------------------------- connections

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, list(params)).fetchall()

    def _stamp(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    # ---------------------------------------------------------------- users

    def add_user(self, login: str, name: str, ssin: str, roles: Iterable[str | Role], password: str) -> User:
        login = login.strip()
        role_set = _roles(roles)
        rules.check_ssin(ssin)
        rules.check_password_strength(password)
        password_hash = self.hasher.hash(password)
        with self.write() as db:
            if db.execute("SELECT 1 FROM users WHERE login = ?", [login]).fetchone():
                raise Refusal("SS-USER-EXISTS", f"Login '{login}'.")
            db.execute("INSERT INTO users(login, name, ssin, roles, password_hash, created_at) VALUES (?,?,?,?,?,?)",
                       [login, name, ssin, _roles_text(role_set), password_hash, self._stamp()])
        logger.info("user %s added (%s, SSIN %s)", login, _roles_text(role_set), mask_ssin(ssin))
        return self.user(login)

    def user(self, login: str) -> User:
        rows = self._rows("SELECT * FROM users WHERE login = ?", [login])
        if not rows:
            raise Refusal("SS-UNKNOWN-USER", f"Login '{login}'.")
        return _user(rows[0])

    def users(self) -> list[User]:
        return [_user(row) for row in self._rows("SELECT * FROM users ORDER BY login")]

    def user_by_ssin(self, ssin: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE ssin = ? ORDER BY login", [ssin])
        return _user(rows[0]) if rows else None

    def authenticate(self, login: str, password: str) -> User:
        """The user when the password is right, else ``SS-WRONG-PASSWORD`` (same for an unknown login)."""
        rows = self._rows("SELECT * FROM users WHERE login = ?", [login])
        if not rows:
            self.hasher.dummy_verify(password)
            raise Refusal("SS-WRONG-PASSWORD")
        if not self.hasher.verify(password, rows[0]["password_hash"]):
            logger.warning("wrong password for user %s", login)
            raise Refusal("SS-WRONG-PASSWORD")
        return _user(rows[0])

    def set_password(self, login: str, password: str) -> None:
        self.user(login)
        rules.check_password_strength(password)
        password_hash = self.hasher.hash(password)
        with self.write() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE login = ?", [password_hash, login])
        logger.info("password of user %s changed", login)

    def set_roles(self, login: str, roles: Iterable[str | Role]) -> User:
        self.user(login)
        with self.write() as db:
            db.execute("UPDATE users SET roles = ? WHERE login = ?", [_roles_text(_roles(roles)), login])
        return self.user(login)

    def set_language(self, login: str, language: str) -> User:
        """The user's Mybox language: ``en``, ``nl`` or ``fr``."""
        self.user(login)
        if language not in LANGUAGES:
            raise Refusal("SS-BAD-LANGUAGE", f"'{language}' was given.")
        with self.write() as db:
            db.execute("UPDATE users SET language = ? WHERE login = ?", [language, login])
        return self.user(login)

    def remove_user(self, login: str) -> None:
        self.user(login)
        with self.write() as db:
            db.execute("DELETE FROM access WHERE login = ?", [login])
            db.execute("DELETE FROM users WHERE login = ?", [login])
        logger.info("user %s removed", login)

    # ---------------------------------------------------------------- the secure space

    def create_space(self, name: str, owner_name: str, owner_ssin: str, responsible_name: str,
                     responsible_ssin: str) -> SecureSpace:
        rules.check_ssin(owner_ssin)
        rules.check_ssin(responsible_ssin)
        with self.write() as db:
            if db.execute("SELECT 1 FROM space").fetchone():
                raise Refusal("SS-SECURE-SPACE-EXISTS")
            db.execute("INSERT INTO space VALUES (1, ?, ?, ?, ?, ?, ?)",
                       [name, owner_name, owner_ssin, responsible_name, responsible_ssin, self._stamp()])
        logger.info("secure space '%s' created, owner SSIN %s", name, mask_ssin(owner_ssin))
        return self.space()

    def update_space(self, **values: str) -> SecureSpace:
        allowed = {"name", "owner_name", "owner_ssin", "responsible_name", "responsible_ssin"}
        changes = {k: v for k, v in values.items() if k in allowed and v}
        for key in ("owner_ssin", "responsible_ssin"):
            if key in changes:
                rules.check_ssin(changes[key])
        self.space()
        if changes:
            with self.write() as db:
                db.execute("UPDATE space SET " + ", ".join(f"{k} = ?" for k in changes) + " WHERE id = 1",
                           list(changes.values()))
        return self.space()

    def space(self) -> SecureSpace:
        found = self.space_or_none()
        if found is None:
            raise Refusal("SS-NO-SECURE-SPACE")
        return found

    def space_or_none(self) -> SecureSpace | None:
        rows = self._rows("SELECT * FROM space")
        if not rows:
            return None
        row = rows[0]
        return SecureSpace(row["name"], row["owner_name"], row["owner_ssin"], row["responsible_name"],
                           row["responsible_ssin"], row["created_at"])

    # ---------------------------------------------------------------- certificates

    def add_certificate(self, p12: bytes, password: str, *, responsible_login: str, label: str | None = None,
                        nihii11: str | None = None, trusted_ca: x509.Certificate | None = None) -> CertificateRecord:
        """Verify the keystore, read who it belongs to, and keep it sealed (never in clear on disk).

        An expired certificate is accepted (the configuration check then says so); one that the
        trusted CA did not issue is refused when ``trusted_ca`` is given.
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
        nihii11 = _nihii11(identity.nihii, nihii11)
        print_ = fingerprint(entry.certificate.public_bytes(Encoding.DER))
        sealed = self._sealer.seal(p12, f"keystore:{print_}")
        sealed_password = self._sealer.seal(password.encode("utf-8"), f"keystore-password:{print_}")
        space = self.space_or_none()
        owner = self.user_by_ssin(space.owner_ssin) if space else None
        stamp = self._stamp()
        with self.write() as db:
            if db.execute("SELECT 1 FROM certificates WHERE fingerprint = ?", [print_]).fetchone():
                raise Refusal("SS-BAD-KEYSTORE", "This certificate is already in the secure space.")
            cursor = db.execute(
                "INSERT INTO certificates(label, holder_name, kind, value, identifier_type, quality, ssin, nihii, "
                "nihii11, cbe, not_before, not_after, fingerprint, responsible_login, added_at, keystore, "
                "keystore_password) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [label or identity.name or identity.identifier_type, identity.name, identity.kind.value,
                 identity.value, identity.identifier_type, identity.quality, identity.ssin, identity.nihii, nihii11,
                 identity.cbe, identity.not_before.isoformat(), identity.not_after.isoformat(), print_,
                 responsible_login, stamp, sealed, sealed_password])
            certificate_id = cursor.lastrowid
            for login in dict.fromkeys([responsible_login] + ([owner.login] if owner else [])):
                db.execute("INSERT OR IGNORE INTO access VALUES (?, ?, 'automatic', ?)", [certificate_id, login, stamp])
        record = self.certificate(certificate_id)
        logger.info("certificate %s added, valid until %s, responsible %s", record.describe(),
                    record.not_after.date(), responsible_login)
        return record

    def certificate(self, certificate_id: int) -> CertificateRecord:
        rows = self._rows(f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates WHERE id = ?", [certificate_id])
        if not rows:
            raise Refusal("SS-UNKNOWN-CERTIFICATE", f"Number {certificate_id}.")
        return _certificate(rows[0])

    def certificates(self) -> list[CertificateRecord]:
        return [_certificate(r) for r in self._rows(f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates ORDER BY id")]

    def open_keystore(self, certificate_id: int) -> Keystore:
        """Decrypt the certificate's keystore, in memory only."""
        rows = self._rows("SELECT fingerprint, keystore, keystore_password FROM certificates WHERE id = ?",
                          [certificate_id])
        if not rows:
            raise Refusal("SS-UNKNOWN-CERTIFICATE", f"Number {certificate_id}.")
        print_ = rows[0]["fingerprint"]
        p12 = self._sealer.open(rows[0]["keystore"], f"keystore:{print_}")
        password = self._sealer.open(rows[0]["keystore_password"], f"keystore-password:{print_}").decode("utf-8")
        try:
            return load_keystore(p12, password)
        except KeystoreError as exc:
            raise Refusal("SS-CERT-UNREADABLE", str(exc)) from None

    def remove_certificate(self, certificate_id: int) -> None:
        record = self.certificate(certificate_id)
        with self.write() as db:
            db.execute("DELETE FROM certificates WHERE id = ?", [certificate_id])
        logger.info("certificate %s removed", record.describe())

    def set_certificate_responsible(self, certificate_id: int, login: str, *, by: str) -> CertificateRecord:
        """Hand the responsibility over; only the current responsible person may."""
        record = self.certificate(certificate_id)
        self.user(login)
        refusal = rules.may_change_access_list(by, record)
        if refusal:
            raise refusal
        with self.write() as db:
            db.execute("UPDATE certificates SET responsible_login = ? WHERE id = ?", [login, certificate_id])
            db.execute("INSERT OR IGNORE INTO access VALUES (?, ?, ?, ?)", [certificate_id, login, by, self._stamp()])
        return self.certificate(certificate_id)

    # ---------------------------------------------------------------- access lists

    def access_list(self, certificate_id: int) -> list[dict[str, str]]:
        self.certificate(certificate_id)
        return [dict(row) for row in self._rows(
            "SELECT login, granted_by, granted_at FROM access WHERE certificate_id = ? ORDER BY login", [certificate_id])]

    def grant(self, certificate_id: int, login: str, *, by: str) -> None:
        record = self.certificate(certificate_id)
        self.user(login)
        refusal = rules.may_change_access_list(by, record)
        if refusal:
            raise refusal
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO access VALUES (?, ?, ?, ?)", [certificate_id, login, by, self._stamp()])
        logger.info("user %s granted certificate #%d by %s", login, certificate_id, by)

    def revoke(self, certificate_id: int, login: str, *, by: str) -> None:
        record = self.certificate(certificate_id)
        refusal = rules.may_change_access_list(by, record)
        if refusal:
            raise refusal
        with self.write() as db:
            db.execute("DELETE FROM access WHERE certificate_id = ? AND login = ?", [certificate_id, login])
        logger.info("user %s removed from certificate #%d by %s", login, certificate_id, by)

    def check_user_may_use(self, login: str, certificate_id: int) -> CertificateRecord:
        """Rule for interactive use: the user is on the access list (or owns the space)."""
        user = self.user(login)
        record = self.certificate(certificate_id)
        logins = [row["login"] for row in self.access_list(certificate_id)]
        refusal = rules.may_use(user, record, logins, self.space_or_none())
        if refusal:
            raise refusal
        return record

    # ---------------------------------------------------------------- establishments

    def add_establishment(self, certificate_id: int, number: str, *, ssin: str | None, valid_from: date,
                          valid_to: date | None = None) -> Establishment:
        self.certificate(certificate_id)
        number = number.replace(".", "").replace(" ", "")
        kind = "CBE" if len(number) == 10 else "third-party"
        rules.check_party(Party(PartyKind.CBE if kind == "CBE" else PartyKind.NIHII, number))
        if ssin:
            rules.check_ssin(ssin)
        rules.check_period(valid_from, valid_to)
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO establishments(certificate_id, number, kind, ssin, valid_from, valid_to) "
                "VALUES (?,?,?,?,?,?)",
                [certificate_id, number, kind, ssin, valid_from.isoformat(), _iso(valid_to)])
        return self.establishment(cursor.lastrowid)

    def establishment(self, establishment_id: int) -> Establishment:
        rows = self._rows("SELECT * FROM establishments WHERE id = ?", [establishment_id])
        if not rows:
            raise Refusal("SS-UNKNOWN-ESTABLISHMENT", f"Number {establishment_id}.")
        return _establishment(rows[0])

    def establishments(self, certificate_id: int | None = None) -> list[Establishment]:
        if certificate_id is None:
            rows = self._rows("SELECT * FROM establishments ORDER BY certificate_id, id")
        else:
            rows = self._rows("SELECT * FROM establishments WHERE certificate_id = ? ORDER BY id", [certificate_id])
        return [_establishment(r) for r in rows]

    def remove_establishment(self, establishment_id: int) -> None:
        self.establishment(establishment_id)
        with self.write() as db:
            db.execute("DELETE FROM establishments WHERE id = ?", [establishment_id])

    # ---------------------------------------------------------------- mandates

    def propose_mandate(self, mandant: Party, mandataire: Party, service: str | Service, *, valid_from: date,
                        valid_to: date | None = None, by: str) -> Mandate:
        service = rules.check_service(service)
        rules.check_new_mandate(mandant, mandataire, valid_from, valid_to)
        with self.write() as db:
            mandate_id = self._insert_mandate(db, mandant, mandataire, service, valid_from, valid_to,
                                              MandateState.PROPOSED, None)
            self._event(db, mandate_id, "propose", None, MandateState.PROPOSED, by, "")
        logger.info("mandate #%d proposed: %s -> %s for %s", mandate_id, mandant, mandataire, service.value)
        return self.mandate(mandate_id)

    def accept_mandate(self, mandate_id: int, side: Side | str, *, by: str) -> Mandate:
        side = Side(side)
        with self.write() as db:
            mandate = self._load_mandate(db, mandate_id)
            state = rules.next_mandate_state(mandate.state, "accept", side)
            self._set_state(db, mandate, state, f"accept by {side.value}", by)
            if state is MandateState.ACTIVE and mandate.transferred_from is not None:
                self._complete_transfer(db, mandate, by)
        return self.mandate(mandate_id)

    def suspend_mandate(self, mandate_id: int, *, by: str, note: str = "") -> Mandate:
        return self._change(mandate_id, "suspend", by, note)

    def resume_mandate(self, mandate_id: int, *, by: str, note: str = "") -> Mandate:
        return self._change(mandate_id, "resume", by, note)

    def stop_mandate(self, mandate_id: int, *, by: str, note: str = "") -> Mandate:
        return self._change(mandate_id, "stop", by, note)

    def transfer_mandate(self, mandate_id: int, new_mandataire: Party, *, by: str, on: date) -> Mandate:
        """Propose the mandate to a new mandataire, already accepted by the mandant.

        The current mandate keeps working until the new mandataire accepts; then it is stopped,
        marked as transferred, and both keep their history (see ``mandate_history``).
        """
        with self.write() as db:
            old = self._load_mandate(db, mandate_id)
            rules.next_mandate_state(old.state, "transfer")
            valid_from = max(old.valid_from, on)
            rules.check_new_mandate(old.mandant, new_mandataire, valid_from, old.valid_to)
            new_id = self._insert_mandate(db, old.mandant, new_mandataire, old.service, valid_from, old.valid_to,
                                          MandateState.ACCEPTED_BY_MANDANT, old.id)
            self._event(db, new_id, "transfer-proposed", None, MandateState.ACCEPTED_BY_MANDANT, by,
                        f"transfer of mandate #{old.id} from {old.mandataire}")
            self._event(db, old.id, "transfer-proposed", old.state, old.state, by,
                        f"to {new_mandataire} as mandate #{new_id}")
        logger.info("mandate #%d: transfer to %s proposed as mandate #%d", mandate_id, new_mandataire, new_id)
        return self.mandate(new_id)

    def mandate(self, mandate_id: int) -> Mandate:
        return self._load_mandate(self._connection(), mandate_id)

    def mandates(self, *, mandant: Party | None = None, mandataire: Party | None = None,
                 service: Service | None = None) -> list[Mandate]:
        found = [_mandate(r) for r in self._rows("SELECT * FROM mandates ORDER BY id")]
        return [m for m in found
                if (mandant is None or rules.same_party(m.mandant, mandant))
                and (mandataire is None or rules.same_party(m.mandataire, mandataire))
                and (service is None or m.service is service)]

    def mandate_history(self, mandate_id: int) -> list[MandateEvent]:
        """The events of the mandate and of every mandate it was transferred from or to."""
        chain = self._chain(mandate_id)
        marks = ",".join("?" for _ in chain)
        rows = self._rows(f"SELECT * FROM mandate_events WHERE mandate_id IN ({marks}) ORDER BY id", chain)
        return [MandateEvent(r["mandate_id"], r["at"], r["action"],
                             MandateState(r["from_state"]) if r["from_state"] else None,
                             MandateState(r["to_state"]), r["by"], r["note"]) for r in rows]

    def _chain(self, mandate_id: int) -> list[int]:
        first = self.mandate(mandate_id)
        while first.transferred_from is not None:
            first = self.mandate(first.transferred_from)
        chain = [first.id]
        current = first
        for later in self.mandates():
            if later.transferred_from == current.id:
                chain.append(later.id)
                current = later
        return chain

    def _change(self, mandate_id: int, action: str, by: str, note: str) -> Mandate:
        with self.write() as db:
            mandate = self._load_mandate(db, mandate_id)
            state = rules.next_mandate_state(mandate.state, action)
            self._set_state(db, mandate, state, action, by, note)
        logger.info("mandate #%d: %s by %s (now %s)", mandate_id, action, by, state.value)
        return self.mandate(mandate_id)

    def _complete_transfer(self, db: sqlite3.Connection, new: Mandate, by: str) -> None:
        old = self._load_mandate(db, new.transferred_from)
        db.execute("UPDATE mandates SET transferred_to = ? WHERE id = ?", [new.id, old.id])
        if old.state is not MandateState.STOPPED:
            self._set_state(db, old, MandateState.STOPPED, "transferred", by, f"to mandate #{new.id} ({new.mandataire})")
        logger.info("mandate #%d transferred to mandate #%d (%s)", old.id, new.id, new.mandataire)

    def _insert_mandate(self, db: sqlite3.Connection, mandant: Party, mandataire: Party, service: Service,
                        valid_from: date, valid_to: date | None, state: MandateState,
                        transferred_from: int | None) -> int:
        cursor = db.execute(
            "INSERT INTO mandates(mandant_kind, mandant_value, mandataire_kind, mandataire_value, service, "
            "valid_from, valid_to, state, transferred_from, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [mandant.kind.value, mandant.value, mandataire.kind.value, mandataire.value, service.value,
             valid_from.isoformat(), _iso(valid_to), state.value, transferred_from, self._stamp()])
        return int(cursor.lastrowid)

    def _set_state(self, db: sqlite3.Connection, mandate: Mandate, state: MandateState, action: str, by: str,
                   note: str = "") -> None:
        db.execute("UPDATE mandates SET state = ? WHERE id = ?", [state.value, mandate.id])
        self._event(db, mandate.id, action, mandate.state, state, by, note)

    def _event(self, db: sqlite3.Connection, mandate_id: int, action: str, from_state: MandateState | None,
               to_state: MandateState, by: str, note: str) -> None:
        db.execute("INSERT INTO mandate_events(mandate_id, at, action, from_state, to_state, by, note) "
                   "VALUES (?,?,?,?,?,?,?)",
                   [mandate_id, self._stamp(), action, from_state.value if from_state else None, to_state.value,
                    by, note])

    @staticmethod
    def _load_mandate(db: sqlite3.Connection, mandate_id: int | None) -> Mandate:
        row = db.execute("SELECT * FROM mandates WHERE id = ?", [mandate_id]).fetchone()
        if row is None:
            raise Refusal("SS-UNKNOWN-MANDATE", f"Number {mandate_id}.")
        return _mandate(row)

    # ---------------------------------------------------------------- the licence

    def set_licence(self, username: str, password: str) -> None:
        sealed = self._sealer.seal(password.encode("utf-8"), f"licence-password:{username}")
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO licence VALUES (1, ?, ?, ?)", [username, sealed, self._stamp()])
        logger.info("MyCareNet licence %s recorded", username)

    def licence(self) -> Licence | None:
        rows = self._rows("SELECT username, password FROM licence")
        if not rows:
            return None
        username = rows[0]["username"]
        return Licence(username, self._sealer.open(rows[0]["password"], f"licence-password:{username}").decode("utf-8"))

    def licence_username(self) -> str | None:
        rows = self._rows("SELECT username FROM licence")
        return rows[0]["username"] if rows else None


_CERTIFICATE_COLUMNS = ("id, label, holder_name, kind, value, identifier_type, quality, ssin, nihii, nihii11, cbe, "
                        "not_before, not_after, fingerprint, responsible_login, added_at")


def _roles(roles: Iterable[str | Role]) -> frozenset[Role]:
    found = set()
    for role in roles:
        try:
            found.add(Role(str(getattr(role, "value", role)).strip().lower()))
        except ValueError:
            raise Refusal("SS-BAD-ROLE", f"'{role}' was given.") from None
    if not found:
        raise Refusal("SS-BAD-ROLE", "No role was given.")
    return frozenset(found)


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _nihii11(certificate_nihii: str | None, given: str | None) -> str | None:
    """The holder's 11-digit NIHII: from the certificate, or given and consistent with its 8 digits."""
    if given:
        rules.check_party(Party(PartyKind.NIHII, given))
        if len(given) != 11 or (certificate_nihii and not given.startswith(certificate_nihii[:8])):
            raise Refusal("SS-BAD-NIHII", f"{given} is not the 11-digit form of the certificate's NIHII "
                          f"{certificate_nihii}.")
        return given
    return certificate_nihii if certificate_nihii and len(certificate_nihii) == 11 else None


def _user(row: sqlite3.Row) -> User:
    return User(row["login"], row["name"], row["ssin"],
                frozenset(Role(r) for r in row["roles"].split(",") if r), row["created_at"], row["language"])


def _certificate(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(
        id=row["id"], label=row["label"], holder_name=row["holder_name"], kind=row["kind"], value=row["value"],
        identifier_type=row["identifier_type"], quality=row["quality"], ssin=row["ssin"], nihii=row["nihii"],
        nihii11=row["nihii11"], cbe=row["cbe"], not_before=datetime.fromisoformat(row["not_before"]),
        not_after=datetime.fromisoformat(row["not_after"]), fingerprint=row["fingerprint"],
        responsible_login=row["responsible_login"], added_at=row["added_at"])


def _establishment(row: sqlite3.Row) -> Establishment:
    return Establishment(row["id"], row["certificate_id"], row["number"], row["kind"], row["ssin"],
                         date.fromisoformat(row["valid_from"]), _day(row["valid_to"]))


def _mandate(row: sqlite3.Row) -> Mandate:
    return Mandate(
        id=row["id"],
        mandant=Party(PartyKind(row["mandant_kind"]), row["mandant_value"]),
        mandataire=Party(PartyKind(row["mandataire_kind"]), row["mandataire_value"]),
        service=Service(row["service"]), valid_from=date.fromisoformat(row["valid_from"]),
        valid_to=_day(row["valid_to"]), state=MandateState(row["state"]),
        transferred_from=row["transferred_from"], transferred_to=row["transferred_to"],
        created_at=row["created_at"])
