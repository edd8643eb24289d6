"""The writers: generated 920000 sendings and the five feedback messages, read back identically
and shaped like the real files."""
from __future__ import annotations

from decimal import Decimal

import pytest

from unified_messaging.identifiers import ssin_problem
from unified_messaging.efact.layout import HEADER_LENGTH, RECORD_LENGTH, SEGMENT_200_ZONES
from unified_messaging.efact.units import read_sending
from unified_messaging.efact.validator import validate_bytes
from unified_messaging.efact.feedback import FileStatus, read_feedback
from unified_messaging.simulator.feedback_writer import (
    HeaderError,
    build_920098,
    build_920099,
    build_920900,
    build_920999,
    build_931000,
    first_index,
    slot,
)
from unified_messaging.simulator.sending_writer import Defect, SendingSpec, build_sending, spec_for_size
from tests.conftest import reference_path as reference



SPEC = SendingSpec(zone_204="20240301000042", mutualities=("131", "216"),
                   invoices_per_mutuality=2, lines_per_invoice=2, eid_records=True,
                   line_amount=1250, sending_number=42, invoicing_month="202402")


@pytest.fixture(scope="module")
def sending() -> bytes:
    return build_sending(SPEC)


def records_of(data: bytes, size: int, start: int) -> list[str]:
    text = data.decode("latin-1")
    return [text[i:i + size] for i in range(start, len(text), size)]


def plus_positions(record: str) -> set[int]:
    return {i for i, char in enumerate(record) if char == "+"}


# --- 920000 ------------------------------------------------------------------------------------


def test_generated_sending_reads_back_as_specified(sending):
    report = validate_bytes(sending, expect_test=True)
    summary = report.summary

    assert report.issues == []
    assert len(sending) == SPEC.size
    assert (summary.zone_204, summary.is_test, summary.sending_number, summary.invoicing_month) == (
        "20240301000042", True, "042", "202402")
    assert summary.invoices == 4 and summary.service_lines == 8
    assert [(m.mutuality, m.invoices, m.total) for m in summary.mutualities] == [
        ("131", 2, 5000), ("216", 2, 5000)]
    assert (summary.total_a, summary.total_b, summary.total) == (10000, 0, 10000)
    assert summary.federation == "199"


def test_generated_record_layout(sending):
    units = read_sending(sending)
    types = [u.record_type for u in units]
    assert types[:3] == ["200", "300", "10"]
    assert types[3:10] == ["20", "50", "52", "50", "52", "80", "20"]
    assert types[-4:] == ["90", "95", "95", "96"]
    assert all(len(u.text) == RECORD_LENGTH for u in units[2:])
    assert [u.text[2:8] for u in units[2:-3]] == [f"{n:06d}" for n in range(1, len(units) - 4)]
    for unit in units:
        if unit.record_type in ("20", "50", "80"):
            assert unit.text[35:37] == "00" and ssin_problem(unit.text[37:48]) is None


def test_production_sending():
    data = build_sending(SendingSpec(is_test=False))
    assert data[12:14] == b"12"
    assert validate_bytes(data, expect_test=False).issues == []


@pytest.mark.parametrize("defect, where", [
    (Defect.ZONE_99, ("50", "99")),
    (Defect.CONTROL_NUMBER, ("80", "98")),
    (Defect.HEADER, ("300", "300")),
    (Defect.BLOCKING, ("50", "5")),
])
def test_each_defect_gives_exactly_its_error(defect, where):
    report = validate_bytes(build_sending(SendingSpec(defects=frozenset({defect}))),
                            expect_test=True)
    assert [(i.record_type, i.zone) for i in report.errors] == [where]


def test_spec_for_size():
    spec = spec_for_size(1_000_000, mutualities=("131", "216"), lines_per_invoice=3)
    assert 1_000_000 <= spec.size < 1_000_000 + 2 * spec.records_per_invoice * RECORD_LENGTH
    assert len(build_sending(spec)) == spec.size


def test_bad_specs():
    with pytest.raises(ValueError):
        SendingSpec(zone_204="123")
    with pytest.raises(ValueError):
        SendingSpec(mutualities=("131", "131"))
    with pytest.raises(ValueError):
        SendingSpec(nomenclature="12345")


