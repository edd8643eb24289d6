"""#15 point 3: the feedback poller honours MyCareNet's "Not enough time ... wait N s".

The pacing rules are checked on a manual clock; the whole path (the real client reading the
simulator's fault, the pipeline's worker thread, the simulator's counters) over real sockets.
"""
from __future__ import annotations

import logging
import time

import pytest

from tests.conftest import make_config
from tests.invoicing_support import client_for
from tests.support import running_platform
from unified_messaging.config import ConfigError
from unified_messaging.invoicing.pacing import PollPacing
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.journal.store import Journal
from unified_messaging.mycarenet.throttling import PLATFORM_MIN_GET_INTERVAL, MailboxThrottled, named_wait
from unified_messaging.retry import RetryPolicy
from unified_messaging.upstream import remote_plan, simulator_plan

BACKOFF = RetryPolicy.from_schedule((5.0, 60.0))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def named(wait: float) -> MailboxThrottled:
    return MailboxThrottled(f"Not enough time between two get calls: wait {wait:.1f} s", wait, named=True)


@pytest.mark.parametrize("text, wait", [
    ("Not enough time between two get calls: wait 8.0 s before asking again.", 8.0),
    ("Not enough time, please wait 12 seconds", 12.0),
    ("Not enough time: wait 2,5 sec", 2.5),
    ("Not enough time between two get calls", None),
    ("Not enough time: wait for the previous call", None),
])
def test_the_wait_the_platform_names_is_read(text, wait):
    assert named_wait(text) == wait


def test_a_named_wait_is_honoured_and_the_platform_gap_learned():
    clock = Clock()
    pacing = PollPacing(1.0, backoff=BACKOFF, clock=clock)
    pacing.started()
    pacing.answered(more_waiting=False)
    assert pacing.next_at == pytest.approx(1001.0)
    clock.now = 1002.0  # a get 2 s after the previous one: "wait 8.0 s"
    pacing.started()
    assert pacing.throttled(named(8.0)) is False
    assert pacing.wait() == pytest.approx(8.25)
    assert pacing.gap == pytest.approx(10.25)
    clock.now = 1010.3
    assert pacing.due()
    pacing.started()
    pacing.answered(more_waiting=False)
    # the configured 1 s is below what the platform accepts: the learned gap wins
    assert pacing.next_at == pytest.approx(1010.3 + 10.25)


def test_a_full_batch_asks_again_after_the_platform_gap_not_at_once():
    clock = Clock()
    pacing = PollPacing(15.0, backoff=BACKOFF, clock=clock)
    assert pacing.gap == PLATFORM_MIN_GET_INTERVAL
    pacing.started()
    pacing.answered(more_waiting=True)
    assert pacing.wait() == pytest.approx(PLATFORM_MIN_GET_INTERVAL)
    pacing.started()
    pacing.answered(more_waiting=False)
    assert pacing.wait() == pytest.approx(15.0)


def test_an_unnamed_wait_uses_the_clients_default():
    clock = Clock()
    pacing = PollPacing(15.0, backoff=BACKOFF, clock=clock)
    pacing.started()
    pacing.throttled(MailboxThrottled("Not enough time", 30.0))
    assert pacing.wait() == pytest.approx(30.0)
    assert pacing.gap == PLATFORM_MIN_GET_INTERVAL


def test_eight_throttles_in_a_row_count_as_one_failure_then_back_off():
    clock = Clock()
    pacing = PollPacing(15.0, backoff=BACKOFF, clock=clock, throttle_retries=8)
    outcomes = []
    for _ in range(8):
        pacing.started()
        outcomes.append(pacing.throttled(MailboxThrottled("Not enough time", 30.0)))
        clock.now = pacing.next_at
    assert outcomes == [False] * 7 + [True]
    assert pacing.failed() == 5.0
    assert pacing.failures == 1
    # the ninth refusal starts a new count; an answer clears everything
    pacing.started()
    assert pacing.throttled(MailboxThrottled("Not enough time", 30.0)) is False
    pacing.answered(more_waiting=False)
    assert (pacing.throttled_in_a_row, pacing.failures) == (0, 0)


