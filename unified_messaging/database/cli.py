"""``unified-messaging db``: the schema of the configured database."""
from __future__ import annotations

import click

from pathlib import Path

from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.database import JOURNAL, MYBOX, Database, DatabaseError, connect, migrate_store
from unified_messaging.database.migrations import applied
from unified_messaging.database.schema import SQLITE_FILES


def _sqlite_file(config: Config, store: str) -> Path:
    """A store's SQLite file: in the data folder, the journal where ``[journal] path`` puts it."""
    return config.journal_path if store == JOURNAL else config.data_folder / SQLITE_FILES[store]


def _sqlite(config: Config, store: str) -> Database:
    from unified_messaging.database.sqlite import SqliteDatabase

    return SqliteDatabase(_sqlite_file(config, store), store)


@click.group("db")
def db() -> None:
    """The database: SQLite files in the data folder, or the PostgreSQL of [database] url."""


@db.command("migrate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml): [database] url, the data folder.")
def migrate_command(config_path: str | None) -> None:
    """Create or upgrade the schema of the configured database, and print what was done.

    Safe to run again (only missing migrations run) and from several nodes at once. On SQLite every
    store file of the data folder is migrated; on PostgreSQL the one database of every store.
    """
    try:
        config = load_config(config_path)
        url = config.database.url
        stores = list(SQLITE_FILES) if not url else [MYBOX]  # PostgreSQL: one database holds every store
        for store in stores:
            database = _sqlite(config, store) if not url else connect(url, config.data_folder, store=store)
            try:
                ran = migrate_store(database)
                version = max(applied(database), default=0)
            finally:
                database.close()
            for migration in ran:
                click.echo(f"{database.describe()}: applied migration {migration}")
            state = "now at" if ran else "up to date at"
            click.echo(f"{database.describe()}: {state} migration {version}{'' if ran else ', nothing to do'}")
    except (ConfigError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None


@db.command("copy")
@click.option("--to", "target_url", required=True, help="The postgresql:// URL of an empty database.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file of the SQLite install to copy (its [database] url empty).")
def copy_command(target_url: str, config_path: str | None) -> None:
    """Copy the SQLite install's Mybox state, secure space and journal (with the invoicing state)
    into an empty PostgreSQL database.

    The target is migrated first, refused if a table already holds rows, then filled one store per
    transaction; the counts per table are printed. Then set [database] url to it.
    """
    from unified_messaging.database.copy import check_empty, copy_store

    try:
        config = load_config(config_path)
        if config.database.url:
            raise click.ClickException("db copy copies an install on SQLite: this configuration's [database] url "
                                       "is set already")
        if not target_url.startswith(("postgresql://", "postgres://")):
            raise click.ClickException(f"--to {target_url!r}: expected a postgresql:// URL")
        target = connect(target_url, config.data_folder)
        try:
            for migration in migrate_store(target):
                click.echo(f"{target.describe()}: applied migration {migration}")
            check_empty(target)
            for store in SQLITE_FILES:
                if not _sqlite_file(config, store).exists():
                    click.echo(f"{store}: no {_sqlite_file(config, store)}, nothing to copy")
                    continue
                source = _sqlite(config, store)
                try:
                    migrate_store(source)
                    counts = copy_store(source, target, store)
                finally:
                    source.close()
                click.echo(f"{store}: copied from {source.describe()}: "
                           + ", ".join(f"{table} {count}" for table, count in counts.items()))
        finally:
            target.close()
    except (ConfigError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None
