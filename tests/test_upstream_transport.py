"""``GatewayTransport.post``: the lean post sends what ``requests.Session.post`` sent, over real sockets.

The transport prepares its requests itself and hands them to the session's ``HTTPAdapter``; these
tests serve a small WSGI application on a free port and compare what arrives with what a plain
``requests.Session`` sends, then check the cases where the session's own work still matters:
cookies set by the platform's side, a redirect, the tracer's hook, the environment's proxy.
"""
from __future__ import annotations

import threading

import requests

from unified_messaging.mycarenet.transport import USER_AGENT, GatewayTransport
from unified_messaging.serving import serving

BODY = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body/></soapenv:Envelope>"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:test"'}
ANSWER = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body/></soapenv:Envelope>"


class Recorder:
    """Answers every POST with ``ANSWER``; ``/login`` also sets a cookie and ``/moved`` redirects."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        headers["Content-Length"] = environ.get("CONTENT_LENGTH", "")
        with self._lock:
            self.seen.append((environ["PATH_INFO"], headers, body))
        extra = []
        if environ["PATH_INFO"] == "/moved":
            start_response("307 Temporary Redirect", [("Location", "/here"), ("Content-Length", "0")])
            return [b""]
        if environ["PATH_INFO"] == "/login":
            extra = [("Set-Cookie", "route=node-2; Path=/")]
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(ANSWER)))] + extra)
        return [ANSWER]


def test_the_lean_post_sends_what_a_session_sends() -> None:
    recorder = Recorder()
    with serving(recorder) as base:
        reference = requests.Session()
        reference.headers["User-Agent"] = USER_AGENT
        reference.post(f"{base}/genins", data=BODY, headers=HEADERS, timeout=5).content
        transport = GatewayTransport(timeout=5)
        first = transport.post(f"{base}/genins", BODY, HEADERS)
        second = transport.post(f"{base}/genins", BODY, HEADERS)  # the address prepared once
        transport.close()
    (_, expected, expected_body), *ours = recorder.seen
    assert first.content == second.content == ANSWER and second.status_code == 200
    assert second.request.url == f"{base}/genins"
    for path, headers, body in ours:
        assert (path, headers, body) == ("/genins", expected, expected_body)


def test_cookies_set_by_the_other_side_go_with_the_next_posts() -> None:
    recorder = Recorder()
    with serving(recorder) as base:
        transport = GatewayTransport(timeout=5)
        transport.post(f"{base}/genins", BODY, HEADERS)
        transport.post(f"{base}/login", BODY, HEADERS)
        transport.post(f"{base}/genins", BODY, HEADERS)
        transport.close()
    cookies = [headers.get("Cookie") for _, headers, _ in recorder.seen]
    assert cookies == [None, None, "route=node-2"]


def test_a_redirect_is_followed_and_the_tracer_sees_every_answer() -> None:
    recorder = Recorder()
    traced: list[int] = []

    class Tracer:
        def attach(self, session: requests.Session) -> requests.Session:
            session.hooks["response"].append(lambda response, *args, **kwargs: traced.append(response.status_code))
            return session

    with serving(recorder) as base:
        transport = GatewayTransport(timeout=5, tracer=Tracer())
        answer = transport.post(f"{base}/moved", BODY, HEADERS)
        transport.post(f"{base}/genins", BODY, HEADERS)
        transport.close()
    assert answer.status_code == 200 and answer.url == f"{base}/here"
    assert [path for path, _, _ in recorder.seen] == ["/moved", "/moved", "/here", "/genins"]
    assert recorder.seen[2][2] == BODY  # 307: the body is posted again
    assert traced[-1] == 200 and 307 in traced


def test_the_environment_proxy_is_read_once_and_used(monkeypatch) -> None:
    recorder = Recorder()
    with serving(recorder) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = GatewayTransport(timeout=5)
        transport.post("http://platform.invalid/genins", BODY, HEADERS)
        monkeypatch.delenv("HTTP_PROXY")
        transport.post("http://platform.invalid/genins", BODY, HEADERS)  # read at the first call
        transport.close()
    # platform.invalid cannot be resolved: both posts went to the proxy, asking for the platform
    assert [(path, headers["Host"]) for path, headers, _ in recorder.seen] == [("/genins", "platform.invalid")] * 2
