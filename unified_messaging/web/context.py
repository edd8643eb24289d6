"""What a Mybox view works with: the gateway's stores (``MyboxServices``) and the request (``Page``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence
from urllib.parse import urlencode

from cryptography import x509
from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Request, Response

from unified_messaging.config import Config
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Journal
from unified_messaging.securespace.check import CertificateCheck
from unified_messaging.securespace.models import User
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.web.alerts import Alert, Certificates, StorageFaults, alerts
from unified_messaging.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator
from unified_messaging.web.permissions import Permission, allowed
from unified_messaging.web.sessions import Session

if TYPE_CHECKING:
    from unified_messaging.web.app import Mybox

log = logging.getLogger(__name__)

PREFIX = "/unified-messaging/mybox"


@dataclass
class MyboxServices:
    """The gateway's parts Mybox shows and changes; the gateway builds it (tests may build their own)."""

    config: Config
    journal: Journal
    invoicing: InvoicingStore
    securespace: SecureSpaceStore
    configuration_check: Callable[..., list[CertificateCheck]]  # (certificate ids, *, by=login)
    clock: Callable[[], datetime]
    trusted_ca: Sequence[x509.Certificate] | None = None  # [upstream] ehealth_ca: uploads must chain to it
    invoicing_root: Path | None = None
    certificates: Certificates = list  # (label, not after) of every certificate in use (the monitoring's)
    storage_faults: StorageFaults = dict  # interface -> the disk fault it has now (the monitoring's)
    extra: dict[str, Any] = field(default_factory=dict)


class Page:
    """One request as a view sees it: who asks, in which language, and how to answer."""

    def __init__(self, mybox: Mybox, request: Request, session: Session | None, user: User | None,
                 adapter: MapAdapter) -> None:
        self.mybox, self.request, self.session, self.user = mybox, request, session, user
        self.services: MyboxServices = mybox.services
        self.adapter, self.templates = adapter, mybox.templates
        self._ = Translator(user.language if user else preferred_language(request))
        self.extra_headers: list[tuple[str, str]] = []

    def can(self, permission: Permission | str) -> bool:
        return allowed(self.user, Permission(permission))

    def url(self, endpoint: str, _query: dict[str, Any] | None = None, **values: Any) -> str:
        url = self.adapter.build(endpoint, values)
        query = {k: v for k, v in (_query or {}).items() if v not in (None, "")}
        return url + ("?" + urlencode(query) if query else "")

    def here(self) -> str:
        """This page's address (path and query), where a refused form comes back to."""
        return self.request.script_root + self.request.full_path.rstrip("?")

    def with_page(self, number: int) -> str:
        """This list's address with the same filters, at page ``number``."""
        query = {k: v for k, v in self.request.args.items() if k != "page" and v}
        query["page"] = str(number)
        return self.request.script_root + self.request.path + "?" + urlencode(query)

    def flash(self, kind: str, text: str) -> None:
        if self.session is not None:
            self.mybox.sessions.add_flash(self.session, kind, text)

    def render(self, template: str, *, status: int = 200, **values: Any) -> Response:
        flashes = self.mybox.sessions.take_flashes(self.session) if self.session else []
        body = self.templates.get_template(template).render(
            page=self, _=self._, gettext=self._, ngettext=self._.ngettext, user=self.user, url=self.url,
            can=self.can, flashes=flashes, all_languages=LANGUAGES, alerts=self.alerts(),
            csrf=self.session.csrf if self.session else "", **values)
        return Response(body, status=status, content_type="text/html; charset=utf-8")

    def alerts(self) -> list[Alert]:
        """The banners every page shows this user (see :mod:`.alerts`)."""
        services = self.services
        return alerts(self.user, self._, certificates=services.certificates, storage_faults=services.storage_faults,
                      now=services.clock())

    def redirect(self, endpoint: str, _query: dict[str, Any] | None = None, **values: Any) -> Response:
        return self.redirect_to(self.url(endpoint, _query, **values))

    @staticmethod
    def redirect_to(location: str) -> Response:
        return Response("", status=303, headers={"Location": location})

    def back(self, default_endpoint: str = "dashboard", **values: Any) -> Response:
        """Back to the page the form names in ``next`` (a Mybox address only), else ``default_endpoint``."""
        target = safe_next(self.request.form.get("next"))
        return self.redirect_to(target) if target else self.redirect(default_endpoint, **values)

    def query(self, name: str) -> str:
        return (self.request.args.get(name) or "").strip()

    def field(self, name: str) -> str:
        return (self.request.form.get(name) or "").strip()


def safe_next(target: str | None) -> str | None:
    """``target`` when it is an address inside Mybox (no other host, no scheme), else ``None``."""
    if not target or not target.startswith(PREFIX + "/") and target != PREFIX:
        return None
    if "//" in target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


LANGUAGE_COOKIE = "mybox_language"


def chosen_language(request: Request) -> str | None:
    """The language picked on the login page (``?lang=``), if it is one of Mybox's."""
    choice = request.args.get("lang")
    return choice if choice in LANGUAGES else None


def preferred_language(request: Request) -> str:
    """Before login: the language picked on the login page (this request, or remembered in a cookie), else
    the browser's preferred language among Mybox's (Accept-Language), else English."""
    remembered = request.cookies.get(LANGUAGE_COOKIE)
    return (chosen_language(request) or (remembered if remembered in LANGUAGES else None)
            or request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE)
