"""Command line of the secure space: ``unified-messaging securespace|users|certificates|establishments|
mandates|licence|check ...``.

Each group reads the configuration (``--config``, else the default file) for the data folder; the
master secret is the installation's master key (``secrets.master_key``).  Every listing prints a
readable table, or JSON with ``--json``.  Passwords are only ever asked with hidden input and
never printed; SSINs are printed masked.  A refusal prints its catalogue entry and exits with 1.

Register with ``main.add_command(group)`` for each group in ``COMMANDS``.
"""
from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.identifiers import mask_ssin
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.check import ConfigurationCheck
from unified_messaging.securespace.models import CertificateRecord, Licence, Mandate, Side
from unified_messaging.securespace.store import SecureSpaceStore

logger = logging.getLogger(__name__)

StoreFactory = Callable[[Config], SecureSpaceStore]


def default_store(config: Config) -> SecureSpaceStore:
    from unified_messaging.secrets import master_key

    return SecureSpaceStore.in_data_folder(config.data_folder, master_key(config.data_folder))


class Context:
    """What every command needs: the configuration and the store (made on first use)."""

    def __init__(self, config_path: str | None, store_factory: StoreFactory = default_store) -> None:
        self.config_path = config_path
        self.store_factory = store_factory
        self._config: Config | None = None
        self._store: SecureSpaceStore | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config

    @property
    def store(self) -> SecureSpaceStore:
        if self._store is None:
            self._store = self.store_factory(self.config)
        return self._store


def _context(ctx: click.Context, config_path: str | None) -> None:
    factory = (ctx.obj or {}).get("store_factory", default_store) if isinstance(ctx.obj, dict) else default_store
    ctx.obj = Context(config_path, factory)


def _group(name: str, help_text: str) -> click.Group:
    @click.group(name=name, help=help_text)
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="Configuration file (default: conf/unified-messaging.toml when present).")
    @click.pass_context
    def group(ctx: click.Context, config_path: str | None) -> None:
        _context(ctx, config_path)
    return group


def _refusals(function: Callable[..., Any]) -> Callable[..., Any]:
    """Print a refusal as its catalogue entry (code, cause, remedy) and exit with status 1."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Refusal as refusal:
            click.echo(f"Refused: {refusal.code}\n  cause:  {refusal.cause}\n  remedy: {refusal.remedy}", err=True)
            raise SystemExit(1) from None
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with a header rule; columns as wide as their widest cell."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text())


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _obj(ctx: click.Context) -> Context:
    return ctx.find_object(Context)


def _authenticate(store: SecureSpaceStore, login: str) -> str:
    """Ask ``login``'s password (hidden) and check it: acting as someone needs their password."""
    store.authenticate(login, click.prompt(f"Password of {login}", hide_input=True))
    return login


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

# ---------------------------------------------------------------------------------- securespace

securespace = _group("securespace", "The secure space: its owner and responsible person.")


@securespace.command("create")
@click.option("--name", required=True)
@click.option("--owner-name", required=True)
@click.option("--owner-ssin", required=True)
@click.option("--responsible-name", required=True)
@click.option("--responsible-ssin", required=True)
@click.pass_context
@_refusals
def securespace_create(ctx: click.Context, name: str, owner_name: str, owner_ssin: str, responsible_name: str,
                       responsible_ssin: str) -> None:
    """Create the secure space (once)."""
    space = _obj(ctx).store.create_space(name, owner_name, owner_ssin, responsible_name, responsible_ssin)
    click.echo(f"Secure space '{space.name}' created; owner {space.owner_name} ({mask_ssin(space.owner_ssin)}).")


@securespace.command("show")
@json_option
@click.pass_context
@_refusals
def securespace_show(ctx: click.Context, as_json: bool) -> None:
    """Show the secure space."""
    s = _obj(ctx).store.space()
    data = {"name": s.name, "owner": s.owner_name, "owner_ssin": mask_ssin(s.owner_ssin),
            "responsible": s.responsible_name, "responsible_ssin": mask_ssin(s.responsible_ssin),
            "created_at": s.created_at}
    _emit(as_json, data, lambda: table(["field", "value"], data.items()))


