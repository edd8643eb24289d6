"""``serve --workers N``: one supervisor, N stateless front workers on one port, one process for
the singletons, and the built-in simulator in a process of its own.

* The supervisor binds the port once and hands the listening socket to each **front worker**
  (waitress accepts an already-bound socket); the kernel spreads the connections among them.
  Front workers serve SOAP, Mybox and health/metrics and keep no state of their own: Mybox's
  sessions and login counts are in the database (``web/sessions.py``), the journal is shared.
* One **singletons** process runs what must run once: the toQuery folders, the invoicing pipeline
  and its feedback poller, the batch scheduler.  With ``[database] url`` on PostgreSQL several nodes may
  serve one database: the singletons process of one node only runs them, elected with the others
  (``database/leader.py``); the others' wait as standbys.
* With the simulator as the upstream, it runs in its own process too (as the real platform
  would be remote), on a fixed local port so that a restarted simulator keeps its address.
* A child that dies is started again within a second or so while the others go on; a child that
  keeps dying at start (five times in a row within ten seconds each) stops everything with its
  message. SIGTERM or Ctrl-C stops the front workers, then the singletons, then the simulator.

Each child reports "ready" on a pipe of its own once it serves, so the supervisor says where it
serves only when it does, and a start-up error of a child (a key, a port, a keystore) is the
supervisor's start-up error.  A child whose supervisor is gone stops by itself.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.memory import limit_malloc_arenas
from unified_messaging.monitoring import board

log = logging.getLogger(__name__)

SIMULATOR_ENV = "UM_SIMULATOR_URL"
TOKEN_ENV = "UM_FIRST_RUN_TOKEN"  # the same name as web.first_run.TOKEN_ENV
READY_FD_ENV = "UM_READY_FD"
SOCKET_FD_ENV = "UM_SOCKET_FD"
START_TIMEOUT = 60.0
QUICK_DEATH = 10.0  # a child that dies sooner than this after its start counts towards a crash loop
CRASH_LOOP = 5
_SIMULATOR_URL = re.compile(r"simulated MyCareNet platform at (http://\S+)")
_SIMULATOR_CONSOLE = frozenset({"Press Ctrl-C to stop.", "stopping...", "stopped."})


class SupervisorError(RuntimeError):
    """The service cannot start or keep running; the message says which part and why."""


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class Child:
    """One process the supervisor keeps running."""

    name: str
    role: str  # "front", "singletons" or "simulator"
    popen: subprocess.Popen | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restarts: int = 0
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None


class Supervisor:
    """Start the children of ``config`` (``config_path`` is what they load), keep them running."""

    def __init__(self, config: Config, config_path: str | None, workers: int, *,
                 echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = workers
        self.echo = echo
        self.sock: socket.socket | None = None
        self.simulator_url: str | None = None
        self.token = secrets.token_urlsafe(32)
        self.children: list[Child] = []
        self.status_folder: Path | None = None
        self._stopping = threading.Event()

    # -- start --

    def start(self) -> "Supervisor":
        cfg = self.config
        cfg.data_folder.mkdir(parents=True, exist_ok=True)  # its error names the folder, before any child
        self.sock = socket.create_server((cfg.server.host, cfg.server.port), backlog=1024, reuse_port=False)
        self.sock.set_inheritable(True)
        self.status_folder = board.new_folder()
        if cfg.upstream.mode == "simulator":
            port = cfg.simulator.port or free_port(cfg.simulator.host)
            self.simulator = Child("simulator", "simulator")
            self._simulator_port = port
            self._spawn(self.simulator)
            self.children.append(self.simulator)
        for number in range(1, self.workers + 1):
            self.children.append(Child(f"front worker {number}", "front"))
        self.children.append(Child("singletons", "singletons"))
        for child in self.children:
            if child.role != "simulator":
                self._spawn(child)
        return self

    @property
    def port(self) -> int:
        assert self.sock is not None
        return self.sock.getsockname()[1]

    def _arguments(self, child: Child) -> list[str]:
        config = ["--config", self.config_path] if self.config_path else []
        if child.role == "simulator":
            return [sys.executable, "-m", "unified_messaging.cli", "simulator", *config,
                    "--host", self.config.simulator.host, "--port", str(self._simulator_port)]
        return [sys.executable, "-m", "unified_messaging.supervisor", child.role, *config]

    def _spawn(self, child: Child) -> None:
        read_end, write_end = os.pipe()
        env = {**os.environ, READY_FD_ENV: str(write_end), TOKEN_ENV: self.token}
        if self.status_folder is not None:
            env[board.ENV] = str(self.status_folder)
        fds = [write_end]
        if self.simulator_url:
            env[SIMULATOR_ENV] = self.simulator_url
        if child.role == "front":
            assert self.sock is not None
            env[SOCKET_FD_ENV] = str(self.sock.fileno())
            fds.append(self.sock.fileno())
        simulator = child.role == "simulator"
        child.popen = subprocess.Popen(self._arguments(child), env=env, pass_fds=fds,
                                       stderr=subprocess.PIPE if simulator else None, text=simulator)
        child.started = time.monotonic()
        os.close(write_end)
        try:
            if simulator:
                self.simulator_url = self._wait_for_simulator(child)
            else:
                self._wait_ready(child, read_end)
        finally:
            os.close(read_end)
        log.info("%s started (pid %d)", child.name, child.pid)

    def _wait_ready(self, child: Child, read_end: int) -> None:
        """Until the child writes "ready" on its pipe; its exit or the time-out is a start-up error."""
        deadline = time.monotonic() + START_TIMEOUT
        os.set_blocking(read_end, False)
        while time.monotonic() < deadline:
            try:
                if os.read(read_end, 16).startswith(b"ready"):
                    return
            except BlockingIOError:
                pass
            if child.popen.poll() is not None:
                raise SupervisorError(f"The {child.name} stopped at start (exit status {child.popen.returncode}); "
                                      "its message is above.")
            time.sleep(0.05)
        raise SupervisorError(f"The {child.name} did not start within {START_TIMEOUT:.0f} s.")

    def _wait_for_simulator(self, child: Child) -> str:
        found: dict[str, str] = {}
        ready = threading.Event()

        def relay() -> None:  # the simulator's messages go on to our console; its address is read from them
            for line in child.popen.stderr:
                match = _SIMULATOR_URL.search(line)
                if match and not ready.is_set():
                    found["url"] = match.group(1)
                    ready.set()
                if line.strip() not in _SIMULATOR_CONSOLE:  # the supervisor says these for the whole service
                    sys.stderr.write(line.replace(" Press Ctrl-C to stop.", ""))
            ready.set()

        threading.Thread(target=relay, name="um-simulator-output", daemon=True).start()
        if not ready.wait(START_TIMEOUT) or "url" not in found:
            raise SupervisorError("The built-in simulator did not start; its message is above.")
        return found["url"]

    # -- keep running --

    def run_until(self, stop: threading.Event, *, every: float = 0.2) -> None:
        """Replace children that die, until ``stop`` is set."""
        while not stop.wait(every):
            for child in self.children:
                if child.popen is not None and child.popen.poll() is not None and not self._stopping.is_set():
                    self._replace(child)

    def _replace(self, child: Child) -> None:
        code = child.popen.returncode
        lived = time.monotonic() - child.started
        child.quick_deaths = child.quick_deaths + 1 if lived < QUICK_DEATH else 0
        if child.quick_deaths >= CRASH_LOOP:
            raise SupervisorError(f"The {child.name} keeps stopping right after it starts (exit status {code}, "
                                  f"{CRASH_LOOP} times); its messages are above.")
        log.warning("%s (pid %d) ended with exit status %s after %.0f s; starting it again", child.name,
                    child.popen.pid, code, lived)
        child.restarts += 1
        self._spawn(child)

    # -- stop --

    def stop(self, timeout: float = 30.0) -> None:
        """Front workers first (they finish the requests in flight), then the singletons, then the simulator."""
        self._stopping.set()
        for role in ("front", "singletons", "simulator"):
            group = [c for c in self.children if c.role == role and c.popen and c.popen.poll() is None]
            for child in group:
                child.popen.terminate()
            deadline = time.monotonic() + timeout
            for child in group:
                try:
                    child.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s (pid %d) did not stop within %.0f s: killed", child.name, child.pid, timeout)
                    child.popen.kill()
                    child.popen.wait(10)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.status_folder is not None:
            shutil.rmtree(self.status_folder, ignore_errors=True)
            self.status_folder = None


# -- the children's side --------------------------------------------------------------------------

def _watch_parent(stop: threading.Event) -> None:
    """Stop when the supervisor is gone (the child would otherwise serve on, unsupervised)."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("the supervisor (pid %d) is gone: stopping", parent)
            stop.set()


