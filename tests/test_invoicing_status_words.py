"""One status vocabulary (issue 14): a file UM refused itself is ERROR in ``invoicing status`` and in Mybox,
and its Mybox page says it was never sent; a good one reads the same in both."""
from __future__ import annotations

import json
import subprocess

from tests.invoicing_support import CLI, drop_file, wait_for
from tests.web_support import login, start_mybox
from unified_messaging.simulator.sending_writer import Defect, build_sending


def test_the_command_and_mybox_say_the_same_status_and_mybox_says_what_happened(tmp_path):
    stack = start_mybox(tmp_path)
    try:
        to_send = stack.invoicing_root / "toSend"
        drop_file(to_send, "WRONG.txt", build_sending(zone_204="20240301000091",
                                                      defects=frozenset({Defect.CONTROL_NUMBER})))
        drop_file(to_send, "FINE.txt", build_sending(zone_204="20240301000092"))
        store = stack.gateway.mybox.services.invoicing
        wait_for(lambda: {f["name"]: f["shown_status"] for f in store.files()} == {"WRONG.txt": "ERROR",
                                                                                    "FINE.txt": "DONE"},
                 timeout=60, what="both files settled")
        journal = stack.gateway.config.journal_path
        listed = subprocess.run([CLI, "invoicing", "status", "--journal", str(journal), "--json"],
                                capture_output=True, text=True, timeout=60, check=True)
        cli = {r["name"]: r["status"] for r in json.loads(listed.stdout)}
        table = subprocess.run([CLI, "invoicing", "status", "--journal", str(journal)],
                               capture_output=True, text=True, timeout=60, check=True).stdout
        session = login(stack, "office")
        listing = session.get(stack.url("/invoicing")).text
        wrong = next(f for f in store.files() if f["name"] == "WRONG.txt")
        fine = next(f for f in store.files() if f["name"] == "FINE.txt")
        wrong_page = session.get(stack.url(f"/invoicing/{wrong['id']}")).text
        fine_page = session.get(stack.url(f"/invoicing/{fine['id']}")).text
    finally:
        stack.gateway.stop()
    assert cli == {"WRONG.txt": "ERROR", "FINE.txt": "DONE"}
    wrong_line = next(i for i, line in enumerate(table.splitlines()) if "WRONG.txt" in line)
    assert "ERROR" in table.splitlines()[wrong_line] and "control number" in table.splitlines()[wrong_line + 2]
    assert 'data-refresh-status="ERROR"' in wrong_page and 'data-refresh-status="DONE"' in fine_page
    assert "Never sent: the gateway refused this file before sending it" in wrong_page
    assert "No feedback yet" not in wrong_page and "Never sent" not in fine_page
    assert "ERROR" in listing and "DONE" in listing
