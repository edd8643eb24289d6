"""The one typed configuration object, loaded from a TOML file in ``conf/``.

Every key has a default here, and ``conf/unified-messaging.toml`` documents each of them (a test
keeps the two in step).  Anything wrong in a file stops start-up with a ``ConfigError`` that names
the key, the value found and what is expected.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_FILE_NAME = "unified-messaging.toml"


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)
    return check


def _port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "a TCP port from 0 to 65535 (0 = any free port)"


def _positive(value: Any) -> str | None:
    return None if value > 0 else "a number greater than 0"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "a number of 0 or more"


def _url_or_empty(value: Any) -> str | None:
    if value == "" or value.startswith(("http://", "https://")):
        return None
    return "an http:// or https:// URL, or \"\" for none"


def _postgresql_url_or_empty(value: Any) -> str | None:
    if value == "" or value.startswith("postgresql://"):
        return None
    return "a postgresql://user@host:port/database URL, or \"\" for the SQLite files in the data folder"


PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                 "x-forwarded-by", "forwarded")


def _proxy_address(value: Any) -> str | None:
    import ipaddress

    if value in ("", "*"):
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "the reverse proxy's IP address (e.g. \"10.0.0.5\"), \"*\" for any peer, or \"\" for none"
    return None


def _proxy_headers(value: Any) -> str | None:
    unknown = [h for h in value if h.lower() not in PROXY_HEADERS]
    return f"headers among {', '.join(PROXY_HEADERS)} (not {', '.join(unknown)})" if unknown or not value else None


def _lower_case_names(value: Any) -> str | None:
    wrong = [v for v in value if not v or v != v.strip().lower()]
    return f"quality names in lower case, e.g. [\"nurse\", \"groupofnurses\"] (not {wrong!r})" if wrong else None


def _mda_chunk(value: Any) -> str | None:
    return None if 1 <= value <= 10000 else "a number of queries from 1 to 10000 (an AttributeQueryList's most)"


def _key(default: Any, check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class ServerConfig:
    host: str = _key("127.0.0.1")
    port: int = _key(8080, _port)
    public_base_url: str = _key("", _url_or_empty)
    threads: int = _key(8, _positive)
    workers: int = _key(0, _not_negative)  # 0 = the number of cores (effective_workers)
    max_request_bytes: int = _key(2 * 1024 * 1024, _positive)
    connection_limit: int = _key(2000, _positive)
    max_connections_per_client: int = _key(500, _positive)
    idle_timeout_seconds: float = _key(30.0, _positive)
    request_read_timeout_seconds: float = _key(15.0, _positive)
    trusted_proxy: str = _key("", _proxy_address)
    trusted_proxy_headers: tuple[str, ...] = _key(("x-forwarded-for", "x-forwarded-proto"), _proxy_headers)
    trusted_proxy_count: int = _key(1, _positive)
    malloc_arena_max: int = _key(2, _not_negative)

    @property
    def effective_workers(self) -> int:
        """Front worker processes to run: ``workers``, or the number of cores when it is 0."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class DataConfig:
    folder: str = _key("um-data")


@dataclass(frozen=True)
class UpstreamConfig:
    mode: str = _key("simulator", _one_of("simulator", "remote"))
    sts_url: str = _key("", _url_or_empty)
    genericinsurability_url: str = _key("", _url_or_empty)
    genasync_url: str = _key("", _url_or_empty)
    insurability_service: str = _key("genins", _one_of("genins", "memberdata"))
    memberdata_qualities: tuple[str, ...] = _key((), _lower_case_names)
    memberdata_url: str = _key("", _url_or_empty)
    memberdata_async_url: str = _key("", _url_or_empty)
    trace_folder: str = _key("")
    platform_ca: str = _key("")
    ehealth_ca: str = _key("")
    platform_signer_cbe: str = _key("")
    timeout_seconds: float = _key(20.0, _positive)
    is_test: bool = _key(True)


