"""Cell parsers: the values operators really put in sheets."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from meterline.domain.cells import (
    CellError,
    from_excel_serial,
    parse_amount,
    parse_date,
    parse_decimal,
    parse_phones,
    parse_text,
    to_ascii_digits,
)

# Zero of each digit script an operator's keyboard may produce.
ZEROS = {
    "bengali": 0x09E6,
    "devanagari": 0x0966,
    "arabic-indic": 0x0660,
    "extended-arabic-indic": 0x06F0,
    "fullwidth": 0xFF10,
}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def native(s: str, script: str) -> str:
    zero = ZEROS[script]
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in s)


def reason(excinfo: pytest.ExceptionInfo[CellError]) -> str:
    assert isinstance(excinfo.value, ValueError)
    return excinfo.value.reason


# --- to_ascii_digits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("০১৭১২৩৪৫৬৭৮", "01712345678"),
        ("९८७६५४३२१०", "9876543210"),
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
        ("１２３", "123"),
        ("Rs. ১,২৩৪.৫০", "Rs. 1,234.50"),
        ("abc 123", "abc 123"),
        ("²", "²"),  # a superscript is not a decimal digit
    ],
)
def test_to_ascii_digits(raw: str, expected: str) -> None:
    assert to_ascii_digits(raw) == expected


@given(st.text(alphabet="0123456789", min_size=1), st.sampled_from(sorted(ZEROS)))
def test_to_ascii_digits_undoes_any_script(digits: str, script: str) -> None:
    assert to_ascii_digits(native(digits, script)) == digits


# --- parse_text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("   \u00a0 ", None),
        ("  Ram   Kumar \n Singh ", "Ram Kumar Singh"),
        ("\ufeffAC-001\u200b", "AC-001"),
        (12345, "12345"),
        (12345.0, "12345"),
        (1.2345e4, "12345"),
        (123456789012.0, "123456789012"),
        (1e20, "100000000000000000000"),
        (1.5, "1.5"),
        (1e-7, "0.0000001"),
        (Decimal("12.50"), "12.5"),
        (Decimal("1.2345E+4"), "12345"),
        (Decimal("123456789012345678901234567890"), "123456789012345678901234567890"),
        (-0.5, "-0.5"),
        (True, "TRUE"),
        (datetime.date(2024, 3, 15), "2024-03-15"),
    ],
)
def test_parse_text(raw: object, expected: str | None) -> None:
    assert parse_text(raw) == expected


def test_parse_text_never_uses_scientific_notation() -> None:
    for x in (1e16, 1.5e-9, 123456789.123):
        text = parse_text(x)
        assert text is not None and "e" not in text.lower()


def test_parse_text_rejects_unknown_types() -> None:
    with pytest.raises(CellError):
        parse_text(object())


# --- parse_phones ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        (9876543210, "IN", ["+919876543210"]),
        (9876543210.0, "IN", ["+919876543210"]),
        (919876543210, "IN", ["+919876543210"]),
        ("9876543210.0", "IN", ["+919876543210"]),
        ("9.876543210E+09", "IN", ["+919876543210"]),
        ("9.876543211e9", "IN", ["+919876543211"]),
        ("+91 98765 43210", "IN", ["+919876543210"]),
        ("0091-98765-43210", "IN", ["+919876543210"]),
        ("098765 43210", "IN", ["+919876543210"]),
        ("(987) 654-3210", "IN", ["+919876543210"]),
        ("९८७६५४३२१०", "IN", ["+919876543210"]),
        ("Mob: 98765 43210", "IN", ["+919876543210"]),
        ("9876543210 (home)", "IN", ["+919876543210"]),
        ("9876543210 / 9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("9876543210,9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("9876543210; 9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("9876543210\n9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("9876543210 or 9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("9876543210 OR 9123456789", "IN", ["+919876543210", "+919123456789"]),
        ("98765 43210 / +91 9876543210", "IN", ["+919876543210"]),  # same person twice
        ("9876543210;", "IN", ["+919876543210"]),
        ("01712345678", "BD", ["+8801712345678"]),
        ("8801712345678", "BD", ["+8801712345678"]),
        ("+880 1712-345678", "BD", ["+8801712345678"]),
        ("০১৭১২-৩৪৫৬৭৮", "BD", ["+8801712345678"]),
        (1712345678, "BD", ["+8801712345678"]),
        ("8 (916) 123-45-67", "RU", ["+79161234567"]),
        ("+7 916 123 45 67", "RU", ["+79161234567"]),
        ("89161234567", "RU", ["+79161234567"]),
        (None, "IN", []),
        ("", "IN", []),
        ("  \n ", "IN", []),
    ],
)
def test_parse_phones_accepts(raw: object, region: str, expected: list[str]) -> None:
    assert parse_phones(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("9.87654E+09", "IN", "phone shown in scientific notation lost digits"),
        ("9,87654E+09", "IN", "phone shown in scientific notation lost digits"),
        ("011 2345 6789", "IN", '"011 2345 6789" is a landline, not a mobile number'),
        ("+7 495 123-45-67", "RU", "is a landline, not a mobile number"),
        ("02-9876543", "BD", "is a landline, not a mobile number"),
        ("1800 180 1551", "IN", "is not a mobile number"),
        ("12345", "IN", '"12345" is not a valid mobile number for region IN'),
        ("abc", "IN", '"abc" is not a valid mobile number for region IN'),
        ("9876543210 / 12345", "IN", '"12345" is not a valid mobile number for region IN'),
        ("98765 43210 ext 12", "IN", "is not a valid mobile number for region IN"),
        ("1-800-FLOWERS", "IN", "is not a valid mobile number"),
        (98765.5, "IN", "is not a phone number"),
        (1.2345678901234567e17, "IN", "more than 15 digits"),
        (True, "IN", "is not a phone number"),
    ],
)
def test_parse_phones_rejects(raw: object, region: str, message: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_phones(raw, region)
    assert message in reason(excinfo)


MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


def is_indian_mobile(national: str) -> bool:
    number = phonenumbers.parse(national, "IN")
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in MOBILE_TYPES


def indian_mobiles() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A[6-9][0-9]{9}\Z", fullmatch=True).filter(is_indian_mobile)


@given(indian_mobiles(), st.sampled_from(sorted(ZEROS)))
def test_native_digit_phone_parses_to_the_same_e164(number: str, script: str) -> None:
    assert parse_phones(native(number, script), "IN") == parse_phones(number, "IN")


@given(
    indian_mobiles(),
    st.sampled_from(["{n}", "+91 {n}", "0{n}", "0091{n}", "91{n}", "{a} {b}", "{a}-{b}"]),
)
def test_indian_mobile_in_any_layout(number: str, layout: str) -> None:
    text = layout.format(n=number, a=number[:5], b=number[5:])
    assert parse_phones(text, "IN") == [f"+91{number}"]


@given(indian_mobiles())
def test_float_cell_of_a_mobile(number: str) -> None:
    assert parse_phones(float(number), "IN") == [f"+91{number}"]


@given(
    st.one_of(
        st.text(),
        st.text(alphabet="0123456789 +-()/,;.eE", max_size=40),
        st.integers(),
        st.floats(allow_nan=True),
    ),
    st.sampled_from(["IN", "BD", "RU"]),
)
@example("+91 98765 43210 / 9123456789", "IN")
def test_parse_phones_output_is_always_valid_e164(raw: object, region: str) -> None:
    try:
        phones = parse_phones(raw, region)
    except CellError as e:
        assert e.reason
        return
    assert len(phones) == len(set(phones))
    for phone in phones:
        assert E164.match(phone)
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.number_type(number) in MOBILE_TYPES


# --- parse_amount ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1234, 123400),
        (1234.5, 123450),
        (1234.56, 123456),
        (0.1 + 0.2, 30),  # float noise from a formula, not a third decimal
        (-12.5, -1250),
        (Decimal("12.34"), 1234),
        ("1,23,456.50", 12345650),
        ("12,34,56,789", 12345678900),
        ("123,456.50", 12345650),
        ("1,234,567", 123456700),
        ("1 234,56", 123456),
        ("1\u00a0234,56", 123456),
        ("1\u202f234\u202f567,89", 123456789),
        ("1.234,56", 123456),
        ("1.234.567,89", 123456789),
        ("1234,56", 123456),
        ("1234.5", 123450),
        ("1,5", 150),
        ("0,50", 50),
        (".5", 50),
        ("1,234", 123400),  # a single separator then three digits: thousands
        ("1.234", 123400),
        ("12.345", 1234500),
        ("₹1,234.50", 123450),
        ("₹ 1,23,456", 12345600),
        ("Rs. 500/-", 50000),
        ("Rs 500/-", 50000),
        ("rs.500", 50000),
        ("500/-", 50000),
        ("INR 1,000.00", 100000),
        ("1,000 INR", 100000),
        ("৳ ১,২৩৪.৫০", 123450),
        ("Tk 500", 50000),
        ("Tk. 500", 50000),
        ("500 BDT", 50000),
        ("1 234,56 ₽", 123456),
        ("1 234,56 руб.", 123456),
        ("1234,56 р.", 123456),
        ("$12.34", 1234),
        ("-12.34", -1234),
        ("−12.34", -1234),
        ("(1,234.50)", -123450),
        ("₹ -5", -500),
        ("-₹5", -500),
        ("+5", 500),
        ("५००", 50000),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_amount(raw: object, expected: int | None) -> None:
    assert parse_amount(raw) == expected


@pytest.mark.parametrize(
    ("raw", "exponent", "expected"),
    [("1,234", 0, 1234), ("12", 0, 12), ("1.5", 1, 15), ("0.005", 3, 5), ("1,005.5", 3, 1005500)],
)
def test_parse_amount_other_exponents(raw: str, exponent: int, expected: int) -> None:
    assert parse_amount(raw, exponent) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", '"abc" is not an amount'),
        ("12-34", '"12-34" is not an amount'),
        ("1,2,3", "is not an amount"),
        ("12 34", "is not an amount"),
        ("1.234,5.6", "is not an amount"),
        ("--5", "is not an amount"),
        ("(-5)", "is not an amount"),
        ("₹", "is not an amount"),
        ("0.125", '"0.125" has more than 2 decimal places'),
        ("1234.567", "has more than 2 decimal places"),
        ("1 234,567", "has more than 2 decimal places"),  # spaces decide: "," is decimal
        (12.345, "has more than 2 decimal places"),
        (float("nan"), "not a finite number"),
        (1e300, "is too large for an amount"),
        (Decimal("1E+999999999"), "is too large for an amount"),
        ("1" + "0" * 30, "is too large for an amount"),
        (True, "is not an amount"),
    ],
)
def test_parse_amount_rejects(raw: object, message: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_amount(raw)
    assert message in reason(excinfo)


def indian_grouping(n: int) -> str:
    s = str(n)
    if len(s) <= 3:
        return s
    head, tail = s[:-3], s[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *groups, tail])


def western_grouping(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def money_text(minor: int, style: str) -> str:
    """Format minor units (exponent 2) the way some operator's sheet does."""
    rupees, paise = divmod(abs(minor), 100)
    if style == "indian":
        text = f"{indian_grouping(rupees)}.{paise:02d}"
    elif style == "western":
        text = f"{western_grouping(rupees, ',')}.{paise:02d}"
    elif style == "russian":
        text = f"{western_grouping(rupees, ' ')},{paise:02d}"
    elif style == "russian-nbsp":
        text = f"{western_grouping(rupees, chr(0xA0))},{paise:02d}"
    elif style == "narrow-nbsp":
        text = f"{western_grouping(rupees, chr(0x202F))},{paise:02d}"
    elif style == "german":
        text = f"{western_grouping(rupees, '.')},{paise:02d}"
    elif style == "plain-comma":
        text = f"{rupees},{paise:02d}"
    else:
        text = f"{rupees}.{paise:02d}"
    return f"-{text}" if minor < 0 else text


