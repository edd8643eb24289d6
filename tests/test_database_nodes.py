"""#17 point 3, "a Mybox session valid on both nodes": two real gateway processes (``serve``, one
worker each), each with its own data folder, on one PostgreSQL database.  A login made on one node
is served by the other, a form read on one is accepted by the other and its message shown by the
first, failed logins on both lock the login on both, and logging out on one ends the session on
both; a mandate proposed by the CLI (a third process) on the same database is listed at once by both
nodes' Mybox.  Nothing of it is written to a ``mybox.sqlite`` or a ``securespace.sqlite``."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import CLI
from tests.test_cli_serve import _start
from tests.web_support import PASSWORDS, USERS, csrf_of
from unified_messaging.secrets import master_keys
from unified_messaging.simulator.devpki import GROUP_NUMBER, NURSE_NIHII
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore
from unified_messaging.web.sessions import STATE_FILE

pytestmark = pytest.mark.postgres


def _node(folder: Path, url: str) -> Path:
    """A data folder on the database of ``url``, and its configuration file."""
    data = folder / "um-data"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "um.toml"
    conf.write_text(f'[server]\nport = 0\nworkers = 1\n[data]\nfolder = "{data}"\n[database]\nurl = "{url}"\n'
                    '[invoicing]\nenabled = false\n[folders]\ninsurability = false\n'
                    '[web]\nlogin_max_failures = 3\n')
    return conf


def _try_login(base: str, user: str, password: str) -> requests.Response:
    browser = requests.Session()
    form = browser.get(base + "/login", timeout=30)
    return browser.post(base + "/login", data={"login": user, "password": password, "csrf_token": csrf_of(form.text)},
                        allow_redirects=False, timeout=30)


def test_a_mybox_session_made_on_one_node_is_valid_on_the_other(postgres_url, tmp_path):
    migrated = subprocess.run([CLI, "db", "migrate", "--config", str(_node(tmp_path / "a", postgres_url))],
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0 and "applied migration 2" in migrated.stdout, migrated.stderr
    store = SecureSpaceStore.open(postgres_url, tmp_path / "a" / "um-data", master_keys(tmp_path / "a" / "um-data"),
                                  hasher=PasswordHasher(cost=2 ** 12))
    try:  # the space and its users, once, in the secure space both nodes share
        store.create_space("Shared space", USERS["admin"][0], USERS["admin"][1], USERS["admin"][0], USERS["admin"][1])
        for login, (name, ssin, roles) in USERS.items():
            store.add_user(login, name, ssin, roles, PASSWORDS[login])
    finally:
        store.close()
    nodes = []
    try:
        for name in ("a", "b"):
            conf = tmp_path / name / "um.toml" if name == "a" else _node(tmp_path / name, postgres_url)
            process, services = _start(tmp_path / name, "--config", str(conf))
            nodes.append((process, services.replace("/services", "/mybox")))
        (_, one), (_, other) = nodes
        browser = requests.Session()
        form = browser.get(one + "/login", timeout=30)
        logged = browser.post(one + "/login", data={"login": "admin", "password": PASSWORDS["admin"],
                                                    "csrf_token": csrf_of(form.text)}, timeout=30)
        assert logged.status_code == 200 and logged.url.rstrip("/").endswith("/mybox"), logged.text[:300]
        cookie = {"um_mybox": browser.cookies["um_mybox"]}
        page = browser.get(other + "/admin/users", allow_redirects=False, timeout=30)
        assert page.status_code == 200 and "Otto Office" in page.text, page.text[:300]  # the other node knows it
        token = csrf_of(browser.get(one + "/account", timeout=30).text)  # a form read on one node...
        changed = browser.post(other + "/account/language", data={"language": "nl", "csrf_token": token},
                               allow_redirects=False, timeout=30)  # ...is accepted by the other
        assert changed.status_code in (302, 303), changed.text[:300]
        assert 'class="flash ok"' in browser.get(one + "/account", timeout=30).text  # its message, on the first
        assert 'class="flash ok"' not in browser.get(other + "/account", timeout=30).text  # shown once
        proposed = subprocess.run(  # a third process, the CLI, on the same database
            [CLI, "mandates", "--config", str(tmp_path / "b" / "um.toml"), "propose", "--mandant", f"NIHII={NURSE_NIHII}",
             "--mandataire", f"NIHII={GROUP_NUMBER}", "--service", "INSURABILITY", "--from", "2020-01-01",
             "--by", "admin"], capture_output=True, text=True, timeout=120)
        assert proposed.returncode == 0, proposed.stderr
        for base in (one, other):  # both nodes' Mybox show it at once
            listed = browser.get(base + "/mandates", timeout=30)
            assert listed.status_code == 200 and GROUP_NUMBER in listed.text and NURSE_NIHII in listed.text
        for base in (one, other, one):  # three wrong passwords over the two nodes lock the login on both
            assert _try_login(base, "office", "wrong-password").status_code == 401
        for base in (one, other):
            refused = _try_login(base, "office", PASSWORDS["office"])
            assert refused.status_code == 429 and "Too many wrong passwords" in refused.text
        token = csrf_of(browser.get(other + "/account", timeout=30).text)
        assert browser.post(other + "/logout", data={"csrf_token": token}, allow_redirects=False,
                            timeout=30).status_code in (302, 303)
        for base in (one, other):
            gone = requests.get(base + "/admin/users", cookies=cookie, allow_redirects=False, timeout=30)
            assert gone.status_code == 303 and "/login" in gone.headers["Location"]  # ended on both
    finally:
        for process, _ in nodes:
            process.terminate()
            process.communicate(timeout=30)
    assert all(process.returncode == 0 for process, _ in nodes)
    assert not any((tmp_path / name / "um-data" / file).exists() for name in ("a", "b")
                   for file in (STATE_FILE, STORE_FILE))


def test_serve_refuses_a_database_not_migrated_yet_and_says_what_to_run(postgres_url, tmp_path):
    conf = _node(tmp_path, postgres_url)
    refused = subprocess.run([CLI, "serve", "--config", str(conf)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "the schema lacks migrations 1, 2, 3, 4" in refused.stderr
    assert "run 'unified-messaging db migrate'" in refused.stderr
    assert postgres_url.split(":")[2].split("@")[0] not in refused.stderr  # the password is never shown
