"""``unified-messaging invoicing sample``: the files it writes go where its help says, through the real
gateway and the real simulator (good: DONE; wrong on purpose: refused by UM, or by the insurers)."""
from __future__ import annotations

import subprocess

from tests.invoicing_support import (
    CLI,
    invoicing_status,
    remote_gateway_config,
    simulator_counters,
    start_gateway,
    start_simulator,
    wait_for,
)


def sample(folder, config, *args: str) -> str:
    done = subprocess.run([CLI, "invoicing", "--config", str(config), "sample", *args], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sample_files_go_through_the_gateway_as_their_help_says(tmp_path):
    simulator = start_simulator(tmp_path / "sim")
    try:
        config = remote_gateway_config(tmp_path, simulator)
        gateway = start_gateway(tmp_path, config)
        try:
            to_send = tmp_path / "um-data" / "invoicing" / "toSend"
            wait_for(to_send.is_dir, what="the toSend folder")
            out = sample(tmp_path, config, "--count", "2")
            assert out.count(" and its .ok") == 2 and "invoicing status" in out
            for kind in ("zone_99", "control_number", "header", "blocking", "refused_code"):
                assert kind in sample(tmp_path, config, "--errors", kind)
            error = tmp_path / "um-data" / "invoicing" / "error"

            def statuses() -> dict[str, str]:
                rows, _ = invoicing_status(tmp_path, config)
                return {r["name"].split("-")[-1].removesuffix(".txt"): r["status"] for r in rows}

            def settled() -> bool:
                seen = statuses()
                refused = {p.name.split("-")[-1].removesuffix(".txt.reason.txt")
                           for p in error.glob("*.reason.txt")}
                return (sum(1 for s in seen.values() if s == "DONE") == 2 and seen.get("refused_code") == "NOK"
                        and {"zone_99", "control_number", "header", "blocking"} <= refused)

            wait_for(settled, timeout=90, every=1.0, what="the sample files settled")
            reasons = {p.name: p.read_text(encoding="utf-8") for p in error.glob("*.reason.txt")}
            assert any("zone 99" in text.lower() or "check digit" in text.lower() for text in reasons.values())
            posts = simulator_counters(simulator)["genasync.post"]
            received = sorted(p.name.rsplit("_", 2)[1] for p in (error.parent / "received").glob("*refused_code*"))
        finally:
            assert gateway.stop() == 0, gateway.output()[-3000:]
    finally:
        simulator.stop()
    assert posts == 3  # the two good files and the one only the insurers can refuse; nothing else went out
    assert received == ["920099", "931000"]
