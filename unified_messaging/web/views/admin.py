"""Administration: licence, folders, users, the secure space, certificates (with their access lists
and establishments), mandates and the configuration check.

Every change goes through the secure space's store, whose rules decide (who may grant access to
a certificate, which mandate transitions exist...); a refusal comes back to the page with its
catalogue code, cause and remedy.  Nothing here shows a full SSIN, a password or key material.
"""
from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from unified_messaging.identifiers import mask_ssin, mask_ssins_in_text
from unified_messaging.invoicing.folders import REASON_SUFFIX, Folders
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import MandateState, Role, Service, Side
from unified_messaging.web.context import Page
from unified_messaging.web.permissions import Permission
from unified_messaging.web.routing import route

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 200
MANDATE_ACTIONS = ("accept-mandant", "accept-mandataire", "suspend", "resume", "stop")


def _day(page: Page, name: str, *, required: bool = False) -> date | None:
    text = page.field(name)
    if not text and not required:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refusal("SS-BAD-DATES", f"'{text[:20]}' is not a date (YYYY-MM-DD).") from None


# ------------------------------------------------------------------------------ overview, licence, folders

@route("/admin", permission=Permission.ADMINISTER)
def administration(page: Page) -> Response:
    store, config = page.services.securespace, page.services.config
    return page.render("admin/overview.html", licence_username=store.licence_username(),
                       config_licence=config.licence.username, space=store.space_or_none(),
                       users=len(store.users()), certificates=len(store.certificates()),
                       mandates=len(store.mandates()), upstream=config.upstream.mode, source=config.source,
                       mask_ssin=mask_ssin)


@route("/admin/licence", methods=("POST",), permission=Permission.ADMINISTER)
def licence_set(page: Page) -> Response:
    username = page.field("username")
    password = page.request.form.get("password") or ""
    if not username or not password:
        page.flash("error", page._("Give the licence's username and its password."))
    else:
        page.services.securespace.set_licence(username, password)
        page.flash("ok", page._("Licence {username} recorded (its password is stored encrypted).",
                                username=username))
    return page.redirect("administration")


@route("/admin/folders", permission=Permission.ADMINISTER)
def folders(page: Page) -> Response:
    config = page.services.config
    places: list[dict[str, Any]] = []
    if config.invoicing.enabled:
        invoicing = Folders(config.invoicing_root)
        for label, folder in (("Invoicing: to send", invoicing.to_send), ("Invoicing: received", invoicing.received),
                              ("Invoicing: archive", invoicing.archive),
                              ("Invoicing: probative values", invoicing.probative),
                              ("Invoicing: error", invoicing.error)):
            places.append(_place(label, folder))
    if config.folders.insurability:
        root = config.insurability_root
        for name in ("toQuery", "working", "queried", "error"):
            places.append(_place(f"Insurability: {name}", root / name))
    errors = []
    for place in places:
        if place["label"].endswith("error") and place["exists"]:
            invoicing = place["label"].startswith("Invoicing")
            errors.extend(_error_files(page, place["path"], journal=invoicing))
    return page.render("admin/folders.html", places=places, errors=errors[:MAX_LISTED_ERRORS],
                       more_errors=max(0, len(errors) - MAX_LISTED_ERRORS), jobs=config.batch.jobs,
                       data_folder=config.data_folder, journal=page.services.journal.describe())


def _place(label: str, folder: Path) -> dict[str, Any]:
    exists = folder.is_dir()
    count = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if exists else 0
    return {"label": label, "path": folder, "exists": exists, "count": count}


