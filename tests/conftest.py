"""Shared fixtures: a real gateway (with its real simulator) on ephemeral ports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from unified_messaging.config import Config, config_from_dict

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
    would delete the WAL still in use here (see ``unified_messaging.journal.sqlite``).
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