@pytest.mark.reference
def test_generated_sending_has_the_shape_of_a_real_one(sending):
    real = reference("efact", "outgoing", "TFAC1SC09.509E").read_bytes()
    ours, theirs = read_sending(sending), read_sending(real)

    for zone in SEGMENT_200_ZONES:
        assert zone.error_code(ours[0].text) == zone.error_code(theirs[0].text) == "00"
    assert ours[1].text[38:45] == theirs[1].text[38:45] == "9991999"
    assert ours[1].text[132:140] == theirs[1].text[132:140]

    def first(units, kind):
        return next(u.text for u in units if u.record_type == kind)

    for kind in ("95", "96"):
        assert plus_positions(first(ours, kind)) == plus_positions(first(theirs, kind)) == {23, 37, 51}
        assert first(ours, kind)[79:] == first(theirs, kind)[79:] == " " * 271
    for kind in ("80", "90"):
        assert {67, 87} <= plus_positions(first(ours, kind)) & plus_positions(first(theirs, kind))


# --- feedback ----------------------------------------------------------------------------------


def test_931000_round_trip(sending):
    message = read_feedback(build_931000(sending, zone_205="00000010122494"))
    assert message.code == "931000" and message.length == HEADER_LENGTH
    assert message.zone_204 == "20240301000042"
    assert message.header.zone_205 == "00000010122494"
    assert message.header.acknowledged_message == "920000"
    assert message.header.is_test
    assert message.status is FileStatus.ONGOING
    assert message.records == () and message.zone_errors == ()


def test_920098_round_trip(sending):
    line = first_index(sending, "50")
    errors = {line: [slot("R", "50", 24, 5)], line + 1: ["R050000"]}
    message = read_feedback(build_920098(sending, errors, error_percentage="16.66"))

    assert message.code == "920098" and message.status is FileStatus.ONGOING
    assert message.header.error_percentage == Decimal("16.66")
    assert message.header.error_percentage_raw == "01666"
    assert message.header.refusal_type == "00"
    assert message.record_types == ["10", "20", "50", "52", "80", "90"]
    assert [(s.code, s.slot) for s in message.error_slots] == [("R502405", 1), ("R050000", 1)]
    original = read_sending(sending)
    by_sequence = {u.text[2:8]: u.text for u in original if u.kind == "record"}
    assert all(r.original == by_sequence[r.sequence] for r in message.records)
    assert message.length == 677 + 6 * 800


def test_920098_without_errors_echoes_only_the_frame(sending):
    message = read_feedback(build_920098(sending))
    assert message.record_types == ["10", "90"]
    assert message.error_slots == ()
    assert message.header.error_percentage == 0


def test_920099_round_trip(sending):
    line = first_index(sending, "50")
    blocking = read_feedback(build_920099(sending, {0: ["B100720", "B102702", "B103103"]}))
    too_many = read_feedback(build_920099(sending, {line: ["R502405"]}, refusal_type="02",
                                          error_percentage=Decimal("66.67")))

    assert blocking.status is too_many.status is FileStatus.NOK
    assert blocking.header.refusal_type == "01" and too_many.header.refusal_type == "02"
    assert [s.slot for s in blocking.error_slots] == [1, 2, 3]
    assert blocking.record_types == ["10", "90"]
    assert too_many.header.error_percentage_raw == "06667"
    assert blocking.header.error_percentage_raw == f"{round(100 * 100 / 26):05d}"  # 1 of the 26 records 10..90


def test_920999_round_trip(sending):
    errors = [HeaderError("301", "40"), HeaderError("204", "20"), HeaderError("410", "20", "216"),
              HeaderError("501", "20")]
    data = build_920999(sending, errors)
    message = read_feedback(data)

    assert message.code == "920999" and message.status is FileStatus.NOK
    assert len(data) == HEADER_LENGTH + 2 * RECORD_LENGTH
    assert message.record_types == ["95", "96"]
    assert message.records[0].original[4:7] == "216"
    assert sorted((e.segment, e.zone, e.code) for e in message.zone_errors) == [
        ("200", "204", "20"), ("300", "301", "40"), ("95", "410", "20"), ("96", "501", "20")]


def test_920900_round_trip(sending):
    units = read_sending(sending)
    line = first_index(sending, "50")
    second_invoice = [u.index for u in units if u.record_type == "20"][1]
    errors = {line: ["R502255"], second_invoice: ["F200820"]}
    message = read_feedback(build_920900(sending, errors))

    assert message.code == "920900" and message.status is FileStatus.DONE
    first, second = message.settlements
    assert (first.mutuality, first.requested_total, first.rejected_total,
            first.accepted_total) == ("131", 5000, 1250 + 2500, 5000 - 3750)
    assert second.rejected_total == 0
    assert first.payment_reference == "042/202402/131/"
    total = message.settlement_total
    assert (total.requested_total, total.rejected_total, total.accepted_total) == (10000, 3750, 6250)
    assert message.record_types[-3:] == ["91", "91", "92"]


