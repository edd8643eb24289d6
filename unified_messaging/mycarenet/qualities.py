"""The qualities table: what each care provider quality means upstream, read from data.

``qualities.toml`` (beside this module, or the copy named by ``[identity] qualities_file``) says,
per quality, whether a person or an organisation holds it, the SAML attributes to ask the eHealth
STS for, the shape of ``Origin/CareProvider`` and the services it may use in its own name.  The
STS client, the secure space's rules and the simulator all read it, so a new profession is a data
change.  ``active()`` is the table in force; the gateway installs the configured one at start-up.
"""
from __future__ import annotations

import logging
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

BUILT_IN = Path(__file__).with_name("qualities.toml")
HOLDERS = ("person", "organisation")
SHAPES = ("nihii", "nihii+person", "nihii+organization")
SERVICES = ("insurability", "invoicing", "med_admin")
NAMESPACES = ("identification", "certified")
VALUES = ("holder", "true", "nihii")


class QualityTableError(ValueError):
    """The table cannot be used; the message names the file, the quality and the field."""


@dataclass(frozen=True)
class ClaimRule:
    """One SAML attribute: its URI, whether it identifies or is certified, and what it holds."""

    uri: str
    namespace: str
    value: str

    @property
    def identifies(self) -> bool:
        return self.namespace == "identification"


@dataclass(frozen=True)
class Quality:
    name: str
    holder: str
    care_provider: str
    services: frozenset[str]
    claims: tuple[ClaimRule, ...]  # the holder's own (SSIN for a person) first, then the quality's


class QualityTable:
    """The qualities by name (lower case)."""

    def __init__(self, qualities: Mapping[str, Quality], source: str,
                 generic: Mapping[str, tuple[ClaimRule, ...]] | None = None) -> None:
        self._qualities = dict(qualities)
        self.source = source
        self._generic = dict(generic or {})  # holder -> claim rules with {quality} unresolved

    def claims(self, name: str, holder: str) -> tuple[ClaimRule, ...]:
        """The quality's claims; for a quality the table lacks, the generic ones of its holder kind."""
        quality = self.get(name)
        if quality is not None:
            return quality.claims
        log.warning("the quality %r is not in the qualities table (%s): asking the STS with the generic claims "
                    "of a %s; add a [quality.%s] table to make it known", name, self.source, holder, name.lower())
        return tuple(ClaimRule(r.uri.replace("{quality}", name.lower()), r.namespace, r.value)
                     for r in self._generic.get(holder, ()))

    def get(self, name: str | None) -> Quality | None:
        return self._qualities.get(name.lower()) if name else None

    def require(self, name: str | None) -> Quality:
        quality = self.get(name)
        if quality is None:
            raise QualityTableError(f"The quality {name!r} is not in the qualities table ({self.source}): add a "
                                    f"[quality.{(name or '').lower()}] table there (see its first lines).")
        return quality

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._qualities)

    def allowed(self, service: str) -> frozenset[str]:
        """The qualities that may use ``service`` in their own name."""
        return frozenset(q.name for q in self._qualities.values() if service in q.services)

    @classmethod
    def load(cls, path: str | Path = "") -> "QualityTable":
        source = Path(path) if path else BUILT_IN
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise QualityTableError(f"The qualities table {source} cannot be read: {exc.strerror}.") from None
        except tomllib.TOMLDecodeError as exc:
            raise QualityTableError(f"The qualities table {source} is not valid TOML: {exc}.") from None
        qualities, generic = _parse(raw, str(source))
        return cls(qualities, str(source), generic)


def _claims(entries: Any, where: str) -> list[ClaimRule]:
    rules = []
    for entry in entries or ():
        uri, namespace, value = (entry.get(k) if isinstance(entry, dict) else None for k in ("uri", "namespace", "value"))
        if not isinstance(uri, str) or namespace not in NAMESPACES or value not in VALUES:
            raise QualityTableError(f"{where}: each claim needs uri, namespace (one of {', '.join(NAMESPACES)}) and "
                                    f"value (one of {', '.join(VALUES)}); found {entry!r}.")
        rules.append(ClaimRule(uri, namespace, value))
    return rules


def _parse(raw: dict[str, Any], source: str) -> tuple[dict[str, Quality], dict[str, tuple[ClaimRule, ...]]]:
    holder_claims = {h: _claims(raw.get("holder", {}).get(h, {}).get("claims"), f"{source} [holder.{h}]")
                     for h in HOLDERS}
    defaults = {"person": _claims(raw.get("professional", {}).get("claims"), f"{source} [professional]"),
                "organisation": _claims(raw.get("organisation", {}).get("claims"), f"{source} [organisation]")}
    qualities = {}
    for name, fields in raw.get("quality", {}).items():
        where = f"{source} [quality.{name}]"
        holder, shape, services = fields.get("holder"), fields.get("care_provider"), fields.get("services", [])
        if holder not in HOLDERS:
            raise QualityTableError(f"{where}: holder = {holder!r}; expected one of {', '.join(HOLDERS)}.")
        if shape not in SHAPES:
            raise QualityTableError(f"{where}: care_provider = {shape!r}; expected one of {', '.join(SHAPES)}.")
        unknown = [s for s in services if s not in SERVICES]
        if unknown:
            raise QualityTableError(f"{where}: services {unknown}; expected among {', '.join(SERVICES)}.")
        own = _claims(fields["claims"], where) if "claims" in fields else defaults[holder]
        claims = [ClaimRule(r.uri.replace("{quality}", name.lower()), r.namespace, r.value)
                  for r in (*holder_claims[holder], *own)]
        qualities[name.lower()] = Quality(name.lower(), holder, shape, frozenset(services), tuple(claims))
    if not qualities:
        raise QualityTableError(f"The qualities table {source} has no [quality.<name>] table.")
    return qualities, {h: (*holder_claims[h], *defaults[h]) for h in HOLDERS}


_lock = threading.Lock()
_active: QualityTable | None = None


def active() -> QualityTable:
    """The table in force (the built-in one until the gateway installs the configured one)."""
    global _active
    with _lock:
        if _active is None:
            _active = QualityTable.load()
        return _active


def install(table: QualityTable) -> None:
    global _active
    with _lock:
        _active = table
    log.info("qualities table: %s (%d qualities)", table.source, len(table.names))


def care_provider_values(nihii: str, quality: str, *, person_ssin: str | None = None) -> dict:
    """``Origin/CareProvider`` for zeep, in the shape the quality's row says."""
    values: dict[str, Any] = {"Nihii": {"Quality": quality, "Value": {"_value_1": nihii}}}
    row = active().get(quality)
    shape = row.care_provider if row else "nihii"
    if shape == "nihii+person" and person_ssin:
        values["PhysicalPerson"] = {"Ssin": {"_value_1": person_ssin}}
    elif shape == "nihii+organization":
        values["Organization"] = {"Nihii": {"Quality": quality, "Value": {"_value_1": nihii}}}
    return values
