"""#15 point 5: the qualities as data. Per quality of the table: the claims asked of the STS and
those the (real, simulated) STS certifies, the shape of Origin/CareProvider in a real request
(checked against the official schema when ../shared is there), the services it may use; then a
new profession added by data alone, and a broken table refused naming the key."""
from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from tests.conftest import make_config, official_schema, reference_path
from unified_messaging.config import ConfigError
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.gateway import Gateway
from unified_messaging.mycarenet import qualities
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.mycarenet.qualities import QualityTable, QualityTableError
from unified_messaging.mycarenet.sts import StsClient, claims_for
from unified_messaging.securespace.models import Service
from unified_messaging.securespace.rules import quality_allowed
from unified_messaging.simulator.devpki import ehealth_subject
from unified_messaging.simulator.platform import STS_PATH

TABLE = QualityTable.load()
PERSON_SSIN = "85073003328"
NIHII11 = "12345678901"
NS = "urn:be:fgov:ehealth:genericinsurability:core:v1"


def _entry(pki, name: str, holder: str):
    """A certificate of the dev CA for a holder of quality ``name``, read back as a key entry."""
    tag = f"NIHII-{name.upper()}"
    subject = (ehealth_subject(f"SSIN={PERSON_SSIN}", "Test Person", f"{tag}={NIHII11}") if holder == "person"
               else ehealth_subject(f"{tag}={NIHII11[:8]}", f"Test {name}"))
    now = dt.datetime.now(dt.timezone.utc)
    entry = pki.ca().ehealth_entries(subject, not_before=now - dt.timedelta(days=1),
                                   not_after=now + dt.timedelta(days=30))[0]
    assert entry.identity.quality == name, entry.identity
    return entry


@pytest.fixture(autouse=True)
def built_in_table():
    qualities.install(TABLE)
    yield
    qualities.install(TABLE)


@pytest.mark.parametrize("name", TABLE.names)
def test_each_quality_is_asked_of_and_certified_by_the_sts_as_its_row_says(pki, platform, name):
    quality = TABLE.get(name)
    entry = _entry(pki, name, quality.holder)
    claims = claims_for(entry.identity)
    assert [c.uri for c in claims] == [rule.uri for rule in quality.claims]
    assert all(name in c.uri for c in claims[2 if quality.holder == "person" else 0:])
    assert all((c.value is not None) == rule.identifies for c, rule in zip(claims, quality.claims))
    token = StsClient(platform.url + STS_PATH).request_token(entry)
    holder_value = PERSON_SSIN if quality.holder == "person" else NIHII11[:8]
    expected = {"holder": holder_value, "true": "true", "nihii": NIHII11}
    for rule in quality.claims:
        assert token.attribute(rule.uri) == expected[rule.value], rule.uri


@pytest.mark.parametrize("name", TABLE.names)
def test_each_quality_names_the_care_provider_in_the_shape_of_its_row(name):
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="u", licence_password="p")
    try:
        query = InsurabilityQuery(CareProvider(NIHII11, name), dt.date.today(), dt.date.today(), ssin=PERSON_SSIN)
        envelope = etree.fromstring(client.create_message(query, 1)[0])
    finally:
        client.close()
    provider = envelope.find(f".//{{{NS}}}Origin/{{{NS}}}CareProvider")
    children = [etree.QName(child).localname for child in provider]
    shape = TABLE.get(name).care_provider
    assert children == {"nihii": ["Nihii"], "nihii+person": ["Nihii"],  # the person's SSIN is not known here
                        "nihii+organization": ["Nihii", "Organization"]}[shape]
    assert provider.findtext(f"{{{NS}}}Nihii/{{{NS}}}Quality") == name


def test_an_organisation_care_provider_is_valid_against_the_official_schema():
    schema = official_schema(reference_path("schemas", "genericinsurability", "gen_ins_services_protocol-1_0.xsd"))
    client = GenericInsurabilityClient("http://127.0.0.1:9/genins", licence_username="u", licence_password="p")
    try:
        query = InsurabilityQuery(CareProvider(NIHII11, "medicalhouse"), dt.date.today(), dt.date.today(),
                                  ssin=PERSON_SSIN)
        envelope = etree.fromstring(client.create_message(query, 1)[0])
    finally:
        client.close()
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    schema.assertValid(body[0])


@pytest.mark.parametrize("name", TABLE.names)
def test_each_quality_may_use_the_services_its_row_lists(name):
    row = TABLE.get(name)
    for service in Service:
        assert quality_allowed(name, service) == (service.value.lower() in row.services), (name, service)


def test_a_new_profession_is_a_data_change(tmp_path, pki, platform):
    text = QualityTable.load().source
    custom = tmp_path / "qualities.toml"
    custom.write_text(open(text, encoding="utf-8").read() + (
        '\n[quality.logopedist]\nholder = "person"\ncare_provider = "nihii+person"\nservices = ["insurability"]\n'),
        encoding="utf-8")
    gateway = Gateway(make_config(tmp_path, identity={"qualities_file": str(custom)}, invoicing={"enabled": False},
                                  folders={"insurability": False}))
    try:
        gateway.open_service()  # installs the configured table
        entry = _entry(pki, "logopedist", "person")
        token = StsClient(platform.url + STS_PATH).request_token(entry)
        assert token.attribute("urn:be:fgov:person:ssin:ehealth:1.0:professional:logopedist:boolean") == "true"
        assert quality_allowed("logopedist", Service.INSURABILITY)
        assert not quality_allowed("logopedist", Service.INVOICING)
    finally:
        gateway.stop()


@pytest.mark.parametrize("addition, words", [
    ('[quality.x]\nholder = "robot"\ncare_provider = "nihii"\n', "holder = 'robot'"),
    ('[quality.x]\nholder = "person"\ncare_provider = "nihii"\nservices = ["dialysis"]\n', "services ['dialysis']"),
    ('[quality.x]\nholder = "person"\ncare_provider = "nihii"\nclaims = [{ uri = "u" }]\n', "each claim needs uri"),
    ("[quality.x\n", "is not valid TOML"),
])
def test_a_broken_table_stops_start_up_naming_the_key(tmp_path, addition, words):
    broken = tmp_path / "qualities.toml"
    broken.write_text(open(TABLE.source, encoding="utf-8").read() + "\n" + addition, encoding="utf-8")
    with pytest.raises(QualityTableError, match="qualities"):
        QualityTable.load(broken)
    gateway = Gateway(make_config(tmp_path, identity={"qualities_file": str(broken)}))
    with pytest.raises(ConfigError) as refused:
        gateway.open_service()
    gateway.stop()
    assert "[identity] qualities_file" in str(refused.value) and words in str(refused.value)
