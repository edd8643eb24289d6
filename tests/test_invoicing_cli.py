"""``unified-messaging invoicing status`` and ``resend``: the table, JSON, and the link between a
refused file and its corrected version."""
from __future__ import annotations

import json

from click.testing import CliRunner

from tests.invoicing_support import client_for, drop_file, run_until, status_of
from tests.support import running_platform
from unified_messaging.invoicing.cli import invoicing
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.journal.store import Journal


def test_status_and_resend_link_the_corrected_file_to_the_refused_one(tmp_path, pki):
    with running_platform(pki) as (simulator, url):
        root, journal = tmp_path / "invoicing", tmp_path / "journal.sqlite"
        pipeline = InvoicingPipeline(root, Journal(journal), lambda: client_for(pki, url), poll_interval=0.1)
        drop_file(root / "toSend", "REFUSED.txt", build_sending(zone_204="20240223000501", nomenclature="9999991"))
        run_until(pipeline, lambda: status_of(pipeline, "REFUSED.txt")["status"] == "NOK")
        corrected = tmp_path / "CORRECTED.txt"
        corrected.write_bytes(build_sending(zone_204="20240223000502"))
        runner = CliRunner()
        result = runner.invoke(invoicing, ["resend", "REFUSED.txt", str(corrected), "--journal", str(journal),
                                           "--root", str(root)])
        assert result.exit_code == 0, result.output
        run_until(pipeline, lambda: status_of(pipeline, "CORRECTED.txt")["status"] == "DONE")
        table = runner.invoke(invoicing, ["status", "--journal", str(journal)])
        assert "resent as #" in table.output and "resends #" in table.output and "DONE" in table.output
        rows = {r["name"]: r for r in json.loads(runner.invoke(invoicing, ["status", "--journal", str(journal),
                                                                            "--json"]).output)}
        assert rows["CORRECTED.txt"]["resend_of"] == rows["REFUSED.txt"]["id"]
        assert rows["REFUSED.txt"]["resent_as"] == [rows["CORRECTED.txt"]["id"]]
        assert rows["REFUSED.txt"]["last_feedback"] == "920099" and rows["CORRECTED.txt"]["reference"]
        refused_again = runner.invoke(invoicing, ["resend", "CORRECTED.txt", str(corrected), "--journal",
                                                  str(journal), "--root", str(root)])
        assert refused_again.exit_code != 0 and "not refused" in refused_again.output
