"""``unified-messaging db``: the schema of the configured database."""
from __future__ import annotations

import click

from unified_messaging.config import ConfigError, load_config
from unified_messaging.database import MYBOX, DatabaseError, connect, migrate_store
from unified_messaging.database.migrations import applied
from unified_messaging.database.schema import SQLITE_FILES


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
            database = connect(url, config.data_folder, store=store)
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
