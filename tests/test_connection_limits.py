"""Connection exhaustion: hundreds of idle, half-sent requests held open as real sockets must not
stop normal callers; a request trickled a byte at a time is closed after the read time-out; one
client cannot hold more than its share of connections."""
from __future__ import annotations

import resource
import select
import socket
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests

from tests.support import soap_envelope, wait_for
from unified_messaging.serving import ServerLimits, raise_open_file_limit, start_server

ECHO = soap_envelope("<tns:Echo><tns:message>still here</tns:message></tns:Echo>").encode("utf-8")
HALF_SENT = (b"POST /unified-messaging/services/ConsultMyCareNetSoap HTTP/1.1\r\n"
             b"Host: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 400\r\n\r\n<soap:Env")


def needs_descriptors(count: int) -> None:
    if raise_open_file_limit(count) < count:
        pytest.skip(f"this machine allows {resource.getrlimit(resource.RLIMIT_NOFILE)} open files; "
                    f"the test needs {count}")


@contextmanager
def half_sent(port: int, count: int, hosts: int = 1) -> Iterator[list[socket.socket]]:
    """``count`` connections that sent half a request, from ``hosts`` loopback addresses
    (127.0.0.2, 127.0.0.3, ...), none from the normal callers' 127.0.0.1."""
    sockets = []
    try:
        for number in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=(f"127.0.0.{2 + number % hosts}", 0))
            s.sendall(HALF_SENT)
            sockets.append(s)
        yield sockets
    finally:
        for s in sockets:
            s.close()


def echo_times(url: str, calls: int = 10) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        answer = requests.post(url, data=ECHO, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=5)
        assert answer.status_code == 200 and b"still here" in answer.content
        times.append(time.perf_counter() - started)
    return times


@pytest.mark.parametrize("idle, hosts", [(300, 3), (1000, 4), (1000, 1)],
                         ids=["300-from-3-hosts", "1000-from-4-hosts", "1000-from-one-host"])
def test_idle_half_sent_requests_leave_normal_callers_answered_within_5_s(gateway, idle, hosts):
    needs_descriptors(2 * idle + 512)  # both ends live in this process
    url = f"{gateway.services_url}/ConsultMyCareNetSoap"
    with half_sent(gateway.port, idle, hosts) as held:
        times = echo_times(url)
        still_open = len(held) - closed_count(held)
    # Without the limits the service stopped for over a minute; 5 s leaves room for a loaded machine
    # (the suite runs on two xdist workers), where the first call after the burst took up to 2 s.
    assert max(times) < 5.0, times
    if idle // hosts > gateway.config.server.max_connections_per_client:
        assert still_open <= gateway.config.server.max_connections_per_client + 1
    else:
        assert still_open == idle


def tiny_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body) + 3))])
    return [b"ok:" + body]


@contextmanager
def tiny_server(limits: ServerLimits) -> Iterator[int]:
    running = start_server(tiny_app, "127.0.0.1", 0, threads=2, max_body=1024, name="um-test-limits",
                           limits=limits)
    try:
        yield running.port
    finally:
        running.close()


def closed_count(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has closed (readable at end of file), at once."""
    poller = select.poll()
    for s in sockets:
        poller.register(s, select.POLLIN | select.POLLHUP)
    return sum(1 for _, events in poller.poll(100) if events & (select.POLLIN | select.POLLHUP))


def closed(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_a_request_trickled_a_byte_at_a_time_is_closed_after_the_read_timeout():
    limits = ServerLimits(idle_timeout=30, request_read_timeout=1.0)
    with tiny_server(limits) as port:
        s = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        for byte in b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n":
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            if closed(s):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        s.close()
        assert 1.0 <= elapsed < 3.5, f"closed after {elapsed:.1f} s"
        answer = requests.post(f"http://127.0.0.1:{port}/", data=b"hello", timeout=2)
        assert answer.text == "ok:hello"


def test_an_idle_connection_is_closed_after_the_idle_timeout():
    with tiny_server(ServerLimits(idle_timeout=1.0, request_read_timeout=10)) as port:
        s = socket.create_connection(("127.0.0.1", port))
        wait_for(lambda: closed(s), timeout=4, what="the idle connection to be closed")
        s.close()


def test_one_client_cannot_hold_more_than_its_connections():
    with tiny_server(ServerLimits(max_connections_per_client=5)) as port:
        with half_sent(port, 5) as kept:
            extra = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            wait_for(lambda: closed(extra), timeout=3, what="the sixth connection to be closed")
            extra.close()
            assert closed_count(kept) == 0
            assert requests.post(f"http://127.0.0.1:{port}/", data=b"other", timeout=2).text == "ok:other"
