"""Routing under ``/unified-messaging/services`` (and the old misspelt ``/unifed-messaging/services``).

Our own small router rather than Spyne's WsgiMounter (which leaks ``//`` into addresses): it serves
the CXF-style services page, the contract files with rewritten addresses, and hands POSTs to the
Spyne application of the right SOAP version.  Unknown names are 404.
"""
from __future__ import annotations

import html
import io
import re
import logging
from typing import Callable, Iterable
from urllib.parse import parse_qsl

from unified_messaging.soap.consult import fault_envelope
from unified_messaging.soap.contract import Contract, Endpoint

log = logging.getLogger(__name__)

PREFIXES = ("/unified-messaging/services", "/unifed-messaging/services")
_SAFE_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")

StartResponse = Callable[..., object]


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes,
             extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))] + (extra or [])
    start_response(status, headers)
    return [body]


def _not_found(start_response: StartResponse, path: str) -> list[bytes]:
    body = (f"No service at {path}. The available services are listed at "
            f"{PREFIXES[0]}.\n").encode("utf-8")
    return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", body)


class ServicesRouter:
    """WSGI app for everything below the services prefixes."""

    def __init__(self, contract: Contract, soap_apps: dict, *, public_base_url: str = "",
                 max_request_bytes: int = 2 * 1024 * 1024) -> None:
        self.contract = contract
        self.soap_apps = soap_apps
        self.public_base_url = public_base_url.rstrip("/")
        self.max_request_bytes = max_request_bytes

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        prefix = next((p for p in PREFIXES if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            return _not_found(start_response, path)
        rest = path[len(prefix):].strip("/")
        endpoint = self.contract.endpoint(rest) if rest else None
        if endpoint is not None and environ.get("REQUEST_METHOD") == "POST":
            return self._soap(environ, start_response, endpoint)  # the SOAP call: no address, no query to read
        if rest and endpoint is None:
            return _not_found(start_response, path)
        services_url = self._base_url(environ) + prefix
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if not rest:
            return self._services_page(start_response, services_url, dict((k.lower(), v) for k, v in query))
        return self._get_endpoint(start_response, services_url, endpoint, query)

    def _base_url(self, environ: dict) -> str:
        if self.public_base_url:
            return self.public_base_url
        host = environ.get("HTTP_HOST", "")
        if not _SAFE_HOST.match(host):  # a forged Host header must not end up inside the WSDL
            host = f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def _get_endpoint(self, start_response: StartResponse, services_url: str, endpoint: Endpoint,
                      query: list[tuple[str, str]]) -> list[bytes]:
        params = {k.lower(): v for k, v in query}
        if "wsdl" in params:
            part = params["wsdl"]
            if part and part != "ConsultMyCareNet.wsdl":
                return _not_found(start_response, f"?wsdl={part}")
            body = self.contract.render_wsdl(services_url).encode("utf-8")
            return _respond(start_response, "200 OK", "text/xml; charset=utf-8", body)
        if "xsd" in params:
            text = self.contract.render_xsd(params["xsd"])
            if text is None:
                return _not_found(start_response, f"?xsd={params['xsd']}")
            return _respond(start_response, "200 OK", "text/xml; charset=utf-8", text.encode("utf-8"))
        address = f"{services_url}/{endpoint.name}"
        body = (f"<html><head><title>{endpoint.name}</title></head><body><p>{html.escape(address)} is a SOAP "
                f"{endpoint.soap_version} endpoint: POST SOAP messages to it. Its contract is at "
                f'<a href="{html.escape(address)}?wsdl">{html.escape(address)}?wsdl</a>.</p></body></html>')
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", body.encode("utf-8"))

    def _services_page(self, start_response: StartResponse, services_url: str,
                       params: dict[str, str]) -> list[bytes]:
        tns = self.contract.target_namespace
        if params.get("formatted", "").lower() == "false":
            suffix = "?wsdl" if params.get("wsdllist", "").lower() == "true" else ""
            lines = [f"{services_url}/{e.name}{suffix}" for e in self.contract.endpoints]
            body = ("\n".join(lines) + "\n").encode("utf-8")
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", body)
        rows = []
        for endpoint in self.contract.endpoints:
            port_type = self.contract.port_type_of(endpoint)
            operations = "".join(f"<li>{html.escape(op)}</li>" for op in self.contract.operations(port_type))
            address = html.escape(f"{services_url}/{endpoint.name}")
            rows.append(
                f'<tr><td><span class="porttypename">{html.escape(endpoint.name)}</span> '
                f'<span class="binding">(SOAP {html.escape(endpoint.soap_version)}, port type '
                f"{html.escape(port_type)})</span>"
                f"<ul>{operations}</ul></td>"
                f'<td><span class="field">Endpoint address:</span> <span class="value">{address}</span><br/>'
                f'<span class="field">WSDL :</span> <a href="{address}?wsdl">'
                f"{{{html.escape(tns)}}}{html.escape(self.contract.service_name)}</a><br/>"
                f'<span class="field">Target namespace:</span> <span class="value">{html.escape(tns)}</span>'
                f"</td></tr>"
            )
        page = (
            '<!DOCTYPE html><html><head><meta charset="UTF-8"><title>CXF - Service list</title></head><body>'
            '<span class="heading">Available SOAP services:</span><br/>'
            f'<table cellpadding="1" cellspacing="1" border="1" width="100%">{"".join(rows)}</table>'
            '<br/><br/><span class="heading">Available RESTful services:</span><br/>'
            '<table cellpadding="1" cellspacing="1" border="1" width="100%"></table>'
            "</body></html>"
        )
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", page.encode("utf-8"))

    def _soap(self, environ: dict, start_response: StartResponse, endpoint: Endpoint) -> Iterable[bytes]:
        content_type = environ.get("CONTENT_TYPE", "")
        version = "1.2" if "application/soap+xml" in content_type.lower() else "1.1"
        body = self._read_body(environ)
        if body is None:
            ctype, payload = self._too_large_fault(content_type)
            return _respond(start_response, "413 Request Entity Too Large", ctype, payload)
        if not content_type:
            environ["CONTENT_TYPE"] = "text/xml; charset=utf-8"
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.soap_apps[version](environ, start_response)

    def _too_large_fault(self, content_type: str) -> tuple[str, bytes]:
        version = "1.2" if "application/soap+xml" in content_type.lower() else "1.1"
        text = (f"The request is larger than {self.max_request_bytes} bytes, the limit set by "
                "[server] max_request_bytes; send a smaller request or raise the limit.")
        ctype = "application/soap+xml; charset=utf-8" if version == "1.2" else "text/xml; charset=utf-8"
        return ctype, fault_envelope(version, "Client", text)

    def too_large(self, path: str, content_type: str) -> tuple[str, bytes] | None:
        """The answer to a body so large that the server refused it before reading it: the same SOAP
        Client fault as any body over the limit, for the services' paths; None for other paths."""
        if not any(path == prefix or path.startswith(prefix + "/") for prefix in PREFIXES):
            return None
        return self._too_large_fault(content_type)

    def _read_body(self, environ: dict) -> bytes | None:
        """The request body, or None when it is over the limit (read at most limit + 1 bytes)."""
        stream = environ["wsgi.input"]
        limit = self.max_request_bytes
        declared = environ.get("CONTENT_LENGTH")
        if declared and declared.isdigit() and int(declared) > limit:
            return None
        body = stream.read(int(declared)) if declared and declared.isdigit() else stream.read(limit + 1)
        return None if len(body) > limit else body