def _error_files(page: Page, folder: Path, *, journal: bool) -> list[dict[str, str]]:
    """The files of an error folder with their reason in the user's language (the ``.reason`` file itself is
    in English): from the message ids the invoicing journal kept, else recognised from its English lines."""
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(REASON_SUFFIX):
            continue
        reason_file = path.with_name(path.name + REASON_SUFFIX)
        reason = reason_file.read_text("utf-8", "replace")[:2000] if reason_file.exists() else ""
        stored = page.services.invoicing.reason_texts(path.name).get(reason.strip()) if journal else None
        reason = "\n".join(page._.reason(stored, reason))
        found.append({"folder": folder.parent.name + "/" + folder.name, "name": path.name,
                      "reason": mask_ssins_in_text(reason)})
    return found


# ------------------------------------------------------------------------------ users

@route("/admin/users", permission=Permission.ADMINISTER)
def users(page: Page) -> Response:
    return page.render("admin/users.html", users=page.services.securespace.users(), roles=list(Role))


@route("/admin/users", methods=("POST",), permission=Permission.ADMINISTER)
def user_add(page: Page) -> Response:
    form = page.request.form
    if (form.get("password") or "") != (form.get("again") or ""):
        page.flash("error", page._("The two passwords differ; the user was not created."))
        return page.redirect("users")
    user = page.services.securespace.add_user(page.field("login"), page.field("name"), page.field("ssin"),
                                              form.getlist("roles"), form.get("password") or "")
    page.flash("ok", page._("User {login} created.", login=user.login))
    return page.redirect("users")


@route("/admin/users/<login>/roles", methods=("POST",), permission=Permission.ADMINISTER)
def user_roles(page: Page, login: str) -> Response:
    roles = page.request.form.getlist("roles")
    if login == page.user.login and Role.ADMINISTRATOR.value not in roles:
        page.flash("error", page._("You cannot remove your own administrator role; ask another administrator."))
        return page.redirect("users")
    page.services.securespace.set_roles(login, roles)
    page.flash("ok", page._("Roles of {login} changed.", login=login))
    return page.redirect("users")


@route("/admin/users/<login>/password", methods=("POST",), permission=Permission.ADMINISTER)
def user_password(page: Page, login: str) -> Response:
    page.services.securespace.set_password(login, page.request.form.get("password") or "")
    page.mybox.sessions.end_user(login)
    page.flash("ok", page._("Password of {login} reset; their sessions were closed.", login=login))
    return page.redirect("users")


@route("/admin/users/<login>/remove", methods=("POST",), permission=Permission.ADMINISTER)
def user_remove(page: Page, login: str) -> Response:
    if login == page.user.login:
        page.flash("error", page._("You cannot remove yourself."))
        return page.redirect("users")
    page.services.securespace.remove_user(login)
    page.mybox.sessions.end_user(login)
    page.flash("ok", page._("User {login} removed.", login=login))
    return page.redirect("users")


# ------------------------------------------------------------------------------ the secure space

@route("/admin/securespace", methods=("GET", "POST"), permission=Permission.ADMINISTER)
def securespace(page: Page) -> Response:
    store = page.services.securespace
    space = store.space_or_none()
    if page.request.method == "POST":
        values = {key: page.field(key) for key in ("name", "owner_name", "owner_ssin", "responsible_name",
                                                   "responsible_ssin")}
        if space is None:
            store.create_space(**values)
            page.flash("ok", page._("Secure space created."))
        else:
            store.update_space(**values)
            page.flash("ok", page._("Secure space updated."))
        return page.redirect("securespace")
    return page.render("admin/securespace.html", space=space, mask_ssin=mask_ssin)


# ------------------------------------------------------------------------------ certificates

@route("/certificates", permission=Permission.CERTIFICATES)
def certificates(page: Page) -> Response:
    store, now = page.services.securespace, page.services.clock()
    rows = [{"record": c, "problem": rules.certificate_problem(c, now), "warning": rules.expiry_warning(c, now)}
            for c in store.certificates()]
    return page.render("admin/certificates.html", rows=rows, users=store.users())


