"""The secure space's command line: tables, --json, refusals, and no secret in any output or file."""
from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from unified_messaging.simulator.devpki import GROUP_NUMBER, NURSE_NIHII
from unified_messaging.secrets import master_key
from unified_messaging.securespace import cli
from unified_messaging.securespace.crypto import PasswordHasher
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore
from unified_messaging.simulator.platform import demo_pki

OWNER_SSIN = "85073003328"
ADMIN_PASSWORD = "Cli-Distinctive-Passw0rd"
LICENCE_PASSWORD = "Cli-Licence-Secret-77"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "um-data"
    config = folder / "um.toml"
    config.write_text(f'[data]\nfolder = "{data}"\n', encoding="utf-8")
    pki = demo_pki(data)
    return config, data, pki


def run(setup, group, *args, input: str | None = None, code: int = 0):
    config, _, _ = setup

    def factory(cfg):
        return SecureSpaceStore.in_data_folder(cfg.data_folder, master_key(cfg.data_folder), hasher=PasswordHasher(16))

    result = CliRunner().invoke(group, ["--config", str(config), *args], input=input,
                                obj={"store_factory": factory}, catch_exceptions=False)
    assert result.exit_code == code, result.output
    run.outputs.append(result.output)
    return result.output


run.outputs = []