STYLES = ["indian", "western", "russian", "russian-nbsp", "narrow-nbsp", "german", "plain-comma"]


@given(st.integers(min_value=-(10**13), max_value=10**13), st.sampled_from([*STYLES, "plain"]))
def test_amount_round_trips_through_any_grouping(minor: int, style: str) -> None:
    assert parse_amount(money_text(minor, style)) == minor


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["indian", "western", "russian", "plain"]),
    st.sampled_from(
        [
            "₹{}",
            "₹ {}",
            "Rs. {}",
            "Rs {}/-",
            "INR {}",
            "{} INR",
            "৳{}",
            "Tk {}",
            "{} BDT",
            "{} ₽",
            "{} руб.",
            "{} р.",
            "${}",
            "({})",
            "{}/-",
        ]
    ),
    st.sampled_from(["ascii", *sorted(ZEROS)]),
)
def test_amount_round_trips_with_currency_and_native_digits(
    minor: int, style: str, decoration: str, script: str
) -> None:
    text = decoration.format(money_text(minor, style))
    if script != "ascii":
        text = native(text, script)
    expected = -minor if decoration.startswith("(") else minor
    assert parse_amount(text) == expected


@given(st.integers(min_value=0, max_value=10**12))
def test_whole_amounts_with_grouping_only(units: int) -> None:
    # "1,234" is a thousands separator, so whole amounts survive grouping too.
    assert parse_amount(indian_grouping(units)) == units * 100
    assert parse_amount(western_grouping(units, ",")) == units * 100
    assert parse_amount(western_grouping(units, ".")) == units * 100


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_float_cells_are_read_through_decimal(minor: int) -> None:
    assert parse_amount(minor / 100) == minor


