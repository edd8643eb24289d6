"""#18 point 2: a certificate's access list gates every use of it on behalf of a UM user.

The configuration check is where a user makes a certificate act (a token from the STS, signed calls):
run from Mybox by its logged-in user, or by ``check --by LOGIN``, a certificate whose access list does
not name that user (who does not own the secure space) is not used at all and each service says
SS-NOT-ON-ACCESS-LIST.  Real simulator, real store, real Mybox, the real CLI in its own process.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support import CLI, LICENCE, add, new_store
from tests.test_newcomer_cli import create_space, um
from tests.test_securespace_check import platform_endpoints
from tests.web_support import login, post_form, start_mybox
from unified_messaging.securespace.check import NOT_ACTIVE, NOT_REQUESTED_NO_ACCESS, ConfigurationCheck
from unified_messaging.securespace.models import Licence, Service
from unified_messaging.simulator.devpki import DEFAULT_PASSWORD, LAB_NIHII
from unified_messaging.simulator.platform import DEMO_PKI_FOLDER
from unified_messaging.upstream import CheckProbe

REFUSED = "SS-NOT-ON-ACCESS-LIST"


def sts_calls(simulator) -> int:
    return sum(v for k, v in simulator.counters.items() if k.startswith("sts."))


def test_a_user_off_the_access_list_never_makes_the_certificate_act(tmp_path, pki, platform):
    store = new_store(tmp_path)
    try:
        record = add(store, pki, "lab")
        endpoints = platform_endpoints(pki, platform.url)
        check = ConfigurationCheck(store, endpoints, probe=CheckProbe(endpoints), licence=Licence(*LICENCE))
        before = sts_calls(platform.simulator)
        [refused] = check.run([record.id], by="ann")
        assert sts_calls(platform.simulator) == before  # no token was asked with it
        assert refused.token == NOT_REQUESTED_NO_ACCESS
        for service in (Service.INSURABILITY, Service.INVOICING):
            assert refused.service(service).status == NOT_ACTIVE
            assert [r.code for r in refused.service(service).reasons] == [REFUSED]
        store.grant(record.id, "ann", by="admin")
        [allowed] = check.run([record.id], by="ann")
        assert allowed.token.startswith("issued"), allowed.token
        assert sts_calls(platform.simulator) == before + 1
        assert REFUSED not in [r.code for s in allowed.services for r in s.reasons]
        [owner] = check.run([record.id], by="admin")  # the space's owner is always allowed
        assert owner.token.startswith("issued")
    finally:
        store.close()


def test_the_mybox_check_runs_with_the_logged_in_users_access(tmp_path_factory):
    folder = tmp_path_factory.mktemp("access-mybox")
    stack = start_mybox(folder)
    try:
        store = stack.gateway.securespace
        # the owner is the office clerk, so the administrator is allowed only through the access list
        store.create_space("Lab", "Otto Office", "90010100123", "Otto Office", "90010100123")
        demo = folder / "um-data" / DEMO_PKI_FOLDER / "lab.p12"
        record = store.add_certificate(demo.read_bytes(), DEFAULT_PASSWORD, responsible_login="office")
        session = login(stack, "admin")
        page = post_form(session, stack, "/admin/check", "/admin/check", {"certificate": [str(record.id)]}).text
        result = page[page.index(f'id="check-{record.id}"'):]
        rows = dict(re.findall(r'<tr class="service" data-service="(\w+)" data-status="([^"]+)">', result))
        assert rows["INSURABILITY"] == rows["INVOICING"] == "Not active", rows
        assert REFUSED in result
        store.grant(record.id, "admin", by="office")
        page = post_form(session, stack, "/admin/check", "/admin/check", {"certificate": [str(record.id)]}).text
        result = page[page.index(f'id="check-{record.id}"'):]
        assert REFUSED not in result and "STS token: issued" in re.sub(r"<[^>]+>", " ", result).replace("  ", " ")
    finally:
        stack.gateway.stop()


@pytest.mark.parametrize("granted", [False, True])
def test_check_by_a_user_off_the_list_does_not_use_the_certificate(tmp_path, granted):
    um(tmp_path, "check")  # makes the demo PKI of this data folder
    create_space(tmp_path)
    um(tmp_path, "users", "add", "ann", "--name", "Ann Clerk", "--ssin", "90010100123", "--role", "administrative",
       "--password-stdin", input="Ann-Passw0rd-123\n")
    keystore = tmp_path / "um-data" / DEMO_PKI_FOLDER / "lab.p12"
    um(tmp_path, "users", "add", "rita", "--name", "Rita Responsible", "--ssin", "79121512306", "--role",
       "administrator", "--password-stdin", input="Rita-Passw0rd-123\n")
    um(tmp_path, "certificates", "add", str(keystore), "--responsible", "rita", "--nihii", LAB_NIHII,
       "--password-stdin", input=DEFAULT_PASSWORD + "\n")
    if granted:
        um(tmp_path, "certificates", "grant", "1", "ann", "--as", "rita", input="Rita-Passw0rd-123\n")
    done = subprocess.run([CLI, "check", "--by", "ann", "--json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
    [result] = json.loads(done.stdout)
    reasons = [r for s in result["services"] for r in s.get("reasons", [])]
    if granted:
        assert result["sts_token"].startswith("issued"), result
        assert not any(REFUSED in json.dumps(r) for r in reasons)
    else:
        assert result["sts_token"] == NOT_REQUESTED_NO_ACCESS
        assert any(REFUSED in json.dumps(r) for r in reasons), result