@route("/certificates", methods=("POST",), permission=Permission.MANAGE_CERTIFICATES)
def certificate_add(page: Page) -> Response:
    upload = page.request.files.get("p12")
    if upload is None or not upload.filename:
        page.flash("error", page._("Choose the .p12 file of the certificate."))
        return page.redirect("certificates")
    record = page.services.securespace.add_certificate(
        upload.read(), page.request.form.get("password") or "",
        responsible_login=page.field("responsible") or page.user.login, label=page.field("label") or None,
        nihii11=page.field("nihii") or None, trusted_ca=page.services.trusted_ca)
    page.flash("ok", page._("Certificate #{number} added: {holder}, valid until {day}.", number=record.id,
                            holder=record.holder_name or record.identifier_type,
                            day=f"{record.not_after:%Y-%m-%d}"))
    return page.redirect("certificate", certificate_id=record.id)


@route("/certificates/<int:certificate_id>", permission=Permission.CERTIFICATES)
def certificate(page: Page, certificate_id: int) -> Response:
    store, now = page.services.securespace, page.services.clock()
    try:
        record = store.certificate(certificate_id)
    except Refusal as refusal:
        return page.render("refused.html", status=404, message=str(refusal))
    return page.render("admin/certificate.html", c=record, problem=rules.certificate_problem(record, now),
                       warning=rules.expiry_warning(record, now), access=store.access_list(certificate_id),
                       users=store.users(), establishments=store.establishments(certificate_id),
                       mask_ssin=mask_ssin, today=now.date().isoformat())


@route("/certificates/<int:certificate_id>/grant", methods=("POST",), permission=Permission.CERTIFICATES)
def certificate_grant(page: Page, certificate_id: int) -> Response:
    login = page.field("login")
    page.services.securespace.grant(certificate_id, login, by=page.user.login)
    page.flash("ok", page._("{login} may now use certificate #{number}.", login=login, number=certificate_id))
    return page.redirect("certificate", certificate_id=certificate_id)


@route("/certificates/<int:certificate_id>/revoke", methods=("POST",), permission=Permission.CERTIFICATES)
def certificate_revoke(page: Page, certificate_id: int) -> Response:
    login = page.field("login")
    page.services.securespace.revoke(certificate_id, login, by=page.user.login)
    page.flash("ok", page._("{login} may no longer use certificate #{number}.", login=login, number=certificate_id))
    return page.redirect("certificate", certificate_id=certificate_id)


@route("/certificates/<int:certificate_id>/remove", methods=("POST",), permission=Permission.MANAGE_CERTIFICATES)
def certificate_remove(page: Page, certificate_id: int) -> Response:
    page.services.securespace.remove_certificate(certificate_id)
    page.flash("ok", page._("Certificate #{number} removed.", number=certificate_id))
    return page.redirect("certificates")


@route("/certificates/<int:certificate_id>/establishments", methods=("POST",),
       permission=Permission.MANAGE_CERTIFICATES)
def establishment_add(page: Page, certificate_id: int) -> Response:
    page.services.securespace.add_establishment(
        certificate_id, page.field("number"), ssin=page.field("ssin") or None,
        valid_from=_day(page, "valid_from", required=True), valid_to=_day(page, "valid_to"))
    page.flash("ok", page._("Establishment added."))
    return page.redirect("certificate", certificate_id=certificate_id)


@route("/certificates/<int:certificate_id>/establishments/<int:establishment_id>/remove", methods=("POST",),
       permission=Permission.MANAGE_CERTIFICATES)
def establishment_remove(page: Page, certificate_id: int, establishment_id: int) -> Response:
    store = page.services.securespace
    if store.establishment(establishment_id).certificate_id != certificate_id:
        raise Refusal("SS-UNKNOWN-ESTABLISHMENT", f"Number {establishment_id}.")
    store.remove_establishment(establishment_id)
    page.flash("ok", page._("Establishment removed."))
    return page.redirect("certificate", certificate_id=certificate_id)


# ------------------------------------------------------------------------------ mandates