# --- parse_decimal -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.5", Decimal("1.5")),
        ("1,5", Decimal("1.5")),
        ("2 kW", Decimal("2")),
        ("2kw", Decimal("2")),
        ("3.5 KW", Decimal("3.5")),
        ("2,5 кВт", Decimal("2.5")),
        ("५ किलोवाट", Decimal("5")),
        ("০.৫", Decimal("0.5")),
        ("1.234", Decimal("1234")),
        ("-0.5", Decimal("-0.5")),
        (1.5, Decimal("1.5")),
        (2, Decimal("2")),
        (None, None),
        ("", None),
    ],
)
def test_parse_decimal(raw: object, expected: Decimal | None) -> None:
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "2 HP", "1-2", "kW"])
def test_parse_decimal_rejects(raw: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_decimal(raw)
    assert "is not a number" in reason(excinfo)


# --- parse_date --------------------------------------------------------------------

MARCH_15 = datetime.date(2024, 3, 15)


@pytest.mark.parametrize(
    "raw",
    [
        MARCH_15,
        datetime.datetime(2024, 3, 15, 10, 30),
        45366,
        45366.75,
        "15/03/2024",
        "15-03-2024",
        "15.03.2024",
        "15/3/2024",
        "15/03/24",
        "2024-03-15",
        "2024-03-15 00:00:00",
        "2024-03-15T10:30:00",
        "15/03/2024 10:30",
        "15 Mar 2024",
        "15-Mar-2024",
        "15-MAR-24",
        "15 March 2024",
        "15th March, 2024",
        " १५/०३/२०२४ ",
        "১৫.০৩.২০২৪",
    ],
)
def test_parse_date(raw: object) -> None:
    assert parse_date(raw) == MARCH_15


def test_parse_date_1904_system() -> None:
    assert parse_date(45366 - 1462, date1904=True) == MARCH_15


def test_parse_date_blank() -> None:
    assert parse_date(None) is None
    assert parse_date("  ") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("03/15/2024", "not a valid date"),  # month first: never guessed
        ("31/02/2024", "not a valid date"),
        ("15/13/2024", "not a valid date"),
        ("2024-02-30", "not a valid date"),
        ("yesterday", "is not a date"),
        ("15 Foo 2024", "is not a date"),
        ("15032024", "is not a date"),
        ("15/03/1850", "not a plausible date"),
        (100, "not a plausible date"),
        (5000.0, "not a plausible date"),
        (99_999_999, "not a plausible date"),
        (-1, "not a plausible date"),
        (float("nan"), "not a plausible date"),
        (True, "is not a date"),
    ],
)
def test_parse_date_rejects(raw: object, message: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_date(raw)
    assert message in reason(excinfo)


def test_excel_serials_and_the_1900_leap_year_bug() -> None:
    assert from_excel_serial(1) == datetime.datetime(1900, 1, 1)
    assert from_excel_serial(59) == datetime.datetime(1900, 2, 28)
    assert from_excel_serial(61) == datetime.datetime(1900, 3, 1)  # 60 is Excel's 29 Feb
    assert from_excel_serial(45366.5) == datetime.datetime(2024, 3, 15, 12)
    assert from_excel_serial(0, date1904=True) == datetime.datetime(1904, 1, 1)


DATES = st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2100, 12, 31))


