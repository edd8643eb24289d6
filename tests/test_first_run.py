"""The first run over HTTP: a fresh gateway (no user) offers the first-administrator page only with
the token ``serve`` printed; it is gone once a user exists.  The console line is read from a real
``unified-messaging serve`` process."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.conftest import ROOT, make_config
from tests.support import CLI
from tests.web_support import csrf_of
from unified_messaging.gateway import Gateway
from unified_messaging.securespace.crypto import PasswordHasher

ADMIN = {"login": "first", "name": "Fiona First", "ssin": "85073003328", "password": "First-admin-pw-1",
         "again": "First-admin-pw-1"}


@pytest.fixture()
def fresh(tmp_path):
    """A started gateway whose secure space has no user yet."""
    gateway = Gateway(make_config(tmp_path, folders={"insurability": False}, invoicing={"enabled": False})).start()
    gateway.securespace.hasher = PasswordHasher(cost=2 ** 12)  # fast in tests
    yield gateway
    gateway.stop()


def page_url(gateway: Gateway) -> str:
    address = gateway.mybox.first_run.address(gateway.mybox_url)
    assert address and address.startswith(gateway.mybox_url + "/first-run?token=")
    return address


def test_a_missing_or_wrong_token_is_refused(fresh):
    base = fresh.mybox_url + "/first-run"
    assert requests.get(base, timeout=10).status_code == 403
    wrong = requests.get(base + "?token=not-the-token", timeout=10)
    assert wrong.status_code == 403 and "printed on its console" in wrong.text
    session = requests.Session()
    form = session.get(page_url(fresh), timeout=10)
    assert form.status_code == 200 and 'id="first-run"' in form.text
    for token in ("", "not-the-token", page_url(fresh).split("token=")[1][:-1]):
        refused = session.post(base, data={**ADMIN, "token": token, "csrf_token": csrf_of(form.text)}, timeout=10)
        assert refused.status_code == 403
    assert fresh.securespace.users() == []


def test_the_right_token_without_the_csrf_token_is_refused(fresh):
    token = parse_qs(urlsplit(page_url(fresh)).query)["token"][0]
    answer = requests.post(fresh.mybox_url + "/first-run", data={**ADMIN, "token": token}, timeout=10)
    assert answer.status_code == 403
    assert fresh.securespace.users() == []


def test_the_first_administrator_is_created_once_then_the_page_is_gone(fresh):
    session = requests.Session()
    address = page_url(fresh)
    form = session.get(address, timeout=10)
    token = parse_qs(urlsplit(address).query)["token"][0]
    weak = session.post(fresh.mybox_url + "/first-run", timeout=10,
                        data={**ADMIN, "password": "short", "again": "short", "token": token,
                              "csrf_token": csrf_of(form.text)})
    assert weak.status_code == 400 and 'id="first-run-error"' in weak.text
    created = session.post(fresh.mybox_url + "/first-run", timeout=10,
                           data={**ADMIN, "token": token, "csrf_token": csrf_of(weak.text)})
    assert created.status_code == 200 and created.url.rstrip("/").endswith("/mybox"), created.text[:300]
    assert "Administrator first created" in created.text
    [user] = fresh.securespace.users()
    assert user.login == "first" and {r.value for r in user.roles} == {"administrator"}
    assert fresh.mybox.first_run.address(fresh.mybox_url) is None
    again = requests.get(address, timeout=10, allow_redirects=False)
    assert again.status_code == 303 and again.headers["Location"].endswith("/mybox/login")
    second = session.post(fresh.mybox_url + "/first-run", timeout=10,
                          data={**ADMIN, "login": "second", "token": token, "csrf_token": csrf_of(weak.text)})
    assert second.status_code == 404
    assert [u.login for u in fresh.securespace.users()] == ["first"]


def test_serve_prints_the_first_run_address_and_it_opens_the_form(tmp_path):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    process = subprocess.Popen([CLI, "serve", "--port", "0"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, seen, address = time.monotonic() + 60, [], None
        while address is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            seen.append(line)
            found = re.search(r"create the first administrator at (http://\S+)", line)
            address = found.group(1) if found else None
        assert address, "serve printed no first-run address: " + "".join(seen)
        assert "token=" in address
        assert requests.get(address, timeout=10).status_code == 200
        assert requests.get(address.split("?")[0], timeout=10).status_code == 403
    finally:
        process.terminate()
        process.communicate(timeout=30)
