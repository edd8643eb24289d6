"""The ``unified-messaging`` command."""
from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from unified_messaging import __version__
from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.memory import limit_malloc_arenas

log = logging.getLogger(__name__)


def _load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging(level: str, format: str = "text") -> None:
    from unified_messaging.logs import setup_logging

    setup_logging(level, format)


@click.group()
@click.version_option(__version__, prog_name="unified-messaging")
def main() -> None:
    """unified-messaging: legacy MyCareNet interfaces, served over MyCareNet SSO."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml).")
@click.option("--host", help="Address to listen on (overrides [server] host).")
@click.option("--port", type=int, help="Port to listen on (overrides [server] port; 0 = any free port).")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="Front worker processes (overrides [server] workers; 1 = everything in one process, 0 = one per core).")
def serve(config_path: str | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the gateway (and the built-in simulator when it is the configured upstream)."""
    from unified_messaging.gateway import Gateway

    config = _load(config_path)
    try:
        overrides = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
        if overrides:
            config = config.replace("server", **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _setup_logging(config.logging.level, config.logging.format)
    limit_malloc_arenas(config.server.malloc_arena_max)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if config.server.effective_workers > 1:
        _serve_supervised(config, config_path, stop)
        return
    gateway = Gateway(config)
    try:
        gateway.start()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise _start_error(config, exc) from None
    click.echo(f"unified-messaging {__version__} serving {gateway.services_url}", err=True)
    click.echo(f"configuration: {config.source}; data folder: {config.data_folder}", err=True)
    if gateway.mybox is not None:
        click.echo(f"Mybox (web UI): {gateway.mybox_url}/", err=True)
        first_run = gateway.mybox.first_run.address(gateway.mybox_url)  # the one-time page, until a user exists
        if first_run:
            click.echo(f"first run: no user exists yet; create the first administrator at {first_run}", err=True)
    if gateway.simulator is not None:
        click.echo(f"upstream: built-in MyCareNet simulator at {gateway.simulator_url} "
                   "(test patients are listed in README.md)", err=True)
    click.echo("Press Ctrl-C to stop.", err=True)
    stop.wait()
    click.echo("stopping...", err=True)
    gateway.stop()
    click.echo("stopped.", err=True)


def _start_error(config: Config, exc: OSError) -> click.ClickException:
    """What ``serve`` says when the port or a folder is not usable, naming the setting to change."""
    if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and not exc.filename:
        return click.ClickException(
            f"Cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}. "
            "Choose another address or port with --host/--port or [server] host/port.")
    where = f" ({exc.filename})" if exc.filename else ""
    return click.ClickException(
        f"Cannot start: {exc.strerror}{where}. Check that the data folder ([data] folder = "
        f"{config.data.folder!r}) and the other configured folders are writable.")


def _serve_supervised(config: Config, config_path: str | None, stop: threading.Event) -> None:
    """``serve`` with a supervisor, front worker processes and a singletons process."""
    from unified_messaging.supervisor import Supervisor, SupervisorError
    from unified_messaging.upstream import display_host
    from unified_messaging.web.context import PREFIX as MYBOX_PREFIX

    supervisor = Supervisor(config, config_path, config.server.effective_workers)
    try:
        supervisor.start()
    except SupervisorError as exc:
        supervisor.stop()
        raise click.ClickException(f"Cannot start: {exc}") from None
    except OSError as exc:
        supervisor.stop()
        raise _start_error(config, exc) from None
    url = f"http://{display_host(config.server.host)}:{supervisor.port}"
    click.echo(f"unified-messaging {__version__} serving {url}/unified-messaging/services", err=True)
    click.echo(f"configuration: {config.source}; data folder: {config.data_folder}", err=True)
    click.echo(f"{config.server.effective_workers} front workers, 1 process for the folders, invoicing and batch "
               f"(pids: {', '.join(str(c.pid) for c in supervisor.children)})", err=True)
    if config.web.enabled:
        click.echo(f"Mybox (web UI): {url}{MYBOX_PREFIX}/", err=True)
        if _no_user_yet(config):
            click.echo(f"first run: no user exists yet; create the first administrator at "
                       f"{url}{MYBOX_PREFIX}/first-run?token={supervisor.token}", err=True)
    if supervisor.simulator_url:
        click.echo(f"upstream: built-in MyCareNet simulator at {supervisor.simulator_url} "
                   "(its own process; test patients are listed in README.md)", err=True)
    click.echo("Press Ctrl-C to stop.", err=True)
    try:
        supervisor.run_until(stop)
    except SupervisorError as exc:
        supervisor.stop()
        raise click.ClickException(str(exc)) from None
    click.echo("stopping...", err=True)
    supervisor.stop()
    click.echo("stopped.", err=True)


def _no_user_yet(config: Config) -> bool:
    from unified_messaging.secrets import master_keys
    from unified_messaging.securespace.store import SecureSpaceStore

    store = SecureSpaceStore.open(config.database.url, config.data_folder, master_keys(config.data_folder))
    try:
        return not store.users()
    finally:
        store.close()


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
    from unified_messaging.simulator.devpki import make_dev_pki
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


@main.command("simulator")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml): gives the licence, the data folder "
                   "and the [simulator] timings unless the options below are given.")
