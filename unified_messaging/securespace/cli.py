"""Command line of the secure space: ``unified-messaging securespace|users|certificates|establishments|
mandates|licence|check ...``.

Each group reads the configuration (``--config``, else the default file) for the data folder; the
master secret is the installation's master key (``secrets.master_key``).  Every listing prints a
readable table, or JSON with ``--json``.  Passwords are only ever asked with hidden input and
never printed; SSINs are printed masked.  A refusal prints its catalogue entry and exits with 1.

Register with ``main.add_command(group)`` for each group in ``COMMANDS``.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from unified_messaging.identifiers import mask_ssin
from unified_messaging.securespace import rules
from unified_messaging.securespace.models import CertificateRecord
from unified_messaging.securespace.cli_base import (
    authenticate,
    day,
    emit,
    group,
    json_option,
    obj,
    password_stdin_option,
    refusals,
    secret_input,
    table,
)
from unified_messaging.securespace.cli_check import check, licence
from unified_messaging.securespace.cli_mandates import mandates

# ---------------------------------------------------------------------------------- securespace

securespace = group("securespace", "The secure space: its owner and responsible person.")


@securespace.command("create")
@click.option("--name", required=True)
@click.option("--owner-name", required=True)
@click.option("--owner-ssin", required=True)
@click.option("--responsible-name", required=True)
@click.option("--responsible-ssin", required=True)
@click.pass_context
@refusals
def securespace_create(ctx: click.Context, name: str, owner_name: str, owner_ssin: str, responsible_name: str,
                       responsible_ssin: str) -> None:
    """Create the secure space (once)."""
    space = obj(ctx).store.create_space(name, owner_name, owner_ssin, responsible_name, responsible_ssin)
    click.echo(f"Secure space '{space.name}' created; owner {space.owner_name} ({mask_ssin(space.owner_ssin)}).")


@securespace.command("show")
@json_option
@click.pass_context
@refusals
def securespace_show(ctx: click.Context, as_json: bool) -> None:
    """Show the secure space."""
    s = obj(ctx).store.space()
    data = {"name": s.name, "owner": s.owner_name, "owner_ssin": mask_ssin(s.owner_ssin),
            "responsible": s.responsible_name, "responsible_ssin": mask_ssin(s.responsible_ssin),
            "created_at": s.created_at}
    emit(as_json, data, lambda: table(["field", "value"], data.items()))


# ---------------------------------------------------------------------------------- users

users = group("users", "Users of unified-messaging: login, name, SSIN, roles.")


def _user_json(user: Any) -> dict[str, Any]:
    return {"login": user.login, "name": user.name, "ssin": user.masked_ssin,
            "roles": sorted(r.value for r in user.roles), "created_at": user.created_at}


@users.command("add")
@click.argument("login")
@click.option("--name", required=True)
@click.option("--ssin", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              help="administrator, administrative or clinical (repeat for several).")
@password_stdin_option
@click.pass_context
@refusals
def users_add(ctx: click.Context, login: str, name: str, ssin: str, roles: tuple[str, ...],
              password_stdin: bool) -> None:
    """Add a user; the password (at least 10 characters) is asked twice, hidden, or read with --password-stdin."""
    password = secret_input("Password", from_stdin=password_stdin, confirm=True)
    user = obj(ctx).store.add_user(login, name, ssin, roles, password)
    click.echo(f"User {user.login} added ({', '.join(sorted(r.value for r in user.roles))}).")


@users.command("list")
@json_option
@click.pass_context
@refusals
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List the users (SSINs masked)."""
    found = [_user_json(u) for u in obj(ctx).store.users()]
    emit(as_json, found, lambda: table(["login", "name", "ssin", "roles"],
                                        [(u["login"], u["name"], u["ssin"], ",".join(u["roles"])) for u in found]))


@users.command("password")
@click.argument("login")
@password_stdin_option
@click.pass_context
@refusals
def users_password(ctx: click.Context, login: str, password_stdin: bool) -> None:
    """Set a user's password (at least 10 characters; asked twice, hidden, or read with --password-stdin)."""
    obj(ctx).store.set_password(login, secret_input("New password", from_stdin=password_stdin, confirm=True))
    click.echo(f"Password of {login} changed.")