def child_main(argv: list[str] | None = None) -> int:
    """A front worker or the singletons process, as the supervisor starts them."""
    from unified_messaging.gateway import Gateway
    from unified_messaging.logs import setup_logging

    parser = argparse.ArgumentParser(prog="unified_messaging.supervisor")
    parser.add_argument("role", choices=("front", "singletons"))
    parser.add_argument("--config")
    options = parser.parse_args(argv)
    try:
        config = load_config(options.config)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    setup_logging(config.logging.level, config.logging.format)
    limit_malloc_arenas(config.server.malloc_arena_max)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sock = None
    if options.role == "front":
        sock = socket.socket(fileno=int(os.environ[SOCKET_FD_ENV]))
    status = os.environ.get(board.ENV)
    gateway = Gateway(config, simulator_url=os.environ.get(SIMULATOR_ENV) or None,
                      status_folder=Path(status) if status else None)
    try:
        gateway.start(front=options.role == "front", singletons=options.role == "singletons", sock=sock)
    except (ConfigError, OSError) as exc:
        print(f"Error: {options.role}: {exc}", file=sys.stderr)
        return 1
    ready = os.environ.get(READY_FD_ENV)
    if ready:
        os.write(int(ready), b"ready\n")
        os.close(int(ready))
    threading.Thread(target=_watch_parent, args=(stop,), name="um-parent-watch", daemon=True).start()
    stop.wait()
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
