"""The layout of the eFact 920000 sending (the monthly invoice file): record types, zones, slices.

The file is one line of fixed-width text: segment 200 (67 characters), segment 300 (160), then
records of 350 characters.  Records 10 to 90 carry a sequence number and check digits (zone 99);
the summaries 95 (one per mutuality) and 96 (the federation) are *segments* 400 and 500 written
in a 350-character slot: they carry error-code zones instead of check digits.

Layout facts verified against the real files in ``shared/reference/efact`` (0-based offsets,
end exclusive, inside a record):

* zone 99 of records 10..90 = [348:350], the sum of the character values of [0:348] mod 97
  (digit = value, space = 10, a-z/A-Z = 11..36, anything else = 37), written 97 when 0;
* the control number (zone 98 of records 80 and 90 = [346:348], zone 410 of a 95 and zone 510
  of the 96 = [75:77]) is the sum of the nomenclature codes (zone 4 = [9:16]) of the records
  50, 51 and 52 concerned, mod 97;
* amounts are a sign and 11 digits in cents: records 80/90 zone 19 (account A) = [87:99] and
  zone 15 (account B) = [67:79]; summaries 95/96: A = [23:35], B = [37:49], A+B = [51:63].

The check digits and amounts themselves are computed in :mod:`.values`.
"""
from __future__ import annotations

from dataclasses import dataclass

SENDING_CODE = "920000"
FEEDBACK_CODES = ("931000", "920098", "920099", "920999", "920900")
SEGMENT_200_LENGTH = 67
SEGMENT_300_LENGTH = 160
HEADER_LENGTH = SEGMENT_200_LENGTH + SEGMENT_300_LENGTH
RECORD_LENGTH = 350
TEST_MARKER = "92"
PRODUCTION_MARKER = "12"

CHECKED_RECORD_TYPES = frozenset({"10", "20", "50", "51", "52", "80", "90"})
LINE_RECORD_TYPES = frozenset({"50", "51", "52"})
SUMMARY_RECORD_TYPES = frozenset({"95", "96"})
RECORD_TYPES = CHECKED_RECORD_TYPES | SUMMARY_RECORD_TYPES

RECORD_NAMES = {
    "10": "sending header",
    "20": "invoice header",
    "50": "service line",
    "51": "tarification record",
    "52": "identity-reading record",
    "80": "invoice footer",
    "90": "sending footer",
    "95": "mutuality summary",
    "96": "federation summary",
}


@dataclass(frozen=True)
class Zone:
    """One zone of a segment: its number, slice and the 2-digit error-code zone that follows it."""

    number: str
    start: int
    end: int
    label: str
    error_at: int | None = None

    def value(self, text: str) -> str:
        return text[self.start:self.end]

    def error_code(self, text: str) -> str | None:
        if self.error_at is None:
            return None
        return text[self.error_at:self.error_at + 2]

    @property
    def error_zone(self) -> str:
        """The name of the error-code zone, e.g. ``2041`` after zone 204."""
        return f"{self.number}1"


SEGMENT_200_ZONES = (
    Zone("200", 0, 6, "message name", 6),
    Zone("201", 8, 10, "version", 10),
    Zone("202", 12, 14, "test/production type", 14),
    Zone("203", 16, 18, "status", 18),
    Zone("204", 20, 34, "sender's reference", 34),
    Zone("205", 36, 50, "insurer's reference", 50),
)

SEGMENT_300_ZONES = (
    Zone("300", 0, 6, "invoicing year and month", 6),
    Zone("301", 8, 11, "sending number", 11),
    Zone("302", 13, 21, "creation date", 21),
    Zone("303", 23, 36, "sender's file reference", 36),
    Zone("304", 38, 45, "version of the instructions", 45),
    Zone("305", 47, 92, "contact last name", 92),
    Zone("306", 94, 118, "contact first name", 118),
    Zone("307", 120, 130, "contact phone", 130),
    Zone("308", 132, 134, "invoice type", 134),
    Zone("309", 136, 138, "invoicing type", 138),
)

# The extended segment 300 of 920098/920099/920900 (610 characters) adds zones 310 and 311.
EXTENDED_300_ZONES = SEGMENT_300_ZONES + (
    Zone("310", 140, 145, "error percentage (hundredths)", 145),
    Zone("311", 147, 149, "refusal type", 149),
)
EXTENDED_300_LENGTH = 610


def summary_zones(base: int) -> tuple[Zone, ...]:
    """Zones of a summary segment: 95 and 91 use base 400, 96 and 92 use base 500."""
    return (
        Zone(f"{base}", 0, 2, "record type", 2),
        Zone(f"{base + 1}", 4, 7, "mutuality number", 7),
        Zone(f"{base + 2}", 9, 21, "summary invoice number", 21),
        Zone(f"{base + 4}", 23, 35, "amount requested, account A", 35),
        Zone(f"{base + 6}", 37, 49, "amount requested, account B", 49),
        Zone(f"{base + 8}", 51, 63, "amount requested, A + B", 63),
        Zone(f"{base + 9}", 65, 73, "number of records", 73),
        Zone(f"{base + 10}", 75, 77, "control number", 77),
    )


def settlement_zones(base: int) -> tuple[Zone, ...]:
    """Zones a settlement record (91 = base 400, 92 = base 500) adds after the summary zones."""
    return (
        Zone(f"{base + 12}", 79, 91, "amount accepted, account A", 91),
        Zone(f"{base + 14}", 93, 105, "amount rejected, account A", 105),
        Zone(f"{base + 16}", 107, 119, "amount accepted, account B", 119),
        Zone(f"{base + 18}", 121, 133, "amount rejected, account B", 133),
        Zone(f"{base + 20}", 135, 147, "total accepted, A + B", 147),
        Zone(f"{base + 22}", 149, 161, "total rejected, A + B", 161),
        Zone(f"{base + 23}", 163, 185, "payment reference, account A", 185),
        Zone(f"{base + 24}", 187, 209, "payment reference, account B", 209),
    )


SEGMENT_95_ZONES = summary_zones(400)
SEGMENT_96_ZONES = summary_zones(500)

# Fixed offsets inside the records 10..90 (zone numbers of the official layouts).
SEQUENCE = slice(2, 8)
NOMENCLATURE = slice(9, 16)          # 50/51/52 zone 4
SERVICE_DATE = slice(16, 24)         # 50 zone 5
AFFILIATION_MUTUALITY = slice(32, 35)  # 20/50/80 zone 7
SENDING_NUMBER = slice(32, 35)       # 10/90 zone 7
THIRD_PARTY = slice(55, 67)          # 10 zone 14: the third-party payer number, 0 + the sender's NIHII
COMPANY_NUMBER = slice(127, 137)     # 10 zone 27: the sender's CBE (enterprise) number
DESTINATION_MUTUALITY = slice(84, 87)  # 80 zone 18
AMOUNT_B = slice(67, 79)             # 80/90 zone 15
AMOUNT_A = slice(87, 99)             # 80/90 zone 19, 50 zone 19 (line amount)
CONTROL_98 = slice(346, 348)
CHECK_99 = slice(348, 350)
SUMMARY_MUTUALITY = slice(4, 7)
SUMMARY_AMOUNT_A = slice(23, 35)
SUMMARY_AMOUNT_B = slice(37, 49)
SUMMARY_TOTAL = slice(51, 63)
SUMMARY_COUNT = slice(65, 73)
SUMMARY_CONTROL = slice(75, 77)
