"""The secure space's rules, as pure functions: certificates, mandates, access lists, identifiers."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from unified_messaging.simulator.devpki import GROUP_CBE, GROUP_NUMBER, LAB_NIHII, NURSE_NIHII, NURSE_SSIN
from unified_messaging.securespace import catalogue, rules
from unified_messaging.securespace.catalogue import CATALOGUE, Refusal
from unified_messaging.securespace.models import (
    CertificateRecord, Mandate, MandateState, Party, PartyKind, Role, SecureSpace, Service, Side, User,
)

NOON = datetime(2025, 6, 15, 12, 0, tzinfo=timezone.utc)
TODAY = NOON.date()
NURSE = Party(PartyKind.NIHII, NURSE_NIHII)
LAB = Party(PartyKind.NIHII, LAB_NIHII)
GROUP = Party(PartyKind.NIHII, GROUP_NUMBER)


def certificate(kind: str = "NIHII", value: str = GROUP_NUMBER, quality: str | None = "groupofnurses", *,
                not_before: datetime = NOON - timedelta(days=100), not_after: datetime = NOON + timedelta(days=100),
                ssin: str | None = None, nihii: str | None = GROUP_NUMBER, cbe: str | None = GROUP_CBE,
                nihii11: str | None = None) -> CertificateRecord:
    return CertificateRecord(id=1, label="x", holder_name="DEV NURSING GROUP", kind=kind, value=value,
                             identifier_type="NIHII-GROUP", quality=quality, ssin=ssin, nihii=nihii, nihii11=nihii11,
                             cbe=cbe, not_before=not_before, not_after=not_after, fingerprint="f" * 64,
                             responsible_login="resp", added_at="")


def mandate(state: MandateState = MandateState.ACTIVE, service: Service = Service.INSURABILITY, *,
            mandant: Party = NURSE, mandataire: Party = GROUP, valid_from: date = TODAY - timedelta(days=10),
            valid_to: date | None = None, id: int = 7, transferred_to: int | None = None) -> Mandate:
    return Mandate(id, mandant, mandataire, service, valid_from, valid_to, state, None, transferred_to, "")


def decide(cert: CertificateRecord, mandates: list[Mandate], *, on: date = TODAY, at: datetime = NOON,
           care_provider: Party = NURSE, service: Service = Service.INSURABILITY) -> rules.Decision:
    return rules.may_act_for(cert, care_provider, service, on=on, at=at, mandates=mandates)


# ------------------------------------------------------------------ the catalogue

def test_every_refusal_code_used_in_the_package_is_in_the_catalogue():
    import pathlib
    package = pathlib.Path(catalogue.__file__).parent
    used = set()
    for path in package.glob("*.py"):
        used |= set(re.findall(r'"(SS-[A-Z-]+)"', path.read_text()))
    assert used <= set(CATALOGUE), used - set(CATALOGUE)
    assert len(CATALOGUE) >= 30
    for entry in CATALOGUE.values():
        assert entry.cause.endswith(")") or entry.cause.endswith("."), entry
        assert entry.remedy, entry


def test_a_refusal_carries_code_cause_and_remedy():
    refusal = Refusal("SS-CERT-EXPIRED", "Certificate #3 expired on 2024-01-01.")
    assert refusal.as_dict() == {
        "code": "SS-CERT-EXPIRED",
        "cause": "The certificate has expired. Certificate #3 expired on 2024-01-01.",
        "remedy": "Renew it with the eHealth certificate manager and upload the new .p12.",
    }
    assert str(refusal).startswith("SS-CERT-EXPIRED: The certificate has expired.")
    with pytest.raises(KeyError):
        Refusal("SS-NOT-A-CODE")


# ------------------------------------------------------------------ certificate for a request

def test_the_holder_may_act_for_itself_without_a_mandate():
    lab = certificate("NIHII", LAB_NIHII[:8], "labo", nihii=LAB_NIHII[:8], cbe=None)
    decision = decide(lab, [], care_provider=LAB)
    assert decision.allowed and decision.via == "holder"


def test_an_eight_digit_organisation_number_matches_its_eleven_digit_nihii():
    assert rules.same_party(Party(PartyKind.NIHII, LAB_NIHII[:8]), LAB)
    assert not rules.same_party(Party(PartyKind.NIHII, LAB_NIHII[:8]), NURSE)
    assert not rules.same_party(Party(PartyKind.CBE, GROUP_CBE), Party(PartyKind.NIHII, GROUP_CBE))


def test_a_person_certificate_is_its_holder_by_ssin_and_by_nihii():
    nurse = certificate("SSIN", NURSE_SSIN, "nurse", ssin=NURSE_SSIN, nihii=NURSE_NIHII, cbe=None)
    assert rules.holder_is(nurse, NURSE)
    assert rules.holder_is(nurse, Party(PartyKind.SSIN, NURSE_SSIN))
    assert decide(nurse, []).via == "holder"


def test_another_holder_without_mandate_is_refused():
    decision = decide(certificate(), [])
    assert decision.refusal.code == "SS-NO-MANDATE"


def test_an_active_mandate_for_the_service_allows_the_mandataire():
    active = mandate()
    decision = decide(certificate(), [active])
    assert decision.allowed and decision.via == "mandate" and decision.mandate is active


@pytest.mark.parametrize("state, code", [
    (MandateState.PROPOSED, "SS-MANDATE-PENDING"),
    (MandateState.ACCEPTED_BY_MANDANT, "SS-MANDATE-PENDING"),
    (MandateState.ACCEPTED_BY_MANDATAIRE, "SS-MANDATE-PENDING"),
    (MandateState.SUSPENDED, "SS-MANDATE-SUSPENDED"),
    (MandateState.STOPPED, "SS-MANDATE-STOPPED"),
])
def test_a_mandate_that_is_not_active_does_not_allow(state, code):
    assert decide(certificate(), [mandate(state)]).refusal.code == code


def test_a_transferred_mandate_says_where_it_went():
    refusal = decide(certificate(), [mandate(MandateState.STOPPED, transferred_to=9)]).refusal
    assert refusal.code == "SS-MANDATE-STOPPED" and "mandate #9" in refusal.cause


def test_a_mandate_for_another_service_does_not_allow():
    refusal = decide(certificate(), [mandate(service=Service.INVOICING)]).refusal
    assert refusal.code == "SS-MANDATE-OTHER-SERVICE"
    assert "INVOICING, not INSURABILITY" in refusal.cause
    assert decide(certificate(), [mandate(service=Service.INVOICING)], service=Service.INVOICING).allowed


def test_a_mandate_from_another_mandant_or_to_another_mandataire_does_not_count():
    assert decide(certificate(), [mandate(mandant=LAB)]).refusal.code == "SS-NO-MANDATE"
    assert decide(certificate(), [mandate(mandataire=LAB)]).refusal.code == "SS-NO-MANDATE"


def test_mandate_period_edges_are_inclusive():
    limited = mandate(valid_from=date(2025, 6, 1), valid_to=date(2025, 6, 30))
    assert decide(certificate(), [limited], on=date(2025, 6, 1)).allowed
    assert decide(certificate(), [limited], on=date(2025, 6, 30)).allowed
    assert decide(certificate(), [limited], on=date(2025, 5, 31)).refusal.code == "SS-MANDATE-OUT-OF-PERIOD"
    assert decide(certificate(), [limited], on=date(2025, 7, 1)).refusal.code == "SS-MANDATE-OUT-OF-PERIOD"


def test_an_open_ended_mandate_covers_any_later_date():
    assert decide(certificate(), [mandate(valid_to=None)], on=date(2099, 1, 1)).allowed


def test_the_most_useful_refusal_is_given_when_several_mandates_fail():
    mandates = [mandate(service=Service.MED_ADMIN, id=1), mandate(MandateState.STOPPED, id=2),
                mandate(MandateState.SUSPENDED, id=3)]
    assert decide(certificate(), mandates).refusal.code == "SS-MANDATE-SUSPENDED"
    assert decide(certificate(), mandates + [mandate(id=4)]).allowed


def test_certificate_validity_edges():
    cert = certificate(not_before=NOON - timedelta(days=1), not_after=NOON + timedelta(days=1))
    assert decide(cert, [mandate()], at=cert.not_before).allowed
    assert decide(cert, [mandate()], at=cert.not_after).allowed
    assert decide(cert, [mandate()], at=cert.not_after + timedelta(seconds=1)).refusal.code == "SS-CERT-EXPIRED"
    assert (decide(cert, [mandate()], at=cert.not_before - timedelta(seconds=1)).refusal.code
            == "SS-CERT-NOT-YET-VALID")


def test_an_expired_certificate_is_refused_even_for_its_own_holder():
    lab = certificate("NIHII", LAB_NIHII[:8], "labo", nihii=LAB_NIHII[:8], cbe=None,
                      not_before=NOON - timedelta(days=900), not_after=NOON - timedelta(days=30))
    assert decide(lab, [], care_provider=LAB).refusal.code == "SS-CERT-EXPIRED"


def test_expiry_warning_within_thirty_days_only():
    assert rules.expiry_warning(certificate(not_after=NOON + timedelta(days=30)), NOON).code == "SS-CERT-EXPIRING"
    assert rules.expiry_warning(certificate(not_after=NOON + timedelta(days=31)), NOON) is None
    assert rules.expiry_warning(certificate(not_after=NOON - timedelta(days=1)), NOON) is None


def test_qualities_per_service():
    assert rules.quality_allowed("labo", Service.INSURABILITY)
    assert rules.quality_allowed("labo", Service.INVOICING)
    assert not rules.quality_allowed("labo", Service.MED_ADMIN)
    assert rules.quality_allowed("nurse", Service.MED_ADMIN)
    assert not rules.quality_allowed(None, Service.INSURABILITY)


# ------------------------------------------------------------------ mandate state machine

@pytest.mark.parametrize("state, action, side, after", [
    (MandateState.PROPOSED, "accept", Side.MANDANT, MandateState.ACCEPTED_BY_MANDANT),
    (MandateState.PROPOSED, "accept", Side.MANDATAIRE, MandateState.ACCEPTED_BY_MANDATAIRE),
    (MandateState.ACCEPTED_BY_MANDANT, "accept", Side.MANDATAIRE, MandateState.ACTIVE),
    (MandateState.ACCEPTED_BY_MANDATAIRE, "accept", Side.MANDANT, MandateState.ACTIVE),
    (MandateState.ACTIVE, "suspend", None, MandateState.SUSPENDED),
    (MandateState.SUSPENDED, "resume", None, MandateState.ACTIVE),
    (MandateState.PROPOSED, "stop", None, MandateState.STOPPED),
    (MandateState.ACCEPTED_BY_MANDANT, "stop", None, MandateState.STOPPED),
    (MandateState.ACTIVE, "stop", None, MandateState.STOPPED),
    (MandateState.SUSPENDED, "stop", None, MandateState.STOPPED),
])
def test_allowed_mandate_transitions(state, action, side, after):
    assert rules.next_mandate_state(state, action, side) is after


@pytest.mark.parametrize("state, action, side", [
    (MandateState.ACCEPTED_BY_MANDANT, "accept", Side.MANDANT),
    (MandateState.ACCEPTED_BY_MANDATAIRE, "accept", Side.MANDATAIRE),
    (MandateState.ACTIVE, "accept", Side.MANDANT),
    (MandateState.PROPOSED, "suspend", None),
    (MandateState.SUSPENDED, "suspend", None),
    (MandateState.ACTIVE, "resume", None),
    (MandateState.STOPPED, "resume", None),
    (MandateState.STOPPED, "stop", None),
    (MandateState.STOPPED, "accept", Side.MANDANT),
    (MandateState.PROPOSED, "transfer", None),
    (MandateState.STOPPED, "transfer", None),
])
def test_refused_mandate_transitions(state, action, side):
    with pytest.raises(Refusal) as caught:
        rules.next_mandate_state(state, action, side)
    assert caught.value.code == "SS-MANDATE-TRANSITION"


def test_a_mandate_needs_two_different_valid_parties_and_a_sane_period():
    with pytest.raises(Refusal, match="SS-MANDATE-SAME-PARTY"):
        rules.check_new_mandate(LAB, Party(PartyKind.NIHII, LAB_NIHII[:8]), TODAY, None)
    with pytest.raises(Refusal, match="SS-BAD-DATES"):
        rules.check_new_mandate(NURSE, GROUP, TODAY, TODAY - timedelta(days=1))
    rules.check_new_mandate(NURSE, GROUP, TODAY, TODAY)


# ------------------------------------------------------------------ identifiers

def test_identifiers_are_checked():
    assert rules.parse_party(f"NIHII={NURSE_NIHII}") == NURSE
    assert rules.parse_party(NURSE_NIHII) == NURSE
    assert rules.parse_party(f"cbe={GROUP_CBE[:4]}.{GROUP_CBE[4:7]}.{GROUP_CBE[7:]}") == Party(PartyKind.CBE, GROUP_CBE)
    assert rules.parse_party(f"NIHII={GROUP_NUMBER}") == GROUP
    bad_nihii = NURSE_NIHII[:6] + f"{(int(NURSE_NIHII[6:8]) + 1) % 100:02d}" + NURSE_NIHII[8:]
    for text, code in [(f"NIHII={bad_nihii}", "SS-BAD-NIHII"), ("SSIN=12345678901", "SS-BAD-SSIN"),
                       ("CBE=0123456789", "SS-BAD-CBE"), ("RIZIV=123", "SS-BAD-IDENTIFIER")]:
        with pytest.raises(Refusal) as caught:
            rules.parse_party(text)
        assert caught.value.code == code


def test_second_series_nihii_is_accepted():
    base = "412346"
    second_series = base + f"{89 - int(base) % 89:02d}" + "404"
    assert rules.identifier_problem(Party(PartyKind.NIHII, second_series)) is None


# ------------------------------------------------------------------ users and access lists

def _user(login: str, ssin: str = NURSE_SSIN) -> User:
    return User(login, "Someone", ssin, frozenset({Role.ADMINISTRATIVE}), "")


def test_a_user_must_be_on_the_access_list_unless_owner():
    cert = certificate()
    space = SecureSpace("space", "Owner", NURSE_SSIN, "Resp", NURSE_SSIN)
    other_ssin = "85073003328"
    assert rules.may_use(_user("ann", other_ssin), cert, ["ann"], space) is None
    assert rules.may_use(_user("bob", other_ssin), cert, ["ann"], space).code == "SS-NOT-ON-ACCESS-LIST"
    assert rules.may_use(_user("owner", NURSE_SSIN), cert, [], space) is None
    assert rules.may_use(_user("owner", NURSE_SSIN), cert, [], None).code == "SS-NOT-ON-ACCESS-LIST"


def test_only_the_responsible_person_changes_the_access_list():
    cert = certificate()
    assert rules.may_change_access_list("resp", cert) is None
    assert rules.may_change_access_list("ann", cert).code == "SS-NOT-RESPONSIBLE"
