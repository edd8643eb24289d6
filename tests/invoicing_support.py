"""Helpers shared by the GenAsync and invoicing tests: real signing clients, the invoicing runner,
the ``simulator`` and ``serve`` processes, and what the journal holds."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from tests.conftest import ROOT
from tests.support import CLI, LICENCE
from tests.support import FAST, running_platform, wait_for  # noqa: F401 - re-exported: tests import them from here
from unified_messaging.domain.insurability import CareProvider
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal.store import Journal
from unified_messaging.simulator.app import GENERICINSURABILITY_PATH
from unified_messaging.simulator.devpki import DEFAULT_PASSWORD, LAB_NIHII, PLATFORM_CBE, DevPki
from unified_messaging.simulator.genasync import GENASYNC_PATH
from unified_messaging.simulator.sending_writer import build_sending, spec_for_size, write_sending
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.securespace.models import Licence
from unified_messaging.upstream import RenewingGenAsync, UpstreamPlan, genasync_for_keystore

LAB = CareProvider("81234530000", "labo")


def client_for(pki: DevPki, url: str, *, throttle_wait: float = 0.2, licence: tuple[str, str] = LICENCE,
               timeout: float = 30.0) -> RenewingGenAsync:
    """A GenAsync client from the upstream seam, acting as the demo lab."""
    plan = UpstreamPlan(sts_url=url + STS_PATH, genericinsurability_url="", genasync_url=url + GENASYNC_PATH,
                        keystore_path=pki.lab.path, keystore_password=pki.password,
                        platform_ca=pki.ca_certificate(), timeout=timeout)
    return genasync_for_keystore(plan, licence=Licence(*licence), care_provider=LAB, throttle_wait=throttle_wait)


def runner_arguments(pki: DevPki, url: str, root: Path, journal: Path) -> list[str]:
    return ["--root", str(root), "--journal", str(journal), "--sts-url", url + STS_PATH,
            "--genasync-url", url + GENASYNC_PATH, "--keystore", str(pki.lab.path),
            "--keystore-password", pki.password, "--licence-username", LICENCE[0],
            "--licence-password", LICENCE[1], "--nihii", LAB.nihii, "--quality", LAB.quality,
            "--platform-ca", str(pki.ca_certificate_path), "--repost-grace", "0.5"]


# -- the pipeline in a process of its own: ``python -m unified_messaging.invoicing.run`` --

def start_runner(pki: DevPki, url: str, root: Path, journal: Path, *extra: str) -> subprocess.Popen:
    arguments = [sys.executable, "-m", "unified_messaging.invoicing.run",
                 *runner_arguments(pki, url, root, journal), "--poll-interval", "0.2", "--rescan-seconds", "0.2",
                 "--throttle-wait", "0.2", *extra]
    log = open(root.parent / "runner.log", "ab")
    return subprocess.Popen(arguments, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def file_row(journal: Path) -> dict | None:
    """The first invoicing file of the journal, or None."""
    if not journal.exists():
        return None
    rows = InvoicingStore(Journal(journal)).files()
    return rows[0] if rows else None


# -- the pipeline in-process --

def run_until(pipeline: InvoicingPipeline, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run the pipeline's steps until ``done()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.run_once(poll=True)
        if done():
            return
        time.sleep(0.1)
    raise AssertionError("the pipeline did not get there in time")


def status_of(pipeline: InvoicingPipeline, name: str) -> dict:
    return next(r for r in pipeline.store.files() if r["name"] == name)


# -- the real processes: ``unified-messaging simulator`` and ``unified-messaging serve`` --

GATEWAY_LICENCE = LICENCE


@dataclass
class Process:
    """A CLI process whose stderr goes to ``log`` (a file: a pipe nobody reads would block it)."""

    popen: subprocess.Popen
    url: str
    log: Path
    data: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL, as a crash: no clean-up runs."""
        self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _launch(arguments: list[str], cwd: Path, log: Path, pattern: str, env: dict | None = None,
            timeout: float = 60.0) -> Process:
    stream = open(log, "ab")
    start = log.stat().st_size
    popen = subprocess.Popen(arguments, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    stream.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, "rb") as reader:
            reader.seek(start)
            text = reader.read().decode("utf-8", "replace")
        found = re.search(pattern, text)
        if found:
            return Process(popen, found.group(1), log)
        if popen.poll() is not None:
            break
        time.sleep(0.05)
    popen.kill()
    popen.wait()
    raise AssertionError(f"{arguments[1]} did not start:\n{log.read_text(errors='replace')[-4000:]}")