@users.command("roles")
@click.argument("login")
@click.option("--role", "roles", multiple=True, required=True)
@click.pass_context
@refusals
def users_roles(ctx: click.Context, login: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles."""
    user = obj(ctx).store.set_roles(login, roles)
    click.echo(f"Roles of {login}: {', '.join(sorted(r.value for r in user.roles))}.")


@users.command("remove")
@click.argument("login")
@click.pass_context
@refusals
def users_remove(ctx: click.Context, login: str) -> None:
    """Remove a user (and their access to certificates)."""
    obj(ctx).store.remove_user(login)
    click.echo(f"User {login} removed.")


# ---------------------------------------------------------------------------------- certificates

certificates = group("certificates", "eHealth certificates (.p12), kept encrypted, and their access lists.")


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
              help="PEM bundle of the eHealth CA: refuse a certificate it did not issue or that is not valid now "
                   "(default: [upstream] ehealth_ca).")
@password_stdin_option
@json_option
@click.pass_context
@refusals
def certificates_add(ctx: click.Context, p12: str, responsible_login: str, label: str | None, nihii11: str | None,
                     trusted_ca: str | None, password_stdin: bool, as_json: bool) -> None:
    """Upload a .p12; its password is asked, hidden (or read with --password-stdin).  Both are stored encrypted
    only."""
    from unified_messaging.config import ConfigError
    from unified_messaging.trust import NOT_CHECKED_WITHOUT_EHEALTH_CA, load_ehealth_ca

    config = obj(ctx).config
    try:
        ca = (load_ehealth_ca(trusted_ca, key="--trusted-ca") if trusted_ca
              else load_ehealth_ca(config.upstream.ehealth_ca)) or None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if ca is None and config.upstream.mode == "remote":
        click.echo(f"Warning: {NOT_CHECKED_WITHOUT_EHEALTH_CA} (or give --trusted-ca).", err=True)
    password = secret_input("Keystore password", from_stdin=password_stdin)
    store = obj(ctx).store
    record = store.add_certificate(Path(p12).read_bytes(), password, responsible_login=responsible_login,
                                   label=label, nihii11=nihii11, trusted_ca=ca)
    data = _certificate_json(record, store.clock())
    emit(as_json, data, lambda: f"Certificate #{record.id} added: {record.describe()}, valid until "
                                 f"{record.not_after:%Y-%m-%d} ({data['status']}).")


@certificates.command("list")
@json_option
@click.pass_context
@refusals
def certificates_list(ctx: click.Context, as_json: bool) -> None:
    """List the certificates: holder, quality, identifier, validity."""
    store = obj(ctx).store
    found = [_certificate_json(c, store.clock()) for c in store.certificates()]
    emit(as_json, found, lambda: table(
        ["id", "holder", "identifier", "quality", "valid until", "status", "responsible"],
        [(c["id"], c["holder"], c["identifier"], c["quality"], c["not_after"][:10], c["status"], c["responsible"])
         for c in found]))


@certificates.command("remove")
@click.argument("certificate_id", type=int)
@click.pass_context
@refusals
def certificates_remove(ctx: click.Context, certificate_id: int) -> None:
    """Remove a certificate from the secure space."""
    obj(ctx).store.remove_certificate(certificate_id)
    click.echo(f"Certificate #{certificate_id} removed.")


@certificates.command("access")
@click.argument("certificate_id", type=int)
@json_option
@click.pass_context
@refusals
def certificates_access(ctx: click.Context, certificate_id: int, as_json: bool) -> None:
    """Show a certificate's access list."""
    found = obj(ctx).store.access_list(certificate_id)
    emit(as_json, found, lambda: table(["login", "granted by", "granted at"],
                                        [(a["login"], a["granted_by"], a["granted_at"]) for a in found]))


@certificates.command("grant")
@click.argument("certificate_id", type=int)
@click.argument("login")
@click.option("--as", "acting", required=True, help="Your login: the certificate's responsible person.")
@click.pass_context
@refusals
def certificates_grant(ctx: click.Context, certificate_id: int, login: str, acting: str) -> None:
    """Put a user on the access list (only the responsible person may; their password is asked)."""
    store = obj(ctx).store
    store.grant(certificate_id, login, by=authenticate(store, acting))
    click.echo(f"{login} may now use certificate #{certificate_id}.")


@certificates.command("revoke")
@click.argument("certificate_id", type=int)
@click.argument("login")
@click.option("--as", "acting", required=True, help="Your login: the certificate's responsible person.")
@click.pass_context
@refusals
def certificates_revoke(ctx: click.Context, certificate_id: int, login: str, acting: str) -> None:
    """Take a user off the access list (only the responsible person may)."""
    store = obj(ctx).store
    store.revoke(certificate_id, login, by=authenticate(store, acting))
    click.echo(f"{login} may no longer use certificate #{certificate_id}.")


# ---------------------------------------------------------------------------------- establishments

establishments = group("establishments", "Invoicing establishments linked to a certificate.")


@establishments.command("add")
@click.argument("certificate_id", type=int)
@click.argument("number")
@click.option("--ssin")
@click.option("--from", "valid_from", required=True)
@click.option("--to", "valid_to")
@click.pass_context
@refusals
def establishments_add(ctx: click.Context, certificate_id: int, number: str, ssin: str | None, valid_from: str,
                       valid_to: str | None) -> None:
    """Link an establishment (third-party-payer number or CBE) to a certificate."""
    est = obj(ctx).store.add_establishment(certificate_id, number, ssin=ssin, valid_from=day(valid_from),
                                            valid_to=day(valid_to))
    click.echo(f"Establishment #{est.id} ({est.kind} {est.number}) linked to certificate #{certificate_id}.")


@establishments.command("list")
@click.option("--certificate", "certificate_id", type=int)
@json_option
@click.pass_context
@refusals
def establishments_list(ctx: click.Context, certificate_id: int | None, as_json: bool) -> None:
    """List establishments."""
    found = [{"id": e.id, "certificate": e.certificate_id, "number": e.number, "kind": e.kind,
              "ssin": mask_ssin(e.ssin), "from": e.valid_from.isoformat(),
              "to": e.valid_to.isoformat() if e.valid_to else None}
             for e in obj(ctx).store.establishments(certificate_id)]
    emit(as_json, found, lambda: table(["id", "certificate", "number", "kind", "ssin", "from", "to"],
                                        [list(e.values()) for e in found]))


@establishments.command("remove")
@click.argument("establishment_id", type=int)
@click.pass_context
@refusals
def establishments_remove(ctx: click.Context, establishment_id: int) -> None:
    """Remove an establishment (its number from establishments list)."""
    obj(ctx).store.remove_establishment(establishment_id)
    click.echo(f"Establishment #{establishment_id} removed.")


COMMANDS = (securespace, users, certificates, establishments, mandates, licence, check)
