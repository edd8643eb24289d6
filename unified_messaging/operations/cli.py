"""The operator's commands: ``backup``, ``restore`` and ``secret rotate-master-key``."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from unified_messaging.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)

_CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                       help="Configuration file (default: conf/unified-messaging.toml).")


def _config(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _sqlite_only(config: Config, what: str, instead: str) -> None:
    """Refuse ``what`` on an install whose secure space and Mybox state are in PostgreSQL: the command
    only knows the data folder's files, and would miss (or, for the master key, strand) those rows."""
    if config.database.url:
        raise click.ClickException(
            f"[database] url puts the secure space and Mybox's state in PostgreSQL; '{what}' only covers the "
            f"SQLite files of the data folder and is refused here ({instead}).")


@click.command("backup")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@_CONFIG
@click.option("--include-master-key", is_flag=True,
              help="Copy master.key into the backup too (then the backup opens every sealed secret: keep it safe).")
def backup(destination: Path, config_path: str | None, include_master_key: bool) -> None:
    """Copy the install (databases, folders, demo PKI) into the new folder DESTINATION, while it serves."""
    from unified_messaging.operations.backup import Backup, BackupError

    config = _config(config_path)
    _sqlite_only(config, "backup", "back PostgreSQL up with pg_dump, the data folder with a file copy")
    try:
        report = Backup(config, destination, include_master_key=include_master_key).run()
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_CONFIG
@click.option("--force", is_flag=True, help="Move an install already in place aside first (nothing is deleted).")
def restore(source: Path, config_path: str | None, force: bool) -> None:
    """Put the backup in SOURCE back in place (the service must be stopped)."""
    from unified_messaging.operations.instance import InstanceBusy
    from unified_messaging.operations.restore import Restore, RestoreError

    config = _config(config_path)
    _sqlite_only(config, "restore", "restore PostgreSQL with pg_restore or psql")
    try:
        report = Restore(config, source, force=force).run()
    except (RestoreError, InstanceBusy) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)
    click.echo("restored." if not report.key_problem else "restored, but read the line above before starting.")


@click.command("rotate-master-key")
@_CONFIG
@click.option("--also", "extra_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Another configuration file with enc: values to encrypt again (repeatable).")
def rotate_master_key(config_path: str | None, extra_files: tuple[Path, ...]) -> None:
    """Seal every secret again under a new master key (the service must be stopped).

    Re-seals the secure space's keystores, their passwords and the licence password, and the enc:
    values of the configuration file (and of each --also file). Interrupted, it leaves a working
    install (both keys are accepted meanwhile): run it again to finish.
    """
    from unified_messaging.operations.instance import InstanceBusy
    from unified_messaging.operations.rotation import MasterKeyRotation, RotationError

    config = _config(config_path)
    _sqlite_only(config, "rotate-master-key", "the rows in PostgreSQL would stay sealed under the old key; "
                 "keep the current key until rotation covers PostgreSQL")
    files = [] if config.source == "built-in defaults" else [Path(config.source)]
    files += [p for p in extra_files if p.resolve() not in {f.resolve() for f in files}]
    try:
        report = MasterKeyRotation(config.data_folder, files).run()
    except (RotationError, InstanceBusy) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


COMMANDS = (backup, restore)
SECRET_COMMANDS = (rotate_master_key,)