def test_920900_with_explicit_amounts_and_reference(sending):
    message = read_feedback(build_920900(sending, rejected={"216": 700},
                                         payment_reference="900/202402/900/"))
    assert [s.rejected_total for s in message.settlements] == [0, 700]
    assert {s.payment_reference for s in message.settlements} == {"900/202402/900/"}
    assert message.error_slots == ()


def test_builders_refuse_bad_requests(sending):
    line = first_index(sending, "50")
    with pytest.raises(ValueError, match="error slot"):
        build_920098(sending, {line: ["X502405"]})
    with pytest.raises(ValueError, match="3 error slots"):
        build_920098(sending, {line: ["R502405"] * 4})
    with pytest.raises(ValueError, match="920999"):
        build_920099(sending, {first_index(sending, "96"): ["B960102"]})
    with pytest.raises(ValueError, match="no record"):
        build_920098(sending, {999: ["R502405"]})
    with pytest.raises(ValueError, match="refusal type"):
        build_920099(sending, refusal_type="03")
    with pytest.raises(ValueError, match="at least one"):
        build_920999(sending, [])
    with pytest.raises(ValueError, match="920000"):
        build_931000(build_931000(sending))
    with pytest.raises(ValueError):
        slot("R", "50", 24, "5")


# --- the same shape as the real feedback -------------------------------------------------------


def _feedback(name: str) -> bytes:
    return reference("efact", "feedback", name).read_bytes()


@pytest.mark.reference
def test_931000_is_the_real_one_but_for_the_references():
    real = _feedback("931000_20240207390060_1.txt").decode()
    sending = build_sending(SendingSpec(zone_204=real[20:34]))
    ours = build_931000(sending, zone_205=real[36:50]).decode()
    assert ours == real


@pytest.mark.reference
def test_detailed_feedback_has_the_real_layout(sending):
    real = _feedback("920900_20240312357767_1.txt").decode()
    ours = build_920900(sending, {first_index(sending, "50"): ["R502255"]}).decode()

    for text in (real, ours):
        assert (len(text) - 677) % 800 == 0
        assert text[67 + 145:67 + 147] == "00" and text[67 + 149:67 + 151] == "00"
        assert text[67 + 151:677].strip() == ""
    real_records, our_records = records_of(real.encode(), 800, 677), records_of(ours.encode(), 800, 677)
    real_50 = next(r for r in real_records if r[:2] == "50")
    our_50 = next(r for r in our_records if r[:2] == "50")
    for record in (real_50, our_50):
        assert record[456] == "R" and record[463:470] == record[470:477] == " 000000"
        assert record[794:800].isdigit()
    assert real_records[0][794:800] == our_records[0][794:800] == "111111"
    real_91 = next(r for r in real_records if r[:2] == "91")
    our_91 = next(r for r in our_records if r[:2] == "91")
    assert plus_positions(real_91) == plus_positions(our_91)
    assert [i for i, c in enumerate(real_91) if c == "/"][:3] == \
        [i for i, c in enumerate(our_91) if c == "/"][:3]
    real_92 = next(r for r in real_records if r[:2] == "92")
    our_92 = next(r for r in our_records if r[:2] == "92")
    assert plus_positions(real_92) == plus_positions(our_92)
    assert real_92[163:].strip() == our_92[163:].strip() == ""


@pytest.mark.reference
def test_920999_has_the_real_layout():
    real = _feedback("920999_20240131803654_1.txt").decode()
    ours = build_920999(build_sending(SendingSpec(zone_204=real[20:34])),
                        [HeaderError("501", "20")]).decode()
    assert len(ours) == len(real) == 577
    assert ours[:20] == real[:20]
    assert ours[52:67] == real[52:67]
    assert ours[227:229] == real[227:229] == "96" and ours[234:236] == real[234:236] == "20"


@pytest.mark.reference
@pytest.mark.parametrize("name", ["TFAC1SC09.509E", "TFAC1SC13.519E"])
def test_feedback_for_a_real_sending(name):
    real = reference("efact", "outgoing", name).read_bytes()
    line = first_index(real, "50")
    settlement = read_feedback(build_920900(real, {line: ["R502255"]}))
    assert settlement.zone_204 == real[20:34].decode()
    assert settlement.settlements[0].requested_total == 1942
    assert settlement.settlements[0].rejected_total == 1942
    assert settlement.settlements[0].control == real.decode()[-350 * 2 + 75:-350 * 2 + 77]
    assert read_feedback(build_931000(real)).zone_204 == real[20:34].decode()
