"""Secrets in the configuration: encrypted, from the environment or a file; never shown."""
from __future__ import annotations

import logging
import os
import stat
import subprocess

import pytest
import zeep

from tests.conftest import make_config
from tests.support import CLI, LAB
from unified_messaging.config import ConfigError
from unified_messaging.gateway import Gateway
from unified_messaging.secrets import SecretError, encrypt_secret, resolve_secret
from unified_messaging.simulator.population import TEST_PATIENTS


def test_encrypted_secret_round_trip_and_master_key_file(tmp_path):
    value = encrypt_secret("s3cret-licence", tmp_path)
    assert value.startswith("enc:") and "s3cret" not in value
    key_file = tmp_path / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = resolve_secret(value, key="[licence] password", data_folder=tmp_path)
    assert secret.value == "s3cret-licence" and secret.origin == "encrypted"
    assert "s3cret" not in repr(secret) and "s3cret" not in str(secret)


def test_secret_from_another_installation_is_refused_with_advice(tmp_path):
    value = encrypt_secret("x", tmp_path / "one")
    encrypt_secret("y", tmp_path / "two")
    with pytest.raises(SecretError, match="Encrypt it again"):
        resolve_secret(value, key="[licence] password", data_folder=tmp_path / "two")


def test_environment_and_file_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("UM_TEST_LICENCE", "from-env")
    assert resolve_secret("env:UM_TEST_LICENCE", key="k", data_folder=tmp_path).value == "from-env"
    with pytest.raises(SecretError, match="UM_TEST_MISSING is not set"):
        resolve_secret("env:UM_TEST_MISSING", key="k", data_folder=tmp_path)
    path = tmp_path / "licence.txt"
    path.write_text("from-file\n")
    assert resolve_secret(f"file:{path}", key="k", data_folder=tmp_path).value == "from-file"
    with pytest.raises(SecretError, match="cannot be read"):
        resolve_secret(f"file:{tmp_path / 'nope'}", key="k", data_folder=tmp_path)


def test_cli_encrypts_from_standard_input(tmp_path):
    result = subprocess.run([CLI, "secret", "encrypt"], input="piped-secret\n", capture_output=True, text=True,
                            cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("enc:") and "piped-secret" not in result.stdout + result.stderr
    assert resolve_secret(token, key="k", data_folder=tmp_path / "um-data").value == "piped-secret"


def test_gateway_uses_an_encrypted_licence_and_never_shows_it(tmp_path, caplog):
    data = tmp_path / "um-data"
    config = make_config(tmp_path, licence={"password": encrypt_secret("demo-licence-password", data)})
    patient = TEST_PATIENTS[0]
    with caplog.at_level(logging.DEBUG), Gateway(config) as gateway:
        client = zeep.Client(f"{gateway.services_url}/ConsultMyCareNetSoap?wsdl")
        result = client.service.GetInsurability(request={"CareProvider": LAB, "Ssin": patient.ssin,
                                                         "PeriodStart": "2026-01-05"})
        assert result.Status == "OK"
    assert "demo-licence-password" not in caplog.text
    # the test's own legacy zeep client logs what it sends at DEBUG (zeep.transports); the gateway's
    # upstream messages (with <Inss>) must never appear, nor the SSIN in any of the gateway's logs
    for record in caplog.records:
        if record.name == "zeep.transports":
            assert "Inss" not in record.getMessage()
        else:
            assert patient.ssin not in record.getMessage(), record.name
    for path in data.rglob("*"):
        if path.is_file():
            assert b"demo-licence-password" not in path.read_bytes(), path


def test_a_secret_that_cannot_be_resolved_stops_start_up(tmp_path):
    config = make_config(tmp_path, licence={"password": "env:UM_TEST_NOT_SET_ANYWHERE"})
    os.environ.pop("UM_TEST_NOT_SET_ANYWHERE", None)
    with pytest.raises(ConfigError, match="UM_TEST_NOT_SET_ANYWHERE is not set"):
        Gateway(config).start()


def test_wrong_keystore_password_stops_start_up_with_the_key_named(tmp_path):
    config = make_config(tmp_path, identity={"keystore_password": "not-the-password"})
    with pytest.raises(ConfigError) as caught:
        Gateway(config).start()
    assert "[identity] keystore" in str(caught.value) and "password is wrong" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_dev_certs_command(tmp_path):
    result = subprocess.run([CLI, "dev-certs", "--folder", str(tmp_path / "pki")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ("lab", "nurse", "nursing_group", "expired", "untrusted"):
        assert name in result.stdout
    assert "*****" in result.stdout  # SSINs masked
    assert (tmp_path / "pki" / "ca.pem").exists() and (tmp_path / "pki" / "lab.p12").exists()


def test_an_encrypted_secret_without_master_key_says_so(tmp_path):
    value = encrypt_secret("x", tmp_path / "elsewhere")
    with pytest.raises(SecretError, match="no master key"):
        resolve_secret(value, key="[licence] password", data_folder=tmp_path / "fresh")
