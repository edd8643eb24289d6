"""A legacy batch job, as its ``batch.properties`` describes it.

Old jobs were configured for a Java program; the file is read with the JDK's own rules
(:mod:`unified_messaging.insurability.properties`). The keys (README lists them with an example):

``mycarenet.connection`` (must be ``SSO``), ``input.folder``, ``input.pattern``, ``output.folder``,
``archive.folder``, ``error.folder``, ``file.encoding``, ``csv.separator``, ``careprovider.nihii``,
``careprovider.quality``, ``max.parallel``. Relative folders are relative to the folder of the
``batch.properties`` file. Other keys of an old job (its old credentials, for example) are
ignored, and only their names are logged.
"""
from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from pathlib import Path

from unified_messaging.insurability.properties import PropertiesError, read_properties_file

log = logging.getLogger(__name__)

CONNECTION_KEY = "mycarenet.connection"
REQUIRED_CONNECTION = "SSO"
FOLDER_KEYS = ("input.folder", "output.folder", "archive.folder", "error.folder")
KNOWN_KEYS = frozenset({
    CONNECTION_KEY, *FOLDER_KEYS, "input.pattern", "file.encoding", "csv.separator",
    "careprovider.nihii", "careprovider.quality", "max.parallel",
})
DEFAULT_PATTERN = "*.csv"
DEFAULT_ENCODING = "UTF-8"
DEFAULT_SEPARATOR = ";"


class BatchConfigError(ValueError):
    """The batch.properties cannot be used as it is; the message says what to change."""


@dataclass(frozen=True)
class BatchJob:
    source: Path
    input_folder: Path
    output_folder: Path
    archive_folder: Path
    error_folder: Path
    input_pattern: str = DEFAULT_PATTERN
    encoding: str = DEFAULT_ENCODING
    separator: str = DEFAULT_SEPARATOR
    nihii: str | None = None
    quality: str | None = None
    max_parallel: int | None = None

    @property
    def name(self) -> str:
        return str(self.source)


def load_batch_job(path: str | Path) -> BatchJob:
    """Read and check a batch.properties; raises ``BatchConfigError`` with a message for a person."""
    source = Path(path).expanduser().resolve()
    try:
        props = read_properties_file(source)
    except FileNotFoundError:
        raise BatchConfigError(f"{source} does not exist: give the path of the job's batch.properties.") from None
    except OSError as exc:
        raise BatchConfigError(f"{source} cannot be read: {exc.strerror}.") from None
    except PropertiesError as exc:
        raise BatchConfigError(f"{source} is not a valid properties file: {exc}") from None

    def where(key: str) -> str:
        return f"{source}: {key}"

    connection = props.get(CONNECTION_KEY)
    if connection is None or connection.strip() != REQUIRED_CONNECTION:
        found = "is not set" if connection is None else f"= {connection.strip() or '(empty)'}"
        raise BatchConfigError(
            f"{where(CONNECTION_KEY)} {found}. The old direct connection to MyCareNet no longer exists: "
            f"unified-messaging makes every call over MyCareNet SSO. Change that one line to "
            f"{CONNECTION_KEY}=SSO (nothing else in the job needs to change) and run the job again."
        )
    folders: dict[str, Path] = {}
    for key in FOLDER_KEYS:
        value = (props.get(key) or "").strip()
        if not value:
            raise BatchConfigError(f"{where(key)} is not set: give the folder (absolute, or relative to "
                                   f"{source.parent}).")
        folder = (source.parent / Path(value).expanduser()).resolve()
        if not folder.is_dir():
            raise BatchConfigError(f"{where(key)} = {value}: the folder {folder} does not exist. Create it, "
                                   "or correct the path.")
        folders[key] = folder
    encoding = (props.get("file.encoding") or DEFAULT_ENCODING).strip()
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BatchConfigError(f"{where('file.encoding')} = {encoding} is not an encoding unified-messaging "
                               "knows: use for example UTF-8, ISO-8859-1 or Cp1252.") from None
    separator = props.get("csv.separator", DEFAULT_SEPARATOR)
    if len(separator) != 1 or separator in "\"\r\n":
        raise BatchConfigError(f"{where('csv.separator')} = {separator!r} is not valid: expected one character "
                               "such as ; or , (write \\t for a tab).")
    max_parallel: int | None = None
    if props.get("max.parallel", "").strip():
        text = props["max.parallel"].strip()
        if not text.isdigit() or not 1 <= int(text) <= 256:
            raise BatchConfigError(f"{where('max.parallel')} = {text} is not valid: expected a whole number "
                                   "from 1 to 256.")
        max_parallel = int(text)
    pattern = (props.get("input.pattern") or DEFAULT_PATTERN).strip()
    if "/" in pattern or "\\" in pattern:
        raise BatchConfigError(f"{where('input.pattern')} = {pattern} is not valid: expected a file name pattern "
                               "such as *.csv, without folders.")
    ignored = sorted(set(props) - KNOWN_KEYS)
    if ignored:
        log.info("%s: ignoring keys unified-messaging does not use: %s", source, ", ".join(ignored))
    return BatchJob(
        source=source,
        input_folder=folders["input.folder"],
        output_folder=folders["output.folder"],
        archive_folder=folders["archive.folder"],
        error_folder=folders["error.folder"],
        input_pattern=pattern,
        encoding=encoding,
        separator=separator,
        nihii=(props.get("careprovider.nihii") or "").strip() or None,
        quality=(props.get("careprovider.quality") or "").strip() or None,
        max_parallel=max_parallel,
    )
