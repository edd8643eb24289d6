"""Belgian identifiers: SSIN (NISS/INSZ, including BIS numbers), NIHII (RIZIV/INAMI), CBE (KBO/BCE).

Every check returns ``None`` when the value is valid, or a short English sentence saying what is
wrong, so callers can put it straight into an answer.  ``mask_ssin`` is the only way an SSIN may
reach a log line.
"""
from __future__ import annotations

import re
from datetime import date

_DIGITS = re.compile(r"^[0-9]+$")


def _mod97_check(number: int) -> int:
    return 97 - (number % 97)


def ssin_problem(ssin: str | None) -> str | None:
    """Say what is wrong with an SSIN, or return None when it is a valid SSIN or BIS number."""
    if not ssin:
        return "The SSIN is empty; give the patient's 11-digit national number."
    if len(ssin) != 11 or not _DIGITS.match(ssin):
        return "An SSIN has exactly 11 digits; check the number on the patient's eID or ISI+ card."
    base, check = int(ssin[:9]), int(ssin[9:])
    born_1900s = _mod97_check(base) == check
    born_2000s = _mod97_check(int("2" + ssin[:9])) == check
    if not (born_1900s or born_2000s):
        return "The SSIN's check digits (last two) do not match; the number was probably mistyped."
    month = int(ssin[2:4])
    day = int(ssin[4:6])
    # BIS numbers add 20 (sex unknown) or 40 (sex known) to the month; month/day 00 means unknown.
    if month >= 40:
        month -= 40
    elif month >= 20:
        month -= 20
    if month > 12 or day > 31:
        return "The SSIN does not start with a possible birth date (YYMMDD)."
    if month and day:
        year = (2000 if born_2000s and not born_1900s else 1900) + int(ssin[:2])
        try:
            date(year, month, day)
        except ValueError:
            return "The SSIN does not start with a possible birth date (YYMMDD)."
    return None


def is_bis_number(ssin: str) -> bool:
    """A BIS number (for people not in the National Register) has 20 or 40 added to its month."""
    return len(ssin) == 11 and ssin.isdigit() and int(ssin[2:4]) >= 20


def ssin_birth_date(ssin: str) -> date | None:
    """The birth date an SSIN encodes, or None when unknown (BIS numbers may hide it)."""
    if ssin_problem(ssin):
        return None
    born_2000s = _mod97_check(int("2" + ssin[:9])) == int(ssin[9:])
    month = int(ssin[2:4]) % 20
    day = int(ssin[4:6])
    if not month or not day:
        return None
    return date((2000 if born_2000s else 1900) + int(ssin[:2]), month, day)


def make_ssin(birth: date, sequence: int) -> str:
    """Build a valid SSIN from a birth date and a 3-digit sequence (odd: male, even: female)."""
    first9 = f"{birth:%y%m%d}{sequence:03d}"
    number = int(("2" if birth.year >= 2000 else "") + first9)
    return f"{first9}{_mod97_check(number):02d}"


def nihii_problem(nihii: str | None) -> str | None:
    """Say what is wrong with an 11-digit NIHII, or return None.

    The classic series has check digits 97 - (base mod 97); numbers issued since 2012 use a
    modulo-89 rule whose exact formula is not published, so either ``97 - base mod 97`` or
    ``89 - base mod 89`` is accepted.
    """
    if not nihii:
        return "The NIHII number is empty; give the care provider's 11-digit NIHII (RIZIV/INAMI) number."
    if len(nihii) == 12 and nihii.startswith("0") and nihii.isdigit():
        nihii = nihii[1:]  # flat files write the NIHII on 12 positions
    if len(nihii) != 11 or not _DIGITS.match(nihii):
        return "A NIHII number has exactly 11 digits (6-digit base, 2 check digits, 3-digit qualification)."
    base, check = int(nihii[:6]), int(nihii[6:8])
    if check not in (_mod97_check(base), 89 - (base % 89)):
        return "The NIHII number's check digits (positions 7-8) do not match; it was probably mistyped."
    return None


def cbe_problem(cbe: str | None) -> str | None:
    """Say what is wrong with a 10-digit CBE (company) number, or return None."""
    if not cbe:
        return "The CBE number is empty; give the 10-digit enterprise number."
    cbe = cbe.replace(".", "").replace(" ", "")
    if len(cbe) != 10 or not _DIGITS.match(cbe):
        return "A CBE number has exactly 10 digits (for example 0123.456.749)."
    if _mod97_check(int(cbe[:8])) != int(cbe[8:]):
        return "The CBE number's check digits (last two) do not match; it was probably mistyped."
    return None


def mask_ssin(ssin: str | None) -> str:
    """Mask an SSIN for logs and screens: keep the birth date part, hide the rest (850730*****)."""
    if not ssin:
        return ""
    return ssin[:6] + "*" * max(len(ssin) - 6, 0)


_SSIN_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{6})([0-9]{5})(?![0-9])")


def mask_ssins_in_text(text: str) -> str:
    """Mask every 11-digit run in free text (log lines, traces) as if it were an SSIN."""
    return _SSIN_IN_TEXT.sub(lambda m: m.group(1) + "*****", text)