# The simulator's fault modes (simulator/chaos.py FaultMode; for the STS the signer modes re-sign the token).
_FAULT_MODES = ("none", "slow", "reset", "html-502", "html-503", "malformed-xml", "truncated-xml",
                "expired-signer", "foreign-signer")


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = _key("127.0.0.1")
    port: int = _key(0, _port)
    latency_ms: int = _key(0, _not_negative)
    genasync_acknowledgement_seconds: float = _key(5.0, _not_negative)
    genasync_detailed_seconds: float = _key(15.0, _not_negative)
    genasync_settlement_seconds: float = _key(30.0, _not_negative)
    genasync_min_get_interval_seconds: float = _key(10.0, _not_negative)
    # Upstream chaos (tests, demos): a fault injected in every answer of a service, see simulator/chaos.py.
    fault_genins: str = _key("none", _one_of(*_FAULT_MODES))
    fault_sts: str = _key("none", _one_of(*_FAULT_MODES))
    fault_genasync: str = _key("none", _one_of(*_FAULT_MODES))
    fault_memberdata: str = _key("none", _one_of(*_FAULT_MODES))
    fault_slow_seconds: float = _key(35.0, _positive)


@dataclass(frozen=True)
class LicenceConfig:
    username: str = _key("unified-messaging-demo")
    password: str = _key("demo-licence-password")
    package_name: str = _key("unified-messaging")


@dataclass(frozen=True)
class IdentityConfig:
    keystore: str = _key("")
    keystore_password: str = _key("")
    qualities_file: str = _key("")


@dataclass(frozen=True)
class JournalConfig:
    path: str = _key("")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = _key("", _postgresql_url_or_empty)
    leader_takeover_seconds: float = _key(10.0, _positive)


@dataclass(frozen=True)
class FoldersConfig:
    insurability: bool = _key(True)
    insurability_root: str = _key("")
    poll: bool = _key(False)
    rescan_seconds: float = _key(30.0, _positive)
    max_request_file_bytes: int = _key(5 * 1024 * 1024, _positive)
    max_parallel: int = _key(8, _positive)


@dataclass(frozen=True)
class InvoicingConfig:
    enabled: bool = _key(True)
    root: str = _key("")
    care_provider_nihii: str = _key("")
    care_provider_quality: str = _key("labo")
    poll: bool = _key(False)
    rescan_seconds: float = _key(10.0, _positive)
    poll_interval_seconds: float = _key(15.0, _positive)
    throttle_wait_seconds: float = _key(30.0, _positive)
    throttle_retries: int = _key(8, _positive)
    repost_grace_seconds: float = _key(120.0, _positive)


@dataclass(frozen=True)
class SecureSpaceConfig:
    soap: str = _key("")
    insurability_folders: str = _key("")
    invoicing_folders: str = _key("")
    batch: str = _key("")


