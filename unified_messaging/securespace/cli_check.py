"""``unified-messaging licence ...`` and ``check``: the MyCareNet licence, and the configuration
check against the configured upstream (the upstream seam starts a simulator in simulator mode)."""
from __future__ import annotations

import json

import click

from unified_messaging.config import Config
from unified_messaging.securespace.check import ConfigurationCheck
from unified_messaging.securespace.models import Licence
from unified_messaging.securespace.cli_base import (
    group,
    json_option,
    load_context,
    obj,
    password_stdin_option,
    refusals,
    secret_input,
    table,
)

# ---------------------------------------------------------------------------------- licence

licence = group("licence", "The MyCareNet licence (username and password of the software package).")


@licence.command("set")
@click.argument("username")
@password_stdin_option
@click.pass_context
@refusals
def licence_set(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Record the licence; its password is asked, hidden (or read with --password-stdin), and stored encrypted."""
    obj(ctx).store.set_licence(username, secret_input("Licence password", from_stdin=password_stdin))
    click.echo(f"Licence {username} recorded.")


@licence.command("show")
@click.pass_context
@refusals
def licence_show(ctx: click.Context) -> None:
    """Show which licence the calls carry: the secure space's, else the configuration's."""
    username = obj(ctx).store.licence_username()
    if username:
        click.echo(f"Licence: {username} (recorded in the secure space, password encrypted)")
        return
    configured = obj(ctx).config.licence.username
    if configured:
        click.echo(f"No licence recorded in the secure space: serve and check use the configuration's licence "
                   f"{configured!r} ([licence] username; the defaults are the simulator's demo licence).\n"
                   "Record the licence MyCareNet gave you with: unified-messaging licence set USERNAME")
    else:
        click.echo("No licence recorded, and none in the configuration: calls to MyCareNet will be refused.\n"
                   "Record the licence MyCareNet gave you with: unified-messaging licence set USERNAME")


# ---------------------------------------------------------------------------------- check

@click.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--certificate", "certificate_ids", type=int, multiple=True, help="Only these certificates.")
@click.option("--invoicing-url", default="", help="GenAsync (eFact) address to probe (default: the configuration's; the simulator's in simulator mode).")
@click.option("--by", "by", default=None, metavar="LOGIN",
              help="Run the check as this user: a certificate whose access list does not name the user is not used.")
@json_option
@click.pass_context
@refusals
def check(ctx: click.Context, config_path: str | None, certificate_ids: tuple[int, ...], invoicing_url: str,
          by: str | None, as_json: bool) -> None:
    """Configuration check: per certificate, is each service Active, and if not, why."""
    load_context(ctx, config_path)
    context = obj(ctx)
    config, store = context.config, context.store
    from unified_messaging.upstream import CheckProbe, check_upstream

    endpoints, close = check_upstream(config, _config_licence(config), invoicing_url=invoicing_url)
    try:
        probe = CheckProbe(endpoints, package_name=config.licence.package_name)
        results = ConfigurationCheck(store, endpoints, probe=probe,
                                     licence=store.licence() or _config_licence(config)).run(list(certificate_ids), by=by)
    finally:
        close()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
        return
    if not results:
        click.echo(_NOTHING_TO_CHECK)
        return
    for result in results:
        c = result.certificate
        click.echo(f"Certificate #{c.id} {c.holder_name or ''} {c.identifier_type}={c.masked_value} "
                   f"({c.quality or 'no quality'}), valid until {c.not_after:%Y-%m-%d}; STS token: {result.token}")
        rows = []
        for s in result.services:
            notes = ([f"{r.code}: {r.cause}" for r in s.reasons] + [f"warning {w.code}: {w.cause}" for w in s.warnings]
                     + ([s.note] if s.note else []))
            rows.append((s.service.value, s.status, ", ".join(s.acts_for) or "-", notes[0] if notes else ""))
            rows.extend(("", "", "", note) for note in notes[1:])
        click.echo(table(["service", "status", "acts for", "reasons"], rows) + "\n")
    if any(s.reasons for r in results for s in r.services):
        ctx.exit(2)


_NOTHING_TO_CHECK = (
    "No certificate in the secure space: nothing to check.\n"
    "The check covers the certificates uploaded to the secure space (Mybox, or: unified-messaging certificates add "
    "FILE.p12 --responsible LOGIN).\n"
    "serve may still answer: with [upstream] mode = \"simulator\" and [identity] keystore = \"\" it acts with the "
    "demo lab keystore it generates in <data folder>/demo-pki, which lives outside the secure space and is not "
    "checked here.")


def _config_licence(config: Config) -> Licence | None:
    from unified_messaging.secrets import SecretError, resolve_secret

    try:
        password = resolve_secret(config.licence.password, key="[licence] password", data_folder=config.data_folder)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from None
    return Licence(config.licence.username, password.value) if config.licence.username else None
