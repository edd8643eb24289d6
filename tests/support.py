"""Helpers shared by the test modules: the simulated platform, clocks, waiting, the CLI, SOAP front
requests, batch jobs, secure-space stores and byte-level tampering.

Test modules import these from here, never from one another. The fixtures built on them (``pki``,
``platform``) are in ``conftest.py``; this module does not import ``conftest`` (conftest imports it).
The invoicing processes are in ``invoicing_support.py``, the Mybox stack in ``web_support.py``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import requests
import zeep

from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.models import Party, PartyKind, Service, Side
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.serving import serving
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.devpki import GROUP_NUMBER, NURSE_NIHII, NURSE_SSIN, DevPki
from unified_messaging.simulator.genasync import FeedbackTimings
from unified_messaging.simulator.platform import build_platform
from unified_messaging.simulator.population import TEST_PATIENTS

# -- the lab software's licence and care provider (the dev PKI lab) --

LICENCE = ("lab-software", "the-right-licence-password")
LAB = {"Nihii": "81234530000", "Quality": "labo"}  # the dev PKI lab, as the SOAP front's CareProvider
GENINS = "/GenericInsurability/v1"


def patient(scenario: str):
    """The simulator's first test patient of ``scenario`` ("insured", "not-insured"...)."""
    return next(p for p in TEST_PATIENTS if p.scenario == scenario)


# -- waiting --

def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
             every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- clocks --

class Clock:
    """A clock that stands still until the test sets or advances it (``advance(12.5)`` seconds or
    ``advance(minutes=29)``)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        self.now += dt.timedelta(seconds=seconds, **delta)


class MovableClock:
    """The real time plus an ``offset`` the test can change: a platform that runs ahead or behind."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset


# -- the simulated platform --

FAST = FeedbackTimings(acknowledgement=0.0, detailed=0.2, settlement=0.4)


class RunningPlatform(NamedTuple):
    """What the ``platform`` fixture yields: the simulator, its base URL, and its movable clock."""

    simulator: Simulator
    url: str
    clock: MovableClock


@contextmanager
def running_platform(pki: DevPki, *, timings: FeedbackTimings = FAST, min_get_interval: float = 0.0,
                     **options) -> Iterator[tuple[Simulator, str]]:
    """The simulated platform (STS, GenericInsurability, GenAsync, every security check) on its own
    port, accepting ``LICENCE``; yields (simulator, base URL)."""
    simulator = build_platform(pki, licences=dict([LICENCE]), genasync_timings=timings,
                               genasync_min_get_interval=min_get_interval, **options)
    with serving(simulator) as url:
        yield simulator, url


def tampering_proxy(target: str, change: Callable[[bytes], bytes] = lambda b: b,
                    change_answer: Callable[[bytes], bytes] = lambda b: b) -> Callable:
    """A WSGI app forwarding POSTs to ``target`` after ``change`` rewrote the body (and
    ``change_answer`` the answer)."""

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k: environ[v] for k, v in (("Content-Type", "CONTENT_TYPE"), ("SOAPAction", "HTTP_SOAPACTION"))
                   if environ.get(v)}
        answer = requests.post(target + environ["PATH_INFO"], data=change(body), headers=headers, timeout=10)
        start_response(f"{answer.status_code} X", [("Content-Type", answer.headers.get("Content-Type", "text/xml"))])
        return [change_answer(answer.content)]

    return app


def change_one_byte(document: bytes, pattern: bytes) -> bytes:
    """Replace the last character of the first match of ``pattern`` by another one."""
    match = re.search(pattern, document)
    assert match, pattern
    position = match.end() - 1
    replacement = b"1" if document[position:position + 1] != b"1" else b"2"
    return document[:position] + replacement + document[position + 1:]


# -- the gateway's SOAP front and its CLI --

CLI = shutil.which("unified-messaging", path=str(Path(sys.executable).parent)) or "unified-messaging"
TNS = "http://unified-messaging.be/ConsultMyCareNet/"
ACTION = TNS + "GetInsurability"


def consult(gateway):
    """GetInsurability for the insured test patient, through the gateway's SOAP front with zeep."""
    client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
    return client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                   "PeriodStart": dt.date.today()})


