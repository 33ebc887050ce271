"""Header recognition: the spellings real sheets use, in four languages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.domain.headers import (
    SYNONYMS,
    column_letter,
    is_repeated_header,
    is_totals_row,
    match_header,
    match_row,
)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("Account No", "account"), ("A/C No.", "account"), ("खाता संख्या", "account"),
        ("হিসাব নম্বর", "account"), ("Лицевой счёт", "account"), ("ЛИЦЕВОЙ СЧЕТ", "account"),
        ("Mobile", "mobile"), ("मोबाइल नंबर", "mobile"), ("মোবাইল", "mobile"), ("Телефон", "mobile"),
        ("Dues", "dues"), ("Dues (Rs.)", "dues"), ("बकाया राशि", "dues"), ("বকেয়া", "dues"),
        ("Задолженность", "dues"), ("  Consumer   Name ", "name"), ("Due Date", "due_date"),
        ("Meter Serial No.", "meter_serial"), ("Квартира", "apartment"), ("Balance", "balance"),
        ("Sub Division", "area_subdivision"), ("Feeder", "area_feeder"),
        ("Load (kW)", "sanctioned_load"),
        ("Remarks", None), ("", None), (None, None),
    ],
)  # fmt: skip
def test_real_headers(text: str, field: str | None) -> None:
    assert match_header(text) == field


def test_bengali_ya_with_nukta_in_either_form() -> None:
    composed = "বকে\u09dfা"  # U+09DF YYA as one code point
    decomposed = "বকে\u09af\u09bcা"  # YA + NUKTA
    assert match_header(composed) == match_header(decomposed) == "dues"


@given(
    st.sampled_from([(f, n) for f, names in SYNONYMS.items() for n in names]),
    st.sampled_from(["upper", "title", "pad", "dot"]),
)
def test_every_synonym_survives_case_and_punctuation(pair: tuple[str, str], style: str) -> None:
    field, name = pair
    text = {"upper": name.upper(), "title": name.title(), "pad": f"  {name}: ", "dot": f"{name}."}[
        style
    ]
    assert match_header(text) == field


def test_header_row_needs_account_and_one_more() -> None:
    assert match_row(1, ["Name", "Mobile"]) is None
    assert match_row(1, ["Account No"]) is None
    m = match_row(5, [None, "Account No", "Mobile", "Notes"])
    assert m is not None and m.row == 5 and m.columns == {1: "account", 2: "mobile"}


def test_explicit_mapping_by_title_or_letter() -> None:
    m = match_row(1, ["Cons ID", "Cell", "Amt"], {"account": "cons id", "mobile": "B", "dues": "C"})
    assert m is not None and m.columns == {0: "account", 1: "mobile", 2: "dues"}


def test_repeated_header_and_totals() -> None:
    m = match_row(1, ["Account No", "Name", "Mobile"])
    assert m is not None
    assert is_repeated_header(["ACCOUNT NO", "name", "Mobile"], m)
    assert not is_repeated_header(["A1", "Name", "9876543210"], m)
    for word in ("Total", "GRAND TOTAL", "कुल", "মোট", "Итого:"):
        assert is_totals_row([None, word, None, 1000])
    assert not is_totals_row(["A1", "Total Energy Ltd"])


@given(st.integers(min_value=0, max_value=18277))
def test_column_letters_are_bijective(i: int) -> None:
    letters = column_letter(i)
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    assert n - 1 == i
