"""Mybox sessions and the login limiter on PostgreSQL: every clock test of ``test_web_sessions``
run again on a throwaway PostgreSQL database (the ``state`` fixture below replaces the SQLite one
for them), then what only concurrency shows: failures sent at once from several connections all
count, and a session's messages are shown by one request only."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import Clock
from tests.test_database_layer import in_threads
from tests.test_web_sessions import (
    START, _store, test_a_lock_lasts_until_the_time_it_announces,
    test_a_session_lives_while_used_and_ends_after_idle_or_lifetime, test_renewing_ending_and_ending_a_users_sessions,
    test_the_csrf_check, test_the_limiter_forgets_old_failures_and_a_success_resets_it,
    test_the_limiter_locks_a_login_and_an_address_until_the_lockout_ends,
    test_too_many_sessions_drop_the_oldest_anonymous_ones)
from unified_messaging.database import connect
from unified_messaging.database.migrations import migrate
from unified_messaging.database.schema import MIGRATIONS
from unified_messaging.web.sessions import LoginLimiter, WebState

pytestmark = pytest.mark.postgres

__all__ = [  # collected here again, on PostgreSQL
    "test_a_lock_lasts_until_the_time_it_announces", "test_a_session_lives_while_used_and_ends_after_idle_or_lifetime",
    "test_renewing_ending_and_ending_a_users_sessions", "test_the_csrf_check",
    "test_the_limiter_forgets_old_failures_and_a_success_resets_it",
    "test_the_limiter_locks_a_login_and_an_address_until_the_lockout_ends",
    "test_too_many_sessions_drop_the_oldest_anonymous_ones"]


@pytest.fixture()
def state(postgres_url, tmp_path) -> WebState:
    db = connect(postgres_url, tmp_path)
    migrate(db, MIGRATIONS)
    shared = WebState.open(postgres_url, tmp_path)  # as Mybox opens it: the schema is checked, not changed
    assert shared.db.engine == "postgresql"
    db.close()
    yield shared
    shared.close()


def test_failures_sent_at_once_all_count(state):
    """Counted one after the other, 40 failures with a lock every 3 leave exactly 40 % 3 = 1 failure
    per key; a count that missed a concurrent failure would leave another number."""
    clock = Clock(START)
    limiter = LoginLimiter(state, max_failures=3, lockout=timedelta(minutes=15), clock=clock)

    def guess() -> None:
        for _ in range(5):
            limiter.failed("admin", "10.0.0.1")

    assert in_threads(guess, 8) == [None] * 8  # 40 failures from 8 connections at once
    assert limiter.locked_until("admin", "10.0.0.7") == clock.now + timedelta(minutes=15)
    assert limiter.locked_until("office", "10.0.0.1") == clock.now + timedelta(minutes=15)
    left = state.db.query("SELECT key, COUNT(*) AS n FROM login_failures GROUP BY key ORDER BY key")
    assert left == [{"key": "address:10.0.0.1", "n": 1}, {"key": "login:admin", "n": 1}]


def test_a_sessions_messages_are_shown_once_whatever_the_requests_at_once(state):
    store = _store(Clock(START), state)
    session = store.new("admin")
    for round_ in range(10):
        store.add_flash(session, "ok", f"saved {round_}")
        copies = [store.get(session.token) for _ in range(6)]  # one browser, six requests at once
        shown = in_threads(lambda: store.take_flashes(copies.pop()), 6)
        assert sorted(shown, key=len) == [[]] * 5 + [[("ok", f"saved {round_}")]]
        session.flash.clear()