# ---------------------------------------------------------------------------------- users

users = _group("users", "Users of unified-messaging: login, name, SSIN, roles.")


def _user_json(user: Any) -> dict[str, Any]:
    return {"login": user.login, "name": user.name, "ssin": user.masked_ssin,
            "roles": sorted(r.value for r in user.roles), "created_at": user.created_at}


@users.command("add")
@click.argument("login")
@click.option("--name", required=True)
@click.option("--ssin", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              help="administrator, administrative or clinical (repeat for several).")
@click.pass_context
@_refusals
def users_add(ctx: click.Context, login: str, name: str, ssin: str, roles: tuple[str, ...]) -> None:
    """Add a user; the password is asked twice, hidden."""
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = _obj(ctx).store.add_user(login, name, ssin, roles, password)
    click.echo(f"User {user.login} added ({', '.join(sorted(r.value for r in user.roles))}).")


@users.command("list")
@json_option
@click.pass_context
@_refusals
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List the users (SSINs masked)."""
    found = [_user_json(u) for u in _obj(ctx).store.users()]
    _emit(as_json, found, lambda: table(["login", "name", "ssin", "roles"],
                                        [(u["login"], u["name"], u["ssin"], ",".join(u["roles"])) for u in found]))


@users.command("password")
@click.argument("login")
@click.pass_context
@_refusals
def users_password(ctx: click.Context, login: str) -> None:
    """Set a user's password (asked twice, hidden)."""
    _obj(ctx).store.set_password(login, click.prompt("New password", hide_input=True, confirmation_prompt=True))
    click.echo(f"Password of {login} changed.")


