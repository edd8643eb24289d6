"""#18 point 4 (log and health part) and #19 point 5 (the health part): certificate expiry is
logged every day and listed in the health document; a storage fault of a folder interface makes
the gateway "not ready", named, until the disk can be written again."""
from __future__ import annotations

import html
import logging
import re
import time
from datetime import datetime, timedelta, timezone

import requests

from tests.conftest import make_config
from tests.support import ADMIN_PASSWORD, OWNER_SSIN, wait_for
from tests.test_folder_insurability import request_xml, requests_file
from tests.disk_faults import toquery_disk
from tests.test_storage_faults_toquery import INSURED, WRITES
from tests.web_support import MyboxStack, login
from unified_messaging.gateway import Gateway
from unified_messaging.monitoring.expiry import ExpiryWarnings, expiry_lines
from unified_messaging.secrets import master_keys
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import SecureSpaceStore

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
HEALTH = "/unified-messaging/health"


def mybox_alerts(gateway: Gateway, session: requests.Session) -> list[str]:
    """The alert banners of Mybox's dashboard, as the logged-in user sees them."""
    page = session.get(gateway.mybox_url + "/", timeout=30).text
    return [html.unescape(text) for text in re.findall(r'<p class="flash \w+ alert-\w+" role="alert">(.*?)</p>', page)]


def test_the_lines_name_each_certificate_soonest_first_and_say_what_to_do():
    lines = expiry_lines([("gateway", NOW + timedelta(days=40)), ("securespace-2", NOW + timedelta(days=12, hours=1)),
                          ("securespace-1", NOW - timedelta(days=3))], NOW)
    assert lines == [
        "certificate securespace-1 expired on 2026-12-03: calls made with it are refused; renew it with eHealth "
        "and upload the new keystore",
        "certificate securespace-2 expires on 2026-12-18 (in 12 day(s)): renew it with eHealth and upload the new "
        "keystore before then",
    ]


def test_the_warnings_come_back_every_period_without_anyone_opening_a_page(caplog):
    warnings = ExpiryWarnings(lambda: [("gateway", NOW + timedelta(days=5))], clock=lambda: NOW,
                              every=timedelta(seconds=0.1))
    with caplog.at_level(logging.WARNING, logger="unified_messaging.monitoring.expiry"):
        warnings.start()
        wait_for(lambda: caplog.text.count("certificate gateway expires on 2026-12-11") >= 3, timeout=10,
                 what="three daily rounds")
        warnings.stop()


def test_a_gateway_logs_its_expiring_certificates_at_start_and_lists_them_in_health(tmp_path, pki, caplog):
    config = make_config(tmp_path, invoicing={"enabled": False}, folders={"insurability": False})
    store = SecureSpaceStore.in_data_folder(config.data_folder, master_keys(config.data_folder),
                                            hasher=PasswordHasher(cost=16))
    store.create_space("Dev space", "Olivia Owner", OWNER_SSIN, "Rita Responsible", OWNER_SSIN)
    store.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], ADMIN_PASSWORD)
    expired = store.add_certificate(pki.keystores["expired"].path.read_bytes(), pki.password,
                                    responsible_login="admin")
    store.close()
    with caplog.at_level(logging.WARNING, logger="unified_messaging.monitoring.expiry"):
        gateway = Gateway(config).start()
        try:
            wait_for(lambda: f"certificate securespace-{expired.id} expired on" in caplog.text, timeout=10,
                     what="the expiry warning")
            document = requests.get(gateway.url + HEALTH, timeout=30).json()
            admin = login(MyboxStack(gateway, gateway.mybox_url, config.data_folder, {"admin": ADMIN_PASSWORD}),
                          "admin")
            shown = mybox_alerts(gateway, admin)  # Mybox says it on every page, to who can act on it
            gateway.securespace.set_language("admin", "nl")
            dutch = mybox_alerts(gateway, admin)
        finally:
            gateway.stop()
    assert document["certificates"]["expiring_within_30_days"] == [f"securespace-{expired.id}"]
    assert [line for line in shown if f"securespace-{expired.id}" in line] == [
        f"Certificate securespace-{expired.id} expired on {expired.not_after:%Y-%m-%d}: calls made with it are "
        "refused. Renew it with eHealth and upload the new keystore."]
    assert len(dutch) == len(shown) and not set(dutch) & set(shown)
    assert "85073003328" not in caplog.text


def test_a_storage_fault_makes_the_gateway_not_ready_until_the_disk_recovers(tmp_path, monkeypatch):
    disk = toquery_disk(monkeypatch)
    gateway = Gateway(make_config(tmp_path, invoicing={"enabled": False},
                                  folders={"rescan_seconds": 0.5})).start()
    root = gateway.config.insurability_root
    gateway.securespace.hasher = PasswordHasher(cost=16)
    gateway.securespace.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], ADMIN_PASSWORD)
    admin = login(MyboxStack(gateway, gateway.mybox_url, gateway.config.data_folder, {"admin": ADMIN_PASSWORD}),
                  "admin")
    try:
        assert not [line for line in mybox_alerts(gateway, admin) if "disk" in line]
        disk.fail(WRITES["the answer"], times=10 ** 6)
        (root / "toQuery" / "lab-full.xml").write_bytes(requests_file(request_xml(INSURED)))
        (root / "toQuery" / "lab-full.xml.ok").write_bytes(b"")
        wait_for(lambda: requests.get(gateway.url + HEALTH, timeout=30).status_code == 503, timeout=20,
                 what="not ready")
        document = requests.get(gateway.url + HEALTH, timeout=30).json()
        assert any(f.startswith("storage toQuery: lab-full.xml: No space left on device") for f in document["failing"])
        assert "toQuery" in document["storage_faults"]
        banners = [line for line in mybox_alerts(gateway, admin) if "cannot write to disk" in line]
        assert len(banners) == 1 and banners[0].startswith("The toQuery folders cannot write to disk (lab-full.xml: "
                                                           "No space left on device")
        assert "Nothing is lost" in banners[0]
        disk.fail(lambda p: False, times=0)  # space returns
        wait_for(lambda: (root / "queried" / "lab-full.answer.xml.ok").exists(), timeout=60, what="the answer")
        time.sleep(0.2)
        assert requests.get(gateway.url + HEALTH, timeout=30).status_code == 200
        assert not [line for line in mybox_alerts(gateway, admin) if "disk" in line]  # gone without a restart
    finally:
        gateway.stop()
