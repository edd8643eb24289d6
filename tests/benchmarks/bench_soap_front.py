"""Benchmark of the ConsultMyCareNet SOAP front: GetInsurability through the gateway vs. direct.

One piece on purpose: a benchmark is one script, run and read top to bottom (command line, set-up,
the two targets, one measured point, the report), and kept whole so that its method reads in one place.

What is measured
----------------
The script starts the real gateway as a separate process (``unified-messaging serve --port 0``,
built-in MyCareNet simulator upstream, a temporary configuration file and data folder, working
directory a temporary folder), then, for each concurrency level (default 1, 8 and 32 client
threads), measures two targets:

* ``gateway``: ``GetInsurability`` on ``ConsultMyCareNetSoap`` (SOAP 1.1), called with zeep
  clients built from the WSDL the gateway serves (one zeep client per client thread). Each call
  goes legacy client -> gateway (request validation, journal row) -> simulator -> back.
* ``direct``: the same question asked straight to the simulator's GenericInsurability endpoint
  with the gateway's own upstream client, ``GenericInsurabilityClient`` (zeep-built requests),
  shared by all client threads exactly as the gateway shares it, and secured as the gateway
  secures it: same keystore (the demo lab keystore the gateway made in the data folder), an STS
  token asked once and cached, every request signed with WS-Security, the simulator's signed
  answers verified. The simulator refuses unsigned calls, and the baseline must do the same
  upstream work as the gateway for the difference to be the gateway's own cost.

Every call asks about an insured test patient (``TEST_PATIENTS``, scenario ``insured``, the
patients taken in turn) for today, and every answer is checked: ``Status=OK`` (gateway) or no
business fault (direct), with the right patient in the answer. Anything else is counted as an
error, printed, and makes the script exit with status 1; its latency is not in the figures.

Each point first runs a warm-up at its own concurrency (connections opened, per-thread caches
filled), then measures for a fixed duration (``--duration``) or a fixed number of calls
(``--calls``). The table gives calls/s (successful calls over the measured window), p50 and p99
latency in milliseconds (nearest rank over the successful calls), and for the gateway rows the
latency the gateway adds: gateway p50 - direct p50, gateway p99 - direct p99, at the same
concurrency: the SOAP front (parsing, validation against the contract, the answer), the core
service and the journal row, plus the client-side difference between a plain zeep call on the
legacy contract and a signed ``GenericInsurabilityClient`` call (the signing is on the direct
client's side of the ledger: it runs in this script for ``direct``, in the gateway for
``gateway``).

The load generator runs on the same machine and competes with the gateway (and its in-process
simulator) for the same cores; the table shows the CPU each side used during each point (100% =
one core busy) so that a saturated client can be told apart from a saturated gateway.

How to run
----------
From the checkout, with the project installed in the virtualenv::

    .venv/bin/python tests/benchmarks/bench_soap_front.py               # about 1.5 minutes
    .venv/bin/python tests/benchmarks/bench_soap_front.py --latency-ms 50
    .venv/bin/python tests/benchmarks/bench_soap_front.py --markdown    # + a Markdown table
    .venv/bin/python tests/benchmarks/bench_soap_front.py --set server.threads=32 --set logging.level=WARNING

``--help`` lists every option. This is a script, not a pytest test (pytest does not collect
``bench_*.py``).
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import requests
import zeep
from cryptography import x509

import unified_messaging
from tests.benchmarks.common import not_negative_int, positive_float, positive_int, progress
from unified_messaging.config import Config, ConfigError, load_config
from unified_messaging.simulator.devpki import load_dev_pki
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.mycarenet.keystore import read_keystore
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.mycarenet.sts import StsClient, TokenCache
from unified_messaging.mycarenet.wsse import WsseSigningPlugin
from unified_messaging.secrets import resolve_secret
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.platform import DEMO_PKI_FOLDER, STS_PATH
from unified_messaging.simulator.population import TEST_PATIENTS

LAB_NIHII = "81234530000"  # the development PKI's lab (README's example)
LAB_QUALITY = "labo"
SOAP_PORT = "ConsultMyCareNetSoap"
SERVICE_NAME = "ConsultMyCareNet"
ROOT = Path(__file__).resolve().parents[2]

SERVING_LINE = re.compile(r"serving (http://\S+)")
SIMULATOR_LINE = re.compile(r"upstream: built-in MyCareNet simulator at (http://\S+)")
READY_LINE = "Press Ctrl-C to stop."

CallOutcome = str | None
"""None for a good answer, else a short description of what was wrong."""



class BenchmarkError(Exception):
    """The benchmark cannot run or go on (the gateway did not start, stopped, ...)."""


STOP = threading.Event()
"""Set when the benchmark is interrupted or fails: client threads stop calling at once."""


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark GetInsurability through the unified-messaging gateway against the same call "
                    "made directly to the MyCareNet simulator. Starts the real gateway in a separate process.",
    )
    parser.add_argument("--concurrency", type=_concurrency_list, default="1,8,32", metavar="N[,N...]",
                        help="client thread counts to measure, comma-separated (default: %(default)s)")
    parser.add_argument("--targets", type=_target_list, default="direct,gateway", metavar="T[,T...]",
                        help="what to measure: gateway, direct, or both; the added latency needs both "
                             "(default: %(default)s)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--duration", type=positive_float, default=8.0, metavar="SECONDS",
                        help="measured time per point, i.e. per concurrency and target (default: %(default)s)")
    budget.add_argument("--calls", type=positive_int, metavar="N",
                        help="measure a fixed number of calls per point instead of a fixed duration")
    parser.add_argument("--warmup", type=_not_negative_float, default=2.0, metavar="SECONDS",
                        help="warm-up time per point, at the point's concurrency, not measured (default: %(default)s)")
    parser.add_argument("--latency-ms", type=not_negative_int, default=0, metavar="MS",
                        help="simulated upstream latency: [simulator] latency_ms in the gateway's configuration "
                             "(default: %(default)s)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="extra configuration key for the gateway (repeatable); VALUE is a TOML value "
                             "(50, true, \"text\") or else taken as a string; applied after --latency-ms")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the rows as a Markdown table for README's performance table")
    parser.add_argument("--command", default=None, metavar="PATH",
                        help="the unified-messaging executable (default: the one beside this Python, "
                             "else python -m unified_messaging.cli)")
    parser.add_argument("--startup-timeout", type=positive_float, default=60.0, metavar="SECONDS",
                        help="how long to wait for the gateway to print its addresses (default: %(default)s)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary folder (configuration, gateway log, journal) and print its path")
    return parser.parse_args(argv)


def _not_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of 0 or more")
    return value


def _concurrency_list(text: str) -> list[int]:
    return [positive_int(part.strip()) for part in text.split(",") if part.strip()]


def _target_list(text: str) -> list[str]:
    targets = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [t for t in targets if t not in ("gateway", "direct")]
    if unknown or not targets:
        raise argparse.ArgumentTypeError(f"expected gateway and/or direct, got {text!r}")
    return ["direct", "gateway"] if set(targets) == {"direct", "gateway"} else targets


# --------------------------------------------------------------------------- temporary configuration


def gateway_settings(data_folder: Path, latency_ms: int, assignments: list[str]) -> dict[str, dict[str, Any]]:
    """The configuration sections to write: data folder, simulator latency, then every ``--set``."""
    sections: dict[str, dict[str, Any]] = {
        "data": {"folder": str(data_folder)},
        "simulator": {"latency_ms": latency_ms},
    }
    for assignment in assignments:
        name, equals, raw_value = assignment.partition("=")
        section, dot, key = name.strip().partition(".")
        if not equals or not dot or not section or not key:
            raise SystemExit(f"--set {assignment!r}: expected SECTION.KEY=VALUE, e.g. server.threads=16")
        sections.setdefault(section, {})[key] = _toml_value(raw_value.strip())
    return sections


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    raise SystemExit(f"cannot write {value!r} in the configuration: only strings, numbers and booleans")


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Config:
    """Write the TOML file, then load it with the gateway's own loader (a wrong key stops here)."""
    lines = ["# Written by tests/benchmarks/bench_soap_front.py for one benchmark run."]
    for section, values in sections.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {_toml_literal(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(f"configuration rejected: {exc}") from None


# --------------------------------------------------------------------------- the gateway process


@dataclass
class RunningGateway:
    process: subprocess.Popen[bytes]
    log_path: Path
    services_url: str
    simulator_url: str | None

    @property
    def wsdl_url(self) -> str:
        return f"{self.services_url}/{SOAP_PORT}?wsdl"


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the benchmark itself is killed (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def gateway_command(explicit: str | None, config_path: Path) -> list[str]:
    args = ["serve", "--port", "0", "--config", str(config_path)]
    if explicit:
        return [explicit, *args]
    beside = Path(sys.executable).with_name("unified-messaging")
    if beside.exists():
        return [str(beside), *args]
    return [sys.executable, "-m", "unified_messaging.cli", *args]


def start_gateway(command: list[str], workdir: Path, timeout: float) -> RunningGateway:
    """Start ``serve``; its stderr goes to a file (no pipe to fill up), read until it is ready."""
    log_path = workdir / "gateway.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    gateway = RunningGateway(process, log_path, "", None)
    while True:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if READY_LINE in text:
            serving = SERVING_LINE.search(text)
            simulator = SIMULATOR_LINE.search(text)
            if serving is None:
                raise BenchmarkError("the gateway is ready but printed no 'serving http://...' line:\n"
                                     + _tail(text))
            gateway.services_url = serving.group(1)
            gateway.simulator_url = simulator.group(1) if simulator else None
            return gateway
        if process.poll() is not None:
            raise BenchmarkError(f"the gateway stopped at start-up (exit status {process.returncode}):\n"
                                 + _tail(text))
        if time.monotonic() > deadline:
            stop_gateway(gateway)
            raise BenchmarkError(f"the gateway was not ready after {timeout:g} s:\n" + _tail(text))
        time.sleep(0.05)


def stop_gateway(gateway: RunningGateway, grace: float = 15.0) -> str:
    """SIGTERM (the clean stop), SIGKILL only if it has not stopped after ``grace`` seconds."""
    process = gateway.process
    if process.poll() is not None:
        return f"already stopped (exit status {process.returncode})"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
        return f"stopped with SIGTERM (exit status {process.returncode})"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return f"did not stop within {grace:g} s of SIGTERM; killed"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_cpu_seconds() -> float:
    """CPU time spent by everything on the machine (all cores, not idle, not iowait), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the two kinds of callers


def insured_ssins() -> list[str]:
    ssins = [p.ssin for p in TEST_PATIENTS if p.scenario == "insured"]
    if not ssins:
        raise SystemExit("no test patient with scenario 'insured' in TEST_PATIENTS")
    return ssins


class Target(Protocol):
    name: str

    def prepare(self, count: int) -> None:
        """Get ready for up to ``count`` client threads (before any measurement)."""

    def caller(self, index: int) -> Callable[[str], CallOutcome]:
        """The call function client thread ``index`` uses (it asks about the SSIN given)."""

    def close(self) -> None:
        """Close the connections."""


class GatewayTarget:
    """GetInsurability on the gateway's SOAP 1.1 port, one zeep client (and session) per client thread."""

    name = "gateway"

    def __init__(self, wsdl_url: str) -> None:
        self.wsdl_url = wsdl_url
        self._services: list[Any] = []
        self._clients: list[zeep.Client] = []

    def prepare(self, count: int) -> None:
        while len(self._services) < count:
            client = zeep.Client(self.wsdl_url)
            self._clients.append(client)
            self._services.append(client.bind(SERVICE_NAME, SOAP_PORT))

    def caller(self, index: int) -> Callable[[str], CallOutcome]:
        service = self._services[index]
        care_provider = {"Nihii": LAB_NIHII, "Quality": LAB_QUALITY}

        def call(ssin: str) -> CallOutcome:
            result = service.GetInsurability(request={
                "CareProvider": care_provider, "Ssin": ssin, "PeriodStart": dt.date.today(),
            })
            if result.Status != "OK":
                messages = result.Messages.Message if result.Messages else []
                codes = ", ".join(f"{m.Code} ({m.Text})" for m in messages) or "no message"
                return f"Status={result.Status}: {codes}"
            if result.Patient is None or result.Patient.Ssin != ssin:
                return "Status=OK but the answer is about another patient (or none)"
            if not result.Insurabilities or not result.Insurabilities.Insurability:
                return "Status=OK but no Insurabilities"
            return None

        return call

    def close(self) -> None:
        for client in self._clients:
            client.transport.session.close()


class DirectTarget:
    """getInsurability straight to the simulator with one shared ``GenericInsurabilityClient``,
    secured as the gateway secures it in simulator mode (``Gateway._insurability_client``): the
    same keystore (the demo lab of the gateway's data folder, or ``[identity] keystore``), its own
    STS token (asked once, cached), every request signed with WS-Security, the simulator's signed
    answers verified against the demo CA (or ``[upstream] platform_ca``).
    """

    name = "direct"

    def __init__(self, simulator_url: str, config: Config) -> None:
        # The gateway made the demo PKI in the shared data folder at start-up; only read it here.
        pki = load_dev_pki(config.data_folder / DEMO_PKI_FOLDER)
        keystore_path = Path(config.identity.keystore) if config.identity.keystore else pki.lab.path
        keystore_password = (_secret(config, config.identity.keystore_password, "[identity] keystore_password")
                             if config.identity.keystore_password else pki.password)
        entry = read_keystore(keystore_path, keystore_password).authentication
        answer_ca = (x509.load_pem_x509_certificate(Path(config.upstream.platform_ca).read_bytes())
                     if config.upstream.platform_ca else pki.ca_certificate())
        self.token_cache = TokenCache(StsClient(simulator_url + STS_PATH, session=requests.Session(),
                                                timeout=config.upstream.timeout_seconds))
        self.client = GenericInsurabilityClient(
            simulator_url + Simulator.GENERICINSURABILITY_PATH,
            licence_username=config.licence.username,
            licence_password=_secret(config, config.licence.password, "[licence] password"),
            package_name=config.licence.package_name,
            is_test=config.upstream.is_test,
            timeout=config.upstream.timeout_seconds,
            plugins=[WsseSigningPlugin(self.token_cache.token_provider(entry))],
            answer_ca=answer_ca,
        )
        self.care_provider = CareProvider(LAB_NIHII, LAB_QUALITY)

    def prepare(self, count: int) -> None:
        pass

    def caller(self, index: int) -> Callable[[str], CallOutcome]:
        def call(ssin: str) -> CallOutcome:
            today = dt.date.today()
            answer = self.client.get_insurability(InsurabilityQuery(self.care_provider, today, today, ssin=ssin))
            if answer.fault is not None:
                return f"business fault {answer.fault.code}: {answer.fault.message}"
            if answer.patient is None or answer.patient.ssin != ssin:
                return "answer about another patient (or none)"
            if not answer.insurabilities:
                return "answer without insurability items"
            return None

        return call

    def close(self) -> None:
        self.client.close()


def _secret(config: Config, value: str, key: str) -> str:
    return resolve_secret(value, key=key, data_folder=config.data_folder).value


# --------------------------------------------------------------------------- one measured point


@dataclass
class PointResult:
    target: str
    concurrency: int
    latencies: list[float]
    errors: Counter[str]
    warmup_errors: Counter[str]
    elapsed: float
    client_cpu: float
    server_cpu: float
    other_cpu: float

    @property
    def calls_per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else math.nan

    def percentile_ms(self, percent: float) -> float:
        return percentile(self.latencies, percent) * 1000


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``percent`` % of values at or below it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Window:
    """The measured window of one point, opened by the last thread to finish its warm-up."""

    duration: float | None
    calls: int | None
    server_pid: int
    started: float = 0.0
    deadline: float = math.inf
    client_cpu_start: float = 0.0
    server_cpu_start: float = 0.0
    machine_cpu_start: float = 0.0
    _tickets_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        self.client_cpu_start = own_cpu_seconds()
        self.server_cpu_start = process_cpu_seconds(self.server_pid)
        self.machine_cpu_start = machine_busy_cpu_seconds()
        self.started = time.perf_counter()
        if self.duration is not None:
            self.deadline = self.started + self.duration
        self._tickets_left = self.calls or 0

    def keep_going(self) -> bool:
        if STOP.is_set():
            return False
        if self.calls is None:
            return time.perf_counter() < self.deadline
        with self._lock:
            if self._tickets_left <= 0:
                return False
            self._tickets_left -= 1
            return True


@dataclass
class _ThreadRecord:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    last_end: float = 0.0


def _safe_call(call: Callable[[str], CallOutcome], ssin: str) -> CallOutcome:
    try:
        return call(ssin)
    except Exception as exc:  # a benchmark must count every failure, whatever it is
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:300]}"


def run_point(target: Target, concurrency: int, args: argparse.Namespace, ssins: list[str],
              server_pid: int) -> PointResult:
    window = _Window(duration=None if args.calls else args.duration, calls=args.calls, server_pid=server_pid)
    warmup_until = time.perf_counter() + args.warmup
    barrier = threading.Barrier(concurrency, action=window.open)
    records = [_ThreadRecord() for _ in range(concurrency)]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        record = records[index]
        call = target.caller(index)
        patients = _cycle(ssins, start=index)
        try:
            while time.perf_counter() < warmup_until and not STOP.is_set():
                outcome = _safe_call(call, next(patients))
                if outcome is not None:
                    record.warmup_errors[outcome] += 1
            barrier.wait()
            while window.keep_going():
                ssin = next(patients)
                started = time.perf_counter()
                outcome = _safe_call(call, ssin)
                ended = time.perf_counter()
                if outcome is None:
                    record.latencies.append(ended - started)
                else:
                    record.errors[outcome] += 1
                record.last_end = ended
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,), name=f"bench-{target.name}-{i}", daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client_cpu = own_cpu_seconds() - window.client_cpu_start
    server_cpu = process_cpu_seconds(server_pid) - window.server_cpu_start
    other_cpu = max(0.0, machine_busy_cpu_seconds() - window.machine_cpu_start - client_cpu - server_cpu)
    if failures:
        raise BenchmarkError(f"a client thread failed: {failures[0]!r}") from failures[0]
    last_end = max(r.last_end for r in records)
    elapsed = max(last_end - window.started, 1e-9)
    return PointResult(
        target=target.name, concurrency=concurrency,
        latencies=[x for r in records for x in r.latencies],
        errors=sum((r.errors for r in records), Counter()),
        warmup_errors=sum((r.warmup_errors for r in records), Counter()),
        elapsed=elapsed, client_cpu=client_cpu / elapsed, server_cpu=server_cpu / elapsed,
        other_cpu=other_cpu / elapsed,
    )


