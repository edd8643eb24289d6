"""``unified-messaging invoicing``: the files' status, and sending a corrected file again.

The group reads the journal and the invoicing root from ``ctx.obj`` (``journal_path``,
``database_url`` and ``invoicing_root``, set from the configuration) or from ``--journal``/``--root``
(a journal file given is read as a SQLite file).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from unified_messaging.config import ConfigError, load_config

from unified_messaging.invoicing.resend import ResendRefused, queue_resend
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal.store import Journal


def _paths(ctx: click.Context, journal: Path | None, root: Path | None) -> tuple[Path, Path | None]:
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    journal = journal or obj.get("journal_path")
    root = root or obj.get("invoicing_root")
    if journal is None:
        raise click.UsageError("no journal: give --journal or a configuration")
    return Path(journal), Path(root) if root else None


def _store(ctx: click.Context, given: Path | None, journal_path: Path) -> InvoicingStore:
    """The invoicing state: of ``--journal``'s file, else of the configured journal (maybe PostgreSQL)."""
    url = "" if given else (ctx.obj if isinstance(ctx.obj, dict) else {}).get("database_url", "")
    try:
        return InvoicingStore(Journal.open(url, journal_path))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _rows(store: InvoicingStore) -> list[dict]:
    rows = []
    for row in store.files():
        resent_as = [r["id"] for r in store.resent_as(row["id"])]
        rows.append({
            "id": row["id"], "name": row["name"], "status": row["shown_status"], "reference": row["reference"],
            "zone_204": row["zone_204"], "last_feedback": row["last_feedback"],
            "last_feedback_at": row["last_feedback_at"], "created_at": row["created_at"],
            "reason": row["reason"], "resend_of": row["resend_of"], "resent_as": resent_as,
        })
    return rows


@click.group("invoicing")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml): gives the journal and folders.")
@click.pass_context
def invoicing(ctx: click.Context, config_path: str | None) -> None:
    """eFact invoicing: where each sent file stands, and sending a corrected file again."""
    if isinstance(ctx.obj, dict) and "journal_path" in ctx.obj:
        return
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = {"journal_path": config.journal_path, "database_url": config.database.url,
               "invoicing_root": config.invoicing_root}


@invoicing.command("status")
@click.option("--journal", type=click.Path(path_type=Path), help="the journal file (default: the configuration's)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def status(ctx: click.Context, journal: Path | None, as_json: bool) -> None:
    """Every file: status, MyCareNet reference, last feedback, and resend links."""
    journal_path, _ = _paths(ctx, journal, None)
    rows = _rows(_store(ctx, journal, journal_path))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'#':>4}  {'file':<28} {'status':<8} {'reference':<15} {'last feedback':<22} link"
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        feedback = f"{row['last_feedback']} {(row['last_feedback_at'] or '')[:16]}" if row["last_feedback"] else ""
        link = ""
        if row["resend_of"]:
            link = f"resends #{row['resend_of']}"
        if row["resent_as"]:
            link = (link + " " if link else "") + "resent as " + ", ".join(f"#{i}" for i in row["resent_as"])
        click.echo(f"{row['id']:>4}  {row['name'][:28]:<28} {row['status']:<8} {row['reference'] or '':<15} "
                   f"{feedback:<22} {link}")
        if row["status"] in ("NOK", "ERROR") and row["reason"]:
            for line in [line for line in row["reason"].splitlines() if line.strip()][:2]:
                click.echo(f"{'':>6}{line[:110]}")


@invoicing.command("resend")
@click.argument("refused")
@click.argument("corrected", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--journal", type=click.Path(path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), help="the invoicing root folder")
@click.pass_context
def resend(ctx: click.Context, refused: str, corrected: Path, journal: Path | None, root: Path | None) -> None:
    """Send CORRECTED in place of the refused file REFUSED (its number or name); the link is kept."""
    journal_path, root_path = _paths(ctx, journal, root)
    if root_path is None:
        raise click.UsageError("no invoicing root: give --root or a configuration")
    store = _store(ctx, journal, journal_path)
    rows = store.files()
    match = [r for r in rows if str(r["id"]) == refused] or [r for r in rows if r["name"] == refused]
    if not match:
        raise click.ClickException(f"no file {refused!r} in the journal")
    try:
        queued = queue_resend(store, root_path, match[0]["id"], corrected.name, corrected.read_bytes())
    except ResendRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{queued.name} queued as the corrected version of {queued.original_name} (#{queued.original_id}).")
