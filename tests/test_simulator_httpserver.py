"""The simulator's own HTTP server (``simulator.httpserver``), over real sockets: what clients rely on."""
from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import pytest

from unified_messaging.simulator.httpserver import LeanServer


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers what it received: method, path, query, remote port, body."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if environ["PATH_INFO"] == "/short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"only ten b"]
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    answer = (f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['QUERY_STRING']} "
              f"{environ['REMOTE_PORT']} {environ.get('HTTP_SOAPACTION', '-')} ").encode() + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


@pytest.fixture
def server() -> Iterator[LeanServer]:
    running = LeanServer(echo, "127.0.0.1", 0, threads=16, max_body=1000, name="test-lean",
                         oversized=lambda path, content_type: ("text/xml", b"<too-large/>") if path == "/soap"
                         else None).start()
    yield running
    running.close()


def raw(server: LeanServer, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything received until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_keep_alive_serves_several_requests_on_one_connection(server: LeanServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    answers = []
    for n in range(3):
        connection.request("POST", f"/a%20b?n={n}", body=b"<x/>", headers={"SOAPAction": '"urn:x"'})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Connection") is None
        answers.append(response.read().decode())
    connection.close()
    ports = {answer.split()[4] for answer in answers}  # after the path with its space
    assert len(ports) == 1  # the same client connection each time
    assert answers[0].startswith("POST /a b n=0 ") and answers[0].endswith('"urn:x" <x/>')


def test_http_1_0_gets_its_answer_then_the_connection_is_closed(server: LeanServer) -> None:
    answer = raw(server, b"GET /x HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in answer
    assert b"GET /x " in answer


def test_connection_close_is_honoured(server: LeanServer) -> None:
    answer = raw(server, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 1 and b"Connection: close\r\n" in answer


def test_chunked_body_and_expect_continue(server: LeanServer) -> None:
    answer = raw(server, b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n")
    assert answer.endswith(b" abcdefg")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                     b"Connection: close\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 200 OK") and rest.endswith(b" hello")


def test_a_body_over_the_limit_gets_413_worded_by_the_application_where_it_has_words(server: LeanServer) -> None:
    soap = raw(server, b"POST /soap HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
    assert soap.startswith(b"HTTP/1.1 413 ") and soap.endswith(b"<too-large/>") and b"text/xml" in soap
    other = raw(server, b"POST /other HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
    assert other.startswith(b"HTTP/1.1 413 ") and b"exceeds 1000 bytes" in other


def test_an_answer_shorter_than_its_length_closes_the_connection(server: LeanServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/short")
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()


def test_what_is_not_http_gets_400(server: LeanServer) -> None:
    assert raw(server, b"hello there\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert raw(server, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_slow_answers_do_not_wait_for_each_other(server: LeanServer) -> None:
    def call() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/slow")
        assert connection.getresponse().status == 200
        connection.close()
    calls = [threading.Thread(target=call) for _ in range(12)]
    started = time.monotonic()
    for thread in calls:
        thread.start()
    for thread in calls:
        thread.join()
    assert time.monotonic() - started < 2.0  # 12 x 0.3 s would be 3.6 s one after another


def test_close_stops_listening_and_ends_open_connections() -> None:
    running = LeanServer(echo, "127.0.0.1", 0, threads=4, max_body=1000, name="test-lean").start()
    idle = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    idle.request("GET", "/x")
    assert idle.getresponse().read()  # the connection is now open and idle, between requests
    running.close()
    assert idle.sock.recv(10) == b""
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", running.port), timeout=1).close()
