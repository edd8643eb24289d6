"""Mybox's gate, through a real gateway over HTTP: every page and action refuses an anonymous
visitor and a user without the role, every form post needs the session's CSRF token, and no page,
download or log line shows a full SSIN, a password or key material.

The walks are derived from ``route_table()``: a route added later is walked too, and the test
fails until it is given path values and a form to try (``VALUES``, ``FORMS``).  A refused request
must also change nothing: both SQLite files, ``toSend/`` and the simulator's counters are compared
before and after, and the last test posts every form with the right token to show that each of
them *would* have changed something.

One piece because its tests share one module-scoped gateway (``world``) whose log collector and
SQLite snapshots span the whole module, and the last test must run after every refusal above;
the sessions and the login limits, which need none of that, are in ``test_web_sessions.py``.
"""
from __future__ import annotations

import base64
import logging
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.invoicing_support import drop_file, wait_for
from tests.web_support import PASSWORDS, USERS, MyboxStack, csrf_of, login, post_form, start_mybox
from unified_messaging.identifiers import ssin_problem
from unified_messaging.insurability.batch import BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.simulator.devpki import EXPIRED_SSIN, GROUP_NUMBER, LAB_NIHII, NURSE_SSIN
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.secrets import master_key
from unified_messaging.securespace.models import Role
from unified_messaging.simulator.platform import demo_pki
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.web.app import route_table
from unified_messaging.web.context import PREFIX
from unified_messaging.web.permissions import ALLOWED
from unified_messaging.web.routing import Route

TODAY = date.today()
PATIENT = {p.scenario: p for p in TEST_PATIENTS}
INSURED = PATIENT["insured"]
LAB = CareProvider(LAB_NIHII, "labo")

# People whose national numbers Mybox holds (beside the three users of web_support).
VICTIM = ("victim", "Vic Tim", PATIENT["hospitalized"].ssin, "Victim-password-42")
OWNER_SSIN, RESPONSIBLE_SSIN = PATIENT["medical_house"].ssin, PATIENT["preferential_rate"].ssin
ESTABLISHMENT_SSIN = PATIENT["third_party_payment"].ssin
MANDANT_SSIN = PATIENT["deceased"].ssin
BATCH_SSIN = PATIENT["several_insurers"].ssin  # in a batch input file's name
FILE_NAME_SSIN = PATIENT["change_of_mutuality"].ssin  # in an invoicing file's name: shown masked
LICENCE = ("lab-software-licence", "Licence-secret-pw-77")
XSS_NAME = "<img src=x onerror=alert(1)>.txt"

ROLES_OF = {login_: frozenset(Role(r) for r in roles) for login_, (_, _, roles) in USERS.items()}
LEAST_FIRST = ("nurse", "office", "admin")


# ------------------------------------------------------------------------------ logs of the whole module

