"""``GET /unified-messaging/metrics`` on a real gateway: consult through its SOAP front, drop an eFact
file in its invoicing folder, scrape, parse with ``prometheus_client``'s own parser.

The counters are the process's (multi-process files under the data folder): the tests compare
before and after, as other gateways of the same test session count into the same files.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_config
from tests.invoicing_support import drop_file
from tests.support import consult, wait_for
from unified_messaging.gateway import Gateway
from unified_messaging.invoicing.folders import Folders
from unified_messaging.monitoring.metrics import metrics_folder, remove_dead_processes_files
from unified_messaging.simulator.sending_writer import build_sending

METRICS = "/unified-messaging/metrics"
IDENTIFIER = re.compile(r"[0-9]{8,}")  # an SSIN (11 digits) or a NIHII (8 or 11) in a label value


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    config = make_config(
        tmp_path_factory.mktemp("metrics"),
        simulator={"genasync_acknowledgement_seconds": 0.2, "genasync_detailed_seconds": 0.5,
                   "genasync_settlement_seconds": 1.0, "genasync_min_get_interval_seconds": 0.0},
        invoicing={"poll_interval_seconds": 0.5, "rescan_seconds": 0.5})
    gw = Gateway(config).start()
    yield gw
    gw.stop()


def scrape(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the scrape: (name, sorted labels) -> value."""
    answer = requests.get(gateway.url + METRICS, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_consultation_moves_the_consultation_and_upstream_counters(gateway):
    before = scrape(gateway)
    consult(gateway)
    consult(gateway)
    after = scrape(gateway)
    moved = value(after, "um_consultations_total", interface="soap", outcome="OK") - \
        value(before, "um_consultations_total", interface="soap", outcome="OK")
    assert moved == 2
    calls = value(after, "um_upstream_call_seconds_count", service="genericinsurability", outcome="ok") - \
        value(before, "um_upstream_call_seconds_count", service="genericinsurability", outcome="ok")
    assert calls == 2
    assert value(after, "um_upstream_call_seconds_sum", service="genericinsurability", outcome="ok") > \
        value(before, "um_upstream_call_seconds_sum", service="genericinsurability", outcome="ok")
    assert value(after, "um_upstream_call_seconds_bucket", service="genericinsurability", outcome="ok",
                 le="+Inf") >= 2
    assert value(after, "um_sts_calls_total", outcome="ok") >= 1  # the first consultation asked for a token
    assert value(after, "um_certificate_days_to_expiry", certificate="gateway") > 300
    assert value(after, "um_files_in_error", folder="invoicing/error") == 0


def test_invoicing_files_and_feedback_messages_are_counted(gateway):
    drop_file(Folders(gateway.config.invoicing_root).to_send, "METRIC0001.txt",
              build_sending(zone_204="20241105000009"))
    samples = wait_for(lambda: (s := scrape(gateway)) and value(s, "um_invoicing_files", status="DONE") >= 1 and s,
                       timeout=60, what="the file settled (DONE)", every=0.5)
    assert value(samples, "um_invoicing_feedback_messages", type="931000") >= 1
    assert value(samples, "um_upstream_call_seconds_count", service="genasync", outcome="ok") >= 3


def test_a_file_in_error_is_counted(gateway):
    error = gateway.config.insurability_root / "error"
    (error / "lab-0042.xml").write_text("<bad/>")
    try:
        assert value(scrape(gateway), "um_files_in_error", folder="insurability/error") == 1
    finally:
        (error / "lab-0042.xml").unlink()


def test_another_process_counts_into_the_same_scrape(gateway):
    """Multi-process mode: a second process (a worker, ``batch run``) inherits the folder; one scrape sums both."""
    before = value(scrape(gateway), "um_consultations_total", interface="batch", outcome="OK")
    code = ("import sys; from pathlib import Path; from unified_messaging.monitoring.metrics import "
            "consultation_observer; observe = consultation_observer(Path(sys.argv[1])); "
            "[observe('batch', 'OK') for _ in range(3)]")
    # The install whose data folder holds this process's metrics files (the first gateway of the session).
    data_folder = metrics_folder().parent
    subprocess.run([sys.executable, "-c", code, str(data_folder)], check=True, timeout=60, env=dict(os.environ))
    assert value(scrape(gateway), "um_consultations_total", interface="batch", outcome="OK") - before == 3


def test_no_label_value_is_an_ssin_or_a_nihii(gateway):
    consult(gateway)
    labels = {v for (_, pairs) in scrape(gateway) for _, v in pairs}
    assert labels and not {v for v in labels if IDENTIFIER.search(v) and v not in ("931000", "920098", "920900",
                                                                                   "920099", "920999")}


def test_only_the_files_of_ended_processes_are_removed_at_start(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True, timeout=30)
    dead, alive = tmp_path / f"counter_{ended.stdout.strip()}.db", tmp_path / f"counter_{os.getpid()}.db"
    for path in (dead, alive):
        path.write_bytes(b"")
    assert remove_dead_processes_files(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()
