"""The simulated MyCareNet platform in a process of its own: ``unified-messaging simulator``.

``unified-messaging serve`` normally runs the simulator inside the gateway.  Run on its own, it
outlives the gateway, which is what an integrator needs to test a gateway configured with
``[upstream] mode = "remote"`` (the same settings as for the real platform), and what the crash
tests need: the gateway is killed with SIGKILL while the simulated mailbox and its counters stay
up.

It serves, under one address:

* the eHealth STS at ``/IAM/SecurityTokenService/v1``, GenericInsurability at
  ``/GenericInsurability/v1`` and the GenAsync mailbox at ``/GenericAsync/v1``, with every
  platform check (signature, token, certificate of the demo CA, licence);
* ``GET /_simulator/counters``: a **test and diagnostic** endpoint (not part of MyCareNet) that
  returns the simulator's counters as JSON, e.g. ``genasync.posts.<InputReference>`` (how many
  times a sending was posted: the proof of exactly-once), ``genasync.delivered``,
  ``genasync.redelivered``, ``genasync.confirmed.messages``, plus ``pending_messages`` (feedback
  produced and not confirmed yet) and ``pending_mda_answers`` (MDA answers not confirmed yet).
  It shows no patient data and no secret;
* ``/_simulator/faults``: a **test** endpoint (not part of MyCareNet) for upstream chaos
  (``simulator/chaos.py``): ``GET`` returns the fault of each service and what was injected so far,
  ``POST ?service=genins&mode=html-502[&count=3]`` sets one (``mode=none`` lifts it).

The keys come from the demo PKI in ``<data folder>/demo-pki`` (made on first use): the gateway
uses ``demo-pki/lab.p12`` as ``[identity] keystore`` (password ``devpki.DEFAULT_PASSWORD``, see
``manifest.json``) and ``demo-pki/ca.pem`` as ``[upstream] platform_ca`` and ``ehealth_ca``.

``holds`` delay a GenAsync operation's request (eFact's mailbox or MDA's) *before* the platform
handles it (a slow network on the way in), whereas ``latency_ms`` delays every answer *after* it was
handled (the platform did the work, the answer is slow to come back).  Together they let a test stop
the gateway at a chosen point of an exchange by watching the gateway's own state, without hooks in
the gateway.  A held request is counted when it arrives (``held.post``, ``held.get``,
``held.confirm`` in the counters).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.chaos import DEFAULT_SLOW_SECONDS, SERVICES
from unified_messaging.simulator.genasync import GENASYNC_PATH, FeedbackTimings
from unified_messaging.simulator.httpserver import LeanServer
from unified_messaging.simulator.memberdata import MEMBERDATA_PATH
from unified_messaging.simulator.memberdata_async import MEMBERDATA_ASYNC_PATH
from unified_messaging.simulator.platform import STS_PATH, build_platform, demo_pki

log = logging.getLogger(__name__)

COUNTERS_PATH = "/_simulator/counters"
FAULTS_PATH = "/_simulator/faults"
MAX_BODY = 128 * 1024 * 1024
GENASYNC_ACTIONS = {
    "post": "urn:be:cin:nip:async:generic:post:msg",
    "get": "urn:be:cin:nip:async:generic:get:query",
    "confirm": "urn:be:cin:nip:async:generic:confirm:hash",
}


@dataclass(frozen=True)
class StandaloneSettings:
    """What ``unified-messaging simulator`` runs with (the command fills it from options and config)."""

    data_folder: Path
    licences: Mapping[str, str] = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: int = 0
    timings: FeedbackTimings = FeedbackTimings()
    min_get_interval: float = 10.0
    holds: Mapping[str, float] = field(default_factory=dict)  # GenAsync operation -> seconds held before handling
    threads: int = 16
    faults: Mapping[str, str] = field(default_factory=dict)  # service -> fault mode (simulator/chaos.py)
    fault_slow_seconds: float = DEFAULT_SLOW_SECONDS


class StandaloneApp:
    """The simulator's WSGI app plus the diagnostic counters endpoint and the request holds."""

    def __init__(self, simulator: Simulator, holds: Mapping[str, float] | None = None) -> None:
        self.simulator = simulator
        self._holds = {GENASYNC_ACTIONS[op]: (op, seconds) for op, seconds in (holds or {}).items() if seconds > 0}

    def counters(self) -> dict[str, int]:
        values = {name: self.simulator.counters[name] for name in self.simulator.counters}
        genasync = getattr(self.simulator, "genasync", None)
        if genasync is not None:
            values["pending_messages"] = genasync.pending_messages()
        memberdata_async = getattr(self.simulator, "memberdata_async", None)
        if memberdata_async is not None:
            values["pending_mda_answers"] = memberdata_async.pending()
        return values

    def faults(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The ``/_simulator/faults`` answer (status, JSON) after a ``POST``'s change, if any."""
        injection = self.simulator.faults
        if environ.get("REQUEST_METHOD") == "POST":
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            try:
                count = int(query["count"]) if query.get("count") else None
                injection.set(query.get("service", ""), query.get("mode", ""), count=count)
            except ValueError as exc:
                return "400 Bad Request", {"error": str(exc)}
        return "200 OK", {"faults": {service: injection.mode(service).value for service in SERVICES},
                          "injected": dict(injection.injected)}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == FAULTS_PATH:
            status, answer = self.faults(environ)
            body = json.dumps(answer, sort_keys=True).encode("utf-8")
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                    ("Cache-Control", "no-store")])
            return [body]
        if path == COUNTERS_PATH:
            if environ.get("REQUEST_METHOD", "GET") != "GET":
                start_response("405 Method Not Allowed", [("Allow", "GET"), ("Content-Length", "0")])
                return [b""]
            body = json.dumps(self.counters(), sort_keys=True).encode("utf-8")
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [body]
        mailbox = path in (GENASYNC_PATH, MEMBERDATA_ASYNC_PATH)
        if self._holds and mailbox and environ.get("REQUEST_METHOD") == "POST":
            action = (environ.get("HTTP_SOAPACTION") or "").strip().strip('"')
            hold = self._holds.get(action)
            if hold:
                operation, seconds = hold
                # counted on arrival: the whole request is here (waitress reads the body before calling
                # the app) and will be handled after the hold, even if its sender is gone by then
                self.simulator.counters.increment(f"held.{operation}")
                time.sleep(seconds)
        return self.simulator(environ, start_response)


