"""The systemd unit example in conf/ and the JSON-lines logs (issue 13, point 6)."""
from __future__ import annotations

import configparser
import json
import logging
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest

from unified_messaging.logs import setup_logging

UNIT = Path(__file__).resolve().parents[1] / "conf" / "unified-messaging.service"
SSIN = "85073003328"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_is_hardened_and_restarts_on_failure():
    service = unit()["Service"]
    assert service["User"] == "unified-messaging" and service["Group"] == "unified-messaging"
    assert "unified-messaging serve --config" in service["ExecStart"]
    for key, value in {"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "Restart": "on-failure", "UMask": "0077"}.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"] == service["WorkingDirectory"] == "/var/lib/unified-messaging"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd): only the keys were checked")
    done = subprocess.run([analyze, "verify", "--man=no", str(UNIT)], capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines()
                if "unified-messaging.service" in line and "Command /opt/" not in line
                and "not executable" not in line and "No such file" not in line]
    assert not problems, done.stderr


def test_json_logs_are_one_masked_object_per_line():
    stream = StringIO()
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        setup_logging("INFO", "json", stream)
        logging.getLogger("unified_messaging.test").info("patient %s asked", SSIN)
        try:
            raise ValueError(f"bad SSIN {SSIN}")
        except ValueError:
            logging.getLogger("unified_messaging.test").exception("failed for %s", SSIN)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == ["patient 850730***** asked", "failed for 850730*****"]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "unified_messaging.test"
    assert records[0]["time"].endswith("+00:00")
    assert "ValueError: bad SSIN 850730*****" in records[1]["exception"]
    assert SSIN not in stream.getvalue()


def test_serve_writes_json_lines_when_configured(tmp_path):
    from tests.support import CLI

    (tmp_path / "um.toml").write_text('[server]\nport = 0\n[logging]\nformat = "json"\n', encoding="utf-8")
    process = subprocess.Popen([CLI, "serve", "--config", str(tmp_path / "um.toml")], cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(process.stderr.readline())
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert {"time", "level", "logger", "message"} <= set(first)
