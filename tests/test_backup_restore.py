"""``backup`` while the gateway serves and ``restore``, round trip through real processes: a
stand-alone simulator, ``unified-messaging serve``, invoicing files sent and answered, SOAP calls
during the backup, then every journal row, secure-space object, invoicing state and file back."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
import zeep

from tests.invoicing_support import (
    CLI,
    invoicing_status,
    remote_gateway_config,
    simulator_counters,
    start_gateway,
    start_simulator,
    wait_for,
)
from tests.support import ADMIN_PASSWORD, LAB, LICENCE, OWNER_SSIN, patient
from unified_messaging.secrets import master_keys
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import SecureSpaceStore

RUNTIME = ("instance.lock", "-wal", "-shm")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, in order."""
    conn = sqlite3.connect(path)
    try:
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                              "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        # a WITHOUT ROWID table (the text index's shadow tables) is read in its primary key's order
        return {t: conn.execute(f'SELECT * FROM "{t}"' + ("" if "WITHOUT ROWID" in (sql or "").upper()
                                                          else " ORDER BY rowid")).fetchall() for t, sql in tables}
    finally:
        conn.close()


def files_of(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of the ordinary files (not the databases, keys and runtime files)."""
    found = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).as_posix()
        if (path.is_file() and not path.name.endswith((".sqlite", *RUNTIME)) and not relative.startswith("metrics/")
                and not path.name.startswith("master.key")):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def config_for(template: Path, data: Path) -> Path:
    text = template.read_text(encoding="utf-8").replace(str(template.parent / "um-data"), str(data))
    path = data.parent / f"{data.name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def consult(url: str) -> str:
    client = zeep.Client(f"{url}/ConsultMyCareNetSoap?wsdl")
    answer = client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                     "PeriodStart": dt.date.today()})
    return answer.Status


@pytest.fixture(scope="module")
def served(tmp_path_factory, pki):
    """An install that served: invoicing files DONE and in error, consultations, a secure space; a
    backup taken while SOAP calls went on, and one taken after the service stopped."""
    root = tmp_path_factory.mktemp("backup")
    simulator = start_simulator(root / "sim")
    config = remote_gateway_config(root, simulator)
    data = root / "um-data"
    store = SecureSpaceStore.in_data_folder(data, master_keys(data), hasher=PasswordHasher(cost=16))
    store.create_space("Dev space", "Olivia Owner", OWNER_SSIN, "Rita Responsible", OWNER_SSIN)
    store.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], ADMIN_PASSWORD)
    store.add_certificate(pki.keystores["lab"].path.read_bytes(), pki.password, responsible_login="admin")
    store.set_licence(*LICENCE)  # in force for every call (#18.1): the one the simulator issued
    store.close()
    gateway = start_gateway(root, config)
    try:
        wait_for((data / "invoicing" / "toSend").is_dir, what="the toSend folder")
        assert run("invoicing", "--config", str(config), "sample", "--count", "2", cwd=root).returncode == 0
        assert run("invoicing", "--config", str(config), "sample", "--errors", "zone_99", cwd=root).returncode == 0

        def settled() -> bool:
            rows, _ = invoicing_status(root, config)
            return sorted(r["status"] for r in rows) == ["DONE", "DONE", "ERROR"]

        wait_for(settled, timeout=90, every=0.5, what="the sample files settled")
        assert consult(gateway.url) == "OK"
        refused = run("restore", str(root / "sim"), "--config", str(config), cwd=root)  # not a backup
        calls, stop = [], threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                calls.append(consult(gateway.url))

        caller = threading.Thread(target=traffic)
        caller.start()
        try:
            wait_for(lambda: len(calls) >= 3, what="calls under way")
            live = run("backup", str(root / "live-backup"), "--config", str(config), cwd=root)
            busy = run("restore", str(root / "live-backup"), "--config", str(config), "--force", cwd=root)
        finally:
            stop.set()
            caller.join(timeout=60)
        posts = simulator_counters(simulator)["genasync.post"]
    finally:
        assert gateway.stop() == 0, gateway.output()[-3000:]
    quiet = run("backup", str(root / "backup"), "--config", str(config), cwd=root)
    with_key = run("backup", str(root / "keyed-backup"), "--config", str(config), "--include-master-key", cwd=root)
    yield {"root": root, "config": config, "data": data, "simulator": simulator, "live": live, "busy": busy,
           "quiet": quiet, "with_key": with_key, "refused": refused, "calls": calls, "posts": posts}
    simulator.stop()


def test_backup_while_serving_is_consistent_and_says_where_the_master_key_is(served):
    live = served["live"]
    assert live.returncode == 0, live.stderr
    assert "journal.sqlite" in live.stdout and "securespace.sqlite" in live.stdout and "(integrity ok)" in live.stdout
    assert "The master key is NOT in this backup" in live.stdout
    backup = served["root"] / "live-backup"
    assert not (backup / "data" / "master.key").exists() and not (backup / "data" / "instance.lock").exists()
    assert not list(backup.rglob("*-wal")) and not (backup.parent / "live-backup.partial").exists()
    journal = dump(backup / "data" / "journal.sqlite")
    done = dump(served["data"] / "journal.sqlite")
    consultations = len(journal["consultations"])
    assert 3 <= consultations <= len(done["consultations"])  # a point in time while the calls went on
    assert all(status == "OK" for status in served["calls"])
    assert (backup / "config" / "gateway.toml").read_text() == served["config"].read_text()
    keyed = served["with_key"]
    assert keyed.returncode == 0 and "The master key IS in this backup" in keyed.stdout
    assert (served["root"] / "keyed-backup" / "data" / "master.key").stat().st_mode & 0o777 == 0o600
    for database in backup.rglob("*.sqlite"):
        assert database.stat().st_mode & 0o777 == 0o600


def test_restore_brings_every_row_and_file_back_and_the_service_goes_on(served, tmp_path):
    assert served["quiet"].returncode == 0, served["quiet"].stderr
    restored = tmp_path / "restored"
    config = config_for(served["config"], restored)
    result = run("restore", str(served["root"] / "backup"), "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "There is no master key" in result.stdout and "read the line above" in result.stdout
    for name in ("journal.sqlite", "securespace.sqlite"):
        assert dump(restored / name) == dump(served["data"] / name), name
        assert (restored / name).stat().st_mode & 0o777 == 0o600
    assert files_of(restored) == files_of(served["data"])
    kept = files_of(restored)
    assert sum(p.startswith("invoicing/archive/") for p in kept) == 2  # the two files sent
    assert any(p.startswith("invoicing/error/") and p.endswith(".reason.txt") for p in kept)
    assert any(p.startswith("invoicing/received/") for p in kept)  # the platform's answers
    shutil.copy2(served["data"] / "master.key", restored / "master.key")
    store = SecureSpaceStore.in_data_folder(restored, master_keys(restored, create=False))
    try:
        assert store.count_sealed() == 3 and store.licence().password == LICENCE[1]
        assert store.authenticate("admin", ADMIN_PASSWORD).login == "admin"
    finally:
        store.close()
    before, _ = invoicing_status(served["root"], served["config"])
    gateway = start_gateway(tmp_path, config)
    try:
        after, _ = invoicing_status(tmp_path, config)
        assert [(r["name"], r["status"]) for r in after] == [(r["name"], r["status"]) for r in before]
        assert consult(gateway.url) == "OK"
        time_for_a_resend = 3.0
        threading.Event().wait(time_for_a_resend)
        assert simulator_counters(served["simulator"])["genasync.post"] == served["posts"]  # nothing sent again
    finally:
        assert gateway.stop() == 0, gateway.output()[-3000:]


def test_a_backup_with_its_key_restores_an_install_that_opens_everything(served, tmp_path):
    restored = tmp_path / "keyed"
    config = config_for(served["config"], restored)
    result = run("restore", str(served["root"] / "keyed-backup"), "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The master key opens the 3 sealed value(s)" in result.stdout and result.stdout.rstrip().endswith("restored.")


def test_restore_refuses_a_running_service_an_occupied_folder_and_a_damaged_backup(served, tmp_path):
    busy = served["busy"]
    assert busy.returncode == 1 and "unified-messaging is running on this data folder" in busy.stderr
    refused = served["refused"]
    assert refused.returncode == 1 and "is not a backup: there is no manifest.json" in refused.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(served["root"] / "backup", damaged)
    victim = next(p for p in (damaged / "data" / "invoicing").rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"x")
    target = tmp_path / "target"
    result = run("restore", str(damaged), "--config", str(config_for(served["config"], target)), cwd=tmp_path)
    assert result.returncode == 1 and "is damaged" in result.stderr and "differs from the manifest" in result.stderr
    assert not (target / "journal.sqlite").exists()
    occupied = run("restore", str(served["root"] / "backup"), "--config", str(served["config"]), cwd=tmp_path)
    assert occupied.returncode == 1 and "There is already an install" in occupied.stderr and "--force" in occupied.stderr


def test_restore_with_force_moves_the_install_aside_and_loses_nothing(served, tmp_path):
    copy = tmp_path / "install"
    shutil.copytree(served["data"], copy, ignore=shutil.ignore_patterns("instance.lock"))
    config = config_for(served["config"], copy)
    before = dump(copy / "journal.sqlite")
    result = run("restore", str(served["root"] / "keyed-backup"), "--config", str(config), "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("install.before-restore-")]
    assert len(aside) == 1 and f"moved the install that was there to {aside[0]}" in result.stdout
    assert dump(aside[0] / "journal.sqlite") == before and (aside[0] / "master.key").exists()
    assert dump(copy / "journal.sqlite") == before  # the backup was made of this very state
    assert os.path.exists(copy / "master.key")
