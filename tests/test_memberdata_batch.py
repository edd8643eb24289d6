"""The batch with MemberData selected (#12 point 7, synchronous MemberData): a real batch file, taken
by a served gateway's ``[batch] jobs``, is answered line by line over MemberData, with the same
output columns and values as GenericInsurability gives for the same file."""
from __future__ import annotations

import os
import time

import pytest

from tests.conftest import make_config
from tests.support import read_output, wait_for, write_job
from tests.test_folder_insurability import SCENARIO_QUESTION, TODAY
from unified_messaging.insurability.batch import OUTPUT_COLUMNS, BatchRunner
from unified_messaging.insurability.batch_job import load_batch_job
from unified_messaging.simulator.population import TEST_PATIENTS

HEADER = "ssin;mutuality;registration_number;period_start;period_end;contact_type;reference"
LOCALLY_REFUSED = ("bad_check_digit", "bad_ssin_format")  # never sent: not a MemberData question
ASKED = [p for p in TEST_PATIENTS if p.scenario not in LOCALLY_REFUSED]
VOLATILE = ("audit_reference",)  # each platform answer has its own
MEMBERDATA_CODES = {"several_insurers": "MULTIPLE_IO", "unknown": "UNKNOWN_IO", "unknown_mutuality": "INVALID_IO_VALUE"}


def batch_file() -> str:
    lines = [HEADER]
    for i, p in enumerate(ASKED, 1):
        start, end, contact = SCENARIO_QUESTION.get(p.scenario, (TODAY, None, None))
        who = f"{p.ssin};;" if p.ssin else f";{p.mutuality};{p.registration_number}"
        lines.append(f"{who};{start.isoformat()};{end.isoformat() if end else ''};{contact or ''};MDB-{i:02d}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A gateway with MemberData selected, serving one batch job."""
    from unified_messaging.gateway import Gateway

    folder = tmp_path_factory.mktemp("memberdata-batch")
    job = write_job(folder / "job")
    config = make_config(folder, upstream={"insurability_service": "memberdata"}, invoicing={"enabled": False},
                         batch={"jobs": [str(job)], "rescan_seconds": 0.2})
    gateway = Gateway(config).start()
    yield gateway, load_batch_job(job)
    gateway.stop()


def test_memberdata_batch_answers_every_line_over_memberdata_like_genericinsurability(served, gateway, tmp_path):
    memberdata_gateway, job = served
    counters = memberdata_gateway.simulator.counters
    before = counters["memberdata.consult"]
    source = job.input_folder / "patients.csv"
    source.write_text(batch_file())
    os.utime(source, (time.time() - 60, time.time() - 60))  # older than the settle time: taken at the next scan
    # the file's run is journaled once its output is complete
    wait_for(lambda: [r for r in memberdata_gateway.journal.batch_runs() if r["input"] == "patients.csv"],
             timeout=60, what="the batch file's run in the journal")
    mine = read_output(job.output_folder / "patients.result.csv")

    assert counters["memberdata.consult"] - before == len(ASKED)  # every line, once, over MemberData
    assert counters["genericinsurability.getInsurability"] == 0
    batch_rows = [r for r in memberdata_gateway.journal.consultations(limit=100)
                  if r["interface"] == "batch" and (r["reference"] or "").startswith("MDB-")]
    assert len(batch_rows) == len(ASKED)
    assert {r["upstream_service"] for r in batch_rows} == {"memberdata"}
    lines = [dict(zip(mine[0], row)) for row in mine[1:]]
    assert {r["audit_reference"] for r in batch_rows if r["outcome"] == "OK"} == {
        line["audit_reference"] for line in lines if line["status"] == "OK"}  # the journal's answers are the file's
    [run] = [r for r in memberdata_gateway.journal.batch_runs() if r["input"] == "patients.csv"]
    assert (run["status"], run["lines"], run["output"]) == ("done", len(ASKED), "patients.result.csv")

    genins_job = load_batch_job(write_job(tmp_path))  # the same file over GenericInsurability
    (genins_job.input_folder / "patients.csv").write_text(batch_file())
    BatchRunner(genins_job, gateway.insurability).run()
    theirs = read_output(genins_job.output_folder / "patients.result.csv")
    genins_rows = [r for r in gateway.journal.consultations(limit=500)
                   if r["interface"] == "batch" and (r["reference"] or "").startswith("MDB-")]
    assert len(genins_rows) == len(ASKED) and {r["upstream_service"] for r in genins_rows} == {"genins"}

    assert mine[0] == theirs[0] == HEADER.split(";") + list(OUTPUT_COLUMNS)
    assert len(mine) == len(theirs) == len(ASKED) + 1
    columns = mine[0]
    for p, a, b in zip(ASKED, mine[1:], theirs[1:]):
        line, other = dict(zip(columns, a)), dict(zip(columns, b))
        assert line["status"] == other["status"], (p.scenario, line, other)
        if line["status"] == "OK":
            assert line["audit_reference"]
            assert {k: v for k, v in line.items() if k not in VOLATILE} == \
                   {k: v for k, v in other.items() if k not in VOLATILE}, p.scenario
        else:  # the same refusal, in MemberData's own words
            assert MEMBERDATA_CODES.get(p.scenario, "") in line["messages"], (p.scenario, line)
            assert line["reference"] == other["reference"]
    answered = [p.scenario for p, row in zip(ASKED, mine[1:]) if row[columns.index("status")] == "OK"]
    assert answered == [p.scenario for p in ASKED if p.scenario not in MEMBERDATA_CODES]
