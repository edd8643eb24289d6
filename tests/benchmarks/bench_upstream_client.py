"""The CPU per call of the gateway's upstream client, against the simulator in a process of its own.

One ``GenericInsurabilityClient`` secured as the gateway secures it in simulator mode (the demo
lab keystore, an STS token asked once, every request signed, the signed answers verified against
the demo CA) calls ``getInsurability`` ``--calls`` times one after another; the figure is this
process's CPU time (``time.process_time``) per call, so the simulator's work is not in it.

Run it with the tree to measure first on ``PYTHONPATH`` (old and new trees side by side)::

    PYTHONPATH=/path/to/tree .venv/bin/python tests/benchmarks/bench_upstream_client.py --calls 2000

``--profile FILE`` writes a cProfile of the measured loop. A script, not a test.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", default="")
    parser.add_argument("--spy", type=float, default=0.0, help="seconds of a py-spy loop after the rounds")
    args = parser.parse_args()

    from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
    from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
    from unified_messaging.mycarenet.keystore import read_keystore
    from unified_messaging.mycarenet.sts import StsClient, TokenCache
    from unified_messaging.mycarenet.wsse import WsseSigningPlugin
    from unified_messaging.simulator.app import Simulator
    from unified_messaging.simulator.devpki import LAB_NIHII, load_dev_pki, make_dev_pki
    from unified_messaging.simulator.platform import STS_PATH
    from unified_messaging.simulator.population import TEST_PATIENTS

    username, password = "lab-software", "bench-licence-password"
    folder = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
    make_dev_pki(folder / "demo-pki")
    port = _free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "unified_messaging.cli", "simulator", "--data-folder", str(folder), "--port", str(port),
         "--licence-username", username, "--licence-password", password, "--latency-ms", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + "/_simulator/counters", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        pki = load_dev_pki(folder / "demo-pki")
        entry = read_keystore(pki.lab.path, pki.password).authentication
        cache = TokenCache(StsClient(base + STS_PATH, session=requests.Session(), timeout=20))
        client = GenericInsurabilityClient(base + Simulator.GENERICINSURABILITY_PATH, licence_username=username,
                                           licence_password=password, timeout=20,
                                           plugins=[WsseSigningPlugin(cache.token_provider(entry))],
                                           answer_ca=pki.ca_certificate())
        provider = CareProvider(LAB_NIHII, "labo")
        ssins = [p.ssin for p in TEST_PATIENTS if p.scenario == "insured"]
        today = dt.date.today()

        def call(i: int) -> None:
            answer = client.get_insurability(InsurabilityQuery(provider, today, today, ssin=ssins[i % len(ssins)]))
            assert answer.fault is None and answer.insurabilities, answer

        for i in range(args.warmup):
            call(i)
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for _ in range(args.rounds):
            started, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            for i in range(args.calls):
                call(i)
            if profiler:
                profiler.disable()
            cpu = time.process_time() - started
            print(f"{args.calls} calls: {cpu / args.calls * 1000:.3f} ms CPU per call, "
                  f"{(time.perf_counter() - wall) / args.calls * 1000:.3f} ms wall per call; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        if profiler:
            profiler.dump_stats(args.profile)
        if args.spy:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-o",
                                    f"/tmp/bench-upstream-spy-{os.getpid()}.txt", "-f", "raw", "-r", "200",
                                    "-d", str(int(args.spy)), "-p", str(os.getpid())])
            time.sleep(1)
            i = 0
            while spy.poll() is None:
                call(i)
                i += 1
            print(f"py-spy raw: /tmp/bench-upstream-spy-{os.getpid()}.txt")
        client.close()
    finally:
        simulator.terminate()
        simulator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
