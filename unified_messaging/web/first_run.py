"""The first run: while no user exists, a one-time page creates the first administrator.

Whoever reaches Mybox first could otherwise claim a fresh install, so the page asks for a token
only the person who started the gateway has: a random one, made when Mybox starts with no user,
that ``unified-messaging serve`` prints on its console (as Jupyter does) inside the page's address.
A wrong or missing token is refused (403); once a user exists (made here or with
``unified-messaging users add``) the page is gone: a GET goes to the login page, a POST gets 404.

The page is not in the route table (``routing.ROUTES``) on purpose: it needs no session and no
role, it is guarded by the token instead, and it exists only until the first user does.  Its
form still carries the anonymous session's CSRF token, like the login form.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import Role
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.web.context import PREFIX, Page

if TYPE_CHECKING:
    from unified_messaging.web.app import Mybox

log = logging.getLogger(__name__)

PATH = "/first-run"
TOKEN_ENV = "UM_FIRST_RUN_TOKEN"


class FirstRun:
    """The one-time token, while no user exists; thread-safe (two browsers may race for it)."""

    def __init__(self, store: SecureSpaceStore) -> None:
        self.store = store
        self.lock = threading.Lock()
        # every front worker of one supervisor shares the token it printed (serve --workers)
        shared = os.environ.get(TOKEN_ENV)
        self.token: str | None = None if store.users() else (shared or secrets.token_urlsafe(32))

    @property
    def open(self) -> bool:
        """Whether the page is still there: a token was made and no user exists yet."""
        if self.token is not None and self.store.users():
            self.token = None  # a user was made another way (the command line, another process)
        return self.token is not None

    def address(self, mybox_url: str) -> str | None:
        """The page's address with its token, for the console; None once a user exists."""
        return f"{mybox_url}{PATH}?token={self.token}" if self.open else None

    def accepts(self, given: str | None) -> bool:
        token = self.token
        return bool(token and given) and hmac.compare_digest(token.encode(), str(given).encode())


def first_run(mybox: Mybox, page: Page) -> Response:
    """GET shows the form (with the right token), POST creates the administrator and logs them in."""
    state, request = mybox.first_run, page.request
    if not state.open:
        if request.method == "GET":
            return page.redirect("login")
        return Response("Nothing here. Mybox starts at " + PREFIX + "/\n", status=404,
                        content_type="text/plain; charset=utf-8")
    given = request.values.get("token")
    if not state.accepts(given):
        log.warning("Mybox first run: a %s without the right token was refused (from %s)", request.method,
                    request.remote_addr or "unknown")
        return page.render("refused.html", status=403, message=page._(
            "This page needs the token that 'unified-messaging serve' printed on its console: open the address "
            "it printed."))
    if page.session is None:
        page.session = mybox.sessions.new()
        mybox.set_session_cookie(page, page.session)
    if request.method == "GET":
        return _form(page, given, error=None)
    if not page.session.check_csrf(request.form.get("csrf_token")):
        return page.render("refused.html", status=403, message=page._(
            "This form has expired or did not come from Mybox. Reload the page and send it again."))
    form = request.form
    if (form.get("password") or "") != (form.get("again") or ""):
        return _form(page, given, error=page._("The two passwords differ; the user was not created."))
    with state.lock:
        if not state.open:
            return page.redirect("login")
        try:
            user = state.store.add_user(page.field("login"), page.field("name"), page.field("ssin"),
                                        [Role.ADMINISTRATOR.value], form.get("password") or "")
        except Refusal as refusal:
            return _form(page, given, error=f"{refusal.code}: {page._(refusal.entry.cause)} {page._(refusal.remedy)}")
        state.token = None
    log.info("Mybox first run: administrator %s created from %s; the first-run page is gone", user.login,
             request.remote_addr or "unknown")
    page.session = mybox.sessions.renew(page.session, user.login)
    mybox.set_session_cookie(page, page.session)
    page.flash("ok", page._("Administrator {login} created. Add the other users under Administration.",
                            login=user.login))
    return page.redirect("dashboard")


def _form(page: Page, token: str, *, error: str | None) -> Response:
    return page.render("first_run.html", status=400 if error else 200, token=token, error=error,
                       login_name=page.field("login"), name=page.field("name"))