@given(
    DATES,
    st.sampled_from(["%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %b %Y", "%d-%b-%Y"]),
    st.sampled_from(["ascii", "bengali", "devanagari"]),
)
def test_date_text_round_trips(day: datetime.date, layout: str, script: str) -> None:
    text = day.strftime(layout)
    assert parse_date(native(text, script) if script != "ascii" else text) == day


@given(DATES)
def test_date_two_digit_year(day: datetime.date) -> None:
    assume(day.year < 2070)
    assert parse_date(day.strftime("%d/%m/%y")) == day


@given(DATES, st.booleans())
def test_excel_serial_round_trips(day: datetime.date, date1904: bool) -> None:
    epoch = datetime.date(1904, 1, 1) if date1904 else datetime.date(1899, 12, 30)
    serial = (day - epoch).days
    assert parse_date(serial, date1904=date1904) == day
    assert parse_date(serial + 0.999, date1904=date1904) == day


# --- the fast path for plain numbers agrees with phonenumbers ---------------------------

_FAST_REGIONS = ("IN", "BD", "RU", "GB", "US", "KZ")


@given(
    region=st.sampled_from(_FAST_REGIONS),
    digits=st.text(alphabet="0123456789", min_size=6, max_size=14),
    style=st.sampled_from(["bare", "plus-cc", "prefix", "spaced", "dashed", "bracketed"]),
)
def test_plain_number_fast_path_agrees_with_the_full_parse(
    region: str, digits: str, style: str
) -> None:
    from phonenumbers import country_code_for_region

    from meterline.domain.cells import _parse_with_library, _plain_mobile

    cc = country_code_for_region(region)
    text = {
        "bare": digits,
        "plus-cc": f"+{cc}{digits}",
        "prefix": f"0{digits}" if region != "RU" else f"8{digits}",
        "spaced": f"{digits[:5]} {digits[5:]}",
        "dashed": f"{digits[:3]}-{digits[3:]}",
        "bracketed": f"({digits[:3]}) {digits[3:]}",
    }[style]
    fast = _plain_mobile(text, region)
    if fast is None:
        return  # the full parse decides, as before
    assert fast == _parse_with_library(text, region)


