"""Shared by the Mybox tests: a real gateway (with its simulator and invoicing folders) serving
Mybox on an ephemeral port, one user per role, and logging in over HTTP like a browser does."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.conftest import make_config
from unified_messaging.gateway import Gateway
from unified_messaging.securespace.crypto import PasswordHasher

PASSWORDS = {"admin": "admin-password-1", "office": "office-password-1", "nurse": "nurse-password-1"}
USERS = {  # login: (name, SSIN, roles)
    "admin": ("Ada Administrator", "85073003328", ["administrator"]),
    "office": ("Otto Office", "90010100123", ["administrative"]),
    "nurse": ("Nina Nurse", "79121512306", ["clinical"]),
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class MyboxStack:
    gateway: Gateway
    base: str  # .../unified-messaging/mybox
    data: Path
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    @property
    def invoicing_root(self) -> Path:
        return self.gateway.config.invoicing_root

    def url(self, path: str) -> str:
        return self.base + path


def start_mybox(folder: Path, **sections: dict) -> MyboxStack:
    """A started gateway whose simulator answers eFact within seconds, with admin/office/nurse users."""
    options = {
        "simulator": {"genasync_acknowledgement_seconds": 0.5, "genasync_detailed_seconds": 1.5,
                      "genasync_settlement_seconds": 3.0, "genasync_min_get_interval_seconds": 0.0},
        "invoicing": {"poll_interval_seconds": 1.0, "rescan_seconds": 1.0, "repost_grace_seconds": 1.0},
        "folders": {"insurability": False},
    }
    for name, values in sections.items():
        options.setdefault(name, {}).update(values)
    gateway = Gateway(make_config(folder, **options)).start()
    store = gateway.securespace
    store.hasher = PasswordHasher(cost=2 ** 12)  # fast logins in tests; production keeps the default cost
    for login, (name, ssin, roles) in USERS.items():
        store.add_user(login, name, ssin, roles, PASSWORDS[login])
    return MyboxStack(gateway, gateway.mybox_url, folder / "um-data")


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def login(stack: MyboxStack, user: str, password: str | None = None) -> requests.Session:
    """A requests session logged in as ``user`` through the real login form."""
    session = requests.Session()
    page = session.get(stack.url("/login"))
    answer = session.post(stack.url("/login"), data={
        "login": user, "password": password or stack.passwords[user], "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 200 and answer.url.rstrip("/").endswith("/mybox"), answer.text[:500]
    return session


def post_form(session: requests.Session, stack: MyboxStack, page_path: str, action_path: str, data: dict,
              files: dict | None = None) -> requests.Response:
    """Post ``data`` to ``action_path`` with the CSRF token read from ``page_path``, as the form would."""
    token = csrf_of(session.get(stack.url(page_path)).text)
    return session.post(stack.url(action_path), data={**data, "csrf_token": token}, files=files)