@click.option("--host", default=None, help="Address to listen on (default: [simulator] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: [simulator] port; 0 = any free port).")
@click.option("--data-folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo PKI is kept (default: the configuration's data folder).")
@click.option("--licence-username", default=None, help="The licence the platform accepts (default: [licence] username).")
@click.option("--licence-password", default=None,
              help="Its password (default: [licence] password; enc:/env:/file: forms accepted).")
@click.option("--latency-ms", type=click.IntRange(0), default=None,
              help="Delay of every answer, after the platform handled the request (default: [simulator] latency_ms).")
@click.option("--genasync-acknowledgement-seconds", type=click.FloatRange(0), default=None,
              help="Seconds after a post before the 931000 (or 920999) falls due.")
@click.option("--genasync-detailed-seconds", type=click.FloatRange(0), default=None,
              help="Seconds after a post before the 920098 / 920099 falls due.")
@click.option("--genasync-settlement-seconds", type=click.FloatRange(0), default=None,
              help="Seconds after a post before the 920900 falls due.")
@click.option("--genasync-min-get-interval-seconds", type=click.FloatRange(0), default=None,
              help="Shortest time between two gets before the mailbox answers 'Not enough time'.")
@click.option("--hold", "holds", multiple=True, metavar="OPERATION=MS",
              help="Hold each GenAsync OPERATION (post, get or confirm) request MS milliseconds before handling it "
                   "(a slow network on the way in; for crash tests and demos). Repeatable.")
