"""#17 point 2, the election (``database/leader.py``) on a real PostgreSQL: two ``Leadership``
objects on one database, as two nodes would be; one leads, the other takes over when it stops or
when its session is ended by the server; a holder whose lease ran out takes no step."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from unified_messaging.database.leader import APPLICATION, Leadership

pytestmark = pytest.mark.postgres

TAKEOVER = 1.0


class Node:
    """A Leadership and a record of what it was told to do."""

    def __init__(self, url: str, name: str, **kwargs) -> None:
        self.events: list[str] = []
        self.leadership = Leadership(url, node=name, takeover_seconds=TAKEOVER, on_lead=lambda: self.events.append("lead"),
                                     on_lose=lambda: self.events.append("lose"), **kwargs)


def test_one_of_two_leads_and_the_other_takes_over_when_it_stops(postgres_url, caplog):
    caplog.set_level("INFO", logger="unified_messaging.database.leader")
    one, other = Node(postgres_url, "node-one"), Node(postgres_url, "node-two")
    one.leadership.start()
    other.leadership.start()
    try:
        assert one.leadership.leading and one.leadership.holds() and one.events == ["lead"]  # won at start
        assert not other.leadership.leading and not other.leadership.holds() and other.events == []
        assert "standby: node node-one leads" in caplog.text
        time.sleep(TAKEOVER)  # several tries of the standby: still one leader
        assert one.leadership.leading and not other.leadership.leading
        began = time.monotonic()
        one.leadership.stop()
        assert one.events == ["lead", "lose"] and not one.leadership.holds()
        assert other.leadership.wait_leading(True, TAKEOVER * 2)
        took = time.monotonic() - began
        print(f"\ntakeover after a release: {took:.2f} s (bound {TAKEOVER} s)")
        assert took <= TAKEOVER and other.events == ["lead"]
        assert "this node now runs the singletons (leader): node-two" in caplog.text
    finally:
        one.leadership.stop()
        other.leadership.stop()
    assert other.events == ["lead", "lose"]


def test_a_holder_whose_session_the_server_ends_stops_at_once_and_the_standby_leads(postgres_url, caplog):
    one, other = Node(postgres_url, "node-one"), Node(postgres_url, "node-two")
    one.leadership.start()
    other.leadership.start()
    try:
        assert one.leadership.leading
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # the server ends the holder's session
            ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                                  (f"{APPLICATION}: node-one",)).fetchall()
        assert ended == [(True,)]
        assert one.leadership.wait_leading(False, TAKEOVER) and one.events == ["lead", "lose"]
        assert not one.leadership.holds()
        assert other.leadership.wait_leading(True, TAKEOVER * 2)
        assert "this node no longer runs the singletons: its connection to PostgreSQL was lost" in caplog.text
        assert one.leadership.wait_leading(False, 0.1) and not one.leadership.leading  # now a standby itself
    finally:
        one.leadership.stop()
        other.leadership.stop()


def test_the_lease_runs_out_when_the_checks_stop(postgres_url):
    """A frozen holder (its checking thread stopped with it) takes no step when it wakes up, before
    it has noticed anything: ``holds()`` reads the lease, not a flag."""
    now = [1000.0]
    frozen = threading.Event()
    node = Node(postgres_url, "node-one", clock=lambda: now[0])
    node.leadership.start()
    node.leadership._check = lambda: frozen.wait()  # from now on the checks stop, as in a frozen process
    try:
        assert node.leadership.holds()
        now[0] += node.leadership.lease - 0.01
        assert node.leadership.holds()
        now[0] += 0.02
        assert node.leadership.leading and not node.leadership.holds()
        assert node.leadership.lease < node.leadership.idle_timeout <= TAKEOVER
    finally:
        frozen.set()
        node.leadership.stop()


def test_an_unreachable_database_leaves_the_node_a_standby_that_says_why(caplog):
    node = Node("postgresql://um@127.0.0.1:9/none?connect_timeout=1", "node-one")
    node.leadership.start()
    try:
        assert not node.leadership.leading and node.events == []
        assert "standby: cannot reach PostgreSQL" in caplog.text
    finally:
        node.leadership.stop()


def test_singletons_that_cannot_start_release_the_lead_and_say_why(postgres_url):
    """At start-up their error is the node's start-up error; the lock goes with the closed session."""
    def refuse() -> None:
        raise RuntimeError("[invoicing] care_provider_nihii refused")

    lost: list[str] = []
    failing = Leadership(postgres_url, node="node-one", takeover_seconds=TAKEOVER, on_lead=refuse,
                         on_lose=lambda: lost.append("lose"))
    with pytest.raises(RuntimeError, match="care_provider_nihii"):
        failing.start()
    assert not failing.leading and lost == ["lose"]  # what had started is stopped
    other = Node(postgres_url, "node-two")
    other.leadership.start()
    try:
        assert other.leadership.leading and other.events == ["lead"]
    finally:
        other.leadership.stop()