def _cycle(values: list[str], start: int) -> Iterator[str]:
    index = start
    while True:
        yield values[index % len(values)]
        index += 1


# --------------------------------------------------------------------------- report


def machine_facts() -> list[tuple[str, str]]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", model),
        ("cores", f"{cores} logical, {usable} usable by this process"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()}), {platform.platform()}"),
        ("unified-messaging", f"{unified_messaging.__version__}, {_git_revision()}"),
        ("zeep", zeep.__version__ if hasattr(zeep, "__version__") else "?"),
    ]


def _git_revision() -> str:
    try:
        revision = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                  capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return f"git {revision}"
    except (OSError, subprocess.SubprocessError):
        return "git revision unknown"


@dataclass
class Row:
    result: PointResult
    added_p50_ms: float | None
    added_p99_ms: float | None


def table_rows(results: list[PointResult]) -> list[Row]:
    direct = {r.concurrency: r for r in results if r.target == "direct"}
    rows = []
    for result in results:
        baseline = direct.get(result.concurrency) if result.target == "gateway" else None
        if baseline is not None:
            rows.append(Row(result, result.percentile_ms(50) - baseline.percentile_ms(50),
                            result.percentile_ms(99) - baseline.percentile_ms(99)))
        else:
            rows.append(Row(result, None, None))
    return rows


