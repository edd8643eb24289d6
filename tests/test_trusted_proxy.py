"""Behind a reverse proxy (``[server] trusted_proxy``): the login lockout, the logs and the journal use the
real client's address from X-Forwarded-For when, and only when, the request comes from the trusted proxy."""
from __future__ import annotations

import logging

import pytest
import requests

from tests.support import ACTION, insurability_body, soap_envelope
from tests.web_support import csrf_of, start_mybox
from unified_messaging.config import ConfigError, load_config
from unified_messaging.simulator.population import TEST_PATIENTS

ALICE, BOB = "203.0.113.7", "198.51.100.23"  # two clients behind the proxy (documentation addresses)
MAX_FAILURES = 3


def try_login(stack, login: str, password: str, forwarded_for: str) -> int:
    session = requests.Session()
    session.headers["X-Forwarded-For"] = forwarded_for
    page = session.get(stack.url("/login"), timeout=10)
    answer = session.post(stack.url("/login"), timeout=10, allow_redirects=False,
                          data={"login": login, "password": password, "csrf_token": csrf_of(page.text)})
    return answer.status_code


def consult_from(stack, forwarded_for: str) -> None:
    body = soap_envelope(insurability_body(TEST_PATIENTS[0].ssin)).encode()
    answer = requests.post(f"{stack.gateway.services_url}/ConsultMyCareNetSoap", data=body, timeout=30,
                           headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION,
                                    "X-Forwarded-For": forwarded_for})
    assert answer.status_code == 200, answer.text[:300]


def lock_out(stack, forwarded_for: str) -> None:
    """Wrong passwords for several logins from one address: that address is locked out."""
    for n in range(MAX_FAILURES):
        assert try_login(stack, f"nobody-{n}", "wrong-password-1", forwarded_for) == 401


@pytest.fixture
def behind(tmp_path, request):
    stack = start_mybox(tmp_path, server={"trusted_proxy": request.param},
                        web={"login_max_failures": MAX_FAILURES})
    yield stack
    stack.gateway.stop()


@pytest.mark.parametrize("behind", ["127.0.0.1"], indirect=True)
def test_from_the_trusted_proxy_each_forwarded_client_counts_for_itself(behind, caplog):
    caplog.set_level(logging.INFO)
    lock_out(behind, ALICE)
    assert try_login(behind, "admin", "admin-password-1", ALICE) == 429  # Alice is locked out...
    assert try_login(behind, "admin", "admin-password-1", BOB) == 303  # ...Bob, behind the same proxy, is not
    consult_from(behind, f"{BOB}")
    assert behind.gateway.journal.consultations(limit=1)[0]["client"] == BOB
    logged = caplog.text
    assert f"from {ALICE}" in logged and f"logged in from {BOB}" in logged and f"via soap from {BOB}" in logged
    assert "from 127.0.0.1" not in logged


@pytest.mark.parametrize("behind", ["192.0.2.1"], indirect=True)
def test_from_any_other_peer_the_forwarded_header_is_ignored(behind, caplog):
    caplog.set_level(logging.INFO)
    lock_out(behind, ALICE)
    # "Bob" is the same peer claiming another address: the claim is ignored and the peer is locked out
    assert try_login(behind, "admin", "admin-password-1", BOB) == 429
    consult_from(behind, BOB)
    assert behind.gateway.journal.consultations(limit=1)[0]["client"] == "127.0.0.1"
    assert ALICE not in caplog.text and BOB not in caplog.text


@pytest.mark.parametrize("value, words", [
    ('trusted_proxy = "proxy.example.be"', "IP address"),
    ('trusted_proxy_headers = ["x-real-ip"]', "x-real-ip"),
])
def test_a_wrong_proxy_setting_is_refused_with_what_to_write(tmp_path, value, words):
    path = tmp_path / "um.toml"
    path.write_text(f"[server]\n{value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert words in str(refused.value)


def test_a_journal_from_before_the_client_column_gets_it_at_start_up(tmp_path):
    import sqlite3

    from unified_messaging.journal.store import Consultation, Journal

    path = tmp_path / "journal.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE consultations (id INTEGER PRIMARY KEY, at TEXT NOT NULL, interface TEXT NOT NULL, "
                "care_provider TEXT, quality TEXT, patient TEXT, period_start TEXT, period_end TEXT, "
                "outcome TEXT NOT NULL, code TEXT, audit_reference TEXT, reference TEXT, duration_ms REAL NOT NULL)")
    old.execute("INSERT INTO consultations (at, interface, outcome, duration_ms) VALUES ('2026-01-01', 'soap', "
                "'OK', 1.0)")
    old.commit()
    old.close()
    journal = Journal(path)
    try:
        journal.record_consultation(Consultation("2026-12-06", "soap", None, None, None, None, None, "OK", None,
                                                 None, None, 2.0, client=ALICE))
        assert [r["client"] for r in journal.consultations()] == [ALICE, None]
    finally:
        journal.close()
