"""``secret rotate-master-key``: every sealed secret under a new key, and a usable install whatever
the moment the command is killed (a real process, SIGKILLed at each step of the rotation)."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from tests.conftest import make_config
from tests.support import ADMIN_PASSWORD, CLI, OWNER_SSIN
from unified_messaging.config import load_config
from unified_messaging.gateway import Gateway
from unified_messaging.operations.instance import InstanceBusy
from unified_messaging.operations.rotation import MasterKeyRotation, RotationError
from unified_messaging.secrets import MASTER_KEY_ENV, NEXT_KEY_FILE, encrypt_secret, master_keys, resolve_secret
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.crypto import PasswordHasher, Sealer
from unified_messaging.securespace.store import SecureSpaceStore

LICENCE_PASSWORD = "the-licence-password-42"
KEYSTORE_PASSWORD = "a-keystore-password-43"
CERTIFICATES = ("lab", "nurse")
# Two keystores and their passwords, and the licence password: five sealed values.
STEPS = ["next-key-written", "config-written-um.toml", "resealed-1", "resealed-3", "resealed-5",
         "resealed-committed", "promoted"]

KILLER = """
import os, signal, sys
from pathlib import Path
from unified_messaging.operations.rotation import MasterKeyRotation
step = sys.argv[3]
def checkpoint(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)
MasterKeyRotation(Path(sys.argv[1]), [Path(sys.argv[2])], checkpoint=checkpoint).run()
"""


def _store(data: Path) -> SecureSpaceStore:
    return SecureSpaceStore.in_data_folder(data, master_keys(data), hasher=PasswordHasher(cost=16))


@pytest.fixture()
def install(tmp_path, pki):
    """A data folder with a master key, a secure space (two keystores, a licence) and a
    configuration file holding two enc: values."""
    data = tmp_path / "um-data"
    config = tmp_path / "um.toml"
    config.write_text(
        f'# an operator\'s comment, kept as it is\n[data]\nfolder = "{data}"\n\n[licence]\n'
        f'password = "{encrypt_secret(LICENCE_PASSWORD, data)}"\n\n[identity]\n'
        f'keystore_password = "{encrypt_secret(KEYSTORE_PASSWORD, data)}"  # trailing comment\n', encoding="utf-8")
    store = _store(data)
    store.create_space("Dev space", "Olivia Owner", OWNER_SSIN, "Rita Responsible", OWNER_SSIN)
    store.add_user("admin", "Olivia Owner", OWNER_SSIN, ["administrator"], ADMIN_PASSWORD)
    for name in CERTIFICATES:
        store.add_certificate(pki.keystores[name].path.read_bytes(), pki.password, responsible_login="admin")
    store.set_licence("lab-software", LICENCE_PASSWORD)
    store.close()
    return data, config


def _assert_usable(data: Path, config: Path) -> None:
    """Everything opens: the configuration's secrets and every sealed value of the secure space."""
    loaded = load_config(config)
    assert resolve_secret(loaded.licence.password, key="[licence] password", data_folder=data).value == LICENCE_PASSWORD
    assert resolve_secret(loaded.identity.keystore_password, key="k", data_folder=data).value == KEYSTORE_PASSWORD
    store = _store(data)
    try:
        assert store.count_sealed() == 5
        assert all(store.open_keystore(c.id).entries for c in store.certificates())
        assert len(store.certificates()) == len(CERTIFICATES)
        assert store.licence().password == LICENCE_PASSWORD
        assert store.authenticate("admin", ADMIN_PASSWORD).login == "admin"
    finally:
        store.close()


def _assert_rotated_away_from(data: Path, config: Path, old_key: bytes) -> None:
    """Only one key is left, it is not the old one, and the old one opens nothing any more."""
    assert not (data / NEXT_KEY_FILE).exists()
    (new_key,) = master_keys(data)
    assert new_key != old_key
    token = load_config(config).licence.password[4:].encode()
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(token)
    store = SecureSpaceStore.in_data_folder(data, old_key, hasher=PasswordHasher(cost=16))
    try:
        with pytest.raises(Refusal):
            store.count_sealed()
    finally:
        store.close()
    assert Sealer(new_key)  # the new key is a valid master secret


def test_rotation_seals_everything_under_a_new_key_and_keeps_the_file_as_it_was(install):
    data, config = install
    (old_key,) = master_keys(data)
    before = config.read_text(encoding="utf-8")
    result = subprocess.run([CLI, "secret", "rotate-master-key", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "5 sealed value(s) sealed again" in result.stdout
    assert f"{config}: 2 enc: value(s) encrypted again" in result.stdout
    assert "backups made before now need the old key" in result.stdout
    _assert_usable(data, config)
    _assert_rotated_away_from(data, config, old_key)
    after = config.read_text(encoding="utf-8")
    assert after != before
    strip = [line.split('"')[0] for line in before.splitlines()]
    assert [line.split('"')[0] for line in after.splitlines()] == strip  # comments and keys untouched
    assert "# trailing comment" in after and LICENCE_PASSWORD not in after
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_the_install_still_works_and_running_again_finishes(install, step, caplog):
    data, config = install
    (old_key,) = master_keys(data)
    killed = subprocess.run([sys.executable, "-c", KILLER, str(data), str(config), step],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _assert_usable(data, config)  # in the middle of a rotation: both keys are accepted
    pending = (data / NEXT_KEY_FILE).exists()
    assert pending == (step != "promoted")
    # the service starts on a half-rotated install, and says what to do
    gateway = Gateway(make_config(data.parent, data={"folder": str(data)}))
    try:
        with caplog.at_level(logging.WARNING, logger="unified_messaging.gateway"):
            gateway.open_service()
    finally:
        gateway.stop()
    assert ("a master key rotation was interrupted" in caplog.text) == pending
    again = subprocess.run([CLI, "secret", "rotate-master-key", "--config", str(config)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert ("An interrupted rotation was found and finished." in again.stdout) == pending
    _assert_usable(data, config)
    _assert_rotated_away_from(data, config, old_key)


def test_rotation_is_refused_while_the_service_runs_and_with_the_key_in_the_environment(install, monkeypatch):
    data, config = install
    gateway = Gateway(make_config(data.parent, data={"folder": str(data)}))
    gateway.open_service()
    try:
        with pytest.raises(InstanceBusy, match="stop it before you rotate the master key"):
            MasterKeyRotation(data, [config]).run()
        result = subprocess.run([CLI, "secret", "rotate-master-key", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "unified-messaging is running on this data folder" in result.stderr
    finally:
        gateway.stop()
    assert not (data / NEXT_KEY_FILE).exists()
    monkeypatch.setenv(MASTER_KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(RotationError, match=f"unset {MASTER_KEY_ENV}"):
        MasterKeyRotation(data, [config]).run()


def test_a_secret_that_does_not_open_stops_the_rotation_before_any_change(install, tmp_path):
    data, config = install
    foreign = encrypt_secret("elsewhere", tmp_path / "another-install")
    config.write_text(config.read_text(encoding="utf-8") + f'\n[securespace]\n# "{foreign}"\n', encoding="utf-8")
    before = (data / "master.key").read_bytes()
    with pytest.raises(RotationError, match=r"um.toml, line \d+: this enc: value does not open"):
        MasterKeyRotation(data, [config]).run()
    assert (data / "master.key").read_bytes() == before and not (data / NEXT_KEY_FILE).exists()