@route("/mandates", permission=Permission.MANDATES)
def mandates(page: Page) -> Response:
    return page.render("admin/mandates.html", mandates=page.services.securespace.mandates(),
                       services=list(Service), today=page.services.clock().date().isoformat())


@route("/mandates", methods=("POST",), permission=Permission.MANDATES)
def mandate_propose(page: Page) -> Response:
    mandate = page.services.securespace.propose_mandate(
        rules.parse_party(page.field("mandant")), rules.parse_party(page.field("mandataire")), page.field("service"),
        valid_from=_day(page, "valid_from", required=True), valid_to=_day(page, "valid_to"), by=page.user.login)
    page.flash("ok", page._("Mandate #{number} proposed; it becomes active once both parties accept it.",
                            number=mandate.id))
    return page.redirect("mandate", mandate_id=mandate.id)


@route("/mandates/<int:mandate_id>", permission=Permission.MANDATES)
def mandate(page: Page, mandate_id: int) -> Response:
    store = page.services.securespace
    try:
        found = store.mandate(mandate_id)
    except Refusal as refusal:
        return page.render("refused.html", status=404, message=str(refusal))
    return page.render("admin/mandate.html", m=found, history=store.mandate_history(mandate_id),
                       actions=_possible_actions(found.state), today=page.services.clock().date().isoformat())


def _possible_actions(state: MandateState) -> list[str]:
    possible = []
    for action in MANDATE_ACTIONS:
        verb, _, side = action.partition("-")
        try:
            rules.next_mandate_state(state, verb, Side(side) if side else None)
        except Refusal:
            continue
        possible.append(action)
    return possible


@route("/mandates/<int:mandate_id>/action", methods=("POST",), permission=Permission.MANDATES)
def mandate_action(page: Page, mandate_id: int) -> Response:
    store, by, action = page.services.securespace, page.user.login, page.field("action")
    note = page.field("note")[:500]
    if action == "accept-mandant":
        found = store.accept_mandate(mandate_id, Side.MANDANT, by=by)
    elif action == "accept-mandataire":
        found = store.accept_mandate(mandate_id, Side.MANDATAIRE, by=by)
    elif action == "suspend":
        found = store.suspend_mandate(mandate_id, by=by, note=note)
    elif action == "resume":
        found = store.resume_mandate(mandate_id, by=by, note=note)
    elif action == "stop":
        found = store.stop_mandate(mandate_id, by=by, note=note)
    else:
        raise Refusal("SS-MANDATE-TRANSITION", f"'{action[:30]}' is not an action.")
    page.flash("ok", page._("Mandate #{number} is now {state}.", number=mandate_id, state=page._(found.state.value)))
    return page.redirect("mandate", mandate_id=mandate_id)


@route("/mandates/<int:mandate_id>/transfer", methods=("POST",), permission=Permission.MANDATES)
def mandate_transfer(page: Page, mandate_id: int) -> Response:
    new = page.services.securespace.transfer_mandate(
        mandate_id, rules.parse_party(page.field("mandataire")), by=page.user.login,
        on=_day(page, "on") or page.services.clock().date())
    page.flash("ok", page._("Transfer proposed as mandate #{number}; the current mandate stays active until the "
                            "new mandataire accepts.", number=new.id))
    return page.redirect("mandate", mandate_id=new.id)


# ------------------------------------------------------------------------------ the configuration check

@route("/admin/check", methods=("GET", "POST"), permission=Permission.ADMINISTER)
def configuration_check(page: Page) -> Response:
    store = page.services.securespace
    results = None
    if page.request.method == "POST":
        chosen = [int(v) for v in page.request.form.getlist("certificate") if v.isdigit()]
        results = page.services.configuration_check(chosen, by=page.user.login)
        log.info("Mybox: configuration check run by %s", page.user.login)
    return page.render("admin/check.html", certificates=store.certificates(), results=results)
