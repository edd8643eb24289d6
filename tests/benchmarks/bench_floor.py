"""The floor: the CPU per call of the pieces the design card fixes, without any gateway code.

What is measured (CPU time, user + system, over ``--calls`` calls made one after another):

* **waitress + Spyne answering a trivial SOAP call**: a Spyne service with one ``echo(text)``
  operation (SOAP 1.1 in and out, the gateway's protocol classes), served by waitress in a process
  of its own; the server process's CPU per call. Beside it, waitress alone with a WSGI function
  that answers fixed bytes, so that waitress and Spyne can be told apart, and Spyne alone (its
  ``WsgiApplication`` called in-process, no HTTP);
* **one RSA-2048 signature and one verification** (PKCS#1 v1.5, SHA-256, ``cryptography``), the
  operations of every WS-Security signed call (the gateway signs its request and verifies the
  answer; the platform does the reverse);
* **one HTTP exchange, client side**: a POST of a 3 kB body and the read of the answer over a
  keep-alive connection to the bare waitress server, with ``requests.Session.post``, with
  ``requests``' ``HTTPAdapter.send`` (what ``GatewayTransport`` does), with urllib3's pool, and
  with ``http.client``; the CPU of this process per call.

How to run::

    .venv/bin/python -m tests.benchmarks.bench_floor                 # about 1 minute
    .venv/bin/python -m tests.benchmarks.bench_floor --calls 5000

It prints one line per piece (ms of CPU per call) and the load average; a script, not a test.
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import time

from tests.benchmarks.bench_soap_front import process_cpu_seconds
from tests.benchmarks.common import positive_int

BODY = b"<x>" + b"a" * 3000 + b"</x>"
ECHO_NS = "urn:um:bench:floor"


def _spyne_app():
    from spyne import Application, ServiceBase, Unicode, rpc
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

    class Echo(ServiceBase):
        @rpc(Unicode, _returns=Unicode)
        def echo(ctx, text):  # noqa: N805 - Spyne's signature
            return text

    return WsgiApplication(Application([Echo], tns=ECHO_NS, in_protocol=Soap11(validator="lxml"),
                                       out_protocol=Soap11()))


def _bare_app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    answer = b"<ok/>" * 200
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(answer)))])
    return [answer]


def _serve(kind: str, pipe) -> None:
    from waitress.server import create_server

    app = _spyne_app() if kind == "spyne" else _bare_app
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    pipe.send(server.effective_port)
    server.run()


def start_server(kind: str) -> tuple[multiprocessing.Process, int]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(kind, theirs), daemon=True)
    process.start()
    return process, ours.recv()


def soap_echo(text: str) -> bytes:
    return (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:e="{ECHO_NS}">'
            f"<soapenv:Body><e:echo><e:text>{text}</e:text></e:echo></soapenv:Body></soapenv:Envelope>").encode()


def server_cpu_per_call(kind: str, calls: int) -> float:
    """ms of the server process's CPU per call, calls sent one at a time over one connection."""
    process, port = start_server(kind)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        body = soap_echo("hello") if kind == "spyne" else BODY
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"echo"'}

        def call() -> None:
            connection.request("POST", "/", body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            if answer.status != 200 or (kind == "spyne" and b"hello" not in data):
                raise SystemExit(f"{kind}: HTTP {answer.status} {data[:200]!r}")

        for _ in range(200):
            call()
        before = process_cpu_seconds(process.pid)
        for _ in range(calls):
            call()
        return (process_cpu_seconds(process.pid) - before) * 1000 / calls
    finally:
        process.kill()
        process.join(10)


def spyne_in_process(calls: int) -> float:
    """ms of CPU per call of Spyne's WsgiApplication alone (no HTTP server), in this process."""
    import io

    app = _spyne_app()
    body = soap_echo("hello")

    def call() -> None:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "bench",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/xml; charset=utf-8",
                   "CONTENT_LENGTH": str(len(body)), "HTTP_SOAPACTION": '"echo"', "wsgi.input": io.BytesIO(body)}
        b"".join(app(environ, lambda status, headers, exc_info=None: None))

    return _cpu_per_call(call, calls)


def _cpu_per_call(call, calls: int) -> float:
    for _ in range(min(200, calls)):
        call()
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) * 1000 / calls


def rsa_costs(calls: int) -> tuple[float, float]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = b"<ds:SignedInfo>" + b"x" * 900 + b"</ds:SignedInfo>"
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    sign = _cpu_per_call(lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256()), calls)
    verify = _cpu_per_call(lambda: public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256()), calls)
    return sign, verify


def http_client_costs(calls: int) -> dict[str, float]:
    import requests
    import urllib3

    process, port = start_server("bare")
    url = f"http://127.0.0.1:{port}/"
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    try:
        session = requests.Session()
        adapter = session.get_adapter(url)
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
        connection = http.client.HTTPConnection("127.0.0.1", port)

        def with_adapter() -> None:
            request = requests.PreparedRequest()
            request.prepare(method="POST", url=url, headers=headers, data=BODY)
            adapter.send(request, timeout=10).content

        def with_http_client() -> None:
            connection.request("POST", "/", body=BODY, headers=headers)
            connection.getresponse().read()

        return {
            "requests Session.post": _cpu_per_call(lambda: session.post(url, data=BODY, headers=headers).content,
                                                   calls),
            "requests HTTPAdapter.send (GatewayTransport)": _cpu_per_call(with_adapter, calls),
            "urllib3 pool urlopen": _cpu_per_call(lambda: pool.urlopen("POST", "/", body=BODY, headers=headers).data,
                                                  calls),
            "http.client": _cpu_per_call(with_http_client, calls),
        }
    finally:
        process.kill()
        process.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=positive_int, default=2000)
    args = parser.parse_args()
    print(f"load average at start {os.getloadavg()}; {args.calls} calls per piece, one at a time")
    rows = [
        ("waitress + Spyne, trivial SOAP call (server process)", server_cpu_per_call("spyne", args.calls)),
        ("waitress alone, fixed answer (server process)", server_cpu_per_call("bare", args.calls)),
        ("Spyne alone, WsgiApplication in-process", spyne_in_process(args.calls)),
    ]
    sign, verify = rsa_costs(args.calls)
    rows += [("RSA-2048 signature (PKCS#1 v1.5, SHA-256)", sign), ("RSA-2048 verification", verify)]
    rows += [(f"HTTP exchange, client side: {name}", cost) for name, cost in http_client_costs(args.calls).items()]
    print(f"load average at end {os.getloadavg()}")
    print("\n| piece | CPU per call |\n|---|---:|")
    for name, cost in rows:
        print(f"| {name} | {cost:.3f} ms |")


if __name__ == "__main__":
    main()