class Collector(logging.Handler):
    """Every log line of the module (gateway threads included), formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


# ------------------------------------------------------------------------------ the world Mybox shows

@dataclass
class World:
    stack: MyboxStack
    pki: object
    sessions: dict[str, requests.Session]
    spares: dict[str, requests.Session]  # a second session per user: "another session's token"
    ids: dict[str, int] = field(default_factory=dict)
    log: Collector = field(default_factory=Collector)

    @property
    def gateway(self):
        return self.stack.gateway

    def url(self, path: str) -> str:
        return self.stack.url(path)

    def ssins(self) -> set[str]:
        """Every full national number the pages must never show."""
        found = {ssin for _, ssin, _ in USERS.values()} | {VICTIM[2], OWNER_SSIN, RESPONSIBLE_SSIN,
                                                           ESTABLISHMENT_SSIN, MANDANT_SSIN, BATCH_SSIN, NURSE_SSIN,
                                                           EXPIRED_SSIN}
        found |= {p.ssin for p in TEST_PATIENTS if p.ssin and p.scenario in ("insured", "unknown", "deceased")}
        return found

    def secrets(self) -> set[str]:
        """Passwords, keys and key material, as text."""
        found = set(PASSWORDS.values()) | {VICTIM[3], LICENCE[1], self.pki.password,
                                           self.gateway.config.licence.password,
                                           master_key(self.stack.data, create=False).decode()}
        found |= set(self.stack.passwords.values())
        for name in ("nursing_group", "nurse", "lab"):
            raw = self.pki.keystores[name].path.read_bytes()
            encoded = base64.b64encode(raw).decode()
            found |= {encoded[:64], encoded[len(encoded) // 2:len(encoded) // 2 + 64], raw.hex()[:64]}
        return found | {"PRIVATE KEY"}


def _write_job(folder: Path) -> Path:
    props = {"mycarenet.connection": "SSO", "input.folder": "in", "output.folder": "out", "archive.folder": "archive",
             "error.folder": "error", "careprovider.nihii": LAB_NIHII, "careprovider.quality": "labo"}
    for key in ("input.folder", "output.folder", "archive.folder", "error.folder"):
        (folder / props[key]).mkdir(parents=True, exist_ok=True)
    (folder / "batch.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="latin-1")
    return folder / "batch.properties"


def _status_of(world: World, name: str) -> str | None:
    row = next((f for f in world.gateway.mybox.services.invoicing.files() if f["name"] == name), None)
    return row and (row["status"] if row["state"] != "error" else "ERROR")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    collector = Collector()
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(collector)
    root_logger.setLevel(logging.INFO)  # the gateway's default [logging] level
    folder = tmp_path_factory.mktemp("mybox-security")
    # the licence recorded through Mybox below is in force for every call (#18.1): the simulator issued it
    stack = start_mybox(folder, licence={"username": LICENCE[0], "password": LICENCE[1]})
    try:
        to_send = stack.invoicing_root / "toSend"
        drop_file(to_send, "GOOD.txt", build_sending(zone_204="20240301000001"))
        drop_file(to_send, "BLOCK.txt", build_sending(zone_204="20240301000003", nomenclature="9999991"))
        drop_file(to_send, f"BAD-{FILE_NAME_SSIN}.txt", b"%PDF-1.4 not an eFact" + b" " * 400)
        drop_file(to_send, XSS_NAME, b"%PDF-1.4 not an eFact either" + b" " * 400)

        admin = login(stack, "admin")
        world = World(stack, demo_pki(stack.data), {u: login(stack, u) for u in USERS},
                      {u: login(stack, u) for u in USERS}, log=collector)
        world.sessions["admin"] = admin

        def form(page: str, action: str, data: dict, files: dict | None = None) -> requests.Response:
            answer = post_form(admin, stack, page, action, data, files)
            assert answer.status_code == 200 and "flash error" not in answer.text, answer.text[:3000]
            return answer

        login_, name, ssin, password = VICTIM
        form("/admin/users", "/admin/users",
             {"login": login_, "name": name, "ssin": ssin, "roles": ["clinical"], "password": password, "again": password})
        form("/admin/securespace", "/admin/securespace",
             {"name": "Lab space", "owner_name": "Olga Owner", "owner_ssin": OWNER_SSIN,
              "responsible_name": "Rita Responsible", "responsible_ssin": RESPONSIBLE_SSIN})
        form("/admin", "/admin/licence", {"username": LICENCE[0], "password": LICENCE[1]})
        for keystore in ("nursing_group", "nurse"):
            form("/certificates", "/certificates", {"password": world.pki.password, "label": keystore},
                 {"p12": (f"{keystore}.p12", world.pki.keystores[keystore].path.read_bytes())})
        group, nurse = world.gateway.securespace.certificates()
        form(f"/certificates/{group.id}", f"/certificates/{group.id}/establishments",
             {"number": LAB_NIHII, "ssin": ESTABLISHMENT_SSIN, "valid_from": TODAY.isoformat()})
        form(f"/certificates/{group.id}", f"/certificates/{group.id}/grant", {"login": "nurse"})
        form("/mandates", "/mandates", {"mandant": f"NIHII={LAB_NIHII}", "mandataire": f"NIHII={GROUP_NUMBER}",
                                        "service": "INVOICING", "valid_from": TODAY.isoformat()})
        form("/mandates", "/mandates", {"mandant": f"SSIN={MANDANT_SSIN}", "mandataire": f"NIHII={GROUP_NUMBER}",
                                        "service": "INSURABILITY", "valid_from": TODAY.isoformat()})
        proposed, active = world.gateway.securespace.mandates()
        for side in ("accept-mandant", "accept-mandataire"):
            form(f"/mandates/{active.id}", f"/mandates/{active.id}/action", {"action": side})

        service = world.gateway.insurability
        for patient, reference in ((INSURED, f"desk {INSURED.ssin}"), (PATIENT["unknown"], None)):
            service.consult(InsurabilityQuery(LAB, TODAY, TODAY, ssin=patient.ssin, reference=reference),
                            interface="soap")
        job = load_batch_job(_write_job(folder / "batch"))
        (job.input_folder / f"lot-{BATCH_SSIN}.csv").write_text(
            f"ssin;period_start;period_end;reference\n{PATIENT['deceased'].ssin};{TODAY};;B-1\n")
        assert BatchRunner(job, service, journal=world.gateway.journal).run().files[0].status == "done"

        wait_for(lambda: _status_of(world, "GOOD.txt") == "DONE" and _status_of(world, "BLOCK.txt") == "NOK"
                 and _status_of(world, XSS_NAME) == "ERROR" and _status_of(world, f"BAD-{FILE_NAME_SSIN}.txt")
                 == "ERROR", timeout=60, what="the invoicing files' answers")
        invoicing = world.gateway.mybox.services.invoicing
        nok = next(f for f in invoicing.files() if f["name"] == "BLOCK.txt")
        establishment, = world.gateway.securespace.establishments()
        world.ids = {"file_id": nok["id"], "feedback_id": invoicing.feedback_for(nok["id"])[-1]["id"],
                     "tack_id": invoicing.tacks_for(nok["id"])[0]["id"], "certificate_id": group.id,
                     "removable_certificate_id": nurse.id, "establishment_id": establishment.id,
                     "mandate_id": proposed.id, "active_mandate_id": active.id,
                     "consultation_id": world.gateway.journal.consultations(limit=1)[0]["id"]}
        yield world
    finally:
        stack.gateway.stop()
        root_logger.removeHandler(collector)
        root_logger.setLevel(old_level)


# ------------------------------------------------------------------------------ routes, values and forms

ROUTES = route_table()
GET_ROUTES = [r for r in ROUTES if "GET" in r.methods]
POST_ROUTES = [r for r in ROUTES if "POST" in r.methods]
ROUTE_METHODS = [(r, m) for r in ROUTES for m in r.methods]
_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")

# Per route, the path values to use instead of the default ones (a transfer needs an active mandate...).
VALUES: dict[str, Callable[[World], dict]] = {
    "certificate_remove": lambda w: {"certificate_id": w.ids["removable_certificate_id"]},
    "mandate_transfer": lambda w: {"mandate_id": w.ids["active_mandate_id"]},
    "user_roles": lambda w: {"login": VICTIM[0]},
    "user_password": lambda w: {"login": VICTIM[0]},
    "user_remove": lambda w: {"login": VICTIM[0]},
}


def path_of(world: World, route: Route, **values) -> str:
    chosen = {**world.ids, "login": VICTIM[0], **VALUES.get(route.endpoint, lambda w: {})(world), **values}
    return _PARAMETER.sub(lambda m: str(chosen[m.group(1)]), route.path)


def every_path_of(world: World, route: Route) -> list[str]:
    """Every concrete address of a GET route over the data the world holds (all files, all feedback...)."""
    names = frozenset(_PARAMETER.findall(route.path))
    invoicing, store = world.gateway.mybox.services.invoicing, world.gateway.securespace
    files = [f["id"] for f in invoicing.files()]
    choices = {
        frozenset(): [{}],
        frozenset({"file_id"}): [{"file_id": f} for f in files],
        frozenset({"file_id", "feedback_id"}): [{"file_id": f, "feedback_id": m["id"]}
                                                for f in files for m in invoicing.feedback_for(f)],
        frozenset({"file_id", "tack_id"}): [{"file_id": f, "tack_id": t["id"]}
                                            for f in files for t in invoicing.tacks_for(f)],
        frozenset({"certificate_id"}): [{"certificate_id": c.id} for c in store.certificates()],
        frozenset({"mandate_id"}): [{"mandate_id": m.id} for m in store.mandates()],
        frozenset({"consultation_id"}): [{"consultation_id": c["id"]}
                                         for c in world.gateway.journal.consultations(limit=1000)],
    }
    assert names in choices, f"{route.endpoint}: give the walk values for {sorted(names)}"
    return [_PARAMETER.sub(lambda m: str(values[m.group(1)]), route.path) for values in choices[names]]


def _p12(world: World, name: str = "lab") -> dict:
    return {"p12": (f"{name}.p12", world.pki.keystores[name].path.read_bytes())}


# Per POST endpoint: (form, files) that would change something if the gate let it through.
FORMS: dict[str, Callable[[World, str], tuple[dict, dict | None]]] = {
    "login": lambda w, u: ({"login": "admin", "password": w.stack.passwords["admin"]}, None),
    "logout": lambda w, u: ({}, None),
    "account_language": lambda w, u: ({"language": "fr"}, None),
    "account_password": lambda w, u: ({"current": w.stack.passwords[u], "new": "Changed-password-99",
                                       "again": "Changed-password-99"}, None),
    "licence_set": lambda w, u: ({"username": "another-licence", "password": "Another-licence-pw-1"}, None),
    "user_add": lambda w, u: ({"login": "intruder", "name": "In Truder", "ssin": PATIENT["medical_house"].ssin,
                               "roles": ["administrator"], "password": "Intruder-pw-123", "again": "Intruder-pw-123"},
                              None),
    "user_roles": lambda w, u: ({"roles": ["administrator"]}, None),
    "user_password": lambda w, u: ({"password": "Victim-reset-pw-1"}, None),
    "user_remove": lambda w, u: ({}, None),
    "securespace": lambda w, u: ({"name": "Hijacked space"}, None),
    "certificate_add": lambda w, u: ({"password": w.pki.password, "label": "lab"}, _p12(w)),
    "certificate_grant": lambda w, u: ({"login": "office"}, None),
    "certificate_revoke": lambda w, u: ({"login": "nurse"}, None),
    "certificate_remove": lambda w, u: ({}, None),
    "establishment_add": lambda w, u: ({"number": GROUP_NUMBER, "valid_from": TODAY.isoformat()}, None),
    "establishment_remove": lambda w, u: ({}, None),
    "mandate_propose": lambda w, u: ({"mandant": f"NIHII={LAB_NIHII}", "mandataire": f"NIHII={GROUP_NUMBER}",
                                      "service": "INSURABILITY", "valid_from": TODAY.isoformat()}, None),
    "mandate_action": lambda w, u: ({"action": "accept-mandant"}, None),
    "mandate_transfer": lambda w, u: ({"mandataire": "NIHII=19876561004", "on": TODAY.isoformat()}, None),
    "configuration_check": lambda w, u: ({}, None),
    "invoicing_resend": lambda w, u: ({}, {"corrected": ("FIXED.txt", build_sending(zone_204="20240301000099"))}),
}


def allowed_users(route: Route) -> list[str]:
    if route.permission is None:
        return list(LEAST_FIRST)
    return [u for u in LEAST_FIRST if ROLES_OF[u] & ALLOWED[route.permission]]


def lacking_users(route: Route) -> list[str]:
    return [u for u in LEAST_FIRST if u not in allowed_users(route)]


def snapshot(world: World) -> dict:
    """What a refused request must not change: both SQLite files, toSend/, the upstream calls."""
    state: dict = {}
    for name, path in (("securespace", world.stack.data / "securespace.sqlite"),
                       ("journal", world.gateway.config.journal_path)):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                state[f"{name}.{table}"] = sorted(map(repr, db.execute(f"SELECT * FROM {table}")))
    state["toSend"] = sorted(p.name for p in (world.stack.invoicing_root / "toSend").iterdir())
    state["upstream"] = {k: v for k, v in world.gateway.simulator.counters.items()
                         if k.startswith(("sts.", "genericinsurability."))}
    return state


def changes(before: dict, after: dict) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def token_of(session: requests.Session, world: World) -> str:
    return csrf_of(session.get(world.url("/account")).text)


def anonymous_token(world: World) -> tuple[requests.Session, str]:
    session = requests.Session()
    return session, csrf_of(session.get(world.url("/login")).text)


def send(session: requests.Session, world: World, route: Route, method: str, token: str | None,
         user: str = "admin") -> requests.Response:
    url = world.url(path_of(world, route))
    if method == "GET":
        return session.get(url, allow_redirects=False)
    data, files = FORMS[route.endpoint](world, user)
    if token is not None:
        data = {**data, "csrf_token": token}
    return session.post(url, data=data, files=files, allow_redirects=False)


def still_logged_in(session: requests.Session, world: World) -> bool:
    return session.get(world.url("/account"), allow_redirects=False).status_code == 200


# ------------------------------------------------------------------------------ every route is covered

def test_every_route_has_values_and_a_form_to_try():
    assert ROUTES, "route_table() is empty"
    missing = [r.endpoint for r in POST_ROUTES if r.endpoint not in FORMS]
    assert not missing, f"give these new actions a form in FORMS: {missing}"
    assert not set(FORMS) - {r.endpoint for r in POST_ROUTES}, "FORMS names an action that is gone"
    assert all(r.permission is not None for r in ROUTES if r.endpoint != "login"), \
        "only the login page may be reached without logging in"
    known = {"file_id", "feedback_id", "tack_id", "certificate_id", "establishment_id", "mandate_id", "login",
             "consultation_id"}
    for route in ROUTES:
        assert set(_PARAMETER.findall(route.path)) <= known, f"{route.endpoint}: new path values to fill"


# ------------------------------------------------------------------------------ the gate, route by route

@pytest.mark.parametrize("route, method", ROUTE_METHODS, ids=[f"{r.endpoint}-{m}" for r, m in ROUTE_METHODS])
def test_an_anonymous_visitor_is_sent_to_log_in_or_refused(world, route, method):
    session, token = anonymous_token(world)  # a valid anonymous token: the refusal is for being anonymous
    before = snapshot(world)
    answer = send(session, world, route, method, token)
    if route.permission is None and method == "GET":
        assert answer.status_code == 200 and 'id="login-submit"' in answer.text
    elif route.permission is None:  # the login form itself: anonymous by nature, the token is all it needs
        assert answer.status_code == 303
        return
    elif method == "GET":
        assert answer.status_code == 303, answer.text[:500]
        location = urlsplit(answer.headers["Location"])
        assert location.netloc == "" and location.path == PREFIX + "/login"
        if route.path != "/":
            assert parse_qs(location.query).get("next"), answer.headers["Location"]
    else:
        assert answer.status_code == 403, answer.text[:500]
        assert "log in again" in answer.text
    assert changes(before, snapshot(world)) == []


@pytest.mark.parametrize("route, method", [(r, m) for r, m in ROUTE_METHODS if lacking_users(r)],
                         ids=[f"{r.endpoint}-{m}" for r, m in ROUTE_METHODS if lacking_users(r)])
def test_a_user_without_the_role_is_refused(world, route, method):
    for user in lacking_users(route):
        session = world.sessions[user]
        token = token_of(session, world)  # a valid token: the refusal is for the role
        before = snapshot(world)
        answer = send(session, world, route, method, token, user)
        assert answer.status_code == 403, (user, answer.status_code, answer.text[:500])
        roles = sorted(r.value for r in ALLOWED[route.permission])
        assert f"needs one of these roles: {', '.join(roles)}" in answer.text
        assert changes(before, snapshot(world)) == [], user
        assert still_logged_in(session, world), user


CSRF_CASES = ("no token", "a wrong token", "another session's token")


@pytest.mark.parametrize("route", POST_ROUTES, ids=[r.endpoint for r in POST_ROUTES])
def test_a_form_without_the_sessions_csrf_token_is_refused(world, route):
    user = allowed_users(route)[0]
    for case in CSRF_CASES:
        if route.permission is None:  # the login form: an anonymous session's token
            session, own = anonymous_token(world)
            other = anonymous_token(world)[1]
        else:
            session, own, other = world.sessions[user], token_of(world.sessions[user], world), \
                token_of(world.spares[user], world)
        token = {"no token": None, "a wrong token": own[:-4] + "AAAA", "another session's token": other}[case]
        assert token != own
        before = snapshot(world)
        answer = send(session, world, route, "POST", token, user)
        assert answer.status_code == 403, (case, answer.status_code, answer.text[:500])
        assert "did not come from Mybox" in answer.text, case
        assert changes(before, snapshot(world)) == [], case
        if route.permission is None:
            assert not still_logged_in(session, world), case
        else:
            assert still_logged_in(session, world), case


# ------------------------------------------------------------------------------ nothing secret, anywhere

class Links(HTMLParser):
    """Every address an HTML page makes the browser fetch or follow."""

    ATTRIBUTES = {"src", "href", "action", "formaction", "srcset", "poster", "data", "background", "cite"}

    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []
        self.refresh: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name in self.ATTRIBUTES and value:
                self.addresses.append(value.strip())
        if tag == "meta" and dict(attrs).get("http-equiv", "").lower() == "refresh":
            self.refresh.append(dict(attrs).get("content", ""))


def assert_nothing_secret(world: World, where: str, text: str, *, page: bool = True) -> None:
    shown = [s for s in world.ssins() if s in text]
    assert not shown, f"{where} shows full national numbers: {shown}"
    if page:  # any valid national number at all (a download is the lab's own file, byte for byte)
        digits = re.sub(r"[0-9a-f]{32,}", "", text)  # without the certificates' fingerprints
        found = [n for n in re.findall(r"(?<![0-9])[0-9]{11}(?![0-9])", digits) if ssin_problem(n) is None]
        assert not found, f"{where} shows national numbers: {found}"
    leaked = [s[:12] + "…" for s in world.secrets() if s in text]
    assert not leaked, f"{where} shows secrets: {leaked}"


def assert_safe_headers(answer: requests.Response, where: str) -> None:
    headers = answer.headers
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert "no-store" in headers.get("Cache-Control", ""), where
    policy = dict((part.split()[0], part.split()[1:]) for part in headers["Content-Security-Policy"].split(";")
                  if part.strip())
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], where
    for directive, sources in policy.items():
        for source in sources:
            assert source in ("'self'", "'none'", "data:"), f"{where}: {directive} allows {source}"


def assert_only_own_addresses(world: World, where: str, html: str) -> None:
    parser = Links()
    parser.feed(html)
    own = urlsplit(world.stack.base).netloc
    for address in parser.addresses:
        target = urlsplit(address)
        assert target.scheme in ("", "http", "https") and target.netloc in ("", own), f"{where} refers to {address}"
        assert target.netloc or address.startswith((PREFIX + "/", "#", "?")), f"{where}: {address} is outside Mybox"
    assert not parser.refresh, where


@pytest.mark.parametrize("route", GET_ROUTES, ids=[r.endpoint for r in GET_ROUTES])
def test_no_page_or_download_shows_a_secret_or_anything_external(world, route):
    session = world.sessions["admin"] if route.permission is not None else requests.Session()
    addresses = every_path_of(world, route)
    assert addresses, f"{route.endpoint}: nothing to show in the walk"
    for path in addresses:
        answer = session.get(world.url(path), allow_redirects=False)
        where = f"{route.endpoint} {path}"
        assert answer.status_code in (200, 404), (where, answer.status_code, answer.text[:300])
        assert_safe_headers(answer, where)
        text = answer.content.decode("utf-8" if "utf-8" in answer.headers["Content-Type"] else "latin-1")
        html = answer.headers["Content-Type"].startswith("text/html")
        assert_nothing_secret(world, where, text, page=html)
        if html:
            assert answer.status_code == 200, where
            assert_only_own_addresses(world, where, text)
            assert "<img src=x" not in text, f"{where} does not escape a file name"


def test_the_configuration_checks_results_show_no_secret(world):
    answer = post_form(world.sessions["admin"], world.stack, "/admin/check", "/admin/check", {})
    assert answer.status_code == 200 and 'class="card check-result"' in answer.text
    assert_nothing_secret(world, "configuration check results", answer.text)
    assert_safe_headers(answer, "configuration check results")


def test_the_static_files_fetch_nothing_from_elsewhere(world):
    for name in ("mybox.css", "mybox.js", "favicon.svg"):
        answer = requests.get(world.url(f"/static/{name}"))
        assert answer.status_code == 200 and answer.headers["X-Content-Type-Options"] == "nosniff"
        text = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", answer.text)
        assert not re.search(r"https?://|@import|//[a-z0-9.-]+\.[a-z]{2,}/", text), name
    assert requests.get(world.url("/static/..%2Fapp.py")).status_code == 404


def test_the_pages_escape_what_users_type(world):
    name = '<script>alert("x")</script>'
    answer = post_form(world.sessions["admin"], world.stack, "/admin/users", "/admin/users",
                       {"login": "escaped", "name": name, "ssin": PATIENT["insured"].ssin, "roles": ["clinical"],
                        "password": "Escaped-pw-1234", "again": "Escaped-pw-1234"})
    assert answer.status_code == 200
    assert name not in answer.text and "&lt;script&gt;alert(" in answer.text
    for path in ("/certificates", f"/certificates/{world.ids['certificate_id']}"):
        page = world.sessions["admin"].get(world.url(path)).text
        assert name not in page and "&lt;script&gt;" in page


def test_a_national_number_in_a_file_name_is_masked_on_every_page(world):
    for path in ("/admin/folders", "/invoicing"):
        text = world.sessions["admin"].get(world.url(path)).text
        assert FILE_NAME_SSIN[:6] + "*****" in text, path
        assert FILE_NAME_SSIN not in text, f"{path} shows the full SSIN of a file's name"


def test_searching_consultations_by_a_full_ssin_finds_the_patient(world):
    page = world.sessions["nurse"].get(world.url("/insurability"), params={"q": INSURED.ssin}).text
    assert "1 consultation(s)" in page and INSURED.ssin[:6] + "*****" in page


def test_searching_consultations_by_a_full_ssin_does_not_show_it(world):
    answer = world.sessions["nurse"].get(world.url("/insurability"), params={"q": INSURED.ssin})
    shown = [answer.text[max(0, i - 60):i + 20] for i in (m.start() for m in re.finditer(INSURED.ssin, answer.text))]
    assert not shown, shown


def test_the_logs_hold_no_national_number_and_no_secret(world):
    # Passwords went through the forms (users, licence, .p12), patients through consultations and a batch.
    text = "\n".join(world.log.lines)
    assert "Mybox: admin logged in" in text  # the gateway's log lines were collected
    shown = [s for s in world.ssins() if s in text]
    assert not shown, [line for line in world.log.lines if any(s in line for s in shown)][:5]
    leaked = [s[:12] for s in world.secrets() if s in text]
    assert not leaked, leaked


def test_the_logs_mask_a_national_number_in_a_file_name(world):
    assert not [line for line in world.log.lines if FILE_NAME_SSIN in line]


# ------------------------------------------------------------------------------ sessions and cookies

def _cookie_attributes(answer: requests.Response) -> tuple[str, set[str]]:
    raw = answer.headers["Set-Cookie"]
    first, *attributes = [part.strip() for part in raw.split(";")]
    return first.partition("=")[2], {a.lower() for a in attributes}


def test_the_session_cookie_is_httponly_strict_and_limited_to_mybox(world):
    session = requests.Session()
    page = session.get(world.url("/login"))
    for answer in (page, session.post(world.url("/login"), allow_redirects=False, data={
            "login": "nurse", "password": world.stack.passwords["nurse"], "csrf_token": csrf_of(page.text)})):
        value, attributes = _cookie_attributes(answer)
        assert len(value) >= 40
        assert {"httponly", "samesite=strict", f"path={PREFIX}".lower()} <= attributes, attributes
        assert not any(a.startswith(("domain=", "expires=", "max-age=")) for a in attributes), attributes


def test_logging_in_issues_a_new_session_and_the_old_token_is_worthless(world):
    planted = requests.Session()  # an attacker gets this token into the victim's browser...
    page = planted.get(world.url("/login"))
    before = planted.cookies["um_mybox"]
    answer = planted.post(world.url("/login"), allow_redirects=False, data={
        "login": "office", "password": world.stack.passwords["office"], "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    after = planted.cookies["um_mybox"]
    assert after != before
    attacker = requests.Session()  # ...and keeps a copy: after the login it is worth nothing
    attacker.cookies.set("um_mybox", before)
    assert attacker.get(world.url("/invoicing"), allow_redirects=False).status_code == 303
    assert planted.get(world.url("/invoicing")).status_code == 200


def test_logging_out_ends_the_session_on_the_server(world):
    session = login(world.stack, "office")
    token = session.cookies["um_mybox"]
    copy = requests.Session()
    copy.cookies.set("um_mybox", token)
    assert copy.get(world.url("/invoicing")).status_code == 200
    answer = post_form(session, world.stack, "/account", "/logout", {})
    assert answer.url.endswith("/login")
    assert copy.get(world.url("/invoicing"), allow_redirects=False).status_code == 303
    before = snapshot(world)
    posted = copy.post(world.url("/account/language"), data={"language": "nl", "csrf_token": "x"},
                       allow_redirects=False)
    assert posted.status_code == 403 and changes(before, snapshot(world)) == []


@pytest.mark.parametrize("target", ["//evil.example", "http://evil.example", "https://evil.example/unified-messaging/mybox/",
                                    "/\\evil.example", "\\\\evil.example", f"{PREFIX}//evil.example",
                                    f"{PREFIX}/\\evil.example", "javascript:alert(1)", f"{PREFIX}/\t/evil.example"])
def test_next_after_login_never_leaves_mybox(world, target):
    session = requests.Session()
    page = session.get(world.url("/login"), params={"next": target})
    assert "evil.example" not in page.text and "javascript:" not in page.text
    answer = session.post(world.url("/login"), allow_redirects=False, data={
        "login": "nurse", "password": world.stack.passwords["nurse"], "csrf_token": csrf_of(page.text),
        "next": target})
    assert answer.status_code == 303
    assert answer.headers["Location"] == PREFIX + "/", answer.headers["Location"]


def test_after_logging_in_the_user_lands_on_the_page_asked_for(world):
    session = requests.Session()
    page = session.get(world.url("/invoicing?status=NOK"))
    assert page.url.split("?")[0].endswith("/login")
    hidden = re.search(r'name="next" value="([^"]+)"', page.text)
    assert hidden, "the login form does not carry the page asked for"
    answer = session.post(world.url("/login"), data={
        "login": "office", "password": world.stack.passwords["office"], "csrf_token": csrf_of(page.text),
        "next": hidden.group(1).replace("&amp;", "&")})
    assert answer.url == world.url("/invoicing?status=NOK")


def test_a_role_change_applies_at_the_next_request(world):
    office, admin = login(world.stack, "office"), world.sessions["admin"]
    assert office.get(world.url("/invoicing")).status_code == 200
    try:
        post_form(admin, world.stack, "/admin/users", "/admin/users/office/roles", {"roles": ["clinical"]})
        assert office.get(world.url("/invoicing")).status_code == 403
        assert office.get(world.url("/insurability")).status_code == 200
    finally:
        post_form(admin, world.stack, "/admin/users", "/admin/users/office/roles", {"roles": ["administrative"]})
    assert office.get(world.url("/invoicing")).status_code == 200


def test_a_removed_users_session_is_refused_at_once(world):
    admin = world.sessions["admin"]
    post_form(admin, world.stack, "/admin/users", "/admin/users", {
        "login": "leaver", "name": "Lea Ver", "ssin": VICTIM[2], "roles": ["administrative"],
        "password": "Leaver-pw-1234", "again": "Leaver-pw-1234"})
    world.stack.passwords["leaver"] = "Leaver-pw-1234"
    leaver = login(world.stack, "leaver")
    token = token_of(leaver, world)
    post_form(admin, world.stack, "/admin/users", "/admin/users/leaver/remove", {})
    assert leaver.get(world.url("/invoicing"), allow_redirects=False).status_code == 303
    before = snapshot(world)
    posted = leaver.post(world.url("/mandates"), allow_redirects=False, data={
        **FORMS["mandate_propose"](world, "leaver")[0], "csrf_token": token})
    assert posted.status_code == 403 and changes(before, snapshot(world)) == []


def test_a_password_reset_by_an_administrator_ends_the_users_sessions(world):
    admin = world.sessions["admin"]
    post_form(admin, world.stack, "/admin/users", "/admin/users", {
        "login": "resetme", "name": "Re Set", "ssin": VICTIM[2], "roles": ["clinical"],
        "password": "Resetme-pw-1234", "again": "Resetme-pw-1234"})
    world.stack.passwords["resetme"] = "Resetme-pw-1234"
    user = login(world.stack, "resetme")
    post_form(admin, world.stack, "/admin/users", "/admin/users/resetme/password", {"password": "Resetme-pw-5678"})
    assert user.get(world.url("/"), allow_redirects=False).status_code == 303
    world.stack.passwords["resetme"] = "Resetme-pw-5678"
    assert login(world.stack, "resetme").get(world.url("/")).status_code == 200


# ------------------------------------------------------------------------------ last: the forms were real

CONTROL_EFFECT = {"logout": "session", "login": "session", "configuration_check": "upstream"}


def test_with_the_right_token_every_form_does_change_something(world):
    """Shows the refusals above were the gate's doing: the same forms, with the token, do act."""
    for route in POST_ROUTES:
        user = "nurse" if route.endpoint.startswith("account") or route.endpoint == "logout" else "admin"
        if route.permission is None:
            session, token = anonymous_token(world)
        else:
            session = login(world.stack, user)
            token = token_of(session, world)
        before = snapshot(world)
        answer = send(session, world, route, "POST", token, user)
        assert answer.status_code in (200, 303), (route.endpoint, answer.status_code, answer.text[:500])
        if answer.status_code == 303:
            answer = session.get(world.url(urlsplit(answer.headers["Location"]).path.removeprefix(PREFIX)))
        assert "flash error" not in answer.text, (route.endpoint, re.findall(r"flash error[^<]*<", answer.text))
        effect = CONTROL_EFFECT.get(route.endpoint)
        if effect == "session":
            assert still_logged_in(session, world) == (route.endpoint == "login"), route.endpoint
        else:
            changed = changes(before, snapshot(world))
            assert changed and (effect is None or changed == [effect]), (route.endpoint, changed)
        if route.endpoint == "account_password":
            world.stack.passwords[user] = FORMS["account_password"](world, user)[0]["new"]
    text = "\n".join(world.log.lines)
    assert not [s for s in world.ssins() if s in text]
    assert not [s for s in world.secrets() if s in text]
