"""What MyCareNet SSO security costs per call: one signature, one verification, one STS round trip.

Run:  .venv/bin/python -m tests.benchmarks.bench_security [--rounds 200] [--markdown]

* sign: ``wsse.sign_envelope`` on a GenericInsurability request (Timestamp + assertion + RSA-SHA256
  signature over Body and Timestamp), as the gateway's zeep plugin does for every upstream call;
* verify: ``wsse.verify_envelope`` on that signed message (what the simulator does, and what the
  gateway does on a signed answer): digests, signature, assertion signature, certificate chain;
* STS round trip: ``StsClient.request_token`` against the simulated STS over a local socket
  (build and sign the RST, HTTP, issue and sign the SAML assertion, parse and check the answer).

Keys are RSA 2048 from the development PKI.  Prints median and p90 per operation in milliseconds.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable

from lxml import etree

from unified_messaging.simulator.devpki import make_dev_pki
from unified_messaging.mycarenet.sts import StsClient
from unified_messaging.mycarenet.wsse import sign_envelope, verify_envelope
from unified_messaging.serving import serving
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.sts import SimulatedSts

REQUEST = b"""<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/>
<soapenv:Body><GetInsurabilityRequest xmlns="urn:be:fgov:ehealth:genericinsurability:protocol:v1">
<CommonInput xmlns="urn:be:fgov:ehealth:genericinsurability:core:v1"><Request><IsTest>true</IsTest></Request>
<Origin><Package><License><Username>demo</Username><Password>demo</Password></License></Package></Origin>
</CommonInput><Request xmlns="urn:be:fgov:ehealth:genericinsurability:core:v1"><CareReceiverId><Inss>85073003328</Inss>
</CareReceiverId></Request></GetInsurabilityRequest></soapenv:Body></soapenv:Envelope>"""


def timed(operation: Callable[[], object], rounds: int) -> list[float]:
    operation()  # warm-up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed repetitions per operation")
    parser.add_argument("--markdown", action="store_true", help="print rows for README's performance table")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        pki = make_dev_pki(Path(folder))
        lab = pki.load("lab").authentication
        sts = SimulatedSts(pki.ca_certificate(), pki.load("sts").authentication)
        token = sts.issue_assertion(lab.certificate)
        signed = etree.tostring(sign_envelope(etree.fromstring(REQUEST), assertion_xml=token,
                                              key=lab.private_key, certificate=lab.certificate))
        results = {
            "sign one business call": timed(lambda: sign_envelope(
                etree.fromstring(REQUEST), assertion_xml=token, key=lab.private_key, certificate=lab.certificate),
                args.rounds),
            "verify one business call": timed(lambda: verify_envelope(
                signed, trusted_ca=pki.ca_certificate(), sts_certificate=sts.certificate), args.rounds),
        }
        with serving(sts) as url:
            client = StsClient(url + STS_PATH)
            results["one STS round trip (local)"] = timed(lambda: client.request_token(lab),
                                                          max(20, args.rounds // 5))

    print(f"# {date.today()} · {cpu_model()} · {platform.python_implementation()} {platform.python_version()}")
    for name, samples in results.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        if args.markdown:
            print(f"| {name} | {median:.2f} ms | p90 {p90:.2f} ms |")
        else:
            print(f"{name:30} median {median:7.2f} ms   p90 {p90:7.2f} ms   ({len(samples)} rounds)")


if __name__ == "__main__":
    main()
