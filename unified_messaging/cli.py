"""The ``unified-messaging`` command."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from unified_messaging import __version__
from unified_messaging.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)


def _load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Spyne logs whole invalid request bodies (patient data) on this logger; we report such
    # errors ourselves, masked.
    logging.getLogger("spyne.protocol.soap.soap11.invalid").setLevel(logging.CRITICAL)
    logging.getLogger("spyne.protocol.xml.invalid").setLevel(logging.CRITICAL)


@click.group()
@click.version_option(__version__, prog_name="unified-messaging")
def main() -> None:
    """unified-messaging: legacy MyCareNet interfaces, served over MyCareNet SSO."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml).")
@click.option("--host", help="Address to listen on (overrides [server] host).")
@click.option("--port", type=int, help="Port to listen on (overrides [server] port; 0 = any free port).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Run the gateway (and the built-in simulator when it is the configured upstream)."""
    from unified_messaging.gateway import Gateway

    config = _load(config_path)
    try:
        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        if overrides:
            config = config.replace("server", **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _setup_logging(config.logging.level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    gateway = Gateway(config)
    try:
        gateway.start()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"Cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}. "
            "Choose another address or port with --host/--port or [server] host/port."
        ) from None
    click.echo(f"unified-messaging {__version__} serving {gateway.services_url}", err=True)
    click.echo(f"configuration: {config.source}; data folder: {config.data_folder}", err=True)
    if gateway.simulator is not None:
        click.echo(f"upstream: built-in MyCareNet simulator at {gateway.simulator_url} "
                   "(test patients are listed in README.md)", err=True)
    click.echo("Press Ctrl-C to stop.", err=True)
    stop.wait()
    click.echo("stopping...", err=True)
    gateway.stop()
    click.echo("stopped.", err=True)


@main.command("check-config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def check_config(config_path: str | None) -> None:
    """Load and check the configuration, then print where it came from."""
    config = _load(config_path)
    click.echo(f"{config.source}: OK (data folder {config.data_folder})")


@main.command("dev-certs")
@click.option("--folder", type=click.Path(file_okay=False), default=None,
              help="Where to write them (default: <data folder>/demo-pki).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def dev_certs(folder: str | None, config_path: str | None) -> None:
    """Make a test CA and eHealth-like keystores (lab, nurse, nursing group...) for development.

    The simulator trusts this CA only. The keystores are for tests and demos: never for MyCareNet.
    """
    from unified_messaging.mycarenet.devpki import make_dev_pki
    from unified_messaging.simulator.platform import DEMO_PKI_FOLDER

    target = Path(folder) if folder else _load(config_path).data_folder / DEMO_PKI_FOLDER
    pki = make_dev_pki(target)
    click.echo(f"test CA: {pki.ca_certificate_path}")
    for name, keystore in pki.keystores.items():
        identity = keystore.identity
        state = "expired" if keystore.expired else ("untrusted CA" if not keystore.trusted else "valid")
        click.echo(f"{name:14} {keystore.path.name:22} {identity.kind.value}={identity.masked_value:14} "
                   f"{identity.quality or '-':14} {state}")
    click.echo(f"keystore password: see {pki.manifest_path.name} (development value)")


@main.group()
def secret() -> None:
    """Secrets for the configuration file (licence and keystore passwords)."""


@secret.command("encrypt")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def secret_encrypt(config_path: str | None) -> None:
    """Read a secret (hidden prompt, or standard input) and print its enc: form for conf/."""
    from unified_messaging.secrets import encrypt_secret

    config = _load(config_path)
    if sys.stdin.isatty():
        value = click.prompt("Secret", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise click.ClickException("The secret is empty; nothing to encrypt.")
    click.echo(encrypt_secret(value, config.data_folder))


if __name__ == "__main__":
    main()
