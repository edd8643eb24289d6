"""Mybox: the WSGI application under ``/unified-messaging/mybox``, served by the gateway's waitress.

Every request goes through the same gate, before any view runs:

1. the session cookie is looked up (an unknown or expired one counts as none);
2. the route's permission is checked: an anonymous visitor is sent to the login page (a GET) or
   refused (anything else); a user without the role gets a 403 page naming the roles needed;
3. every POST must carry the session's CSRF token in ``csrf_token`` (the login form included:
   the login page opens an anonymous session for it);
4. a secure-space ``Refusal`` raised by a form's action comes back to the page as a message with
   its code, cause and remedy.

The one exception is the first-run page (``first_run``): while no user exists it creates the
first administrator, guarded by the token ``serve`` prints on its console instead of a session.

Pages are rendered on the server (Jinja2, autoescaped); the stylesheet, the one small script and
the charts are served from the package: nothing is fetched from elsewhere, and the
Content-Security-Policy says so to the browser.
"""
from __future__ import annotations

import logging
import mimetypes
from datetime import timedelta
from importlib import resources
from typing import Callable, Iterable

import jinja2
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from unified_messaging.identifiers import mask_ssins_in_text
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import User
from unified_messaging.web.views import ROUTE_MODULES
from unified_messaging.web.context import PREFIX, MyboxServices, Page, preferred_language
from unified_messaging.web.figures import DashboardFigures
from unified_messaging.web.first_run import PATH as FIRST_RUN_PATH, FirstRun, first_run
from unified_messaging.web.i18n import Translator
from unified_messaging.web.permissions import ALLOWED, allowed
from unified_messaging.web.routing import ROUTES, Route
from unified_messaging.web.sessions import LoginLimiter, Session, SessionStore, WebState

log = logging.getLogger(__name__)

COOKIE = "um_mybox"
STATIC_FILES = ("mybox.css", "mybox.js", "favicon.svg")

SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]