def _ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


NOTES = """\
added p50/p99 = gateway minus direct at the same concurrency; at high concurrency it includes queueing.
CPU columns, 100% = one core busy: client = this script (the load generator); server = the gateway process
(gateway + its in-process simulator); other = everything else on the machine. The load generator runs on
the same machine and competes with the gateway for the same cores, so figures at high concurrency are lower
than a gateway with the machine to itself would give. p99 over fewer than 100 calls is the maximum."""

OTHER_CPU_WARNING = 0.10


def print_report(results: list[PointResult], facts: list[tuple[str, str]], setup: list[tuple[str, str]],
                 markdown: bool, gateway_stop: str) -> None:
    width = max(len(k) for k, _ in facts + setup)
    print()
    print("GetInsurability benchmark: gateway (legacy SOAP front -> gateway -> simulator) vs direct "
          "(GenericInsurabilityClient -> simulator)")
    for key, value in facts + setup:
        print(f"  {key:<{width}}  {value}")
    print()
    headers = ["conc", "target", "calls", "calls/s", "p50 ms", "p99 ms", "added p50", "added p99", "errors",
               "client CPU", "server CPU", "other CPU"]
    lines = []
    for row in table_rows(results):
        r = row.result
        lines.append([
            str(r.concurrency), r.target, str(len(r.latencies)), f"{r.calls_per_second:.1f}",
            _ms(r.percentile_ms(50)), _ms(r.percentile_ms(99)),
            _ms(row.added_p50_ms, signed=True), _ms(row.added_p99_ms, signed=True),
            str(sum(r.errors.values())), f"{r.client_cpu:.0%}", f"{r.server_cpu:.0%}", f"{r.other_cpu:.0%}",
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:  # the target column left-aligned, figures right-aligned
        return "  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))
    print()
    print(NOTES)
    disturbed = [r for r in results if r.other_cpu > OTHER_CPU_WARNING]
    if disturbed:
        points = ", ".join(f"{r.target} x{r.concurrency} ({r.other_cpu:.0%})" for r in disturbed)
        print(f"WARNING: other processes used more than {OTHER_CPU_WARNING:.0%} of a core during: {points}; "
              "those figures are disturbed, run again on an idle machine.")
    print(f"gateway: {gateway_stop}")

    all_errors = Counter[str]()
    for r in results:
        for text, count in r.errors.items():
            all_errors[f"[{r.target} x{r.concurrency}] {text}"] += count
        for text, count in r.warmup_errors.items():
            all_errors[f"[{r.target} x{r.concurrency}, warm-up] {text}"] += count
    print()
    if all_errors:
        print(f"ERRORS: {sum(all_errors.values())} call(s) did not answer Status OK; the figures above leave "
              "them out and are NOT to be trusted:")
        for text, count in all_errors.most_common():
            print(f"  {count:>6} x {text}")
    else:
        print("errors: none (every measured and warm-up call answered Status OK about the right patient)")

    if markdown:
        print()
        print("| concurrency | target | calls/s | p50 ms | p99 ms | added p50 ms | added p99 ms |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for row in table_rows(results):
            r = row.result
            print(f"| {r.concurrency} | {r.target} | {r.calls_per_second:.0f} | {_ms(r.percentile_ms(50))} | "
                  f"{_ms(r.percentile_ms(99))} | {_ms(row.added_p50_ms, signed=True)} | "
                  f"{_ms(row.added_p99_ms, signed=True)} |")
        facts_by_key = dict(facts + setup)
        print()
        print(f"_{facts_by_key['CPU']}, {facts_by_key['cores']}, Python {platform.python_version()}, "
              f"{facts_by_key['date'][:10]}; {facts_by_key['upstream latency']} simulated upstream latency; "
              f"load generator on the same machine._")


# --------------------------------------------------------------------------- main


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_system_exit)  # so that `finally` stops the gateway
    # The direct client logs each failed call; they are counted and printed in the report instead.
    logging.getLogger("unified_messaging").addHandler(logging.NullHandler())
    workdir = Path(tempfile.mkdtemp(prefix="um-bench-"))
    try:
        sections = gateway_settings(workdir / "um-data", args.latency_ms, args.settings)
        config_path = workdir / "unified-messaging.toml"
        config = write_config(config_path, sections)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    command = gateway_command(args.command, config_path)
    ssins = insured_ssins()
    results: list[PointResult] = []
    gateway: RunningGateway | None = None
    targets: dict[str, Target] = {}
    gateway_stop = "not started"
    try:
        progress(f"starting the gateway: {' '.join(command)} (in {workdir})")
        gateway = start_gateway(command, workdir, args.startup_timeout)
        progress(f"gateway at {gateway.services_url}, simulator at {gateway.simulator_url}")
        if "gateway" in args.targets:
            targets["gateway"] = GatewayTarget(gateway.wsdl_url)
        if "direct" in args.targets:
            if gateway.simulator_url is None:
                raise BenchmarkError("the gateway runs no built-in simulator (is [upstream] mode remote?): "
                                     "there is no direct baseline; use --targets gateway")
            targets["direct"] = DirectTarget(gateway.simulator_url, config)
        progress(f"building {max(args.concurrency)} client(s) per target")
        for target in targets.values():
            target.prepare(max(args.concurrency))
        budget = f"{args.calls} calls" if args.calls else f"{args.duration:g} s"
        for concurrency in args.concurrency:
            for name in args.targets:
                progress(f"{name} x{concurrency}: {args.warmup:g} s warm-up, then {budget}")
                result = run_point(targets[name], concurrency, args, ssins, gateway.process.pid)
                results.append(result)
                errors = sum(result.errors.values()) + sum(result.warmup_errors.values())
                progress(f"{name} x{concurrency}: {result.calls_per_second:.1f} calls/s, "
                         f"p50 {result.percentile_ms(50):.1f} ms, p99 {result.percentile_ms(99):.1f} ms, "
                         f"{errors} error(s)")
                if gateway.process.poll() is not None:
                    raise BenchmarkError(f"the gateway stopped during the benchmark (exit status "
                                         f"{gateway.process.returncode})")
    except (KeyboardInterrupt, SystemExit):
        STOP.set()
        progress("benchmark interrupted")
        raise
    except BaseException:
        STOP.set()
        if gateway is not None:
            text = gateway.log_path.read_text(encoding="utf-8", errors="replace")
            progress("benchmark failed; last lines of the gateway's log:\n" + _tail(text))
        raise
    finally:
        for target in targets.values():
            target.close()
        if gateway is not None:
            gateway_stop = stop_gateway(gateway)
            progress(f"gateway {gateway_stop}")
        if args.keep_temp:
            progress(f"kept {workdir} (configuration, gateway.log, um-data/journal.sqlite)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    setup = [
        ("upstream latency", f"{config.simulator.latency_ms} ms"),
        ("gateway threads", f"[server] threads = {config.server.threads}, simulator threads = "
                            f"{max(8, config.server.threads)}; logging {config.logging.level}"),
        ("configuration", ", ".join(f"{s}.{k}={v!r}" for s, values in sections.items() for k, v in values.items()
                                    if (s, k) != ("data", "folder")) or "defaults"),
        ("per point", f"{args.warmup:g} s warm-up, then "
                      + (f"{args.calls} calls" if args.calls else f"{args.duration:g} s")),
        ("patients", f"{len(ssins)} insured test patient(s) in turn, period = today"),
        ("upstream security", "both targets: STS token (cached), every request signed with WS-Security, "
                              "signed answers verified"),
    ]
    print_report(results, machine_facts(), setup, args.markdown, gateway_stop)
    has_errors = any(r.errors or r.warmup_errors for r in results)
    return 1 if has_errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"bench_soap_front: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
