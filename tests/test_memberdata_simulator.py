"""The simulated MemberData service (#12 point 5): its security gate, its own checks answered with
the codes of ``reference/errors/MemberDataErrors.json`` (read there, never copied)."""
from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.conftest import reference_path
from tests.test_memberdata_client import client, sample_query
from unified_messaging.mycarenet.memberdata_saml import SAML_NS
from unified_messaging.simulator import memberdata as simulated
from unified_messaging.simulator.memberdata import MEMBERDATA_PATH, Question, read_subject

TODAY = date(2026, 1, 7)


def question(change=lambda query: None, **query_changes) -> Question:
    payload, _ = client().create_message(sample_query(**query_changes), 1)
    request = etree.fromstring(payload)[1][0]
    parsed = Question.read(request)
    change(parsed.query)
    return parsed


def set_issuer(value):
    return lambda query: setattr(query.find(f"{{{SAML_NS}}}Issuer"), "text", value)


@pytest.mark.parametrize("made, detail", [
    (lambda: question(), None),
    (lambda: question(set_issuer("40000000000")), "CROSSCHECK_ISSUER"),
    (lambda: question(lambda q: q.set("ID", "_other")), "CROSSCHECK_ID"),
    (lambda: question(lambda q: q.remove(q.find(f"{{{SAML_NS}}}Issuer"))), "MISSING_ISSUER_TAG"),
    (lambda: question(ssin="0001131765"), "INVALID_INSS_FORMAT"),
    (lambda: question(ssin="00011317653"), "INVALID_INSS_VALUE"),
    (lambda: question(ssin=None, mutuality="999", registration_number="1"), "INVALID_IO_VALUE"),
    (lambda: question(period_start=date(2026, 2, 1), period_end=date(2026, 2, 2)), "START_DATE_IN_FUTURE"),
    (lambda: question(period_start=date(2019, 1, 1), period_end=date(2019, 1, 2)), "PERIOD_TOO_FAR_IN_PAST"),
], ids=["ok", "issuer", "id", "no-issuer", "inss-format", "inss-check", "io", "future", "past"])
def test_memberdata_simulator_checks_the_attribute_query(made, detail):
    outcome = read_subject(made(), TODAY)
    if detail is None:
        assert outcome.ssin == "00011317652" and (outcome.request_type, outcome.contact_type) == ("information",
                                                                                                  "other")
    else:
        assert outcome.detail_code == detail


def test_memberdata_simulator_codes_are_the_platforms():
    official = {(e["subCode"].rsplit(":", 1)[-1], e["faultCode"], e["detailCode"])
                for e in json.loads(reference_path("errors", "MemberDataErrors.json").read_text(encoding="utf-8"))}
    source = ast.parse(Path(simulated.__file__).read_text(encoding="utf-8"))
    used = set()
    for node in ast.walk(source):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_fault", "_input"):
            texts = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if node.func.id == "_fault" and len(texts) < 3:
                continue  # _input's own call, with the detail code as a parameter
            used.add(tuple(texts[:3]) if node.func.id == "_fault" else ("AttributeQueryError", "INPUT_ERROR", texts[0]))
    assert len(used) > 25
    assert used <= official, used - official


def test_memberdata_simulator_refuses_an_unsigned_request(platform):
    payload, headers = client().create_message(sample_query(), 1)
    answer = requests.post(platform.url + MEMBERDATA_PATH, data=payload, headers=headers, timeout=10)
    assert answer.status_code == 500 and b"SIM-SEC-01" in answer.content
    assert platform.simulator.counters["memberdata.consult"] == 0
