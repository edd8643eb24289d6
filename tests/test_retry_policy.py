"""The shared retry/backoff policy (#19 point 6): geometric and scheduled delays, jitter, limits, Backoff."""
import pytest

from unified_messaging.retry import Backoff, RetryPolicy


def test_geometric_doubles_up_to_the_maximum():
    policy = RetryPolicy(first=5.0, factor=2.0, maximum=30.0)
    assert [policy.delay(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_schedule_repeats_its_last_step():
    policy = RetryPolicy.from_schedule((1.0, 2.0, 5.0))
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 5.0, 5.0, 5.0]


def test_jitter_uses_the_injected_random_and_stays_within_bounds():
    low = RetryPolicy(first=10.0, jitter=0.2, rand=lambda: 0.0)
    high = RetryPolicy(first=10.0, jitter=0.2, rand=lambda: 1.0)
    assert low.delay(1) == pytest.approx(8.0)
    assert high.delay(1) == pytest.approx(12.0)


def test_max_attempts_and_invalid_values():
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2) and policy.exhausted(3)
    assert not RetryPolicy().exhausted(10_000)
    with pytest.raises(ValueError):
        RetryPolicy(factor=0.5)
    with pytest.raises(ValueError):
        RetryPolicy.from_schedule(())


def test_backoff_tracks_each_key_with_the_injected_clock():
    now = [100.0]
    backoff = Backoff(RetryPolicy(first=5.0, maximum=300.0), clock=lambda: now[0])
    assert backoff.due("a") and not backoff
    assert backoff.failed("a") == 5.0
    assert backoff.failed("a") == 10.0 and backoff.attempts("a") == 2
    assert not backoff.due("a") and backoff.due("b")
    assert backoff.soonest() == 110.0
    now[0] = 110.0
    assert backoff.due("a")
    backoff.forget("a")
    assert backoff.attempts("a") == 0 and backoff.soonest() is None
