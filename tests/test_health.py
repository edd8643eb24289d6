"""``GET /unified-messaging/health`` on a real gateway (real simulator, real journal, real folders).

The journal is made unwritable with ``chattr +i`` (the immutable attribute), since the tests run as
root and file modes do not stop root; the test is skipped where the file system has no such
attribute.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests
import zeep

from tests.conftest import gateway_against, make_config
from tests.support import consult, patient, wait_for
from unified_messaging.gateway import Gateway

HEALTH = "/unified-messaging/health"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = Gateway(make_config(tmp_path_factory.mktemp("health"))).start()
    yield gw
    gw.stop()


def health(gateway: Gateway, path: str = HEALTH) -> requests.Response:
    return requests.get(gateway.url + path, timeout=30)


def test_ready_gateway_answers_200_with_every_part(gateway):
    consult(gateway)
    answer = health(gateway)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    report = answer.json()
    assert report["status"] == "ready" and report["failing"] == [] and report["live"] is True
    assert report["journal"] == {"writable": True}
    assert set(report["folders"]) >= {"data", "insurability/toQuery", "insurability/error", "invoicing/toSend",
                                      "invoicing/error"}
    assert set(report["folders"].values()) == {"ok"}
    genins = report["upstream"]["genericinsurability"]
    assert genins["last_success"] and genins["last_failure"] is None and genins["calls"] >= 1
    assert report["upstream"]["sts"]["last_success"]
    assert report["token"]["valid_until"] > report["at"]
    assert 300 < report["certificates"]["days_to_earliest_expiry"] < 4000
    assert report["invoicing"] == {"backlog": 0, "enabled": True}
    assert report["error_folder_files"] == 0
    assert patient("insured").ssin not in answer.text


def test_liveness_is_200_whatever_the_readiness(gateway):
    answer = health(gateway, HEALTH + "/live")
    assert answer.status_code == 200 and answer.json() == {"status": "alive", "live": True}
    assert requests.post(gateway.url + HEALTH, timeout=10).status_code == 405


def test_a_missing_folder_makes_it_not_ready_and_names_the_folder(gateway):
    error = gateway.config.invoicing_root / "error"
    shutil.rmtree(error)
    try:
        answer = health(gateway)
        assert answer.status_code == 503, answer.text
        report = answer.json()
        assert report["status"] == "not ready"
        assert report["failing"] == ["folder invoicing/error: missing"]
        assert report["folders"]["invoicing/error"] == "missing" and report["folders"]["invoicing/toSend"] == "ok"
    finally:
        error.mkdir(exist_ok=True)
    assert health(gateway).status_code == 200


def test_files_in_an_error_folder_are_counted(gateway):
    error = gateway.config.insurability_root / "error"
    (error / "lab-0001.xml").write_text("<bad/>")
    (error / "lab-0001.xml.reason.txt").write_text("why")
    try:
        assert health(gateway).json()["error_folder_files"] == 1
    finally:
        for name in ("lab-0001.xml", "lab-0001.xml.reason.txt"):
            (error / name).unlink(missing_ok=True)


def _immutable(paths: list[Path], on: bool) -> None:
    for path in paths:
        if path.exists():
            subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


def test_an_unwritable_journal_makes_it_not_ready_and_names_the_journal(gateway):
    journal = gateway.config.journal_path
    files = [journal, Path(f"{journal}-wal")]
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed")
    try:
        _immutable(files, True)
    except subprocess.CalledProcessError as exc:
        _immutable(files, False)
        pytest.skip(f"this file system has no immutable attribute ({exc.stderr.strip()})")
    try:
        answer = health(gateway)
        assert answer.status_code == 503, answer.text
        report = answer.json()
        assert report["journal"]["writable"] is False
        assert [part for part in report["failing"] if part.startswith("journal: not writable")], report["failing"]
        assert report["folders"]["data"] == "ok"
    finally:
        _immutable(files, False)
    wait_for(lambda: health(gateway).status_code == 200, timeout=10, what="ready again")


def test_an_unreachable_upstream_is_reported_without_failing_readiness(tmp_path, pki):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    with gateway_against(tmp_path, pki, sts_url=closed + "/sts", genins_url=closed + "/genins") as gw:
        with pytest.raises(zeep.exceptions.Fault):
            consult(gw)
        answer = health(gw)
        assert answer.status_code == 200, answer.text  # MyCareNet down: reported, the gateway stays in
        upstream = answer.json()["upstream"]
        for service in ("sts", "genericinsurability"):
            assert upstream[service]["last_failure"] and upstream[service]["last_success"] is None
            assert upstream[service]["last_failure_kind"] == "unavailable"
        assert answer.json()["token"] == {"valid_until": None}
