"""Mybox's sessions and logins: the lockout after wrong passwords and the idle limit through a real
gateway with tiny limits, then ``SessionStore`` and ``LoginLimiter`` on a clock (moved out of
``test_web_security.py``, which keeps the gate, the secrets and the cookies).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import requests

from tests.support import Clock
from tests.web_support import MyboxStack, csrf_of, login, start_mybox

START = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
from unified_messaging.web import sessions as web_sessions
from unified_messaging.web.context import PREFIX
from unified_messaging.web.sessions import LoginLimiter, SessionStore, WebState

# ------------------------------------------------------------------------------ small limits: lockout, idle sessions

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A gateway with a 3-failure lockout of 1.2 s and sessions that end after 1.2 s idle."""
    stack = start_mybox(tmp_path_factory.mktemp("mybox-tiny"), invoicing={"enabled": False},
                        web={"login_max_failures": 3, "login_lockout_minutes": 0.02, "session_idle_minutes": 0.02})
    yield stack
    stack.gateway.stop()


def _try_login(stack: MyboxStack, user: str, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(stack.url("/login"))
    return session.post(stack.url("/login"), allow_redirects=False,
                        data={"login": user, "password": password, "csrf_token": csrf_of(page.text)})


def test_wrong_passwords_lock_the_login_until_the_lockout_ends(tiny):
    for _ in range(3):
        assert _try_login(tiny, "admin", "not-the-password").status_code == 401
    last_failure = time.monotonic()
    refused = _try_login(tiny, "admin", tiny.passwords["admin"])
    assert refused.status_code == 429 and "Too many wrong passwords" in refused.text
    assert _try_login(tiny, "admin", "still-wrong").status_code == 429  # not even checked
    assert _try_login(tiny, "office", tiny.passwords["office"]).status_code == 429  # same address: locked too
    time.sleep(max(0.0, last_failure + 1.2 + 0.3 - time.monotonic()))
    assert _try_login(tiny, "admin", tiny.passwords["admin"]).status_code == 303
    assert _try_login(tiny, "office", tiny.passwords["office"]).status_code == 303


def test_an_idle_session_ends_and_a_used_one_lives_on(tiny):
    session = login(tiny, "nurse")
    for _ in range(4):  # 2 s of use, longer than the 1.2 s idle limit
        time.sleep(0.5)
        assert session.get(tiny.url("/"), allow_redirects=False).status_code == 200
    time.sleep(1.6)
    answer = session.get(tiny.url("/insurability"), allow_redirects=False)
    assert answer.status_code == 303 and urlsplit(answer.headers["Location"]).path == PREFIX + "/login"


def test_the_failed_login_log_line_never_carries_what_was_typed_for_an_unknown_user(tiny, caplog):
    time.sleep(1.5)  # any lockout of the tests above has ended
    typed_secret = "Zomer2026!wachtwoord"  # a password typed in the login field
    with caplog.at_level("WARNING", logger="unified_messaging"):
        assert _try_login(tiny, typed_secret, "anything").status_code == 401
        assert _try_login(tiny, "office", "not-the-password").status_code == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert typed_secret not in logged and "Zomer" not in logged
    assert f"an unknown login ({len(typed_secret)} characters)" in logged
    assert "failed Mybox login for 'office'" in logged
    assert _try_login(tiny, "office", tiny.passwords["office"]).status_code == 303


# ------------------------------------------------------------------------------ SessionStore and LoginLimiter, on a clock

@pytest.fixture()
def state(tmp_path) -> WebState:
    shared = WebState(tmp_path / "mybox.sqlite")
    yield shared
    shared.close()


def _store(clock: Clock, state: WebState, idle: float = 30, hours: float = 12) -> SessionStore:
    return SessionStore(state, idle=timedelta(minutes=idle), lifetime=timedelta(hours=hours), clock=clock)


def _same(found, session) -> bool:
    return found is not None and (found.token, found.login, found.csrf) == (session.token, session.login, session.csrf)


def test_a_session_lives_while_used_and_ends_after_idle_or_lifetime(state):
    clock = Clock(START)
    store = _store(clock, state)
    session = store.new("nurse")
    assert len(session.token) >= 40 and session.csrf != session.token
    for _ in range(3):
        clock.advance(minutes=29)
        assert _same(store.get(session.token), session)
    clock.advance(minutes=30, seconds=1)
    assert store.get(session.token) is None
    assert store.get(session.token) is None  # and it is gone, not revived
    busy = store.new("office")
    for _ in range(36):  # used every 20 minutes, up to exactly 12 hours
        clock.advance(minutes=20)
        assert _same(store.get(busy.token), busy)
    clock.advance(seconds=1)
    assert store.get(busy.token) is None
    assert store.get(None) is None and store.get("") is None and store.get("unknown") is None


def test_renewing_ending_and_ending_a_users_sessions(state):
    clock = Clock(START)
    store = _store(clock, state)
    anonymous = store.new()
    logged = store.renew(anonymous, "admin")
    assert logged.token != anonymous.token and logged.csrf != anonymous.csrf and logged.login == "admin"
    assert store.get(anonymous.token) is None and _same(store.get(logged.token), logged)
    other, third = store.new("admin"), store.new("nurse")
    store.end_user("admin")
    assert store.get(logged.token) is None and store.get(other.token) is None
    assert _same(store.get(third.token), third)
    store.end(third)
    store.end(None)
    assert store.get(third.token) is None


def test_the_csrf_check(state):
    session = _store(Clock(START), state).new("admin")
    assert session.check_csrf(session.csrf)
    for given in (None, "", session.csrf[:-1], session.csrf + "x", session.token, " " + session.csrf):
        assert not session.check_csrf(given), given


def test_too_many_sessions_drop_the_oldest_anonymous_ones(monkeypatch, state):
    monkeypatch.setattr(web_sessions, "MAX_SESSIONS", 3)
    clock = Clock(START)
    store = _store(clock, state)
    oldest = store.new()
    clock.advance(seconds=1)
    logged = store.new("admin")
    clock.advance(seconds=1)
    newer = store.new()
    clock.advance(seconds=1)
    newest = store.new()
    assert store.get(oldest.token) is None
    assert all(_same(store.get(s.token), s) for s in (logged, newer, newest))
    clock.advance(minutes=31)  # all expired: pruned before any live one is dropped
    fresh = [store.new() for _ in range(2)]
    assert all(_same(store.get(s.token), s) for s in fresh)


def test_the_limiter_locks_a_login_and_an_address_until_the_lockout_ends(state):
    clock = Clock(START)
    limiter = LoginLimiter(state, max_failures=3, lockout=timedelta(minutes=15), clock=clock)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # one login, guessed from three addresses
        assert limiter.locked_until("Admin", address) is None
        limiter.failed("Admin", address)
    ends = limiter.locked_until(" admin ", "10.0.0.9")  # the login is locked wherever from, whatever the case
    assert ends == clock.now + timedelta(minutes=15)
    assert limiter.locked_until("office", "10.0.0.9") is None
    clock.advance(minutes=14, seconds=59)
    assert limiter.locked_until("admin", "10.0.0.9") == ends
    clock.advance(seconds=2)
    assert limiter.locked_until("admin", "10.0.0.9") is None
    for login_ in ("a", "b", "c"):  # one address guessing three logins
        limiter.failed(login_, "10.6.6.6")
    assert limiter.locked_until("someone-else", "10.6.6.6") is not None
    assert limiter.locked_until("someone-else", "10.0.0.1") is None


def test_a_lock_lasts_until_the_time_it_announces(state):
    clock = Clock(START)
    limiter = LoginLimiter(state, max_failures=3, lockout=timedelta(minutes=15), clock=clock)
    for _ in range(3):
        limiter.failed("admin", "10.0.0.1")
        clock.advance(minutes=1)
    ends = limiter.locked_until("admin", "10.0.0.1")
    assert ends == clock.now - timedelta(minutes=1) + timedelta(minutes=15)
    clock.now = ends - timedelta(minutes=1)
    assert limiter.locked_until("admin", "10.0.0.1") == ends


def test_the_limiter_forgets_old_failures_and_a_success_resets_it(state):
    clock = Clock(START)
    limiter = LoginLimiter(state, max_failures=3, lockout=timedelta(minutes=15), clock=clock)
    limiter.failed("nurse", "10.0.0.1")
    limiter.failed("nurse", "10.0.0.1")
    clock.advance(minutes=16)
    limiter.failed("nurse", "10.0.0.1")
    assert limiter.locked_until("nurse", "10.0.0.1") is None  # the first two are too old to count
    limiter.failed("nurse", "10.0.0.1")
    limiter.succeeded("nurse", "10.0.0.1")
    limiter.failed("nurse", "10.0.0.1")
    limiter.failed("nurse", "10.0.0.1")
    assert limiter.locked_until("nurse", "10.0.0.1") is None
    limiter.failed("nurse", "10.0.0.1")
    assert limiter.locked_until("nurse", "10.0.0.1") is not None
