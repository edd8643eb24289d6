"""The establishments a certificate works for (a CBE or a third-party NIHII number, over a period)."""
from __future__ import annotations

from datetime import date
from typing import Any

from unified_messaging.securespace import rules
from unified_messaging.securespace.base import day, iso
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.certificates import CertificateStore
from unified_messaging.securespace.models import Establishment, Party, PartyKind


class EstablishmentStore(CertificateStore):
    """The ``establishments`` table; each row belongs to a certificate."""

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
            added = db.query(
                "INSERT INTO establishments (certificate_id, number, kind, ssin, valid_from, valid_to) "
                "VALUES (:certificate_id, :number, :kind, :ssin, :valid_from, :valid_to) RETURNING id",
                {"certificate_id": certificate_id, "number": number, "kind": kind, "ssin": ssin,
                 "valid_from": valid_from.isoformat(), "valid_to": iso(valid_to)})
        return self.establishment(added[0]["id"])

    def establishment(self, establishment_id: int) -> Establishment:
        rows = self._rows("SELECT * FROM establishments WHERE id = :id", {"id": establishment_id})
        if not rows:
            raise Refusal("SS-UNKNOWN-ESTABLISHMENT", f"Number {establishment_id}.")
        return _establishment(rows[0])

    def establishments(self, certificate_id: int | None = None) -> list[Establishment]:
        if certificate_id is None:
            rows = self._rows("SELECT * FROM establishments ORDER BY certificate_id, id")
        else:
            rows = self._rows("SELECT * FROM establishments WHERE certificate_id = :certificate_id ORDER BY id",
                              {"certificate_id": certificate_id})
        return [_establishment(r) for r in rows]

    def remove_establishment(self, establishment_id: int) -> None:
        self.establishment(establishment_id)
        with self.write() as db:
            db.execute("DELETE FROM establishments WHERE id = :id", {"id": establishment_id})


def _establishment(row: dict[str, Any]) -> Establishment:
    return Establishment(row["id"], row["certificate_id"], row["number"], row["kind"], row["ssin"],
                         date.fromisoformat(row["valid_from"]), day(row["valid_to"]))

