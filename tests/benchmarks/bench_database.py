"""The Mybox year-of-traffic pages and the SOAP front on SQLite and on PostgreSQL, in one run.

What is measured
----------------
1. One data folder is filled with a synthetic year of traffic by ``bench_mybox.populate`` (the same
   builder, the same seed: consultations, invoicing files with their real feedback messages in
   ``received/``, batch runs) into ``journal.sqlite``; a throwaway PostgreSQL cluster is started
   (``tests/postgres.py``: ``initdb``/``pg_ctl`` on a free port, skipped with a clear message when
   the binaries are absent), migrated, and the journal store copied into it as ``db copy`` does.
2. For each engine in turn the real gateway is started on that data folder in this process
   (``tests.web_support.start_mybox``; ``[database] url`` set for PostgreSQL, so the journal, the
   invoicing state, Mybox sessions and the secure space are all there), ``admin`` logs in, and:

   * every page of ``bench_mybox.pages_for`` is asked over real HTTP, ``--warmup`` rounds then
     ``--repeat`` measured rounds (``bench_mybox.measure``); median and p95 in milliseconds, and
     the store queries behind the page timed alone (the best of ``--query-repeat`` calls each);
   * ``--soap-calls`` GetInsurability calls (SOAP 1.1, an insured test patient each, every answer
     checked ``Status=OK``) from ``--clients`` client threads with keep-alive sessions: calls/s
     over the measured window, p50 and p95 latency. Each call writes its journal row before it is
     answered, so this is where the engine's commit shows. The client threads, the gateway and its
     built-in simulator share this process (one GIL): compare the two engines, not these figures
     with ``bench_soap_front.py``'s.

The PostgreSQL server runs on the same machine (local TCP), with the settings of the tests' throwaway
cluster (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off: a commit does not wait for the
disk, as SQLite's WAL with ``synchronous=NORMAL`` does not either), vacuumed and analysed after the copy.

    .venv/bin/python tests/benchmarks/bench_database.py                  # about 2 minutes
    .venv/bin/python tests/benchmarks/bench_database.py --consultations 400000 --markdown

This is a script, not a pytest test (pytest does not collect ``bench_*.py``).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.benchmarks import bench_mybox  # noqa: E402
from tests.benchmarks.common import not_negative_int, positive_int, progress  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.postgres import INSTALL, binaries, start_cluster, stop_cluster  # noqa: E402
from tests.support import ACTION, INSURED, insurability_body, soap_envelope  # noqa: E402
from tests.web_support import login, start_mybox  # noqa: E402
from unified_messaging.database import JOURNAL, connect, migrate_store  # noqa: E402
from unified_messaging.database.copy import copy_store  # noqa: E402
from unified_messaging.database.sqlite import SqliteDatabase  # noqa: E402
from unified_messaging.invoicing.store import InvoicingStore  # noqa: E402
from unified_messaging.journal import Journal  # noqa: E402

ENGINES = ("SQLite", "PostgreSQL")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consultations", type=not_negative_int, default=100_000, metavar="N")
    parser.add_argument("--files", type=not_negative_int, default=1_000, metavar="N")
    parser.add_argument("--days", type=positive_int, default=365, metavar="N")
    parser.add_argument("--batch-runs", type=not_negative_int, default=500, metavar="N")
    parser.add_argument("--repeat", type=positive_int, default=10, metavar="N", help="measured rounds of pages")
    parser.add_argument("--warmup", type=not_negative_int, default=2, metavar="N")
    parser.add_argument("--query-repeat", type=not_negative_int, default=5, metavar="N")
    parser.add_argument("--soap-calls", type=positive_int, default=400, metavar="N")
    parser.add_argument("--clients", type=positive_int, default=4, metavar="N", help="SOAP client threads")
    parser.add_argument("--seed", type=int, default=bench_mybox.SEED)
    parser.add_argument("--markdown", action="store_true", help="also print the tables in Markdown")
    return parser.parse_args(argv)


@dataclass
class Soap:
    calls_per_second: float
    p50_ms: float
    p95_ms: float
    errors: int


def soap_load(services_url: str, calls: int, clients: int) -> Soap:
    """``calls`` GetInsurability calls spread over ``clients`` threads, after a few warm-up calls each."""
    latencies: list[float] = []
    errors = [0]
    guard = threading.Lock()
    share = [calls // clients + (1 if n < calls % clients else 0) for n in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        session = requests.Session()
        patient = INSURED[n % len(INSURED)]
        body = soap_envelope(insurability_body(patient.ssin)).encode()
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION}

        def call() -> float:
            started = time.perf_counter()
            answer = session.post(services_url + "/ConsultMyCareNetSoap", data=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - started
            if answer.status_code != 200 or "<Status>OK</Status>" not in answer.text.replace("tns:", ""):
                with guard:
                    errors[0] += 1
            return elapsed

        for _ in range(3):
            call()
        barrier.wait()
        mine = [call() for _ in range(share[n])]
        with guard:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return Soap(len(ordered) / elapsed, statistics.median(ordered) * 1000,
                ordered[max(0, int(0.95 * len(ordered)) - 1)] * 1000, errors[0])


def run_engine(workdir: Path, year: bench_mybox.Year, args: argparse.Namespace,
               url: str) -> tuple[list[bench_mybox.Page], Soap]:
    options = {"database": {"url": url}} if url else {}
    stack = start_mybox(workdir, **options)
    try:
        session = login(stack, bench_mybox.USER)
        journal = Journal.open(url, stack.gateway.config.journal_path)  # this process's own view, for the queries
        try:
            pages = bench_mybox.pages_for(year, journal, InvoicingStore(journal), stack.gateway.config.web.page_size)
            bench_mybox.measure(session, stack, pages, args.warmup, args.repeat, bench_mybox.CpuShare())
            for page in pages:
                bench_mybox.time_queries(page, args.query_repeat)
        finally:
            journal.close()
        session.close()
        progress(f"{args.soap_calls} SOAP calls from {args.clients} clients")
        soap = soap_load(stack.gateway.services_url, args.soap_calls, args.clients)
    finally:
        stack.gateway.stop()
    return pages, soap


def print_report(results: dict[str, tuple[list[bench_mybox.Page], Soap]], year: bench_mybox.Year,
                 args: argparse.Namespace, copy_seconds: float) -> None:
    print()
    for name, value in bench_mybox.machine_facts():
        print(f"{name:<18} {value}")
    print(f"{'data':<18} {year.consultations:,} consultations, {year.files:,} invoicing files, "
          f"{year.feedback:,} feedback messages, {year.tacks:,} TAcks, {year.batch_runs:,} batch runs; "
          f"copied into PostgreSQL in {copy_seconds:.1f} s")
    print(f"{'rounds':<18} {args.warmup} warm-up + {args.repeat} measured per page; queries: best of "
          f"{args.query_repeat}")
    header = ["page", "SQLite median", "SQLite p95", "SQLite queries", "PG median", "PG p95", "PG queries"]
    rows = []
    sqlite_pages, pg_pages = (results[engine][0] for engine in ENGINES)
    for lite, pg in zip(sqlite_pages, pg_pages):
        cells = [lite.name]
        for page in (lite, pg):
            if page.error or not page.times:
                cells += [page.error or "-", "", ""]
            else:
                cells += [f"{page.median_ms:.1f}", f"{page.percentile_ms(0.95):.1f}", f"{page.query_ms or 0:.1f}"]
        rows.append(cells)
    soap_header = ["SOAP GetInsurability", "calls/s", "p50 ms", "p95 ms", "errors"]
    soap_rows = [[engine, f"{soap.calls_per_second:.1f}", f"{soap.p50_ms:.1f}", f"{soap.p95_ms:.1f}",
                  str(soap.errors)] for engine, (_, soap) in results.items()]
    for table_header, table in ((header, rows), (soap_header, soap_rows)):
        widths = [max(len(str(r[i])) for r in [table_header, *table]) for i in range(len(table_header))]
        print()
        for line in [table_header, *table]:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
        if args.markdown:
            print()
            print("| " + " | ".join(table_header) + " |")
            print("|" + "|".join("---" for _ in table_header) + "|")
            for line in table:
                print("| " + " | ".join(line) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if binaries() is None:
        print(f"no initdb/pg_ctl on this machine: {INSTALL}", file=sys.stderr)
        return 2
    logging.getLogger("unified_messaging").addHandler(logging.NullHandler())
    logging.getLogger("unified_messaging").propagate = False
    workdir = Path(tempfile.mkdtemp(prefix="um-bench-database-"))
    server = None
    results: dict[str, tuple[list[bench_mybox.Page], Soap]] = {}
    try:
        config = make_config(workdir)  # the data folder start_mybox gives the gateway
        progress(f"writing a year of traffic to {config.journal_path}")
        year = bench_mybox.populate(config.data_folder, config.invoicing_root, config.journal_path, args)
        progress("starting a throwaway PostgreSQL")
        server = start_cluster()
        url = server.new_database()
        target = connect(url, config.data_folder)
        source = SqliteDatabase(config.journal_path, JOURNAL)
        try:
            migrate_store(target)
            started = time.perf_counter()
            copy_store(source, target, JOURNAL)
            copy_seconds = time.perf_counter() - started
        finally:
            source.close()
            target.close()
        # what autovacuum does soon after a bulk load (PostgreSQL 13+ vacuums after inserts too): without
        # it the visibility map is empty and every index-only count reads the table's pages as well
        server.psql("VACUUM ANALYZE", database=url.rsplit("/", 1)[1])
        for engine, engine_url in zip(ENGINES, ("", url)):
            progress(f"{engine}: the gateway, the pages, the SOAP calls")
            results[engine] = run_engine(workdir, year, args, engine_url)
    finally:
        if server is not None:
            stop_cluster(server)
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(results, year, args, copy_seconds)
    failed = any(page.error for pages, _ in results.values() for page in pages)
    return 1 if failed or any(soap.errors for _, soap in results.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