class Mybox:
    """The web UI; call it as a WSGI application for paths under ``PREFIX``."""

    def __init__(self, services: MyboxServices) -> None:
        web = services.config.web
        self.services = services
        self.pages = ROUTE_MODULES  # importing them registered their routes
        self.state = WebState.open(services.config.database.url, services.config.data_folder)  # every worker, node
        self.sessions = SessionStore(self.state, idle=timedelta(minutes=web.session_idle_minutes),
                                     lifetime=timedelta(hours=web.session_max_hours), clock=services.clock)
        self.limiter = LoginLimiter(self.state, max_failures=web.login_max_failures,
                                    lockout=timedelta(minutes=web.login_lockout_minutes), clock=services.clock)
        self.url_map = Map([Rule(r.path, endpoint=r.endpoint, methods=list(r.methods)) for r in ROUTES.values()]
                           + [Rule("/static/<name>", endpoint="static", methods=["GET"]),
                              Rule(FIRST_RUN_PATH, endpoint="first_run", methods=["GET", "POST"])],
                           strict_slashes=False)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("unified_messaging.web", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"])  # {% trans %} calls the page's gettext/ngettext (Page.render)
        self.templates.filters["masked"] = mask_ssins_in_text  # a national number can hide in a file name
        self.max_body = web.max_upload_bytes + 64 * 1024
        folder = resources.files("unified_messaging.web").joinpath("static")
        self.static = {name: folder.joinpath(name).read_bytes() for name in STATIC_FILES}
        self.first_run = FirstRun(services.securespace)  # the one-time page, while no user exists
        self.figures = DashboardFigures(services.clock)  # the dashboard's, kept where they cannot change

    def close(self) -> None:
        self.state.close()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        environ = dict(environ, SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + PREFIX, PATH_INFO=path[len(PREFIX):])
        request = Request(environ)
        request.max_content_length = self.max_body
        request.max_form_memory_size = self.max_body
        try:
            response = self.handle(request)
        except RequestEntityTooLarge:
            user = self._user(self.sessions.get(request.cookies.get(COOKIE)))
            _ = Translator(user.language if user else preferred_language(request))
            response = Response(_("The upload is larger than [web] max_upload_bytes ({limit} bytes): send a "
                                  "smaller file.", limit=self.services.config.web.max_upload_bytes) + "\n",
                                status=413, content_type="text/plain; charset=utf-8")
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response(environ, start_response)

    # ------------------------------------------------------------------ the gate

    def handle(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except HTTPException as exc:
            if isinstance(exc, NotFound) or exc.code == 405:
                return self._plain(exc.code or 404, "Nothing here. Mybox starts at " + PREFIX + "/")
            return exc.get_response(request.environ)
        if endpoint == "static":
            return self._static(values["name"])
        route = ROUTES.get(endpoint)
        session = self.sessions.get(request.cookies.get(COOKIE))
        user = self._user(session)
        page = Page(self, request, session, user, adapter)
        if endpoint == "first_run":  # the first-run page: guarded by its own token (see ``first_run``)
            response = first_run(self, page)
            response.headers.extend(page.extra_headers)
            return response
        if route.permission is not None:
            if user is None:
                if request.method == "GET":
                    return page.redirect("login", {"next": page.here() if request.path != "/" else None})
                return self._refuse(page, 403, page._("You are not logged in (or your session has ended): log in again."))
            if not allowed(user, route.permission):
                needed = ", ".join(sorted(r.value for r in ALLOWED[route.permission]))
                log.warning("Mybox: user %s (%s) refused %s %s", user.login,
                            ",".join(sorted(r.value for r in user.roles)), request.method, request.path)
                return self._refuse(page, 403, page._("This page needs one of these roles: {roles}. Ask an "
                                                      "administrator if you need it.", roles=needed))
        if request.method == "POST" and not self._csrf_ok(request, session):
            log.warning("Mybox: a form without a valid CSRF token was refused (%s)", request.path)
            return self._refuse(page, 403, page._("This form has expired or did not come from Mybox. Reload the "
                                                  "page and send it again."))
        try:
            response = route.view(page, **values)
        except Refusal as refusal:
            if request.method != "POST":
                raise
            page.flash("error", _refusal_text(page, refusal))
            response = page.back()
        response.headers.extend(page.extra_headers)
        return response

    def _user(self, session: Session | None) -> User | None:
        if session is None or session.login is None:
            return None
        try:
            return self.services.securespace.user(session.login)
        except Refusal:  # removed while logged in
            self.sessions.end(session)
            return None

    @staticmethod
    def _csrf_ok(request: Request, session: Session | None) -> bool:
        return session is not None and session.check_csrf(request.form.get("csrf_token"))

    def _refuse(self, page: Page, status: int, message: str) -> Response:
        return page.render("refused.html", status=status, message=message)

    @staticmethod
    def _plain(status: int, text: str) -> Response:
        return Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")

    def _static(self, name: str) -> Response:
        data = self.static.get(name)
        if data is None:
            return self._plain(404, "No such file.")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, content_type=kind + ("; charset=utf-8" if kind.startswith("text/") or
                                                    kind.endswith("javascript") else ""),
                        headers={"Cache-Control": "public, max-age=3600"})

    # ------------------------------------------------------------------ sessions, for the login views

    def set_session_cookie(self, page: Page, session: Session) -> None:
        secure = page.request.scheme == "https" or self.services.config.server.public_base_url.startswith("https:")
        attributes = f"{COOKIE}={session.token}; Path={PREFIX}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        page.extra_headers.append(("Set-Cookie", attributes))

    def clear_session_cookie(self, page: Page) -> None:
        page.extra_headers.append(("Set-Cookie", f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0"))


def _refusal_text(page: Page, refusal: Refusal) -> str:
    _ = page._
    detail = f" {refusal.detail}" if refusal.detail else ""
    return f"{refusal.code}: {_(refusal.entry.cause)}{detail} {_(refusal.remedy)}"


def route_table() -> list[Route]:
    """Every Mybox route (the security tests walk it)."""
    return list(ROUTES.values())
