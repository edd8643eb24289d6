"""The issue's promise to a newcomer: on the default demo configuration (``conf/`` as shipped,
``unified-messaging serve`` with its built-in simulator), a good file dropped in ``toSend`` goes
from OK to DONE within a minute, as ``unified-messaging invoicing status`` shows."""
from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import ROOT
from tests.invoicing_support import drop_file, invoicing_status, start_gateway, wait_for
from unified_messaging.simulator.sending_writer import build_sending

DEMO_LIMIT_SECONDS = 60.0


@pytest.mark.slow
def test_on_the_default_configuration_a_good_file_goes_from_ok_to_done_within_a_minute(tmp_path):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    gateway = start_gateway(tmp_path)
    try:
        to_send = tmp_path / "um-data" / "invoicing" / "toSend"
        wait_for(lambda: to_send.is_dir(), what="the toSend folder")
        started = time.monotonic()
        drop_file(to_send, "DEMO.txt", build_sending(zone_204="20240303000001"))
        seen: dict[str, float] = {}

        def done() -> bool:
            rows, _ = invoicing_status(tmp_path)
            status = next((r["status"] for r in rows if r["name"] == "DEMO.txt"), None)
            if status:
                seen.setdefault(status, time.monotonic() - started)
            return status == "DONE"

        wait_for(done, timeout=DEMO_LIMIT_SECONDS + 15, every=1.0, what="DEMO.txt DONE")
        elapsed = time.monotonic() - started
        _, table = invoicing_status(tmp_path)
    finally:
        assert gateway.stop() == 0, gateway.output()[-3000:]
    print(f"demo: first seen {', '.join(f'{k} at {v:.1f} s' for k, v in seen.items())}; DONE after {elapsed:.1f} s")
    assert "OK" in seen or "ONGOING" in seen  # the lab sees the file move through the cycle
    assert elapsed < DEMO_LIMIT_SECONDS
    assert "DEMO.txt" in table and "DONE" in table and "920900" in table
    root = tmp_path / "um-data" / "invoicing"
    assert sorted(p.name.split("_")[1] for p in (root / "received").iterdir()) == ["920098", "920900", "931000"]
