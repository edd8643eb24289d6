"""What an operator must know now, on every Mybox page: a certificate that has expired or expires
within 30 days, and a folder interface that cannot write to disk (the data folder full or read-only).

The figures are the monitoring's (health, metrics and the daily log line say the same): the gateway
gives Mybox the same sources.  Shown to the users who can act on them: certificates to those who see
the certificates page, storage faults to those who see the invoicing files or administer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from unified_messaging.monitoring.expiry import expiries
from unified_messaging.securespace.models import User
from unified_messaging.web.i18n import Translator
from unified_messaging.web.permissions import Permission, allowed

log = logging.getLogger(__name__)

Certificates = Callable[[], list[tuple[str, datetime]]]
StorageFaults = Callable[[], dict[str, str]]


@dataclass(frozen=True)
class Alert:
    kind: str  # "expired", "expiring" or "storage"
    text: str


def alerts(user: User | None, _: Translator, *, certificates: Certificates, storage_faults: StorageFaults,
           now: datetime) -> list[Alert]:
    """The alerts for ``user``, in their language; never fails (a page must still show)."""
    if user is None:
        return []
    found: list[Alert] = []
    try:
        if allowed(user, Permission.CERTIFICATES):
            found += _certificate_alerts(_, certificates(), now)
        if allowed(user, Permission.INVOICING) or allowed(user, Permission.ADMINISTER):
            found += _storage_alerts(_, storage_faults())
    except Exception:  # an alert that cannot be read must not take the page down
        log.exception("Mybox: the alerts could not be read")
    return found


def _certificate_alerts(_: Translator, certificates: list[tuple[str, datetime]], now: datetime) -> list[Alert]:
    found = []
    for e in expiries(certificates, now):
        name = _("the gateway's own certificate") if e.label == "gateway" else e.label
        if e.expired:
            found.append(Alert("expired", _(
                "Certificate {name} expired on {date}: calls made with it are refused. Renew it with eHealth "
                "and upload the new keystore.", name=name, date=f"{e.not_after:%Y-%m-%d}")))
        else:
            found.append(Alert("expiring", _(
                "Certificate {name} expires on {date} (in {days} day(s)): renew it with eHealth and upload the "
                "new keystore before then.", name=name, date=f"{e.not_after:%Y-%m-%d}", days=int(e.days))))
    return found


def _storage_alerts(_: Translator, faults: dict[str, str]) -> list[Alert]:
    found = []
    for name, problem in sorted(faults.items()):
        interface = {"invoicing": _("The invoicing folders"), "toQuery": _("The toQuery folders")}.get(name, name)
        found.append(Alert("storage", _(
            "{interface} cannot write to disk ({problem}). Nothing is lost: the files wait and are taken again "
            "by themselves once there is space or the permissions are fixed.", interface=interface,
            problem=problem)))
    return found