@users.command("roles")
@click.argument("login")
@click.option("--role", "roles", multiple=True, required=True)
@click.pass_context
@_refusals
def users_roles(ctx: click.Context, login: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles."""
    user = _obj(ctx).store.set_roles(login, roles)
    click.echo(f"Roles of {login}: {', '.join(sorted(r.value for r in user.roles))}.")


@users.command("remove")
@click.argument("login")
@click.pass_context
@_refusals
def users_remove(ctx: click.Context, login: str) -> None:
    """Remove a user (and their access to certificates)."""
    _obj(ctx).store.remove_user(login)
    click.echo(f"User {login} removed.")


# ---------------------------------------------------------------------------------- certificates

certificates = _group("certificates", "eHealth certificates (.p12), kept encrypted, and their access lists.")


def _certificate_json(c: CertificateRecord, now: datetime) -> dict[str, Any]:
    problem = rules.certificate_problem(c, now) or rules.expiry_warning(c, now)
    return {"id": c.id, "label": c.label, "holder": c.holder_name, "identifier": f"{c.identifier_type}={c.masked_value}",
            "nihii11": c.nihii11, "cbe": c.cbe, "quality": c.quality, "not_before": c.not_before.isoformat(),
            "not_after": c.not_after.isoformat(), "status": problem.code if problem else "valid",
            "responsible": c.responsible_login, "fingerprint": c.fingerprint}


@certificates.command("add")
@click.argument("p12", type=click.Path(exists=True, dir_okay=False))
@click.option("--responsible", "responsible_login", required=True, help="Login of the certificate's responsible person.")
@click.option("--label")
@click.option("--nihii", "nihii11", help="The holder's 11-digit NIHII when the certificate gives only 8 digits.")
@click.option("--trusted-ca", type=click.Path(exists=True, dir_okay=False),
              help="PEM of the eHealth CA: refuse a certificate it did not issue.")
@json_option
@click.pass_context
@_refusals
def certificates_add(ctx: click.Context, p12: str, responsible_login: str, label: str | None, nihii11: str | None,
                     trusted_ca: str | None, as_json: bool) -> None:
    """Upload a .p12; its password is asked, hidden.  Both are stored encrypted only."""
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(Path(trusted_ca).read_bytes()) if trusted_ca else None
    password = click.prompt("Keystore password", hide_input=True)
    store = _obj(ctx).store
    record = store.add_certificate(Path(p12).read_bytes(), password, responsible_login=responsible_login,
                                   label=label, nihii11=nihii11, trusted_ca=ca)
    data = _certificate_json(record, store.clock())
    _emit(as_json, data, lambda: f"Certificate #{record.id} added: {record.describe()}, valid until "
                                 f"{record.not_after:%Y-%m-%d} ({data['status']}).")


@certificates.command("list")
@json_option
@click.pass_context
@_refusals
def certificates_list(ctx: click.Context, as_json: bool) -> None:
    """List the certificates: holder, quality, identifier, validity."""
    store = _obj(ctx).store
    found = [_certificate_json(c, store.clock()) for c in store.certificates()]
    _emit(as_json, found, lambda: table(
        ["id", "holder", "identifier", "quality", "valid until", "status", "responsible"],
        [(c["id"], c["holder"], c["identifier"], c["quality"], c["not_after"][:10], c["status"], c["responsible"])
         for c in found]))


@certificates.command("remove")
@click.argument("certificate_id", type=int)
@click.pass_context
@_refusals
def certificates_remove(ctx: click.Context, certificate_id: int) -> None:
    """Remove a certificate from the secure space."""
    _obj(ctx).store.remove_certificate(certificate_id)
    click.echo(f"Certificate #{certificate_id} removed.")


@certificates.command("access")
@click.argument("certificate_id", type=int)
@json_option
@click.pass_context
@_refusals
def certificates_access(ctx: click.Context, certificate_id: int, as_json: bool) -> None:
    """Show a certificate's access list."""
    found = _obj(ctx).store.access_list(certificate_id)
    _emit(as_json, found, lambda: table(["login", "granted by", "granted at"],
                                        [(a["login"], a["granted_by"], a["granted_at"]) for a in found]))


@certificates.command("grant")
@click.argument("certificate_id", type=int)
@click.argument("login")
@click.option("--as", "acting", required=True, help="Your login: the certificate's responsible person.")
@click.pass_context
@_refusals
def certificates_grant(ctx: click.Context, certificate_id: int, login: str, acting: str) -> None:
    """Put a user on the access list (only the responsible person may; their password is asked)."""
    store = _obj(ctx).store
    store.grant(certificate_id, login, by=_authenticate(store, acting))
    click.echo(f"{login} may now use certificate #{certificate_id}.")


@certificates.command("revoke")
@click.argument("certificate_id", type=int)
@click.argument("login")
@click.option("--as", "acting", required=True, help="Your login: the certificate's responsible person.")
@click.pass_context
@_refusals
def certificates_revoke(ctx: click.Context, certificate_id: int, login: str, acting: str) -> None:
    """Take a user off the access list (only the responsible person may)."""
    store = _obj(ctx).store
    store.revoke(certificate_id, login, by=_authenticate(store, acting))
    click.echo(f"{login} may no longer use certificate #{certificate_id}.")


# ---------------------------------------------------------------------------------- establishments

establishments = _group("establishments", "Invoicing establishments linked to a certificate.")


@establishments.command("add")
@click.argument("certificate_id", type=int)
@click.argument("number")
@click.option("--ssin")
@click.option("--from", "valid_from", required=True)
@click.option("--to", "valid_to")
@click.pass_context
@_refusals
def establishments_add(ctx: click.Context, certificate_id: int, number: str, ssin: str | None, valid_from: str,
                       valid_to: str | None) -> None:
    """Link an establishment (third-party-payer number or CBE) to a certificate."""
    est = _obj(ctx).store.add_establishment(certificate_id, number, ssin=ssin, valid_from=_day(valid_from),
                                            valid_to=_day(valid_to))
    click.echo(f"Establishment #{est.id} ({est.kind} {est.number}) linked to certificate #{certificate_id}.")


@establishments.command("list")
@click.option("--certificate", "certificate_id", type=int)
@json_option
@click.pass_context
@_refusals
def establishments_list(ctx: click.Context, certificate_id: int | None, as_json: bool) -> None:
    """List establishments."""
    found = [{"id": e.id, "certificate": e.certificate_id, "number": e.number, "kind": e.kind,
              "ssin": mask_ssin(e.ssin), "from": e.valid_from.isoformat(),
              "to": e.valid_to.isoformat() if e.valid_to else None}
             for e in _obj(ctx).store.establishments(certificate_id)]
    _emit(as_json, found, lambda: table(["id", "certificate", "number", "kind", "ssin", "from", "to"],
                                        [list(e.values()) for e in found]))


@establishments.command("remove")
@click.argument("establishment_id", type=int)
@click.pass_context
@_refusals
def establishments_remove(ctx: click.Context, establishment_id: int) -> None:
    _obj(ctx).store.remove_establishment(establishment_id)
    click.echo(f"Establishment #{establishment_id} removed.")


# ---------------------------------------------------------------------------------- mandates

mandates = _group("mandates", "Mandates: a mandant lets a mandataire act in its name, per service.")


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
@click.option("--by", required=True, help="Who proposes it (a login or a name, for the history).")
@json_option
@click.pass_context
@_refusals
def mandates_propose(ctx: click.Context, mandant: str, mandataire: str, service: str, valid_from: str,
                     valid_to: str | None, by: str, as_json: bool) -> None:
    """Propose a mandate; it is active once both sides accepted."""
    m = _obj(ctx).store.propose_mandate(rules.parse_party(mandant), rules.parse_party(mandataire), service,
                                        valid_from=_day(valid_from), valid_to=_day(valid_to), by=by)
    _emit(as_json, _mandate_json(m), lambda: f"Mandate #{m.id} proposed ({m.state.value}).")


def _mandate_action(name: str, help_text: str, action: Callable[..., Mandate], with_side: bool = False) -> None:
    @mandates.command(name, help=help_text)
    @click.argument("mandate_id", type=int)
    @click.option("--by", required=True)
    @click.option("--side", type=click.Choice([s.value for s in Side]), required=with_side, hidden=not with_side)
    @click.pass_context
    @_refusals
    def command(ctx: click.Context, mandate_id: int, by: str, side: str | None) -> None:
        store = _obj(ctx).store
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
@click.option("--by", required=True)
@click.pass_context
@_refusals
def mandates_transfer(ctx: click.Context, mandate_id: int, new_mandataire: str, by: str) -> None:
    """Transfer to a new mandataire: effective when it accepts; the history is kept."""
    store = _obj(ctx).store
    m = store.transfer_mandate(mandate_id, rules.parse_party(new_mandataire), by=by, on=store.clock().date())
    click.echo(f"Mandate #{m.id} proposed to {m.mandataire} ({m.state.value}); mandate #{mandate_id} stays "
               "active until the new mandataire accepts.")


@mandates.command("list")
@click.option("--mandant")
@click.option("--mandataire")
@json_option
@click.pass_context
@_refusals
def mandates_list(ctx: click.Context, mandant: str | None, mandataire: str | None, as_json: bool) -> None:
    """List mandates."""
    found = [_mandate_json(m) for m in _obj(ctx).store.mandates(
        mandant=rules.parse_party(mandant) if mandant else None,
        mandataire=rules.parse_party(mandataire) if mandataire else None)]
    _emit(as_json, found, lambda: _mandate_rows(found))


@mandates.command("show")
@click.argument("mandate_id", type=int)
@json_option
@click.pass_context
@_refusals
def mandates_show(ctx: click.Context, mandate_id: int, as_json: bool) -> None:
    """A mandate and its history (including mandates it was transferred from or to)."""
    store = _obj(ctx).store
    m = _mandate_json(store.mandate(mandate_id))
    history = [{"mandate": e.mandate_id, "at": e.at, "action": e.action,
                "from": e.from_state.value if e.from_state else None, "to": e.to_state.value, "by": e.by,
                "note": e.note} for e in store.mandate_history(mandate_id)]
    _emit(as_json, {**m, "history": history}, lambda: _mandate_rows([m]) + "\n\nHistory:\n" + table(
        ["mandate", "at", "action", "from", "to", "by", "note"], [list(h.values()) for h in history]))


# ---------------------------------------------------------------------------------- licence

licence = _group("licence", "The MyCareNet licence (username and password of the software package).")


@licence.command("set")
@click.argument("username")
@click.pass_context
@_refusals
def licence_set(ctx: click.Context, username: str) -> None:
    """Record the licence; its password is asked, hidden, and stored encrypted."""
    _obj(ctx).store.set_licence(username, click.prompt("Licence password", hide_input=True))
    click.echo(f"Licence {username} recorded.")


@licence.command("show")
@click.pass_context
@_refusals
def licence_show(ctx: click.Context) -> None:
    username = _obj(ctx).store.licence_username()
    click.echo(f"Licence: {username} (password recorded, encrypted)" if username else "No licence recorded.")


# ---------------------------------------------------------------------------------- check

@click.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--certificate", "certificate_ids", type=int, multiple=True, help="Only these certificates.")
@click.option("--invoicing-url", default="", help="GenAsync (eFact) address to probe.")
@click.option("--med-admin-url", default="", help="MED_ADMIN service address to probe.")
@json_option
@click.pass_context
@_refusals
def check(ctx: click.Context, config_path: str | None, certificate_ids: tuple[int, ...], invoicing_url: str,
          med_admin_url: str, as_json: bool) -> None:
    """Configuration check: per certificate, is each service Active, and if not, why."""
    _context(ctx, config_path)
    context = _obj(ctx)
    config, store = context.config, context.store
    from unified_messaging.upstream import CheckProbe, check_upstream

    endpoints, close = check_upstream(config, _config_licence(config), invoicing_url=invoicing_url,
                                      med_admin_url=med_admin_url)
    try:
        probe = CheckProbe(endpoints, package_name=config.licence.package_name)
        results = ConfigurationCheck(store, endpoints, probe=probe,
                                     licence=store.licence() or _config_licence(config)).run(list(certificate_ids))
    finally:
        close()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
        return
    for result in results:
        c = result.certificate
        click.echo(f"Certificate #{c.id} {c.holder_name or ''} {c.identifier_type}={c.masked_value} "
                   f"({c.quality or 'no quality'}), valid until {c.not_after:%Y-%m-%d}; STS token: {result.token}")
        rows = []
        for s in result.services:
            notes = [f"{r.code}: {r.cause}" for r in s.reasons] + [f"warning {w.code}: {w.cause}" for w in s.warnings]
            rows.append((s.service.value, s.status, ", ".join(s.acts_for) or "-", notes[0] if notes else ""))
            rows.extend(("", "", "", note) for note in notes[1:])
        click.echo(table(["service", "status", "acts for", "reasons"], rows) + "\n")
    if any(s.reasons for r in results for s in r.services):
        ctx.exit(2)


def _config_licence(config: Config) -> Licence | None:
    from unified_messaging.secrets import SecretError, resolve_secret

    try:
        password = resolve_secret(config.licence.password, key="[licence] password", data_folder=config.data_folder)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from None
    return Licence(config.licence.username, password.value) if config.licence.username else None


COMMANDS = (securespace, users, certificates, establishments, mandates, licence, check)
