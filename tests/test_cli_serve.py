"""``unified-messaging serve`` as a user runs it: a real process, real signals."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.support import CLI

ECHO = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<Echo xmlns="http://unified-messaging.be/ConsultMyCareNet/"><message>ping</message></Echo>'
        b"</s:Body></s:Envelope>")


def _start(cwd: Path, *args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([CLI, "serve", *args], cwd=cwd, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        found = re.search(r"serving (http://\S+)", line)
        if found:
            process.startup = "".join(seen)  # what serve printed before it served
            return process, found.group(1)
        if process.poll() is not None:
            break
    process.kill()
    pytest.fail("serve did not start: " + "".join(seen))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_on_defaults_answers_and_stops_cleanly(tmp_path, sig):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    process, url = _start(tmp_path, "--port", "0")
    try:
        assert url.endswith("/unified-messaging/services")
        response = requests.post(url + "/ConsultMyCareNetSoap", data=ECHO,
                                 headers={"Content-Type": "text/xml"}, timeout=10)
        assert b"ping" in response.content
        assert (tmp_path / "um-data" / "journal.sqlite").exists()
    finally:
        process.send_signal(sig)
        # read through the text stream _start read lines from: communicate(timeout=...) reads the pipe's
        # descriptor directly and would lose what readline() already buffered
        err = process.stderr.read()
        process.wait(20)
    assert process.returncode == 0, err
    assert "stopped." in err
    printed = process.startup + err
    assert "Initializing application" not in printed  # Spyne's, once per SOAP version
    # the default is one front worker per core: each says it once (not once per SOAP version)
    assert printed.count("SOAP service ConsultMyCareNet ready: ConsultMyCareNetSoap (SOAP 1.1), "
                         "ConsultMyCareNetSoap12 (SOAP 1.2)") == (os.cpu_count() or 1)
    assert printed.count("stopped.") == 1 and printed.count("Press Ctrl-C to stop.") == 1, printed


def test_host_and_config_options(tmp_path):
    conf = tmp_path / "custom.toml"
    conf.write_text(f'[data]\nfolder = "{tmp_path / "elsewhere"}"\n[server]\nport = 1\n')
    process, url = _start(tmp_path, "--config", str(conf), "--host", "127.0.0.1", "--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        assert (tmp_path / "elsewhere" / "journal.sqlite").exists()
    finally:
        process.terminate()
        process.communicate(timeout=20)


@pytest.mark.parametrize("content, words", [
    ('[server]\nport = "eighty"\n', "[server] port = 'eighty' is not valid: expected a whole number"),
    ('[upstream]\nmode = "production"\n', "[upstream] mode = 'production' is not valid"),
    ('[upstream]\nmode = "remote"\n', '[upstream] sts_url = "" is not valid when [upstream] mode = "remote"'),
])
def test_wrong_configuration_stops_start_up_with_a_clear_message(tmp_path, content, words):
    conf = tmp_path / "bad.toml"
    conf.write_text(content)
    result = subprocess.run([CLI, "serve", "--config", str(conf), "--port", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_explained(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([CLI, "serve", "--port", str(port)], cwd=tmp_path, capture_output=True,
                                text=True, timeout=30)
    assert result.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_data_folder_that_cannot_be_made_is_not_reported_as_a_port_problem(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    conf = tmp_path / "c.toml"
    conf.write_text(f'[data]\nfolder = "{blocker / "um-data"}"\n')
    result = subprocess.run([CLI, "serve", "--config", str(conf), "--port", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Cannot listen" not in result.stderr
    assert "data folder" in result.stderr and "Traceback" not in result.stderr
