"""Shared fixtures: a real gateway (with its real simulator) on ephemeral ports, the development
PKI, a simulated platform of its own; the helpers they build on are in ``tests/support.py``."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest
from lxml import etree

from tests.support import LICENCE, MovableClock, RunningPlatform, running_platform
from unified_messaging.config import Config, config_from_dict
from unified_messaging.simulator.devpki import PLATFORM_CBE, DevPki, make_dev_pki

if TYPE_CHECKING:
    from datetime import datetime

    from unified_messaging.gateway import Gateway

pytest_plugins = ["tests.postgres"]  # the throwaway PostgreSQL cluster of the tests marked postgres

ROOT = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    """A file of ../shared/reference, or skip the test cleanly when the folder is absent."""
    path = SHARED_REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/reference is only beside the checkout in CI)")
    return path


def official_schema(path: Path) -> etree.XMLSchema:
    """One official XSD from ../shared/reference, loaded with network access off (imports are local)."""
    if not path.is_file():
        pytest.skip(f"official reference schemas not found at {path.parent}")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def official_security_schema() -> etree.XMLSchema:
    """WS-Trust 1.3 (with WSS secext/utility, xmldsig) and the SAML 1.1 assertion, in one validator."""
    common = reference_path("schemas", "common")
    files = [common / "ws-trust-sts" / "ws-trust-1.3.xsd",
             common / "ws-trust-sts" / "oasis-200401-wss-wssecurity-secext-1.0.xsd",
             common / "saml-sts" / "oasis-sstc-saml-schema-assertion-1.1.xsd"]
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    imports = "".join(
        f'<xs:import namespace="{etree.parse(str(f), parser).getroot().get("targetNamespace")}" '
        f'schemaLocation="{f.as_uri()}"/>' for f in files)
    wrapper = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test:wrapper">'
               f'{imports}</xs:schema>')
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser))


def make_config(tmp_path: Path, **sections: dict) -> Config:
    raw = {"server": {"port": 0}, "data": {"folder": str(tmp_path / "um-data")}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, source="tests")


def bytes_read_elsewhere(path: Path) -> bytes:
    """The bytes of a SQLite file this process has open, read by another process.

    Opening and closing the file here would release this process's SQLite locks on it (POSIX
    locks belong to the process, not to the descriptor): another process closing the file next
    would delete the WAL still in use here (see ``unified_messaging.database.sqlite_file``).
    """
    reader = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"
    return subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True, check=True,
                          timeout=60).stdout


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """One running gateway + simulator for the whole session (read-mostly tests share it).

    No other process may write its data folder (a test that runs ``unified-messaging`` makes a
    data folder of its own), and nothing in this process may open its SQLite files outside SQLite
    (``bytes_read_elsewhere``).
    """
    from unified_messaging.gateway import Gateway

    gw = Gateway(make_config(tmp_path_factory.mktemp("gateway"))).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> DevPki:
    """The development PKI (CA, lab, nurse, nursing group, expired, untrusted and STS keystores), made
    once for the session: tests only read it."""
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def platform(pki: DevPki) -> Iterator[RunningPlatform]:
    """A fresh simulated platform on its own port (as MyCareNet would be), with a clock the test can move."""
    clock = MovableClock()
    with running_platform(pki, now=clock) as (simulator, url):
        yield RunningPlatform(simulator, url, clock)


@contextmanager
def gateway_against(tmp_path: Path, pki: DevPki, *, sts_url: str, genins_url: str, keystore: str = "lab",
                    licence_password: str = LICENCE[1],
                    clock: Callable[[], datetime] | None = None) -> Iterator[Gateway]:
    """A started gateway for a remote upstream at ``sts_url`` and ``genins_url``, signing with the dev PKI
    keystore ``keystore``; stopped on leaving."""
    from unified_messaging.gateway import Gateway

    config = make_config(
        tmp_path,
        upstream={"mode": "remote", "sts_url": sts_url, "genericinsurability_url": genins_url, "timeout_seconds": 5.0,
                  "platform_ca": str(pki.ca_certificate_path), "platform_signer_cbe": PLATFORM_CBE},
        invoicing={"enabled": False},
        identity={"keystore": str(pki.keystores[keystore].path), "keystore_password": pki.password},
        licence={"username": LICENCE[0], "password": licence_password},
    )
    gateway = Gateway(config, **({"clock": clock} if clock else {})).start()
    try:
        yield gateway
    finally:
        gateway.stop()