class StandaloneSimulator:
    """``start()`` builds the platform (demo PKI in the data folder) and serves it; ``stop()`` closes it."""

    def __init__(self, settings: StandaloneSettings) -> None:
        self.settings = settings
        self.pki = None
        self.simulator: Simulator | None = None
        self.app: StandaloneApp | None = None
        self._running: LeanServer | None = None

    @property
    def port(self) -> int:
        assert self._running is not None, "start() the simulator first"
        return self._running.port

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{self.port}"

    def start(self) -> "StandaloneSimulator":
        s = self.settings
        s.data_folder.mkdir(parents=True, exist_ok=True)
        self.pki = demo_pki(s.data_folder)
        self.simulator = build_platform(self.pki, licences=dict(s.licences), latency_ms=s.latency_ms,
                                        genasync_timings=s.timings, genasync_min_get_interval=s.min_get_interval,
                                        faults=s.faults, fault_slow_seconds=s.fault_slow_seconds)
        self.app = StandaloneApp(self.simulator, s.holds)
        self._running = LeanServer(self.app, s.host, s.port, threads=s.threads, max_body=MAX_BODY,
                                   name="um-simulator").start()
        log.info("simulated MyCareNet platform listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None

    def describe(self) -> list[str]:
        """The lines the command prints: addresses and where the demo keys are (never a password)."""
        url = self.url
        pki = self.pki
        return [
            f"simulated MyCareNet platform at {url}",
            f"  STS:                 {url}{STS_PATH}",
            f"  GenericInsurability: {url}{Simulator.GENERICINSURABILITY_PATH}",
            f"  GenAsync:            {url}{GENASYNC_PATH}",
            f"  MemberData:          {url}{MEMBERDATA_PATH}",
            f"  GenAsync MemberData: {url}{MEMBERDATA_ASYNC_PATH}",
            f"  counters (test/diagnostic, JSON): {url}{COUNTERS_PATH}",
            f"  fault injection (tests only): {url}{FAULTS_PATH}",
            f"demo PKI: {pki.folder} (platform CA {pki.ca_certificate_path.name}, lab keystore "
            f"{pki.lab.path.name}; keystore password: see {pki.manifest_path.name})",
        ]

    def run_until(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            pass


def parse_holds(values: Iterable[str]) -> dict[str, float]:
    """``["confirm=1500", "post=200"]`` -> ``{"confirm": 1.5, "post": 0.2}`` (milliseconds in, seconds out)."""
    holds: dict[str, float] = {}
    for value in values:
        operation, sep, milliseconds = value.partition("=")
        operation = operation.strip().lower()
        if not sep or operation not in GENASYNC_ACTIONS:
            raise ValueError(f"--hold {value!r} is not valid: expected OPERATION=MILLISECONDS with OPERATION one of "
                             f"{', '.join(GENASYNC_ACTIONS)}, e.g. confirm=1500.")
        try:
            number = int(milliseconds)
        except ValueError:
            raise ValueError(f"--hold {value!r} is not valid: expected a whole number of milliseconds.") from None
        if number < 0:
            raise ValueError(f"--hold {value!r} is not valid: expected a number of milliseconds >= 0.")
        holds[operation] = number / 1000
    return holds
