"""``unified-messaging mandates ...``: a mandant lets a mandataire act in its name, per service."""
from __future__ import annotations

from typing import Any, Callable

import click

from unified_messaging.securespace import rules
from unified_messaging.securespace.models import Mandate, Side
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.securespace.cli_base import (
    day,
    emit,
    group,
    json_option,
    obj,
    refusals,
    table,
)

# ---------------------------------------------------------------------------------- mandates

mandates = group("mandates", "Mandates: a mandant lets a mandataire act in its name, per service.")


def _acting(store: SecureSpaceStore, by: str) -> str:
    """A proposal is made inside the secure space, so ``--by`` must name one of its users
    (SS-NO-SECURE-SPACE, SS-UNKNOWN-USER otherwise); acceptances may come from the other party's people."""
    store.space()
    return store.user(by).login


BY_PARTY = click.option("--by", required=True,
                        help="Who does it, for the history: the party's representative (a name or a login).")


def _mandate_json(m: Mandate) -> dict[str, Any]:
    return {"id": m.id, "mandant": str(m.mandant), "mandataire": str(m.mandataire), "service": m.service.value,
            "from": m.valid_from.isoformat(), "to": m.valid_to.isoformat() if m.valid_to else None,
            "state": m.state.value, "transferred_from": m.transferred_from, "transferred_to": m.transferred_to}


def _mandate_rows(found: list[dict[str, Any]]) -> str:
    return table(["id", "mandant", "mandataire", "service", "from", "to", "state", "transfer"],
                 [(m["id"], m["mandant"], m["mandataire"], m["service"], m["from"], m["to"] or "open-ended",
                   m["state"], (f"from #{m['transferred_from']}" if m["transferred_from"] else "")
                   + (f"to #{m['transferred_to']}" if m["transferred_to"] else "")) for m in found])


@mandates.command("propose")
@click.option("--mandant", required=True, help="NIHII=..., SSIN=... or CBE=...")
@click.option("--mandataire", required=True, help="NIHII=..., SSIN=... or CBE=...")
@click.option("--service", required=True, type=click.Choice(["INSURABILITY", "INVOICING", "MED_ADMIN"],
                                                            case_sensitive=False))
@click.option("--from", "valid_from", required=True)
@click.option("--to", "valid_to", help="Last day (inclusive); none for open-ended.")
@click.option("--by", required=True, help="Login of the secure space's user who proposes it (for the history).")
@json_option
@click.pass_context
@refusals
def mandates_propose(ctx: click.Context, mandant: str, mandataire: str, service: str, valid_from: str,
                     valid_to: str | None, by: str, as_json: bool) -> None:
    """Propose a mandate; it is active once both sides accepted."""
    m = obj(ctx).store.propose_mandate(rules.parse_party(mandant), rules.parse_party(mandataire), service,
                                        valid_from=day(valid_from), valid_to=day(valid_to),
                                        by=_acting(obj(ctx).store, by))
    emit(as_json, _mandate_json(m), lambda: f"Mandate #{m.id} proposed ({m.state.value}).")


def _mandate_action(name: str, help_text: str, action: Callable[..., Mandate], with_side: bool = False) -> None:
    @mandates.command(name, help=help_text)
    @click.argument("mandate_id", type=int)
    @BY_PARTY
    @click.option("--side", type=click.Choice([s.value for s in Side]), required=with_side, hidden=not with_side)
    @click.pass_context
    @refusals
    def command(ctx: click.Context, mandate_id: int, by: str, side: str | None) -> None:
        store = obj(ctx).store
        m = action(store, mandate_id, by, side)
        click.echo(f"Mandate #{m.id} is now {m.state.value}.")


_mandate_action("accept", "Accept a mandate for one side (mandant or mandataire).",
                lambda s, i, by, side: s.accept_mandate(i, side, by=by), with_side=True)
_mandate_action("suspend", "Suspend an active mandate.", lambda s, i, by, side: s.suspend_mandate(i, by=by))
_mandate_action("resume", "Resume a suspended mandate.", lambda s, i, by, side: s.resume_mandate(i, by=by))
_mandate_action("stop", "Stop a mandate for good.", lambda s, i, by, side: s.stop_mandate(i, by=by))


@mandates.command("transfer")
@click.argument("mandate_id", type=int)
@click.option("--to", "new_mandataire", required=True, help="The new mandataire: NIHII=..., SSIN=... or CBE=...")
@BY_PARTY
@click.pass_context
@refusals
def mandates_transfer(ctx: click.Context, mandate_id: int, new_mandataire: str, by: str) -> None:
    """Transfer to a new mandataire: effective when it accepts; the history is kept."""
    store = obj(ctx).store
    m = store.transfer_mandate(mandate_id, rules.parse_party(new_mandataire), by=by, on=store.clock().date())
    click.echo(f"Mandate #{m.id} proposed to {m.mandataire} ({m.state.value}); mandate #{mandate_id} stays "
               "active until the new mandataire accepts.")


@mandates.command("list")
@click.option("--mandant")
@click.option("--mandataire")
@json_option
@click.pass_context
@refusals
def mandates_list(ctx: click.Context, mandant: str | None, mandataire: str | None, as_json: bool) -> None:
    """List mandates."""
    found = [_mandate_json(m) for m in obj(ctx).store.mandates(
        mandant=rules.parse_party(mandant) if mandant else None,
        mandataire=rules.parse_party(mandataire) if mandataire else None)]
    emit(as_json, found, lambda: _mandate_rows(found))


@mandates.command("show")
@click.argument("mandate_id", type=int)
@json_option
@click.pass_context
@refusals
def mandates_show(ctx: click.Context, mandate_id: int, as_json: bool) -> None:
    """A mandate and its history (including mandates it was transferred from or to)."""
    store = obj(ctx).store
    m = _mandate_json(store.mandate(mandate_id))
    history = [{"mandate": e.mandate_id, "at": e.at, "action": e.action,
                "from": e.from_state.value if e.from_state else None, "to": e.to_state.value, "by": e.by,
                "note": e.note} for e in store.mandate_history(mandate_id)]
    emit(as_json, {**m, "history": history}, lambda: _mandate_rows([m]) + "\n\nHistory:\n" + table(
        ["mandate", "at", "action", "from", "to", "by", "note"], [list(h.values()) for h in history]))
