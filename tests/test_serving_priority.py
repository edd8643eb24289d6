"""Urgent requests (Mybox, health) are served before the SOAP calls queued for a worker thread."""
from __future__ import annotations

import http.client
import threading
import time

from unified_messaging.gateway import _interactive
from unified_messaging.serving import start_server


def _recording_app(order: list[str], release: threading.Event, busy: threading.Event):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/soap/blocker":
            busy.set()
            release.wait(10)
        order.append(path)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]
    return app


def _get(port: int, path: str, answers: dict[str, int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", path)
    answers[path] = connection.getresponse().status
    connection.close()


def _queued(running, count: int, busy: threading.Event) -> None:
    """The one thread serves the blocker and ``count`` requests wait in waitress's queue."""
    assert busy.wait(10), "the blocker was never served"
    deadline = time.monotonic() + 10
    while len(running.server.task_dispatcher.queue) < count:
        assert time.monotonic() < deadline, "the requests never reached waitress's queue"
        time.sleep(0.01)


def _serve_in_turn(paths: list[str], urgent=None) -> tuple[list[str], dict[str, int]]:
    """One worker thread: the first path blocks it, the others arrive one after the other and queue;
    then the thread is released. Returns the order the app saw and the status of each answer."""
    order: list[str] = []
    release, busy = threading.Event(), threading.Event()
    running = start_server(_recording_app(order, release, busy), "127.0.0.1", 0, threads=1, max_body=1024,
                           name="test-queue", urgent=urgent)
    answers: dict[str, int] = {}
    clients = []
    try:
        for number, path in enumerate(paths):
            client = threading.Thread(target=_get, args=(running.port, path, answers))
            client.start()
            clients.append(client)
            _queued(running, number, busy)
        release.set()
        for client in clients:
            client.join(20)
    finally:
        release.set()
        running.close()
    return order, answers


def test_an_urgent_request_goes_before_the_queued_calls_and_urgent_ones_keep_their_order():
    paths = ["/soap/blocker", "/soap/1", "/soap/2", "/mybox/a", "/health"]
    order, answers = _serve_in_turn(paths, urgent=lambda path: not path.startswith("/soap"))
    assert answers == {path: 200 for path in paths}
    assert order == ["/soap/blocker", "/mybox/a", "/health", "/soap/1", "/soap/2"]


def test_without_urgent_requests_are_served_in_arrival_order():
    order, answers = _serve_in_turn(["/soap/blocker", "/soap/1", "/mybox/a"])
    assert order == ["/soap/blocker", "/soap/1", "/mybox/a"]
    assert set(answers.values()) == {200}


def test_the_gateway_treats_everything_but_the_soap_services_as_interactive():
    assert not _interactive("/unified-messaging/services/ConsultMyCareNetSoap")
    assert not _interactive("/unifed-messaging/services/ConsultMyCareNetSoap")  # the legacy misspelling
    assert _interactive("/unified-messaging/mybox/consultations")
    assert _interactive("/health")
