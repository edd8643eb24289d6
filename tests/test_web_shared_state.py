"""#16 point 2: Mybox keeps no state in one process's memory. Two gateways on one data folder (as
two front workers would be) share the sessions, the CSRF state, the messages of the next page and
the failed-login counts; a restart keeps users logged in; the file holds no session token."""
from __future__ import annotations

import sqlite3

import requests

from tests.web_support import PASSWORDS, csrf_of, login, start_mybox
from unified_messaging.gateway import Gateway
from unified_messaging.web.sessions import STATE_FILE


def _second(stack) -> tuple[Gateway, str]:
    other = Gateway(stack.gateway.config).start()
    return other, other.mybox_url


def test_a_session_opened_on_one_worker_is_served_by_another_and_survives_a_restart(tmp_path):
    stack = start_mybox(tmp_path, web={"login_max_failures": 3})
    other, other_base = _second(stack)
    try:
        browser = login(stack, "admin")
        page = browser.get(other_base + "/admin/users")  # the other worker knows the session
        assert page.status_code == 200 and "office" in page.text, page.text[:300]
        # a form read on one worker is accepted by the other (the CSRF state is shared), and the
        # message it leaves is shown by the first
        token = csrf_of(browser.get(stack.url("/account")).text)
        changed = browser.post(other_base + "/account/language", data={"language": "fr", "csrf_token": token},
                               allow_redirects=False)
        assert changed.status_code in (302, 303), changed.text[:300]
        shown = browser.get(stack.url("/account")).text  # the message is waiting on the first worker
        assert 'class="flash ok"' in shown and 'lang="fr"' in shown
        assert 'class="flash ok"' not in browser.get(stack.url("/account")).text  # shown once
        tokens = [row[0] for row in sqlite3.connect(stack.data / STATE_FILE).execute("SELECT token_hash FROM sessions")]
        assert browser.cookies.get("um_mybox") not in tokens and all(len(t) == 64 for t in tokens)
        # failed logins counted by both: three wrong passwords over the two workers lock the login
        for base in (stack.base, other_base, stack.base):
            anonymous = requests.Session()
            form = anonymous.get(base + "/login")
            anonymous.post(base + "/login", data={"login": "office", "password": "wrong-password",
                                                  "csrf_token": csrf_of(form.text)})
        locked = requests.Session()
        form = locked.get(other_base + "/login")
        answer = locked.post(other_base + "/login", data={"login": "office", "password": PASSWORDS["office"],
                                                          "csrf_token": csrf_of(form.text)})
        assert answer.status_code == 429 and "Too many wrong passwords" in answer.text  # the right one too
    finally:
        other.stop()
    stack.gateway.stop()
    restarted = Gateway(stack.gateway.config).start()
    try:
        again = browser.get(restarted.mybox_url + "/admin/users")
        assert again.status_code == 200 and "office" in again.text  # still logged in after the restart
    finally:
        restarted.stop()