def simulator_command(config_path: str | None, host: str | None, port: int | None, data_folder: Path | None,
                      licence_username: str | None, licence_password: str | None, latency_ms: int | None,
                      genasync_acknowledgement_seconds: float | None, genasync_detailed_seconds: float | None,
                      genasync_settlement_seconds: float | None, genasync_min_get_interval_seconds: float | None,
                      holds: tuple[str, ...]) -> None:
    """Run the simulated MyCareNet platform (STS, GenericInsurability, GenAsync) on its own, until stopped.

    Point a gateway at it with [upstream] mode = "remote" and the addresses it prints; the gateway's
    keystore is <data folder>/demo-pki/lab.p12, its platform_ca and ehealth_ca <data folder>/demo-pki/ca.pem.
    GET /_simulator/counters returns its counters as JSON (a test and diagnostic endpoint).
    """
    from unified_messaging.secrets import SecretError, resolve_secret
    from unified_messaging.simulator.genasync import FeedbackTimings
    from unified_messaging.simulator.standalone import StandaloneSettings, StandaloneSimulator, parse_holds

    config = _load(config_path)
    _setup_logging(config.logging.level, config.logging.format)
    sim = config.simulator
    folder = (data_folder or config.data_folder).expanduser().resolve()
    username = licence_username if licence_username is not None else config.licence.username
    try:
        password = (licence_password if licence_password is not None else config.licence.password)
        password = resolve_secret(password, key="[licence] password", data_folder=folder).value
        hold_seconds = parse_holds(holds)
    except (SecretError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

    def pick(value, default):
        return default if value is None else value

    settings = StandaloneSettings(
        data_folder=folder, licences={username: password}, host=pick(host, sim.host), port=pick(port, sim.port),
        latency_ms=pick(latency_ms, sim.latency_ms),
        timings=FeedbackTimings(pick(genasync_acknowledgement_seconds, sim.genasync_acknowledgement_seconds),
                                pick(genasync_detailed_seconds, sim.genasync_detailed_seconds),
                                pick(genasync_settlement_seconds, sim.genasync_settlement_seconds)),
        min_get_interval=pick(genasync_min_get_interval_seconds, sim.genasync_min_get_interval_seconds),
        holds=hold_seconds,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    standalone = StandaloneSimulator(settings)
    try:
        standalone.start()
    except OSError as exc:
        raise click.ClickException(f"Cannot start the simulator on {settings.host}:{settings.port}: "
                                   f"{exc.strerror or exc}.") from None
    for line in standalone.describe():
        click.echo(line, err=True)
    click.echo(f"licence accepted: {username} (password not shown). Press Ctrl-C to stop.", err=True)
    standalone.run_until(stop)
    click.echo("stopping...", err=True)
    standalone.stop()
    click.echo("stopped.", err=True)


EXIT_FILE_REJECTED = 3
EXIT_STOPPED = 4


@main.group()
def batch() -> None:
    """Legacy batch jobs configured by a batch.properties file."""


@batch.command("run")
@click.argument("properties", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Configuration file (default: conf/unified-messaging.toml).")
@click.option("--max-parallel", type=click.IntRange(1, 256), default=None,
              help="Lines asked at the same time (default: max.parallel of the job, else [batch] max_parallel).")
@click.option("--quiet", is_flag=True, help="No progress bar; only the summary.")
def batch_run(properties: str, config_path: str | None, max_parallel: int | None, quiet: bool) -> None:
    """Run the batch job of PROPERTIES (a batch.properties) now, on every input file there is.

    Exit status: 0 every file done (lines answered ERROR, such as an unknown patient, are answers
    and are counted in the summary); 1 the job or the configuration cannot run (the message says
    what to change); 3 a file could not be read and was moved to the error folder with its reason;
    4 the run stopped (MyCareNet unreachable, or interrupted): run the same command again to
    continue where it stopped.
    """
    import dataclasses

    from unified_messaging.gateway import Gateway
    from unified_messaging.insurability.batch import BatchRunner
    from unified_messaging.insurability.batch_job import BatchConfigError, load_batch_job

    config = _load(config_path)
    _setup_logging("WARNING" if config.logging.level in ("DEBUG", "INFO") else config.logging.level,
                   config.logging.format)
    try:
        job = load_batch_job(properties)
    except BatchConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if max_parallel is not None:
        job = dataclasses.replace(job, max_parallel=max_parallel)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    gateway = Gateway(config)
    try:
        service = gateway.open_service()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    bars: dict[str, object] = {}

    def progress(name: str, done: int, total: int) -> None:
        if quiet:
            return
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = click.progressbar(length=total, label=name, file=sys.stderr, show_pos=True,
                                                 show_eta=True)
            bar.__enter__()
            bar.update(done - 1)
        bar.update(1)
        if done >= total:
            bars.pop(name).__exit__(None, None, None)

    try:
        summary = BatchRunner(job, service, max_parallel=config.batch.max_parallel, stop=stop,
                              progress=progress, journal=gateway.journal,
                              memberdata_async=gateway.batch_memberdata_async()).run()
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
        gateway.stop()
    click.echo(summary.describe())
    statuses = {f.status for f in summary.files}
    if "stopped" in statuses or stop.is_set():
        sys.exit(EXIT_STOPPED)
    if "rejected" in statuses:
        sys.exit(EXIT_FILE_REJECTED)


@main.group()
def secret() -> None:
    """Secrets for the configuration file (licence and keystore passwords), and the master key."""


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


def _register_command_groups() -> None:
    from unified_messaging.database.cli import db
    from unified_messaging.invoicing.cli import invoicing
    from unified_messaging.operations.cli import COMMANDS as OPERATIONS, SECRET_COMMANDS
    from unified_messaging.securespace.cli import COMMANDS
    from unified_messaging.simulator.samples import sample

    invoicing.add_command(sample)
    main.add_command(invoicing)
    main.add_command(db)
    for command in (*COMMANDS, *OPERATIONS):
        main.add_command(command)
    for command in SECRET_COMMANDS:
        secret.add_command(command)


_register_command_groups()

if __name__ == "__main__":
    main()
