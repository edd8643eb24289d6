"""Requests filled into zeep's templates are byte for byte the ones zeep renders itself.

``mycarenet.templates`` renders a request once per shape with zeep and fills the texts in on every
call; these tests build each shape of GetInsurability request both ways (the client's own values,
from real queries) and compare the serialised envelopes, including texts XML must escape.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

import pytest
from lxml import etree

from unified_messaging.domain.insurability import CareProvider, ContactType, InsurabilityQuery, RequestType
from unified_messaging.mycarenet import templates
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient

LAB = CareProvider("81234530998", "labo")
BASE = InsurabilityQuery(LAB, date(2025, 10, 1), date(2025, 10, 31), ssin="85073003328")

QUERIES = {
    "ssin": BASE,
    "mutuality and registration number": replace(BASE, ssin=None, mutuality="131", registration_number="1234567"),
    "with a reference": replace(BASE, reference="LAB/2025-10 (B'12)"),
    "hospitalised, invoicing": replace(BASE, contact_type=ContactType.HOSPITALIZED_FOR_DAY, request_type=RequestType.INVOICING),
    "another quality": replace(BASE, care_provider=CareProvider("12345678901", "nurse")),
    "a hospital": replace(BASE, care_provider=CareProvider("71000436000", "hospital")),
    "an early date": replace(BASE, period_start=date(999, 1, 2), period_end=date(999, 1, 3)),
}


def both(client: GenericInsurabilityClient, query: InsurabilityQuery, reference: int) -> tuple[bytes, bytes]:
    values = client._request_values(query, reference)
    filled = client._templates.envelope(values)
    rendered = client._templates.render_with_zeep(values)
    return etree.tostring(filled, encoding="UTF-8"), etree.tostring(rendered, encoding="UTF-8")


@pytest.mark.parametrize("is_test", [True, False])
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_a_filled_template_is_the_request_zeep_renders(name: str, is_test: bool) -> None:
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="um-test",
                                       licence_password='p<w>&"\'\r\n\tx', is_test=is_test)
    for reference in (17650000000001, 17650000000002):  # the second call fills the kept template
        filled, rendered = both(client, QUERIES[name], reference)
        assert filled == rendered
        assert str(reference).encode() in filled
    assert len(client._templates._templates) == 1


def test_each_shape_has_its_template_and_none_mixes_values() -> None:
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="um-test",
                                       licence_password="pw")
    for number, name in enumerate(sorted(QUERIES)):
        filled, rendered = both(client, QUERIES[name], 17650000000100 + number)
        assert filled == rendered
    assert b"UMSLOT" not in filled
    assert 2 <= len(client._templates._templates) < len(QUERIES)


def test_a_text_xml_cannot_hold_is_refused_by_zeep_as_before() -> None:
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="um\x01test",
                                       licence_password="pw")
    with pytest.raises(ValueError, match="XML compatible"):
        client.create_message(BASE, 17650000000200)
    assert client._templates._templates == {}


def test_threads_fill_templates_at_once_each_with_its_own_parser() -> None:
    """16 threads build envelopes together: each gets the request zeep renders for its own query,
    and no two threads share a parser (lxml makes threads queue for a shared one)."""
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="um-test",
                                       licence_password="pw")
    names = sorted(QUERIES)
    parsers: dict[int, object] = {}  # the parsers themselves: an id is unique only while alive
    mismatches: list[str] = []
    start = threading.Barrier(16)

    def build(number: int) -> None:
        start.wait()
        for round_ in range(20):
            name = names[(number + round_) % len(names)]
            filled, rendered = both(client, QUERIES[name], 17650000001000 + number * 100 + round_)
            if filled != rendered:
                mismatches.append(name)
        parsers[threading.get_ident()] = templates._parser()

    threads = [threading.Thread(target=build, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []
    assert len(parsers) == 16 and len({id(parser) for parser in parsers.values()}) == 16
    assert templates._parser() is templates._parser()
