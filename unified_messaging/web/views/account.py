"""Logging in and out, and the user's own settings (language, password)."""
from __future__ import annotations

import logging

from werkzeug.wrappers import Response

from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.web.context import LANGUAGE_COOKIE, PREFIX, Page, chosen_language, safe_next
from unified_messaging.web.i18n import LANGUAGES, Translator
from unified_messaging.web.permissions import Permission
from unified_messaging.web.routing import route

log = logging.getLogger(__name__)


@route("/login", methods=("GET", "POST"), permission=None)
def login(page: Page) -> Response:
    mybox = page.mybox
    if page.user is not None and page.request.method == "GET":
        return page.redirect("dashboard")
    if page.session is None:
        page.session = mybox.sessions.new()
        mybox.set_session_cookie(page, page.session)
    next_url = safe_next(page.request.values.get("next"))
    no_users = not page.services.securespace.users()
    if page.request.method == "GET":
        response = page.render("login.html", next_url=next_url, no_users=no_users, error=None, login_name="")
        if (language := chosen_language(page.request)) is not None:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, path=PREFIX, httponly=True,
                                samesite="Lax", secure=page.request.scheme == "https")
        return response
    login_name = page.field("login")[:128]
    address = page.request.remote_addr or "unknown"
    locked = mybox.limiter.locked_until(login_name, address)
    if locked is not None:
        return page.render("login.html", status=429, next_url=next_url, no_users=no_users, login_name=login_name,
                           error=page._("Too many wrong passwords: logging in is refused until {time}. An "
                                        "administrator can reset the password meanwhile.",
                                        time=page._.when(locked.isoformat())[11:]))
    try:
        user = page.services.securespace.authenticate(login_name, page.request.form.get("password") or "")
    except Refusal:
        known = any(u.login == login_name for u in page.services.securespace.users())
        mybox.limiter.failed(login_name, address, known_user=known)
        return page.render("login.html", status=401, next_url=next_url, no_users=no_users, login_name=login_name,
                           error=page._("The login or the password is wrong. Type the password again (it is "
                                        "case-sensitive); an administrator can reset it."))
    mybox.limiter.succeeded(login_name, address)
    page.session = mybox.sessions.renew(page.session, user.login)
    mybox.set_session_cookie(page, page.session)
    log.info("Mybox: %s logged in from %s", user.login, address)
    return page.redirect_to(next_url) if next_url else page.redirect("dashboard")


@route("/logout", methods=("POST",), permission=Permission.ACCOUNT)
def logout(page: Page) -> Response:
    page.mybox.sessions.end(page.session)
    page.mybox.clear_session_cookie(page)
    log.info("Mybox: %s logged out", page.user.login)
    return page.redirect("login")


@route("/account", permission=Permission.ACCOUNT)
def account(page: Page) -> Response:
    return page.render("account.html", languages=LANGUAGES)


@route("/account/language", methods=("POST",), permission=Permission.ACCOUNT)
def account_language(page: Page) -> Response:
    language = page.field("language")
    page.services.securespace.set_language(page.user.login, language)
    page.user = page.services.securespace.user(page.user.login)
    page._ = Translator(page.user.language)
    page.flash("ok", page._("Language changed."))
    return page.back("account")


@route("/account/password", methods=("POST",), permission=Permission.ACCOUNT)
def account_password(page: Page) -> Response:
    store = page.services.securespace
    form = page.request.form
    try:
        store.authenticate(page.user.login, form.get("current") or "")
    except Refusal:
        page.flash("error", page._("Your current password is wrong; the password was not changed."))
        return page.redirect("account")
    if (form.get("new") or "") != (form.get("again") or ""):
        page.flash("error", page._("The two new passwords differ; the password was not changed."))
        return page.redirect("account")
    store.set_password(page.user.login, form.get("new") or "")
    page.mybox.sessions.end_user(page.user.login)
    page.session = page.mybox.sessions.new(page.user.login)
    page.mybox.set_session_cookie(page, page.session)
    page.flash("ok", page._("Password changed. Your other sessions were closed."))
    return page.redirect("account")
