"""Shared fixtures: a real gateway (with its real simulator) on ephemeral ports."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from unified_messaging.config import Config, config_from_dict

ROOT = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    """A file of ../shared/reference, or skip the test cleanly when the folder is absent."""
    path = SHARED_REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/reference is only beside the checkout in CI)")
    return path


def make_config(tmp_path: Path, **sections: dict) -> Config:
    raw = {"server": {"port": 0}, "data": {"folder": str(tmp_path / "um-data")}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, source="tests")


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """One running gateway + simulator for the whole session (read-mostly tests share it)."""
    from unified_messaging.gateway import Gateway

    logging.getLogger("spyne.protocol.soap.soap11.invalid").setLevel(logging.CRITICAL)
    gw = Gateway(make_config(tmp_path_factory.mktemp("gateway"))).start()
    yield gw
    gw.stop()