def soap_envelope(body: str, prefix: str = "soap", tns_prefix: str = "tns", version: str = "1.1") -> str:
    env = ("http://schemas.xmlsoap.org/soap/envelope/" if version == "1.1"
           else "http://www.w3.org/2003/05/soap-envelope")
    return (f'<{prefix}:Envelope xmlns:{prefix}="{env}" xmlns:{tns_prefix}="{TNS}">'
            f"<{prefix}:Header/><{prefix}:Body>{body}</{prefix}:Body></{prefix}:Envelope>")


def insurability_body(ssin: str, t: str = "tns", extra: str = "") -> str:
    """A raw GetInsurability request for ``ssin`` from today, ``t`` being the service namespace prefix."""
    return (f"<{t}:GetInsurability><{t}:request><{t}:CareProvider><{t}:Nihii>{LAB['Nihii']}</{t}:Nihii>"
            f"<{t}:Quality>labo</{t}:Quality></{t}:CareProvider><{t}:Ssin>{ssin}</{t}:Ssin>"
            f"<{t}:PeriodStart>{dt.date.today().isoformat()}</{t}:PeriodStart>{extra}</{t}:request>"
            f"</{t}:GetInsurability>")


# -- batch.properties jobs --

INSURED = [p for p in TEST_PATIENTS if p.scenario == "insured"]
HEADER = "ssin;period_start;period_end;reference"


def write_job(folder: Path, **overrides: str) -> Path:
    """A batch.properties in ``folder`` with its four folders; an override of None leaves the key out."""
    props = {"mycarenet.connection": "SSO", "input.folder": "in", "output.folder": "out",
             "archive.folder": "archive", "error.folder": "error", "careprovider.nihii": "81234530000",
             "careprovider.quality": "labo", **overrides}
    for key in ("input.folder", "output.folder", "archive.folder", "error.folder"):
        (folder / props[key]).mkdir(parents=True, exist_ok=True)
    path = folder / "batch.properties"
    path.write_bytes("".join(f"{k}={v}\n" for k, v in props.items() if v is not None).encode("iso-8859-1"))
    return path


def read_output(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding), newline=""), delimiter=";"))


# -- secure-space stores --

MASTER = b"0123456789abcdef0123456789abcdef-test-master"
OWNER_SSIN = "85073003328"
ADMIN_PASSWORD = "Distinctive-Admin-Passw0rd!"
NURSE = Party(PartyKind.NIHII, NURSE_NIHII)
GROUP = Party(PartyKind.NIHII, GROUP_NUMBER)


def new_store(folder: Path, url: str = "", **options) -> SecureSpaceStore:
    """A secure space in ``folder`` (or on the migrated PostgreSQL of ``url``) with its administrator
    "admin" and the user "ann" (fast hashing)."""
    store = SecureSpaceStore.open(url, folder, MASTER, hasher=PasswordHasher(cost=16), **options)
    store.create_space("Dev space", "Olivia Owner", OWNER_SSIN, "Rita Responsible", OWNER_SSIN)
    store.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], ADMIN_PASSWORD)
    store.add_user("ann", "Ann Clerk", NURSE_SSIN, ["administrative", "clinical"], "ann-password-123")
    return store


def add(store: SecureSpaceStore, pki: DevPki, name: str, **options):
    """Add the dev PKI keystore ``name`` to ``store``, "admin" being responsible."""
    return store.add_certificate(pki.keystores[name].path.read_bytes(), pki.password, responsible_login="admin",
                                 **options)


def active_mandate(store: SecureSpaceStore, mandant: Party = NURSE, mandataire: Party = GROUP,
                   service: Service = Service.INSURABILITY, **dates):
    """A mandate proposed and accepted by both sides, valid from 30 days ago unless ``dates`` say otherwise."""
    dates.setdefault("valid_from", dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=30))
    m = store.propose_mandate(mandant, mandataire, service, by="admin", **dates)
    store.accept_mandate(m.id, Side.MANDANT, by="nurse")
    return store.accept_mandate(m.id, Side.MANDATAIRE, by="group")
