"""The toQuery folders with MemberData chosen for the care provider's quality (#12 points 1, 3, 7):
the same request file answered over GenericInsurability and over MemberData reads the same."""
from __future__ import annotations

import pytest
from lxml import etree

from tests.conftest import make_config
from tests.test_folder_insurability import SCENARIO_QUESTION, TODAY, drop_and_wait, request_xml, requests_file, responses
from unified_messaging.simulator.population import TEST_PATIENTS

VOLATILE = ("AuditReference",)
NOT_IN_MEMBERDATA = ("MaxInvoicedYears", "Transfers")  # GenericInsurability gives them, MemberData does not
MEMBERDATA_CODES = {"several_insurers": "MULTIPLE_IO", "unknown": "UNKNOWN_IO", "unknown_mutuality": "INVALID_IO_VALUE"}


@pytest.fixture(scope="module")
def quality_gateway(tmp_path_factory):
    """GenericInsurability by default, MemberData for labs."""
    from unified_messaging.gateway import Gateway

    config = make_config(tmp_path_factory.mktemp("memberdata-folders"),
                         upstream={"insurability_service": "genins", "memberdata_qualities": ["labo"]},
                         invoicing={"enabled": False})
    gateway = Gateway(config).start()
    yield gateway
    gateway.stop()


def comparable(response: etree._Element) -> bytes:
    copy = etree.fromstring(etree.tostring(response))
    for node in list(copy.iter()):
        if etree.QName(node).localname in VOLATILE + NOT_IN_MEMBERDATA:
            node.getparent().remove(node)
    return etree.tostring(copy)


def test_memberdata_toquery_answers_read_as_genericinsurability_ones(gateway, quality_gateway):
    questions = []
    for i, p in enumerate(TEST_PATIENTS, 1):
        start, end, contact = SCENARIO_QUESTION.get(p.scenario, (TODAY, None, None))
        questions.append(request_xml(p, start=start, end=end, contact=contact, reference=f"MDA-{i:02d}"))
    data = requests_file(*questions)
    over_memberdata = drop_and_wait(quality_gateway.config.insurability_root, "memberdata.xml", data)
    over_genins = drop_and_wait(gateway.config.insurability_root, "memberdata-compare.xml", data)
    assert over_memberdata is not None and over_genins is not None
    counters = quality_gateway.simulator.counters
    assert counters["memberdata.consult"] >= 1 and counters["genericinsurability.getInsurability"] == 0
    mine, theirs = responses(over_memberdata), responses(over_genins)
    assert len(mine) == len(theirs) == len(TEST_PATIENTS)
    for p, a, b in zip(TEST_PATIENTS, mine, theirs):
        status = a.findtext("{*}Status")
        assert status == b.findtext("{*}Status"), p.scenario
        if status == "OK":
            assert comparable(a) == comparable(b), p.scenario
        else:  # the same refusal, in MemberData's own codes
            codes = [c.text for c in a.iterfind("{*}Messages/{*}Message/{*}Code")]
            assert MEMBERDATA_CODES.get(p.scenario, "") in " ".join(codes), (p.scenario, codes)
            assert a.findtext("{*}Patient/{*}Ssin") == b.findtext("{*}Patient/{*}Ssin"), p.scenario
    services = {row["upstream_service"] for row in quality_gateway.journal.consultations(limit=50)
                if (row["reference"] or "").startswith("MDA-") and row["outcome"] in ("OK", "ERROR")}
    assert services == {"memberdata"}
