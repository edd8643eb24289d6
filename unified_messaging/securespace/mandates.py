"""Mandates between parties and their history; the state changes are decided by ``rules``."""
from __future__ import annotations

import logging
from datetime import date
from typing import Any

from unified_messaging.database import Transaction
from unified_messaging.securespace import rules
from unified_messaging.securespace.base import StoreBase, day, iso
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import Mandate, MandateEvent, MandateState, Party, PartyKind, Service, Side

logger = logging.getLogger(__name__)


class MandateStore(StoreBase):
    """The ``mandates`` and ``mandate_events`` tables (a transfer links two mandates)."""

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
        return self._load_mandate(self.db, mandate_id)

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
        marks = ", ".join(f":m{n}" for n in range(len(chain)))
        rows = self._rows(f"SELECT * FROM mandate_events WHERE mandate_id IN ({marks}) ORDER BY id",
                          {f"m{n}": mandate_id for n, mandate_id in enumerate(chain)})
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

    def _complete_transfer(self, db: Transaction, new: Mandate, by: str) -> None:
        old = self._load_mandate(db, new.transferred_from)
        db.execute("UPDATE mandates SET transferred_to = :new WHERE id = :old", {"new": new.id, "old": old.id})
        if old.state is not MandateState.STOPPED:
            self._set_state(db, old, MandateState.STOPPED, "transferred", by, f"to mandate #{new.id} ({new.mandataire})")
        logger.info("mandate #%d transferred to mandate #%d (%s)", old.id, new.id, new.mandataire)

    def _insert_mandate(self, db: Transaction, mandant: Party, mandataire: Party, service: Service,
                        valid_from: date, valid_to: date | None, state: MandateState,
                        transferred_from: int | None) -> int:
        added = db.query(
            "INSERT INTO mandates (mandant_kind, mandant_value, mandataire_kind, mandataire_value, service, "
            "valid_from, valid_to, state, transferred_from, created_at) VALUES (:mandant_kind, :mandant_value, "
            ":mandataire_kind, :mandataire_value, :service, :valid_from, :valid_to, :state, :transferred_from, "
            ":created_at) RETURNING id",
            {"mandant_kind": mandant.kind.value, "mandant_value": mandant.value,
             "mandataire_kind": mandataire.kind.value, "mandataire_value": mandataire.value,
             "service": service.value, "valid_from": valid_from.isoformat(), "valid_to": iso(valid_to),
             "state": state.value, "transferred_from": transferred_from, "created_at": self._stamp()})
        return int(added[0]["id"])

    def _set_state(self, db: Transaction, mandate: Mandate, state: MandateState, action: str, by: str,
                   note: str = "") -> None:
        db.execute("UPDATE mandates SET state = :state WHERE id = :id", {"state": state.value, "id": mandate.id})
        self._event(db, mandate.id, action, mandate.state, state, by, note)

    def _event(self, db: Transaction, mandate_id: int, action: str, from_state: MandateState | None,
               to_state: MandateState, by: str, note: str) -> None:
        db.execute('INSERT INTO mandate_events (mandate_id, at, action, from_state, to_state, "by", note) '
                   "VALUES (:mandate_id, :at, :action, :from_state, :to_state, :by, :note)",
                   {"mandate_id": mandate_id, "at": self._stamp(), "action": action,
                    "from_state": from_state.value if from_state else None, "to_state": to_state.value,
                    "by": by, "note": note})

    @staticmethod
    def _load_mandate(db: Transaction, mandate_id: int | None) -> Mandate:
        rows = db.query("SELECT * FROM mandates WHERE id = :id", {"id": mandate_id})
        if not rows:
            raise Refusal("SS-UNKNOWN-MANDATE", f"Number {mandate_id}.")
        return _mandate(rows[0])


def _mandate(row: dict[str, Any]) -> Mandate:
    return Mandate(
        id=row["id"],
        mandant=Party(PartyKind(row["mandant_kind"]), row["mandant_value"]),
        mandataire=Party(PartyKind(row["mandataire_kind"]), row["mandataire_value"]),
        service=Service(row["service"]), valid_from=date.fromisoformat(row["valid_from"]),
        valid_to=day(row["valid_to"]), state=MandateState(row["state"]),
        transferred_from=row["transferred_from"], transferred_to=row["transferred_to"],
        created_at=row["created_at"])