@pytest.mark.parametrize(
    ("text", "region"),
    [("9876543210", "IN"), ("+91 98765 43210", "IN"), ("098765-43210", "IN"),
     ("01712345678", "BD"), ("+880 1712-345678", "BD"), ("8 (916) 123-45-67", "RU"),
     ("+7 916 123 45 67", "RU"), ("07400 123456", "GB")],
)  # fmt: skip
def test_common_numbers_take_the_fast_path(text: str, region: str) -> None:
    from meterline.domain.cells import _parse_with_library, _plain_mobile

    fast = _plain_mobile(text, region)
    assert fast is not None and fast == _parse_with_library(text, region)


def test_kazakh_number_is_not_taken_for_russian() -> None:
    from meterline.domain.cells import _plain_mobile

    # +7 7xx is Kazakhstan: the fast path must not claim it for a Russian tenant.
    assert _plain_mobile("+7 701 123 4567", "RU") is None


# --- the fast path's mobile test is the library's number_type, restated ---------------

_PATTERN_REGIONS = ("IN", "BD", "RU", "KZ", "GB", "US", "CA", "NP", "DE", "PK", "UA", "BY")


@st.composite
def _national_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A region and a national number: one its mobile, fixed-line, other-type or general
    pattern matches, or any digits of a length the region allows."""
    region = draw(st.sampled_from(_PATTERN_REGIONS))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert meta is not None
    descs = [meta.mobile, meta.fixed_line, meta.general_desc, meta.toll_free, meta.voip,
             meta.premium_rate, meta.personal_number, meta.uan, meta.pager]  # fmt: skip
    patterns = [d.national_number_pattern for d in descs if d and d.national_number_pattern]
    lengths = sorted(meta.general_desc.possible_length)
    source = draw(st.sampled_from([*patterns, None]))
    if source is None:
        digits = draw(st.text(alphabet="0123456789", min_size=lengths[0], max_size=lengths[-1]))
    else:
        digits = draw(st.from_regex(re.compile(source, re.ASCII), fullmatch=True))
    assume(digits and digits[0] != "0")
    return region, digits


@given(_national_numbers())
@example(("RU", "7011234567"))  # +7 701: Kazakhstan's, not a Russian mobile
@example(("KZ", "7011234567"))
@example(("IN", "1400000000"))  # a UAN number that other patterns would also take
@example(("US", "2015550123"))  # fixed line or mobile
def test_mobile_test_agrees_with_number_type(case: tuple[str, str]) -> None:
    from meterline.domain.cells import _is_mobile_of, _region_numbering

    region, national = case
    numbering = _region_numbering(region)
    assert numbering is not None
    number = phonenumbers.PhoneNumber(country_code=numbering.code, national_number=int(national))
    expected = (
        phonenumbers.number_type(number)
        in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        and phonenumbers.region_code_for_number(number) == region
    )
    assert _is_mobile_of(numbering, national, region) == expected


def test_patterns_are_used_where_the_region_owns_its_code() -> None:
    from meterline.domain.cells import _region_numbering

    for region in ("IN", "BD", "RU", "US", "GB"):
        numbering = _region_numbering(region)
        assert numbering is not None and numbering.patterns, region
    kz = _region_numbering("KZ")  # +7 is listed for Russia first: the library decides
    assert kz is not None and kz.patterns is None


# --- plain amounts are read directly; the general path must agree -----------------------

_AMOUNT_SHAPES = st.one_of(
    st.from_regex(r"[0-9]{1,17}(\.[0-9]{0,3})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}(,[0-9]{3}){0,5}(\.[0-9]{1,3})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,2}(,[0-9]{2}){0,4},[0-9]{3}(\.[0-9]{1,3})?", fullmatch=True),
    st.from_regex(r"[0-9,.]{1,12}", fullmatch=True),
    st.integers(min_value=-(10**17), max_value=10**17),
)


@given(_AMOUNT_SHAPES, st.integers(min_value=0, max_value=3))
@example("0,123", 2)  # a leading 0 before one comma: a decimal comma
@example("1,234", 0)
@example("999999999999999.99", 2)
@example("1234567890123456", 2)
def test_plain_amount_fast_path_agrees_with_the_general_path(raw: object, exponent: int) -> None:
    from meterline.domain.cells import CellError, _general_amount

    try:
        expected: object = _general_amount(raw, exponent)
    except CellError as exc:
        expected = exc.reason
    try:
        got: object = parse_amount(raw, exponent)
    except CellError as exc:
        got = exc.reason
    assert got == expected


_LIKELY_MOBILES = {
    "IN": r"(\+91 ?|0)?[6-9][0-9]{4}[ \-]?[0-9]{5}",
    "BD": r"(\+?880 ?|0)1[3-9][0-9]{2}[ \-]?[0-9]{6}",
    "RU": r"(\+7 ?|8 ?)\(?9[0-9]{2}\)? ?[0-9]{3}-?[0-9]{2}-?[0-9]{2}",
}


@given(
    case=st.one_of(
        st.tuples(
            st.sampled_from(_FAST_REGIONS),
            st.from_regex(r"\+?[0-9][0-9 \-()]{5,24}", fullmatch=True),
        ),
        st.sampled_from(sorted(_LIKELY_MOBILES)).flatmap(
            lambda r: st.tuples(st.just(r), st.from_regex(_LIKELY_MOBILES[r], fullmatch=True))
        ),
    )
)
@example(case=("IN", "98765 43210"))
@example(case=("RU", "8 (916) 123-45-67"))
def test_one_plain_number_cell_reads_as_the_general_path_reads_it(case: tuple[str, str]) -> None:
    region, text = case
    from meterline.domain.cells import CellError, _phones_in_cell

    try:
        expected: object = _phones_in_cell(text, region)
    except CellError as exc:
        expected = exc.reason
    try:
        got: object = parse_phones(text, region)
    except CellError as exc:
        got = exc.reason
    assert got == expected
