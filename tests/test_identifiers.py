from datetime import date

import pytest

from unified_messaging.identifiers import (
    cbe_problem,
    is_bis_number,
    make_ssin,
    mask_ssin,
    mask_ssins_in_text,
    nihii_problem,
    ssin_birth_date,
    ssin_problem,
)


def test_ssin_born_before_2000():
    assert ssin_problem("85073003328") is None
    assert ssin_birth_date("85073003328") == date(1985, 7, 30)


def test_ssin_born_from_2000_uses_the_2_prefix():
    ssin = make_ssin(date(2003, 2, 14), 42)
    assert ssin_problem(ssin) is None
    assert ssin_birth_date(ssin) == date(2003, 2, 14)
    # the same digits checked as if born in 1903 do not match
    first9 = ssin[:9]
    assert int(ssin[9:]) != 97 - int(first9) % 97


@pytest.mark.parametrize("month_offset", [20, 40])
def test_bis_numbers(month_offset):
    first9 = f"85{7 + month_offset:02d}30033"
    ssin = first9 + f"{97 - int(first9) % 97:02d}"
    assert ssin_problem(ssin) is None
    assert is_bis_number(ssin)
    assert ssin_birth_date(ssin) == date(1985, 7, 30)


@pytest.mark.parametrize("bad, words", [
    ("", "empty"),
    ("8507300332", "11 digits"),
    ("8507300332A", "11 digits"),
    ("85073003329", "check digits"),
    ("851330033" + f"{97 - 851330033 % 97:02d}", "birth date"),
])
def test_ssin_problems_say_what_is_wrong(bad, words):
    problem = ssin_problem(bad)
    assert problem and words in problem


def test_impossible_date_is_refused():
    first9 = "850230033"  # 30 February
    ssin = first9 + f"{97 - int(first9) % 97:02d}"
    assert "birth date" in ssin_problem(ssin)


def test_nihii_classic_and_second_series():
    base = 123456
    classic = f"{base}{97 - base % 97:02d}004"
    second = f"{base}{89 - base % 89:02d}004"
    assert nihii_problem(classic) is None
    assert nihii_problem(second) is None
    assert nihii_problem("0" + classic) is None  # 12-position flat-file form
    assert "check digits" in nihii_problem(f"{base}00004")
    assert "11 digits" in nihii_problem("1234")


def test_cbe():
    first8 = "04567890"
    good = first8 + f"{97 - int(first8) % 97:02d}"
    assert cbe_problem(good) is None
    assert cbe_problem(f"{good[:4]}.{good[4:7]}.{good[7:]}") is None
    assert "check digits" in cbe_problem(first8 + "00")


def test_masking():
    assert mask_ssin("85073003328") == "850730*****"
    assert mask_ssins_in_text("patient 85073003328 at 2024") == "patient 850730***** at 2024"
    assert mask_ssins_in_text("nihii 123456789012") == "nihii 123456789012"  # 12 digits: not an SSIN