def start_simulator(folder: Path, *options: str, timings: tuple[float, float, float] = (0.0, 0.2, 0.4),
                    min_get_interval: float = 0.0) -> Process:
    """``unified-messaging simulator`` on a free port, its demo PKI in ``folder/sim-data``."""
    folder.mkdir(parents=True, exist_ok=True)
    arguments = [CLI, "simulator", "--port", "0", "--data-folder", str(folder / "sim-data"),
                 "--licence-username", GATEWAY_LICENCE[0], "--licence-password", "env:UM_TEST_LICENCE_PASSWORD",
                 "--genasync-acknowledgement-seconds", str(timings[0]),
                 "--genasync-detailed-seconds", str(timings[1]), "--genasync-settlement-seconds", str(timings[2]),
                 "--genasync-min-get-interval-seconds", str(min_get_interval), *options]
    process = _launch(arguments, folder, folder / "simulator.log", r"platform at (http://\S+)",
                      env={"UM_TEST_LICENCE_PASSWORD": GATEWAY_LICENCE[1]})
    process.data = folder / "sim-data"
    return process


def simulator_counters(simulator: Process) -> dict[str, int]:
    # 60 s, not 10: while it takes in a 50 MB sending on a loaded machine, the simulator answers late.
    return requests.get(simulator.url + "/_simulator/counters", timeout=60).json()


def remote_gateway_config(folder: Path, simulator: Process, *, poll_interval: float = 0.2,
                          rescan: float = 0.5, extra: str = "") -> Path:
    """A configuration for ``serve`` against a stand-alone simulator, as an integrator writes one for
    the real platform ([upstream] mode = "remote"); secrets come from the environment."""
    pki = simulator.data / "demo-pki"
    base = simulator.url
    text = f"""
[server]
port = 0
[data]
folder = "{folder / 'um-data'}"
[upstream]
mode = "remote"
sts_url = "{base}{STS_PATH}"
genericinsurability_url = "{base}{GENERICINSURABILITY_PATH}"
genasync_url = "{base}{GENASYNC_PATH}"
platform_ca = "{pki / 'ca.pem'}"
platform_signer_cbe = "{PLATFORM_CBE}"
timeout_seconds = 30.0
[licence]
username = "{GATEWAY_LICENCE[0]}"
password = "env:UM_TEST_LICENCE_PASSWORD"
[identity]
keystore = "{pki / 'lab.p12'}"
keystore_password = "env:UM_TEST_KEYSTORE_PASSWORD"
[folders]
insurability = false
[invoicing]
care_provider_nihii = "{LAB_NIHII}"
rescan_seconds = {rescan}
poll_interval_seconds = {poll_interval}
throttle_wait_seconds = 0.2
{extra}
"""
    path = folder / "gateway.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GATEWAY_ENV = {"UM_TEST_LICENCE_PASSWORD": GATEWAY_LICENCE[1], "UM_TEST_KEYSTORE_PASSWORD": DEFAULT_PASSWORD}


def start_gateway(folder: Path, config: Path | None = None, *options: str) -> Process:
    """``unified-messaging serve --port 0`` in ``folder`` (with ``--config`` when given)."""
    arguments = [CLI, "serve", "--port", "0", *(["--config", str(config)] if config else []), *options]
    return _launch(arguments, folder, folder / "gateway.log", r"serving (http://\S+)", env=GATEWAY_ENV)


def invoicing_status(folder: Path, config: Path | None = None) -> tuple[list[dict], str]:
    """``unified-messaging invoicing status`` as a user runs it: (the --json rows, the table)."""
    base = [CLI, "invoicing", *(["--config", str(config)] if config else []), "status"]
    rows = subprocess.run([*base, "--json"], cwd=folder, capture_output=True, text=True, timeout=60, check=True)
    table = subprocess.run(base, cwd=folder, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(rows.stdout), table.stdout


def journal_rows(journal: Path) -> list[dict]:
    """The invoicing files as the journal holds them (read-only use while the gateway runs)."""
    if not journal.exists():
        return []
    journal_handle = Journal(journal)
    try:
        return InvoicingStore(journal_handle).files()
    finally:
        journal_handle.close()


def journal_feedback(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    journal_handle = Journal(journal)
    try:
        return list(journal_handle.db.query("SELECT * FROM invoicing_feedback ORDER BY id"))
    finally:
        journal_handle.close()


def drop_file(to_send: Path, name: str, data: bytes, *, marker: str | None = None) -> None:
    """What the lab software does: the file, then its .ok marker."""
    (to_send / name).write_bytes(data)
    (to_send / (marker or f"{name}.ok")).write_bytes(b"")


def drop_sending(to_send: Path, name: str, zone_204: str, *, big: bool = False) -> None:
    """A sending dropped as the lab software does; ``big``: 30 MB, written beside ``toSend`` then
    renamed in, so that its record pass lasts long enough to be interrupted."""
    if not big:
        drop_file(to_send, name, build_sending(zone_204=zone_204))
        return
    beside = to_send.parent / f".{name}.writing"
    with open(beside, "wb") as stream:
        write_sending(stream, spec_for_size(30 * 1024 * 1024, zone_204=zone_204))
    beside.rename(to_send / name)
    (to_send / f"{name}.ok").write_bytes(b"")


def received_codes(root: Path, stem: str) -> list[str]:
    return sorted(p.name.split("_")[1] for p in (root / "received").glob(f"{stem}_*") if not p.name.startswith("."))
