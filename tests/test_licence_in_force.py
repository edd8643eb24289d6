"""#18 point 1: one licence is in force for every call, and it is the one the secure space shows.

A licence recorded in the secure space (``licence set``, Mybox Administration) is carried by every
upstream call from then on, without a restart; with none recorded, the configuration's ``[licence]``.
Checked with a real gateway whose simulator knows only the demo licence, the real CLI in another
process, and real SOAP calls with zeep.
"""
from __future__ import annotations

import time

import pytest
import zeep.exceptions

from tests.conftest import make_config
from tests.support import consult
from tests.test_newcomer_cli import create_space, um
from unified_messaging.gateway import Gateway
from unified_messaging.securespace.licence_store import LicenceInForce
from unified_messaging.securespace.models import Licence
from unified_messaging.simulator.security import LICENCE_REFUSED

CONFIGURED = Licence("from-config", "config-password")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_configuration_s_licence_until_one_is_recorded_then_the_recorded_one():
    recorded: list[Licence] = []
    clock = Clock()
    licence = LicenceInForce(CONFIGURED, lambda: recorded[-1] if recorded else None, refresh_seconds=2, clock=clock)
    assert licence() == ("from-config", "config-password")
    assert licence.current()[1] == "configuration"
    recorded.append(Licence("from-space", "space-password"))
    assert licence()[0] == "from-config"  # read again only every refresh_seconds
    clock.now = 2.0
    assert licence() == ("from-space", "space-password")
    assert licence.current()[1] == "secure space"


def test_an_unreadable_secure_space_keeps_the_last_licence_known(caplog):
    state = {"fail": False}

    def recorded() -> Licence:
        if state["fail"]:
            raise OSError("database is locked")
        return Licence("from-space", "space-password")

    clock = Clock()
    licence = LicenceInForce(CONFIGURED, recorded, refresh_seconds=1, clock=clock)
    assert licence()[0] == "from-space"
    state["fail"] = True
    clock.now = 5.0
    assert licence()[0] == "from-space"
    assert "cannot be read (OSError)" in caplog.text and "space-password" not in caplog.text


def _answer_or_fault(gateway) -> str:
    """"answered", or the codes and texts of the legacy answer's messages (Status=ERROR), or the fault."""
    try:
        answer = consult(gateway)
    except zeep.exceptions.Fault as fault:
        return f"{fault.code} {fault.message}"
    if answer.Status == "OK":
        return "answered"
    return " ".join(f"{m.Code} {m.Text}" for m in answer.Messages.Message)


def _wait_for(gateway, expected, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        outcome = _answer_or_fault(gateway)
        if expected(outcome) or time.monotonic() > deadline:
            return outcome
        time.sleep(0.3)


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(make_config(tmp_path, invoicing={"enabled": False})).start()
    yield gw
    gw.stop()


def test_a_licence_recorded_while_serving_is_carried_by_the_next_calls(gateway, tmp_path):
    assert _answer_or_fault(gateway) == "answered"  # the configuration's demo licence
    create_space(tmp_path)
    um(tmp_path, "licence", "set", "not-the-demo-licence", "--password-stdin", input="Some-Other-Secret-1\n")
    refused = _wait_for(gateway, lambda outcome: outcome != "answered")
    assert refused.startswith(LICENCE_REFUSED), refused
    assert "Some-Other-Secret-1" not in refused
    shown = um(tmp_path, "licence", "show").stdout
    assert "not-the-demo-licence (recorded in the secure space" in shown
    um(tmp_path, "licence", "set", gateway.config.licence.username, "--password-stdin",
       input=gateway.upstream.licence_password + "\n")
    assert _wait_for(gateway, lambda outcome: outcome == "answered") == "answered"
    assert gateway.upstream.licence.current()[1] == "secure space"

