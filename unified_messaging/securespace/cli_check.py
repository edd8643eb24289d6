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
    refusals,
    table,
)

# ---------------------------------------------------------------------------------- licence

licence = group("licence", "The MyCareNet licence (username and password of the software package).")


@licence.command("set")
@click.argument("username")
@click.pass_context
@refusals
def licence_set(ctx: click.Context, username: str) -> None:
    """Record the licence; its password is asked, hidden, and stored encrypted."""
    obj(ctx).store.set_licence(username, click.prompt("Licence password", hide_input=True))
    click.echo(f"Licence {username} recorded.")


@licence.command("show")
@click.pass_context
@refusals
def licence_show(ctx: click.Context) -> None:
    username = obj(ctx).store.licence_username()
    click.echo(f"Licence: {username} (password recorded, encrypted)" if username else "No licence recorded.")


# ---------------------------------------------------------------------------------- check

@click.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--certificate", "certificate_ids", type=int, multiple=True, help="Only these certificates.")
@click.option("--invoicing-url", default="", help="GenAsync (eFact) address to probe.")
@click.option("--med-admin-url", default="", help="MED_ADMIN service address to probe.")
@json_option
@click.pass_context
@refusals
def check(ctx: click.Context, config_path: str | None, certificate_ids: tuple[int, ...], invoicing_url: str,
          med_admin_url: str, as_json: bool) -> None:
    """Configuration check: per certificate, is each service Active, and if not, why."""
    load_context(ctx, config_path)
    context = obj(ctx)
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