def test_the_whole_set_up_from_the_command_line(setup, caplog):
    caplog.set_level(logging.DEBUG)
    _, data, pki = setup
    run(setup, cli.securespace, "create", "--name", "Dev", "--owner-name", "Olivia Owner", "--owner-ssin", OWNER_SSIN,
        "--responsible-name", "Olivia Owner", "--responsible-ssin", OWNER_SSIN)
    out = run(setup, cli.users, "add", "admin", "--name", "Olivia Owner", "--ssin", OWNER_SSIN, "--role", "administrator",
              input=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n")
    assert "User admin added (administrator)." in out
    run(setup, cli.users, "add", "ann", "--name", "Ann", "--ssin", OWNER_SSIN, "--role", "clinical",
        input="ann-password-1\nann-password-1\n")
    out = run(setup, cli.users, "list")
    assert out.splitlines()[0].split() == ["login", "name", "ssin", "roles"]
    assert "850730*****" in out and OWNER_SSIN not in out

    out = run(setup, cli.certificates, "add", str(pki.lab.path), "--responsible", "admin",
              "--trusted-ca", str(pki.ca_certificate_path), input=f"{pki.password}\n")
    assert "Certificate #1 added: #1 NIHII-LABO=" in out
    run(setup, cli.certificates, "add", str(pki.nursing_group.path), "--responsible", "admin", input=f"{pki.password}\n")
    err = run(setup, cli.certificates, "add", str(pki.nurse.path), "--responsible", "admin", input="wrong-password\n",
              code=1)
    assert "Refused: SS-BAD-KEYSTORE" in err and "remedy:" in err
    listed = json.loads(run(setup, cli.certificates, "list", "--json"))
    assert [(c["id"], c["quality"], c["status"]) for c in listed] == [(1, "labo", "valid"), (2, "groupofnurses", "valid")]

    err = run(setup, cli.certificates, "grant", "1", "ann", "--as", "ann", input="ann-password-1\n", code=1)
    assert "SS-NOT-RESPONSIBLE" in err
    run(setup, cli.certificates, "grant", "1", "ann", "--as", "admin", input="wrong-password\n", code=1)
    run(setup, cli.certificates, "grant", "1", "ann", "--as", "admin", input=f"{ADMIN_PASSWORD}\n")
    assert [a["login"] for a in json.loads(run(setup, cli.certificates, "access", "1", "--json"))] == ["admin", "ann"]

    run(setup, cli.establishments, "add", "2", NURSE_NIHII, "--from", "2020-01-01")
    proposed = json.loads(run(setup, cli.mandates, "propose", "--mandant", f"NIHII={NURSE_NIHII}", "--mandataire",
                              f"NIHII={GROUP_NUMBER}", "--service", "invoicing", "--from", "2020-01-01", "--by",
                              "admin", "--json"))
    assert proposed["state"] == "proposed"
    run(setup, cli.mandates, "accept", str(proposed["id"]), "--side", "mandant", "--by", "nurse")
    assert "now active" in run(setup, cli.mandates, "accept", str(proposed["id"]), "--side", "mandataire", "--by", "group")
    err = run(setup, cli.mandates, "resume", str(proposed["id"]), "--by", "nurse", code=1)
    assert "SS-MANDATE-TRANSITION" in err
    shown = run(setup, cli.mandates, "show", str(proposed["id"]))
    assert "History:" in shown and "accept by mandataire" in shown

    run(setup, cli.licence, "set", "unified-messaging-demo", input=f"{LICENCE_PASSWORD}\n")
    assert "unified-messaging-demo" in run(setup, cli.licence, "show")
    # The recorded licence password is not the simulator's: every service says so.
    report = json.loads(run(setup, cli.check, "--json", code=0))
    assert {r["code"] for s in report[0]["services"] for r in s["reasons"]} >= {"SS-LICENCE-REFUSED"}
    run(setup, cli.licence, "set", "unified-messaging-demo", input="demo-licence-password\n")
    # Every offered service Active (INVOICING probed in the simulator's mailbox), MED_ADMIN neutral: exit 0.
    text = run(setup, cli.check, code=0)
    assert "STS token: issued" in text
    lab_lines = text.split("\n\n")[0].splitlines()
    assert lab_lines[1].split()[:4] == ["service", "status", "acts", "for"]
    assert lab_lines[3].split()[:2] == ["INSURABILITY", "Active"]
    assert lab_lines[4].split()[:3] == ["INVOICING", "Active", "itself"]
    assert lab_lines[5].split()[:5] == ["MED_ADMIN", "Not", "offered", "by", "this"]
    assert "has no client for this service" in lab_lines[5]
    group = json.loads(run(setup, cli.check, "--certificate", "2", "--json"))[0]
    invoicing = next(s for s in group["services"] if s["service"] == "INVOICING")
    assert invoicing["acts_for"] == ["itself", f"NIHII={NURSE_NIHII} (mandate #{proposed['id']})"]

    everything_printed = "".join(run.outputs) + caplog.text
    files = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith(STORE_FILE))
    for secret in (pki.password, ADMIN_PASSWORD, "ann-password-1", LICENCE_PASSWORD):
        assert secret not in everything_printed, secret
        assert secret.encode() not in files and secret.encode("utf-16-be") not in files, secret
    p12 = pki.lab.path.read_bytes()
    assert all(p12[i:i + 32] not in files for i in range(0, len(p12) - 32, 256))


def test_the_commands_run_as_a_real_process(tmp_path):
    """The groups are registered in the main command: a user creates the space and lists it."""
    import json
    import subprocess

    from tests.support import CLI

    ssin = "85073003328"
    create = subprocess.run([CLI, "securespace", "create", "--name", "Lab", "--owner-name", "Olivia Owner",
                             "--owner-ssin", ssin, "--responsible-name", "Rita Responsible",
                             "--responsible-ssin", ssin], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert create.returncode == 0, create.stderr
    shown = subprocess.run([CLI, "securespace", "show"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "Olivia Owner" in shown.stdout
    assert ssin not in shown.stdout + create.stdout + create.stderr
    listed = subprocess.run([CLI, "users", "list", "--json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    again = subprocess.run([CLI, "securespace", "create", "--name", "x", "--owner-name", "x", "--owner-ssin", ssin,
                            "--responsible-name", "x", "--responsible-ssin", ssin], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "SS-SECURE-SPACE-EXISTS" in again.stdout + again.stderr
    assert "Traceback" not in again.stderr
