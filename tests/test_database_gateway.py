"""A real gateway (``serve --workers 1``) on PostgreSQL, against the stand-alone simulator: the
consultation of its SOAP call is read by a second journal (another process's view of the same
database), and an invoicing sample goes to DONE with its file, TAck and feedback rows in
PostgreSQL; ``invoicing status`` (a third process) reads them there.  No journal.sqlite is written."""
from __future__ import annotations

import subprocess

import pytest
import requests

from tests.invoicing_support import (
    CLI, invoicing_status, remote_gateway_config, simulator_counters, start_gateway, start_simulator, wait_for)
from tests.support import ACTION, INSURED, soap_envelope, insurability_body
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Journal

pytestmark = pytest.mark.postgres


def test_a_gateway_on_postgresql_journals_its_soap_call_and_settles_an_invoicing_sample(postgres_url, tmp_path):
    simulator = start_simulator(tmp_path / "sim")
    try:
        config = remote_gateway_config(tmp_path, simulator, extra=f'[database]\nurl = "{postgres_url}"\n')
        migrated = subprocess.run([CLI, "db", "migrate", "--config", str(config)], capture_output=True, text=True,
                                  timeout=120)
        assert migrated.returncode == 0 and "applied migration 3 (journal)" in migrated.stdout, migrated.stderr
        gateway = start_gateway(tmp_path, config, "--workers", "1")
        reader = Journal.open(postgres_url, tmp_path / "reader" / "journal.sqlite")
        try:
            answer = requests.post(f"{gateway.url}/ConsultMyCareNetSoap", timeout=60,
                                   data=soap_envelope(insurability_body(INSURED[0].ssin)).encode(),
                                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ACTION})
            assert answer.status_code == 200 and INSURED[0].last_name in answer.text, answer.text[:400]
            consultation = reader.find_consultations(interface="soap")[0]  # committed before the answer
            assert (consultation["outcome"], consultation["upstream_service"]) == ("OK", "genins")
            assert consultation["patient"] == INSURED[0].ssin[:6] + "*****"

            to_send = tmp_path / "um-data" / "invoicing" / "toSend"
            wait_for(to_send.is_dir, what="the toSend folder")
            sample = subprocess.run([CLI, "invoicing", "--config", str(config), "sample", "--count", "1"],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert sample.returncode == 0, sample.stderr
            store = InvoicingStore(reader)
            wait_for(lambda: [row["shown_status"] for row in store.files()] == ["DONE"], timeout=90, every=0.5,
                     what="the sample file DONE in PostgreSQL")
            row = store.files()[0]
            assert row["reference"] and row["last_feedback"] == "920900"
            assert [t["success"] for t in store.tacks_for(row["id"])] == [1]
            assert sorted(f["code"] for f in store.feedback_for(row["id"])) == ["920098", "920900", "931000"]
            rows, _ = invoicing_status(tmp_path, config)  # the CLI reads the same database
            assert [(r["id"], r["status"]) for r in rows] == [(row["id"], "DONE")]
            posts = simulator_counters(simulator)["genasync.post"]
        finally:
            reader.close()
            assert gateway.stop() == 0, gateway.output()[-3000:]
    finally:
        simulator.stop()
    assert posts == 1
    assert not list((tmp_path / "um-data").glob("journal.sqlite*"))
