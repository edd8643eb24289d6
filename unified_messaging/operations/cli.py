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


@click.command("backup")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@_CONFIG
@click.option("--include-master-key", is_flag=True,
              help="Copy master.key into the backup too (then the backup opens every sealed secret: keep it safe).")
def backup(destination: Path, config_path: str | None, include_master_key: bool) -> None:
    """Copy the install (databases, folders, demo PKI) into the new folder DESTINATION, while it serves."""
    from unified_messaging.operations.backup import Backup, BackupError

    try:
        report = Backup(_config(config_path), destination, include_master_key=include_master_key).run()
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

    try:
        report = Restore(_config(config_path), source, force=force).run()
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
