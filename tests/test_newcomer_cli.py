"""A newcomer's first commands, run as real processes in a fresh folder (issue 14: check and licence on the
defaults, --password-stdin, mandates propose by a real user, help texts)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import CLI

SSIN = "85073003328"
PASSWORD = "Newcomer-Passw0rd-1"


def um(cwd: Path, *args: str, input: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return tmp_path


def create_space(cwd: Path) -> None:
    um(cwd, "securespace", "create", "--name", "Lab", "--owner-name", "Olivia Owner", "--owner-ssin", SSIN,
       "--responsible-name", "Olivia Owner", "--responsible-ssin", SSIN)


def test_check_on_the_defaults_says_there_is_nothing_to_check_and_why(fresh):
    out = um(fresh, "check").stdout
    assert "No certificate in the secure space" in out
    assert "certificates add" in out and "demo lab keystore" in out
    assert um(fresh, "check", "--json").stdout.strip() == "[]"


def test_licence_show_names_the_configurations_licence_when_none_is_recorded(fresh):
    out = um(fresh, "licence", "show").stdout
    assert "No licence recorded in the secure space" in out
    assert "'unified-messaging-demo'" in out and "licence set" in out
    assert "demo-licence-password" not in out
    create_space(fresh)
    um(fresh, "licence", "set", "my-lab-licence", "--password-stdin", input="Licence-Secret-123\n")
    out = um(fresh, "licence", "show").stdout
    assert "my-lab-licence" in out and "recorded in the secure space" in out and "Licence-Secret-123" not in out


def test_users_add_reads_the_password_from_stdin_without_a_warning(fresh):
    create_space(fresh)
    added = um(fresh, "users", "add", "admin", "--name", "Olivia Owner", "--ssin", SSIN, "--role", "administrator",
               "--password-stdin", input=f"{PASSWORD}\n")
    assert "User admin added (administrator)." in added.stdout
    assert "Warning" not in added.stderr and "Password:" not in added.stdout
    assert PASSWORD not in added.stdout + added.stderr
    changed = um(fresh, "users", "password", "admin", "--password-stdin", input="Another-Passw0rd-2\n")
    assert "Password of admin changed." in changed.stdout

    short = um(fresh, "users", "add", "bob", "--name", "Bob", "--ssin", SSIN, "--role", "clinical",
               "--password-stdin", input="short\n", code=1)
    assert "SS-WEAK-PASSWORD" in short.stdout + short.stderr
    assert "10 characters" in short.stdout + short.stderr
    empty = um(fresh, "users", "add", "bob", "--name", "Bob", "--ssin", SSIN, "--role", "clinical",
               "--password-stdin", input="", code=2)
    assert "standard input is empty" in empty.stderr


def propose(cwd: Path, by: str, code: int = 0) -> subprocess.CompletedProcess:
    return um(cwd, "mandates", "propose", "--mandant", "NIHII=41234502404", "--mandataire", "NIHII=94123454",
              "--service", "INSURABILITY", "--from", "2025-01-01", "--by", by, code=code)


def test_mandates_propose_by_someone_who_is_not_a_user_is_refused(fresh):
    no_space = propose(fresh, "admin", code=1)
    assert "SS-NO-SECURE-SPACE" in no_space.stdout + no_space.stderr
    create_space(fresh)
    ghost = propose(fresh, "ghost", code=1)
    assert "SS-UNKNOWN-USER" in ghost.stdout + ghost.stderr and "users add" in ghost.stdout + ghost.stderr
    assert um(fresh, "mandates", "list", "--json").stdout.strip() == "[]"
    um(fresh, "users", "add", "admin", "--name", "Olivia Owner", "--ssin", SSIN, "--role", "administrator",
       "--password-stdin", input=f"{PASSWORD}\n")
    assert "Mandate #1 proposed (proposed)." in propose(fresh, "admin").stdout


@pytest.mark.parametrize("command", [["licence", "show"], ["establishments", "remove"], ["licence", "set"],
                                     ["mandates", "accept"]])
def test_every_command_has_a_help_text(fresh, command):
    out = um(fresh, *command, "--help").stdout
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith("Usage:")
    description = rest.split("Options:")[0].strip()
    assert len(description) > 15, out


def test_the_batch_example_runs_twice_and_leaves_git_clean(tmp_path):
    """README's batch example, in a copy of the project's tracked batch/ and .gitignore under git."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.copytree(root / "batch", tmp_path / "batch", ignore=shutil.ignore_patterns("*.result*.csv", "*.lock"))
    for runtime in ("in", "out", "archive", "error"):
        for leftover in (tmp_path / "batch" / runtime).iterdir():
            if leftover.name != ".gitkeep":
                leftover.unlink()
    shutil.copy(root / ".gitignore", tmp_path / ".gitignore")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "example")
    for run in (1, 2):
        shutil.copy(tmp_path / "batch" / "sample.csv", tmp_path / "batch" / "in")
        out = um(tmp_path, "batch", "run", "batch/batch.properties", "--quiet").stdout
        assert "1 file(s) done (12 lines: 8 OK, 4 ERROR)" in out, (run, out)
        assert git("status", "--porcelain") == "", run
    assert len(list((tmp_path / "batch" / "out").glob("sample.result*.csv"))) == 2
