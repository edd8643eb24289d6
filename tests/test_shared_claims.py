"""#17 point 2, "folders on a shared file system are claimed atomically so one file is processed by
one node": the claims of the toQuery watcher and of the invoicing pipeline raced by threads (the
kernel serialises the renames and links as it would for two nodes' processes on one share), and a
pipeline that may have lost the leadership takes no step."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from unified_messaging.folders.watcher import claim
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.journal.store import Journal
from unified_messaging.simulator.sending_writer import build_sending

FILES = 300


def _race(workers: int, work) -> None:
    start = threading.Barrier(workers)

    def run(number: int) -> None:
        start.wait()
        work(number)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_two_claimers_of_one_folder_take_each_file_once(tmp_path):
    inbox, work = tmp_path / "toQuery", tmp_path / "working"
    inbox.mkdir()
    work.mkdir()
    for number in range(FILES):
        (inbox / f"request-{number:04d}.xml").write_text(f"request {number}")
    won: dict[int, list[str]] = {0: [], 1: []}

    def claimer(number: int) -> None:
        for payload in sorted(inbox.glob("*.xml")):
            if claim(payload, work / payload.name):
                won[number].append(payload.name)

    _race(2, claimer)
    every = won[0] + won[1]
    assert sorted(every) == [f"request-{n:04d}.xml" for n in range(FILES)]  # each once, none lost
    assert not list(inbox.iterdir())
    assert sorted(p.name for p in work.iterdir()) == sorted(every)
    assert all((work / name).read_text() == f"request {int(name[8:12])}" for name in every)
    print(f"\nclaims won: {len(won[0])} and {len(won[1])} of {FILES}")


def test_a_claim_never_replaces_a_file_of_that_name_still_handled_and_an_interrupted_claim_is_completed(tmp_path):
    inbox, work = tmp_path / "toQuery", tmp_path / "working"
    inbox.mkdir()
    work.mkdir()
    (work / "a.xml").write_text("first, being handled")
    (inbox / "a.xml").write_text("second, same name")
    assert not claim(inbox / "a.xml", work / "a.xml")
    assert (work / "a.xml").read_text() == "first, being handled" and (inbox / "a.xml").exists()
    (inbox / "b.xml").write_text("b")
    os.link(inbox / "b.xml", work / "b.xml")  # a claimer died between its link and its unlink
    assert not claim(inbox / "b.xml", work / "b.xml")
    assert not (inbox / "b.xml").exists() and (work / "b.xml").read_text() == "b"


def _pipeline(root: Path, journal: Path, *, may_act=lambda: True) -> InvoicingPipeline:
    def no_client():
        raise AssertionError("a claim needs no upstream client")

    return InvoicingPipeline(root, Journal(journal), no_client, may_act=may_act)


def test_two_pipelines_on_one_invoicing_root_claim_each_file_once(tmp_path):
    """The claim is one ``os.replace`` of the marker: of two nodes, one wins; its payload follows."""
    root = tmp_path / "invoicing"
    nodes = [_pipeline(root, tmp_path / f"journal-{n}.sqlite") for n in range(2)]
    data = build_sending(zone_204="20240302000001")
    for number in range(FILES // 3):
        (root / "toSend" / f"FAC{number:03d}.txt").write_bytes(data)
        (root / "toSend" / f"FAC{number:03d}.txt.ok").write_bytes(b"")

    def claimer(number: int) -> None:
        for marker in sorted((root / "toSend").glob("*.ok")):
            nodes[number]._claim(marker)

    _race(2, claimer)
    work = sorted(p.name for p in (root / ".work").iterdir())
    payloads = [name.partition("-")[2] for name in work if not name.endswith(".ok")]
    markers = [name.partition("-")[2][:-3] for name in work if name.endswith(".ok")]
    expected = [f"FAC{n:03d}.txt" for n in range(FILES // 3)]
    assert sorted(payloads) == expected and sorted(markers) == expected  # each once, with its marker
    assert not list((root / "toSend").iterdir())
    for name in work:
        if not name.endswith(".ok"):
            assert (root / ".work" / f"{name}.ok").exists()  # the payload went with the marker that was won


def test_a_pipeline_that_may_have_lost_the_leadership_takes_no_step(tmp_path):
    root = tmp_path / "invoicing"
    fenced = _pipeline(root, tmp_path / "journal.sqlite", may_act=lambda: False)
    (root / "toSend" / "FAC.txt").write_bytes(build_sending(zone_204="20240302000002"))
    (root / "toSend" / "FAC.txt.ok").write_bytes(b"")
    (root / ".work" / "1-OTHER.txt").write_bytes(build_sending(zone_204="20240302000003"))
    (root / ".work" / "1-OTHER.txt.ok").write_bytes(b"")  # claimed by the node that leads now
    fenced.run_once(poll=True)
    assert sorted(p.name for p in (root / "toSend").iterdir()) == ["FAC.txt", "FAC.txt.ok"]
    assert sorted(p.name for p in (root / ".work").iterdir()) == ["1-OTHER.txt", "1-OTHER.txt.ok"]
    assert fenced.store.files() == []