def test_settling_a_post_never_brings_the_get_under_the_platform_gap():
    clock = Clock()
    pacing = PollPacing(60.0, backoff=BACKOFF, clock=clock)
    pacing.started()
    pacing.answered(more_waiting=False)
    pacing.no_later_than(1.0)
    assert pacing.wait() == pytest.approx(PLATFORM_MIN_GET_INTERVAL)
    pacing.answered(more_waiting=False)
    clock.now += 12.0
    pacing.no_later_than(1.0)
    assert pacing.wait() == pytest.approx(1.0)


def test_the_real_client_reads_the_simulators_named_wait(pki):
    with running_platform(pki, min_get_interval=30) as (_, url):
        client = client_for(pki, url, throttle_wait=99)
        client.get()
        with pytest.raises(MailboxThrottled) as refused:
            client.get()
    assert refused.value.named
    assert 25 < refused.value.wait_seconds <= 30


def test_the_pipeline_stops_asking_too_soon_once_told(pki, tmp_path, caplog):
    """A poll interval of 0.1 s against a mailbox that accepts a get every 1.5 s: one refusal, then
    every get is accepted.  Before #15.3 the poller came back after its fixed throttle wait and was
    refused about every other time."""
    caplog.set_level(logging.INFO, logger="unified_messaging.invoicing.pacing")
    with running_platform(pki, min_get_interval=1.5) as (simulator, url):
        pipeline = InvoicingPipeline(tmp_path / "invoicing", Journal(tmp_path / "journal.sqlite"),
                                     lambda: client_for(pki, url, throttle_wait=0.2), poll_interval=0.1,
                                     rescan_seconds=0.1).start()
        try:
            time.sleep(7.0)
        finally:
            pipeline.stop()
        throttled, answered = simulator.counters["genasync.throttled"], simulator.counters["genasync.answered"]
    assert throttled == 1, simulator.counters
    assert answered >= 4, simulator.counters  # about one every 1.75 s over 7 s
    assert pipeline.pacing.gap == pytest.approx(1.5 + 0.25, abs=0.2)
    assert "accepts a get about every 1." in caplog.text


def test_a_poll_interval_below_the_simulators_gap_is_refused_at_start(tmp_path):
    config = make_config(tmp_path, invoicing={"poll_interval_seconds": 2.0})
    with pytest.raises(ConfigError) as refused:
        simulator_plan(config, "http://127.0.0.1:1", lambda value, key: value)
    assert "[invoicing] poll_interval_seconds = 2 " in str(refused.value)
    assert "genasync_min_get_interval_seconds = 10)" in str(refused.value)
    make_config(tmp_path, invoicing={"poll_interval_seconds": 2.0}, simulator={"genasync_min_get_interval_seconds": 1.0})


def _remote(tmp_path, host: str, interval: float):
    base = f"https://{host}"
    return make_config(
        tmp_path, invoicing={"poll_interval_seconds": interval, "care_provider_nihii": "81234530000"},
        upstream={"mode": "remote", "sts_url": base + "/sts", "genericinsurability_url": base + "/gi",
                  "genasync_url": base + "/ga", "is_test": True},
        identity={"keystore": str(tmp_path / "none.p12"), "keystore_password": "x"})


def test_a_poll_interval_below_what_mycarenet_accepts_is_refused_against_its_address(tmp_path):
    with pytest.raises(ConfigError) as refused:
        remote_plan(_remote(tmp_path, "services-acpt.ehealth.fgov.be", 5.0), lambda value, key: value)
    assert "[invoicing] poll_interval_seconds = 5 is not valid with the acceptance MyCareNet platform" in str(
        refused.value)
    assert f"Set it to {PLATFORM_MIN_GET_INTERVAL:g} or more" in str(refused.value)
    assert remote_plan(_remote(tmp_path, "services-acpt.ehealth.fgov.be", 10.0), lambda value, key: value)


def test_against_another_address_a_short_interval_is_only_warned_about(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="unified_messaging.upstream")
    assert remote_plan(_remote(tmp_path, "proxy.lab.example", 1.0), lambda value, key: value)
    assert "poll_interval_seconds = 1: MyCareNet refuses gets less than 10 s apart" in caplog.text
