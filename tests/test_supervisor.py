"""#16 points 1 and 3: ``serve --workers 2`` as an operator runs it (a real process tree: the
supervisor, two front workers on one port, the singletons process, the simulator in its own
process). Calls are answered; a front worker or the singletons process killed with SIGKILL is
replaced within seconds while the others go on answering; SIGTERM stops everything, no orphan;
a start-up error of a child is the service's, naming the key."""
from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import zeep

from tests.support import CLI, LAB, patient, wait_for


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class Served:
    def __init__(self, folder: Path, *options: str) -> None:
        self.log = folder / "serve.log"
        stream = open(self.log, "wb")
        self.popen = subprocess.Popen([CLI, "serve", "--port", "0", "--workers", "2", *options], cwd=folder,
                                      stdout=stream, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stream.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"serving (http://\S+)", self.text())
            if found and "Press Ctrl-C to stop." in self.text():
                return found.group(1)
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("serve --workers 2 did not start:\n" + self.text()[-4000:])

    def pids(self) -> dict[str, int]:
        """The children by role, from the supervisor's own log lines (the last start of each)."""
        found = {}
        for name, pid in re.findall(r"supervisor: (.+?) started \(pid (\d+)\)", self.text()):
            found[name] = int(pid)
        return found


def ask(url: str) -> str:
    client = zeep.Client(f"{url}/ConsultMyCareNetSoap?wsdl")
    return client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient("insured").ssin,
                                                   "PeriodStart": dt.date.today()}).Status


@pytest.fixture()
def served(tmp_path):
    running = Served(tmp_path)
    yield running
    if running.popen.poll() is None:
        running.popen.kill()
        running.popen.wait(30)


def test_two_front_workers_answer_are_replaced_when_killed_and_stop_cleanly(served, tmp_path):
    url = served.wait_serving()
    supervisor = served.popen.pid
    pids = served.pids()
    assert set(pids) == {"simulator", "front worker 1", "front worker 2", "singletons"}, pids
    assert sorted(children_of(supervisor)) == sorted(pids.values())  # one tree, one supervisor
    assert ask(url) == "OK"
    results, stop = [], threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                results.append(ask(url))
            except Exception as exc:  # a call cut by the kill
                results.append(f"failed: {type(exc).__name__}")

    callers = [threading.Thread(target=traffic) for _ in range(3)]
    for caller in callers:
        caller.start()
    try:
        wait_for(lambda: len(results) >= 6, timeout=60, what="calls under way")
        victim = pids["front worker 1"]
        os.kill(victim, signal.SIGKILL)
        before = len(results)
        wait_for(lambda: served.pids()["front worker 1"] != victim, timeout=30, what="a new front worker")
        wait_for(lambda: len(results) >= before + 10, timeout=60, what="calls after the kill")
    finally:
        stop.set()
        for caller in callers:
            caller.join(60)
    failures = [r for r in results if r != "OK"]
    assert len(failures) <= 3, failures  # at most the calls the killed worker was answering
    assert results[-5:] == ["OK"] * 5
    # the singletons process: killed, replaced, and the toQuery folder works again
    singletons = pids["singletons"]
    os.kill(singletons, signal.SIGKILL)
    wait_for(lambda: served.pids()["singletons"] != singletons, timeout=30, what="a new singletons process")
    inbox = tmp_path / "um-data" / "insurability" / "toQuery"
    request = (f'<InsurabilityRequests xmlns="http://unified-messaging.be/ConsultMyCareNet/"><InsurabilityRequest>'
               f"<CareProvider><Nihii>{LAB['Nihii']}</Nihii><Quality>labo</Quality></CareProvider>"
               f"<Ssin>{patient('insured').ssin}</Ssin><PeriodStart>{dt.date.today()}</PeriodStart>"
               "</InsurabilityRequest></InsurabilityRequests>")
    (inbox / "after-kill.xml").write_text(request, encoding="utf-8")
    (inbox / "after-kill.xml.ok").write_bytes(b"")
    wait_for(lambda: (inbox.parent / "queried" / "after-kill.answer.xml.ok").exists(), timeout=60,
             what="the toQuery answer")
    everyone = children_of(supervisor)
    served.popen.send_signal(signal.SIGTERM)
    assert served.popen.wait(60) == 0, served.text()[-3000:]
    assert "stopped." in served.text()
    wait_for(lambda: not any(alive(pid) for pid in everyone), timeout=10, what="no orphan")


def test_a_child_that_cannot_start_stops_the_service_with_its_message(tmp_path):
    config = tmp_path / "um.toml"
    config.write_text(f'[data]\nfolder = "{tmp_path / "um-data"}"\n[identity]\nkeystore = "/nowhere/lab.p12"\n'
                      'keystore_password = "x"\n', encoding="utf-8")
    running = Served(tmp_path, "--config", str(config))
    try:
        assert running.popen.wait(120) == 1
    finally:
        if running.popen.poll() is None:
            running.popen.kill()
    text = running.text()
    assert "front worker 1 stopped at start" in text and "/nowhere/lab.p12" in text, text[-3000:]
    wait_for(lambda: not re.search(r"unified_messaging\.(supervisor|cli) .*" + str(tmp_path),
                                   subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout),
             timeout=20, what="no child left")
