"""A throwaway PostgreSQL cluster for the tests marked ``postgres``: ``initdb`` in a temporary
folder, ``pg_ctl start`` on a free port of 127.0.0.1 (its socket in that folder too), one
password-protected role and a database; stopped and removed when the session ends.

initdb refuses to run as root (CI runs the tests as root): then the cluster belongs to the
``postgres`` system user that Debian's package creates, and its folder is chowned to it.
"""
from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

INSTALL = "apt-get install postgresql"
ROLE = "um"
_numbers = itertools.count(1)


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]), reverse=True)
    return versions[0].parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_WATCHDOG = """
import os, shutil, subprocess, sys, time
owner, folder, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while True:
    time.sleep(1)
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
subprocess.run(command, capture_output=True, timeout=60)
shutil.rmtree(folder, ignore_errors=True)
"""


@dataclass
class PostgresServer:
    folder: Path
    port: int
    password: str
    run_as: list[str]
    bin: Path
    started_seconds: float
    """How long initdb + pg_ctl start + the first database took."""
    watchdog: subprocess.Popen | None = None
    """Stops the cluster and removes its folder if this process dies without doing it (a killed run)."""

    def url(self, database: str = "um") -> str:
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database on this cluster (one per test keeps the tests apart); its URL."""
        name = f"um_test_{next(_numbers)}"
        self.psql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """``sql`` run by the cluster's superuser through the socket; what psql printed."""
        return self._run("psql", "-h", str(self.folder), "-p", str(self.port), "-U", ROLE, "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql)

    def _run(self, program: str, *args: str) -> str:
        done = subprocess.run([*self.run_as, str(self.bin / program), *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PGPASSWORD": self.password})
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout


def _owner() -> tuple[list[str], int | None]:
    """How to run the cluster's programs, and the uid to chown its folder to (None: ourselves)."""
    if os.getuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip(f"running as root and no 'postgres' system user to run PostgreSQL as: {INSTALL}")
    return ["runuser", "-u", "postgres", "--"], user.pw_uid


def start_cluster() -> PostgresServer:
    """initdb and start a cluster in a new temporary folder (the caller stops it with ``stop_cluster``)."""
    bin_folder = binaries()
    if bin_folder is None:
        pytest.skip(f"PostgreSQL binaries not found: {INSTALL}")
    run_as, uid = _owner()
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="um-pg-"))  # not under pytest's root-only tmp folders
    password = secrets.token_urlsafe(16)
    (folder / "password").write_text(password + "\n")
    if uid is not None:
        os.chown(folder, uid, -1)
        os.chown(folder / "password", uid, -1)
    server = PostgresServer(folder, 0, password, run_as, bin_folder, 0.0)
    server._run("initdb", "-D", str(folder / "data"), "-U", ROLE, f"--pwfile={folder / 'password'}",
                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync")
    for attempt in range(3):  # the free port may be taken between the probe and the start
        server.port = _free_port()
        options = (f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            server._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(folder / "data"),
                        "-l", str(folder / "server.log"), "-o", options)
            break
        except RuntimeError:
            if attempt == 2:
                log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
                stop_cluster(server)
                raise RuntimeError("PostgreSQL did not start: " + log[-2000:]) from None
    server.watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(folder), *run_as, str(bin_folder / "pg_ctl"), "stop",
         "-m", "immediate", "-w", "-D", str(folder / "data")], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.psql(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
    server.started_seconds = time.monotonic() - began
    return server


def stop_cluster(server: PostgresServer) -> None:
    if server.watchdog is not None:
        server.watchdog.kill()
        server.watchdog.wait(10)
    try:
        server._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(server.folder / "data"))
    except RuntimeError:
        pass  # not running (it never started): the folder goes all the same
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session."""
    server = start_cluster()
    print(f"\nthrowaway PostgreSQL on 127.0.0.1:{server.port}, started in {server.started_seconds:.2f} s")
    yield server
    stop_cluster(server)


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> str:
    """The postgresql:// URL of a fresh empty database, for one test."""
    return postgres_server.new_database()


@pytest.fixture()
def migrated_postgres_url(postgres_url: str, tmp_path: Path) -> str:
    """``postgres_url`` with every store's tables created (what ``db migrate`` does)."""
    from unified_messaging.database import connect, migrate_store

    database = connect(postgres_url, tmp_path)
    try:
        migrate_store(database)
    finally:
        database.close()
    return postgres_url
