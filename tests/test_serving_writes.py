"""How the server writes answers: a whole answer with its headers, and large or streamed answers to a slow reader
still delivered whole (the event loop does not watch a channel whose worker thread is writing)."""
from __future__ import annotations

import http.client
import socket
import time

from unified_messaging.serving import serving

CHUNK = b"0123456789abcdef" * 32 * 1024  # 512 KiB


def _whole(environ, start_response):
    body = b"<answer>" + b"x" * 5000 + b"</answer>"
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _streamed(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])  # no length: chunked
    return (CHUNK for _ in range(40))  # 20 MiB: over waitress's 16 MiB output buffer watermark


def _sized_pieces(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(3 * len(CHUNK)))])
    return [CHUNK, CHUNK, CHUNK]


def test_a_whole_answer_arrives_with_its_headers_byte_for_byte():
    with serving(_whole, threads=2) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)  # the whole answer (one send since _OneSendTask) is in the socket by now
            first = sock.recv(1 << 20)
    head, _, body = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 5017" in head
    assert body == b"<answer>" + b"x" * 5000 + b"</answer>"


def _get(url: str, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection(url.split("//", 1)[1], timeout=30)
    connection.request("GET", path)
    return connection, connection.getresponse()


def test_keep_alive_calls_get_their_own_answers():
    with serving(_whole, threads=2) as url:
        connection = http.client.HTTPConnection(url.split("//", 1)[1], timeout=10)
        for _ in range(50):
            connection.request("POST", "/a", body=b"<q/>")
            answer = connection.getresponse()
            assert answer.status == 200 and len(answer.read()) == 5017
        connection.close()


def test_a_streamed_answer_larger_than_the_output_buffer_reaches_a_slow_reader():
    with serving(_streamed, threads=2) as url:
        connection, answer = _get(url, "/big")
        time.sleep(1.0)  # the worker fills the socket and its buffer, then waits for the loop to send
        received = 0
        started = time.monotonic()
        while piece := answer.read(256 * 1024):
            received += len(piece)
        assert received == 40 * len(CHUNK)
        assert time.monotonic() - started < 20
        connection.close()


def test_an_answer_written_in_several_pieces_arrives_whole():
    with serving(_sized_pieces, threads=2) as url:
        connection, answer = _get(url, "/pieces")
        time.sleep(0.5)
        assert answer.read() == CHUNK * 3
        connection.close()
