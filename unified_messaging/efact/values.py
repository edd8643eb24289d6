"""The values written in eFact zones: check digits (mod 97), control numbers, amounts, dates."""
from __future__ import annotations

from datetime import date
from functools import lru_cache

from unified_messaging.texts import Text, message, text


def _value_table() -> bytes:
    table = bytearray([37] * 256)
    for digit in range(10):
        table[ord("0") + digit] = digit
    table[ord(" ")] = 10
    for position in range(26):
        table[ord("a") + position] = 11 + position
        table[ord("A") + position] = 11 + position
    return bytes(table)


_CHARACTER_VALUES = _value_table()


def record_check_sum(record: bytes | str) -> int:
    """The sum of the character values of the first 348 characters of a record."""
    raw = record.encode("latin-1") if isinstance(record, str) else record
    return sum(raw[:348].translate(_CHARACTER_VALUES))


def mod97_digits(total: int) -> str:
    """Two check digits: ``total`` mod 97, written 97 when the remainder is 0."""
    remainder = total % 97
    return f"{remainder or 97:02d}"


def record_check_digits(record: bytes | str) -> str:
    """Zone 99 of a record 10..90, computed from its first 348 characters."""
    return mod97_digits(record_check_sum(record))


def control_number(nomenclature_total: int) -> str:
    """Zone 98 (80/90), 410 (95) or 510 (96): the nomenclature codes' sum mod 97 (0 written 97)."""
    return mod97_digits(nomenclature_total)


def digits_match(written: str, total: int) -> bool:
    """True when ``written`` is the mod-97 digits of ``total``.

    For a remainder of 0 the documentation says 97; no real file shows that case, so ``00`` is
    accepted too rather than refusing a file the insurers might take.
    """
    if written == mod97_digits(total):
        return True
    return total % 97 == 0 and written == "00"


def parse_amount(text: str) -> int | None:
    """A signed amount zone (sign + digits, in cents) as an int, or None when malformed."""
    if len(text) < 2 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    value = int(text[1:])
    return -value if text[0] == "-" else value


def format_amount(cents: int, digits: int = 11) -> str:
    """The zone text of an amount in cents: sign + ``digits`` digits."""
    sign = "-" if cents < 0 else "+"
    return f"{sign}{abs(cents):0{digits}d}"


_EUROS = message("{units}.{cents} EUR")  # nl and fr write a decimal comma


def euros(cents: int) -> Text:
    """An amount as a text (``str()``: ``-12.34 EUR``), so that each language writes its own decimal mark."""
    sign = "-" if cents < 0 else ""
    return text(_EUROS, units=f"{sign}{abs(cents) // 100}", cents=f"{abs(cents) % 100:02d}")


@lru_cache(maxsize=4096)
def valid_date(text: str) -> bool:
    if len(text) != 8 or not text.isdigit():
        return False
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def valid_month(text: str) -> bool:
    return len(text) == 6 and text.isdigit() and 1 <= int(text[4:6]) <= 12