@dataclass(frozen=True)
class BatchConfig:
    jobs: tuple[str, ...] = _key(())
    max_parallel: int = _key(32, _positive)
    rescan_seconds: float = _key(60.0, _positive)
    memberdata_async_min_lines: int = _key(50, _not_negative)  # 0 = never the asynchronous MemberData
    memberdata_async_chunk: int = _key(500, _mda_chunk)


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = _key(True)
    session_idle_minutes: float = _key(30.0, _positive)
    session_max_hours: float = _key(12.0, _positive)
    login_max_failures: int = _key(5, _positive)
    login_lockout_minutes: float = _key(15.0, _positive)
    page_size: int = _key(50, _positive)
    max_upload_bytes: int = _key(64 * 1024 * 1024, _positive)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _key("INFO", _one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    format: str = _key("text", _one_of("text", "json"))


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    licence: LicenceConfig = field(default_factory=LicenceConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    folders: FoldersConfig = field(default_factory=FoldersConfig)
    invoicing: InvoicingConfig = field(default_factory=InvoicingConfig)
    securespace: SecureSpaceConfig = field(default_factory=SecureSpaceConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    web: WebConfig = field(default_factory=WebConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "built-in defaults"

    @property
    def data_folder(self) -> Path:
        return Path(self.data.folder).expanduser().resolve()

    @property
    def journal_path(self) -> Path:
        if self.journal.path:
            return Path(self.journal.path).expanduser().resolve()
        return self.data_folder / "journal.sqlite"

    @property
    def invoicing_root(self) -> Path:
        """The root of the toSend / received / archive / error / probative-values folders."""
        if self.invoicing.root:
            return Path(self.invoicing.root).expanduser().resolve()
        return self.data_folder / "invoicing"

    @property
    def insurability_root(self) -> Path:
        """The root of the toQuery / queried / error folders."""
        if self.folders.insurability_root:
            return Path(self.folders.insurability_root).expanduser().resolve()
        return self.data_folder / "insurability"

    def replace(self, section: str, **values: Any) -> "Config":
        """A copy with some keys of one section changed (used for command-line overrides)."""
        current = getattr(self, section)
        updated = dataclasses.replace(current, **values)
        _check_section(section, updated)
        return dataclasses.replace(self, **{section: updated})


_SECTION_CLASSES = {
    "server": ServerConfig, "data": DataConfig, "upstream": UpstreamConfig,
    "simulator": SimulatorConfig, "licence": LicenceConfig, "identity": IdentityConfig,
    "journal": JournalConfig, "database": DatabaseConfig,
    "folders": FoldersConfig, "invoicing": InvoicingConfig, "securespace": SecureSpaceConfig,
    "batch": BatchConfig, "web": WebConfig,
    "logging": LoggingConfig,
}


_STR_LIST = tuple[str, ...]


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
            _STR_LIST: "a list of strings, e.g. [\"a\", \"b\"]"}[tp]


def _coerce(section: str, name: str, tp: Any, value: Any) -> Any:
    where = f"[{section}] {name}"
    if tp == _STR_LIST:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where} = {value!r} is not valid: expected {_type_name(tp)}.")
    return value


def _check_section(section: str, obj: Any) -> None:
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        value = getattr(obj, f.name)
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"[{section}] {f.name} = {value!r} is not valid: expected {problem}.")


def _field_types(cls: type) -> dict[str, Any]:
    hints = {"str": str, "int": int, "float": float, "bool": bool, "tuple[str, ...]": _STR_LIST}
    return {f.name: hints[f.type] if isinstance(f.type, str) else f.type for f in dataclasses.fields(cls)}


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Build and check a Config from parsed TOML; unknown sections and keys are errors."""
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        cls = _SECTION_CLASSES.get(section)
        if cls is None:
            raise ConfigError(
                f"[{section}] is not a known section: expected one of {', '.join(sorted(_SECTION_CLASSES))}."
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{section} = {values!r} is not valid: expected a [{section}] table.")
        types = _field_types(cls)
        kwargs = {}
        for name, value in values.items():
            if name not in types:
                raise ConfigError(
                    f"[{section}] {name} is not a known key: expected one of {', '.join(sorted(types))}."
                )
            kwargs[name] = _coerce(section, name, types[name], value)
        obj = cls(**kwargs)
        _check_section(section, obj)
        sections[section] = obj
    return Config(source=source, **sections)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the configuration file; without a path, use ``default_config_path()`` if it exists."""
    if path is None:
        found = default_config_path()
        if found is None:
            return Config()
        path = found
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"The configuration file {path} does not exist: give an existing file with --config.") from None
    except OSError as exc:
        raise ConfigError(f"The configuration file {path} cannot be read: {exc.strerror}.") from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
    return config_from_dict(raw, source=str(path))


def default_config_path() -> Path | None:
    """``conf/unified-messaging.toml`` under the working directory, else the installed copy."""
    for candidate in (
        Path.cwd() / "conf" / DEFAULT_FILE_NAME,
        Path(sys.prefix) / "share" / "unified-messaging" / "conf" / DEFAULT_FILE_NAME,
    ):
        if candidate.is_file():
            return candidate
    return None
