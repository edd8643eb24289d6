"""``GatewayTransport.post`` over ``keepalive``: connections reused, compressed answers, closed
connections, TLS, and failures worded as over requests (real sockets, a local waitress server)."""
from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
import zlib
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from unified_messaging.mycarenet.transport import GatewayTransport, network_reason
from unified_messaging.serving import serving

BODY = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body/></soapenv:Envelope>"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:test"'}
ANSWER = BODY


class Ports:
    """Answers ``ANSWER`` (compressed for ``/gzip`` and ``/deflate``, chunked for ``/chunked``) and
    keeps the client port of every request."""

    def __init__(self) -> None:
        self.ports: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self.ports.append(environ.get("REMOTE_PORT", ""))
        path, body, extra = environ["PATH_INFO"], ANSWER, []
        if path == "/gzip":
            body, extra = gzip.compress(ANSWER), [("Content-Encoding", "gzip")]
        elif path == "/deflate":
            body, extra = zlib.compress(ANSWER), [("Content-Encoding", "deflate")]
        elif path == "/chunked":  # no Content-Length: waitress sends it chunked, then closes
            start_response("200 OK", [("Content-Type", "text/xml")])
            return [ANSWER[:40], ANSWER[40:]]
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))] + extra)
        return [body]


def posts(path: str, count: int) -> tuple[list[requests.Response], set[str], str]:
    """``count`` posts to ``path`` through one transport: the answers, the client ports, the base URL."""
    app = Ports()
    with serving(app) as base:
        transport = GatewayTransport(timeout=5)
        answers = [transport.post(f"{base}{path}", BODY, HEADERS) for _ in range(count)]
        transport.close()
    return answers, set(app.ports), base


def test_a_connection_is_reused_from_post_to_post() -> None:
    answers, ports, base = posts("/genins", 3)
    assert [a.content for a in answers] == [ANSWER] * 3 and len(ports) == 1
    assert answers[0].headers["content-type"] == "text/xml" and answers[0].url == f"{base}/genins"


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/chunked"])
def test_a_compressed_or_chunked_answer_is_read_whole(path: str) -> None:
    with serving(Ports()) as base:
        transport = GatewayTransport(timeout=5)
        assert transport.post(f"{base}{path}", BODY, HEADERS).content == ANSWER
        transport.close()


def test_after_an_answer_that_closes_the_connection_the_next_post_connects_again() -> None:
    answers, ports, _ = posts("/chunked", 2)
    assert [a.content for a in answers] == [ANSWER] * 2 and len(ports) == 2
    assert answers[0].headers["Connection"] == "close" and answers[0].headers["Transfer-Encoding"] == "chunked"


def test_a_connection_the_server_closed_is_not_reused() -> None:
    app = Ports()
    with serving(app) as base:
        transport = GatewayTransport(timeout=5)
        transport.post(f"{base}/genins", BODY, HEADERS)
    with serving(app) as base2:  # the first server is gone with its connections
        assert transport.post(f"{base2}/genins", BODY, HEADERS).content == ANSWER
        transport.close()


def test_a_closed_port_is_refused_as_over_requests() -> None:
    with serving(Ports()) as base:
        pass
    transport = GatewayTransport(timeout=2)
    with pytest.raises(requests.ConnectionError) as caught:
        transport.post(f"{base}/genins", BODY, HEADERS)
    assert network_reason(caught.value, 2) == "connection refused: nothing listens at that address"


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it issued (files: ca.pem, server.pem, key.pem)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
              .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class _TlsProxy:
    """A TLS front on a free port forwarding each connection to a plain HTTP ``target`` port."""

    def __init__(self, target_port: int, certificate: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certificate, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._target = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            try:
                tls = self._context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(tls, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, tls), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def test_tls_is_verified_against_the_configured_ca(tmp_path: Path, monkeypatch) -> None:
    ca, certificate, key = _tls_files(tmp_path)
    app = Ports()
    with serving(app) as base:
        proxy = _TlsProxy(int(base.rsplit(":", 1)[1]), certificate, key)
        address = f"https://127.0.0.1:{proxy.port}/genins"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        trusting = GatewayTransport(timeout=5)
        answers = [trusting.post(address, BODY, HEADERS).content for _ in range(2)]
        trusting.close()
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        stranger = GatewayTransport(timeout=5)
        with pytest.raises(requests.exceptions.SSLError) as caught:
            stranger.post(address, BODY, HEADERS)
        stranger.close()
        proxy.close()
    assert answers == [ANSWER] * 2
    assert network_reason(caught.value, 5) == "the TLS handshake failed (certificate or protocol)"
