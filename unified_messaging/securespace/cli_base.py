"""What every secure-space command shares: the context (configuration, store), the group
factory, the refusal handler, tables and JSON output, date and login arguments."""
from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any, Callable, Iterable, Sequence

import click

from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.store import SecureSpaceStore

logger = logging.getLogger(__name__)

StoreFactory = Callable[[Config], SecureSpaceStore]


def default_store(config: Config) -> SecureSpaceStore:
    from unified_messaging.secrets import master_keys

    return SecureSpaceStore.open(config.database.url, config.data_folder, master_keys(config.data_folder))


class Context:
    """What every command needs: the configuration and the store (made on first use)."""

    def __init__(self, config_path: str | None, store_factory: StoreFactory = default_store) -> None:
        self.config_path = config_path
        self.store_factory = store_factory
        self._config: Config | None = None
        self._store: SecureSpaceStore | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config

    @property
    def store(self) -> SecureSpaceStore:
        if self._store is None:
            self._store = self.store_factory(self.config)
        return self._store


def load_context(ctx: click.Context, config_path: str | None) -> None:
    factory = (ctx.obj or {}).get("store_factory", default_store) if isinstance(ctx.obj, dict) else default_store
    ctx.obj = Context(config_path, factory)


def group(name: str, help_text: str) -> click.Group:
    @click.group(name=name, help=help_text)
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="Configuration file (default: conf/unified-messaging.toml when present).")
    @click.pass_context
    def group(ctx: click.Context, config_path: str | None) -> None:
        load_context(ctx, config_path)
    return group


def refusals(function: Callable[..., Any]) -> Callable[..., Any]:
    """Print a refusal as its catalogue entry (code, cause, remedy) and exit with status 1."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Refusal as refusal:
            click.echo(f"Refused: {refusal.code}\n  cause:  {refusal.cause}\n  remedy: {refusal.remedy}", err=True)
            raise SystemExit(1) from None
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with a header rule; columns as wide as their widest cell."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text())


def day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def obj(ctx: click.Context) -> Context:
    return ctx.find_object(Context)


def authenticate(store: SecureSpaceStore, login: str) -> str:
    """Ask ``login``'s password (hidden) and check it: acting as someone needs their password."""
    store.authenticate(login, click.prompt(f"Password of {login}", hide_input=True))
    return login


def secret_input(prompt: str, *, from_stdin: bool, confirm: bool = False) -> str:
    """A password: the first line of standard input with ``--password-stdin`` (for scripts: no prompt, no
    warning that the input is not hidden), else asked hidden on the terminal (twice when ``confirm``)."""
    if not from_stdin:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    value = click.get_text_stream("stdin").readline().rstrip("\r\n")
    if not value:
        raise click.UsageError(f"--password-stdin: standard input is empty; pipe the {prompt.lower()} on one line, "
                               "e.g. printf '%s\\n' \"$PASSWORD\" | unified-messaging ...")
    return value


password_stdin_option = click.option(
    "--password-stdin", "password_stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of asking it (for scripts).")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
