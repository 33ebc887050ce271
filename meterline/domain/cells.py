"""Turn one raw spreadsheet cell into a clean value.

Operators upload sheets "as they really are": numbers typed as text, phone numbers
stored as floats, Indian digit grouping, Russian decimal commas, Bengali digits.
Every function here is pure (no I/O, no clock) and raises `CellError` with a short
human reason that the importer shows next to the row.
"""

from __future__ import annotations

import datetime
import re
import sys
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import phonenumbers
from phonenumbers import (
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberDesc,
    PhoneNumberFormat,
    PhoneNumberType,
)

__all__ = [
    "CellError",
    "from_excel_serial",
    "parse_amount",
    "parse_date",
    "parse_decimal",
    "parse_phones",
    "parse_text",
    "to_ascii_digits",
]


class CellError(ValueError):
    """A cell that cannot be turned into the wanted value; `.reason` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- digits ------------------------------------------------------------------------


def _build_digit_table() -> dict[int, str]:
    # Every Unicode decimal digit (category Nd) lives below U+20000; scanning that
    # range once at import is cheap and catches Bengali, Devanagari, Arabic-Indic,
    # fullwidth and the rest without a hand-written list.
    table: dict[int, str] = {}
    for cp in range(0x80, min(sys.maxunicode, 0x1FFFF) + 1):
        value = unicodedata.decimal(chr(cp), None)
        if value is not None:
            table[cp] = str(value)
    return table


_DIGITS = _build_digit_table()


def to_ascii_digits(s: str) -> str:
    """Replace every Unicode decimal digit (০-৯, ०-९, ٠-٩, ０-９ …) by its ASCII digit."""
    return s if s.isascii() else s.translate(_DIGITS)


def _describe(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _unsupported(value: object) -> CellError:
    return CellError(f"unexpected cell value of type {type(value).__name__}")


def _clean(s: str) -> str:
    # str.split() already treats NBSP, narrow NBSP and thin spaces as whitespace;
    # zero-width spaces and stray BOMs are invisible in Excel, so drop them too.
    if "\u200b" in s or "\ufeff" in s:
        s = s.replace("\u200b", "").replace("\ufeff", "")
    return " ".join(s.split())


def _float_to_decimal(x: float) -> Decimal:
    if x != x or x in (float("inf"), float("-inf")):
        raise CellError("not a finite number")
    # Excel keeps 15 significant digits; anything past that in the stored double
    # (118.00000000000001 from =A1*1.18) is binary noise, not data.
    return Decimal(format(x, ".15g"))


# --- text --------------------------------------------------------------------------


def parse_text(value: object) -> str | None:
    """A cell as trimmed text with single spaces; integral floats lose their ".0"."""
    if type(value) is str:  # most cells: checked first
        return _clean(value) or None
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        d = _float_to_decimal(value) if isinstance(value, float) else value
        if not d.is_finite() or abs(d.adjusted()) > 50:
            raise CellError(f"{value!r} is not a plausible number")
        # An account number stored as a number: 12345.0 -> "12345", never "1.2345e+4".
        text = format(d, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return _clean(value) or None
    raise _unsupported(value)


# --- phones ------------------------------------------------------------------------

# Separators people use to put two numbers in one cell.
_PHONE_SPLIT = re.compile(r"\s+or\s+|[/,;|\n\r]", re.IGNORECASE)
_SCIENTIFIC = re.compile(r"^([+-]?)(\d+)(?:[.,](\d*))?[eE]([+-]?\d+)$")
_FLOAT_TEXT = re.compile(r"^(\+?\d+)\.0+$")  # "9876543210.0" from a CSV export
_COMMENT = re.compile(r"\([^)]*[^\W\d_][^)]*\)")  # "(home)", "(father)"
_LABEL = re.compile(r"^[^\W\d_][^\d+(]*?[:.\-]\s*|^(?:mob|mobile|ph|phone|tel|cell|m)\s+", re.I)
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
_MAX_EXACT_DIGITS = 15  # an Excel number cell holds no more significant digits


def _phone_text(value: object) -> str:
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a phone number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise CellError(f"{value!r} is not a phone number")
        if abs(value) >= 10**_MAX_EXACT_DIGITS:
            raise CellError("phone number has more than 15 digits; Excel lost the last ones")
        return str(int(value))
    if isinstance(value, str):
        return to_ascii_digits(value).replace("\u200b", "").replace("\ufeff", "")
    raise _unsupported(value)


def _unscientific(part: str) -> str:
    """Undo Excel's "9.876543210E+09"; refuse when the mantissa lost digits."""
    m = _SCIENTIFIC.match(part.replace(" ", ""))
    if not m:
        return part
    sign, whole, frac, exp = m.groups()
    value = Decimal(f"{sign}{whole}.{frac or ''}E{exp}")
    if value != value.to_integral_value() or not 0 < value < 10**16:
        raise CellError(f'"{part}" is not a phone number')
    digits = str(int(value))
    kept = (whole + (frac or "")).lstrip("0")  # significant digits actually written
    if len(kept) < len(digits):
        raise CellError("phone shown in scientific notation lost digits")
    return digits


_PLAIN_SEPARATORS = re.compile(r"[\s\-().]")
# A cell that holds one number and nothing the general path would clean or split.
_ONE_PLAIN_NUMBER = re.compile(r"\+?[0-9][0-9 \-()]{5,24}")
_PLAIN_DIGITS = re.compile(r"^\+?[0-9]{6,16}$")


# The number types a valid number can have besides fixed line and mobile; a number of
# any of these is not taken for a mobile even if the mobile pattern matches it too.
_OTHER_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Numbering:
    """A region's numbering plan as the fast path needs it, from phonenumbers' metadata."""

    code: int
    prefix: str
    lengths: frozenset[int]
    # National number length -> the library's patterns for that length: (general,
    # mobile, other types). None for a region whose calling code another region owns
    # first (KZ under +7): there the library's own number_type decides.
    patterns: dict[int, tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str] | None]] | None
    leading: re.Pattern[str] | None  # the region's leading digits under a shared code


def _desc_pattern(desc: PhoneNumberDesc | None, length: int) -> re.Pattern[str] | None:
    """The desc's pattern if a number of `length` digits can match it (as the library
    tests: possible lengths first, then the whole national number against the pattern)."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return re.compile(desc.national_number_pattern)


def _mobile_patterns(
    meta: PhoneMetadata, lengths: frozenset[int]
) -> dict[int, tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str] | None]]:
    # phonenumbers' number type, restated for "is it MOBILE or FIXED_LINE_OR_MOBILE":
    # the general pattern matches, no other type's does, and the mobile pattern matches
    # (or, where the metadata says the two are the same, the fixed-line pattern).
    target = meta.fixed_line if meta.same_mobile_and_fixed_line_pattern else meta.mobile
    found = {}
    for n in lengths:
        general, mobile = _desc_pattern(meta.general_desc, n), _desc_pattern(target, n)
        if general is None or mobile is None:
            continue
        others = [p.pattern for t in _OTHER_TYPES if (p := _desc_pattern(getattr(meta, t), n))]
        # One alternation instead of one match per type (the metadata has no backreferences).
        either = re.compile("|".join(f"(?:{o})" for o in others)) if others else None
        found[n] = (general, mobile, either)
    return found


@lru_cache(maxsize=64)
def _region_numbering(region: str) -> _Numbering | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.country_code is None:
        return None
    desc = meta.general_desc
    lengths = frozenset(desc.possible_length or ()) if desc is not None else frozenset()
    # region_code_for_number gives the first region of the calling code whose leading
    # digits match (or, without leading digits, for which the number is valid): for the
    # first region (RU under +7, US under +1, or one with a code of its own) a mobile
    # number is the region's when its leading digits match. Other regions: the library.
    owners = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code, ())
    first = tuple(owners[:1]) == (region,)
    patterns = _mobile_patterns(meta, lengths) if first else None
    leading = re.compile(meta.leading_digits) if first and meta.leading_digits else None
    return _Numbering(meta.country_code, meta.national_prefix or "", lengths, patterns, leading)


def _is_mobile_of(numbering: _Numbering, national: str, region: str) -> bool:
    """Is this national number a mobile of `region`, as number_type and
    region_code_for_number would say (the same metadata, without their overhead)."""
    if numbering.patterns is None:
        number = PhoneNumber(country_code=numbering.code, national_number=int(national))
        return (
            phonenumbers.number_type(number) in _MOBILE_TYPES
            and phonenumbers.region_code_for_number(number) == region
        )
    found = numbering.patterns.get(len(national))
    if found is None:
        return False
    general, mobile, others = found
    if numbering.leading is not None and not numbering.leading.match(national):
        return False
    if not (general.fullmatch(national) and mobile.fullmatch(national)):
        return False
    return others is None or others.fullmatch(national) is None


def _plain_mobile(part: str, region: str) -> str | None:
    """The common case without phonenumbers.parse (half the cost of an import row).

    Only digits with spaces, dashes or brackets, as national digits, national prefix +
    digits, or +country code + digits; the answer must still be a mobile number of this
    very region. Anything else, and every refusal, goes through the full parse.
    """
    digits = _PLAIN_SEPARATORS.sub("", part)
    numbering = _region_numbering(region) if _PLAIN_DIGITS.match(digits) else None
    if numbering is None:
        return None
    code, prefix, lengths = numbering.code, numbering.prefix, numbering.lengths
    if digits.startswith("+"):
        cc = str(code)
        national = digits[1 + len(cc) :] if digits.startswith(cc, 1) else ""
    elif prefix and digits.startswith(prefix):
        national = digits[len(prefix) :]
    else:
        national = digits
    if not national or national[0] == "0" or len(national) not in lengths:
        return None
    if not _is_mobile_of(numbering, national, region):
        return None
    return f"+{code}{national}"


def _parse_one_phone(part: str, region: str) -> str:
    return _plain_mobile(part, region) or _parse_with_library(part, region)


def _parse_with_library(part: str, region: str) -> str:
    text = _unscientific(part)
    m = _FLOAT_TEXT.match(text)
    if m:
        text = m.group(1)
    text = _LABEL.sub("", _COMMENT.sub("", text)).strip()

    # A function, not the exception itself: an exception held in a local of the frame
    # that raises it forms a cycle with its traceback (and the callers' frames, with the
    # chunk of rows being read), freed only by the cyclic garbage collector.
    def invalid() -> CellError:
        return CellError(f'"{part}" is not a valid mobile number for region {region}')

    # phonenumbers turns letters into digits (vanity numbers); in a sheet they are junk.
    if not text or any(ch.isalpha() for ch in text):
        raise invalid()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise invalid() from None
    if number.extension:
        raise invalid()
    # number_type() is what is_valid_number() computes internally (UNKNOWN = invalid);
    # asking once halves the cost of the dearest step of an import.
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise invalid()
    if kind == PhoneNumberType.FIXED_LINE:
        raise CellError(f'"{part}" is a landline, not a mobile number')
    if kind not in _MOBILE_TYPES:
        raise CellError(f'"{part}" is not a mobile number')
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def parse_phones(value: object, region: str) -> list[str]:
    """All mobile numbers in a cell as E.164, primary first; blank -> []."""
    if value is None:
        return []
    if type(value) is str and _ONE_PLAIN_NUMBER.fullmatch(value):
        e164 = _plain_mobile(value, region)  # the commonest cell: one plain number
        if e164 is not None:
            return [e164]
    return _phones_in_cell(value, region)


def _phones_in_cell(value: object, region: str) -> list[str]:
    text = _phone_text(value)
    # "9,87654E+09" (a Russian-locale export) is one number, not two parts.
    parts = [text] if _SCIENTIFIC.match(_clean(text).replace(" ", "")) else _PHONE_SPLIT.split(text)
    phones: list[str] = []
    for raw in parts:
        part = _clean(raw)
        if not part:
            continue
        e164 = _parse_one_phone(part, region)
        if e164 not in phones:  # "98765 43210 / 9876543210" is one person
            phones.append(e164)
    return phones


# --- numbers -----------------------------------------------------------------------

_CURRENCY = r"(?:₹|rs\.?|inr|৳|tk\.?|bdt|₽|руб\.?|р\.|р|rub|\$|usd)"  # longest spellings first
_LEADING_CURRENCY = re.compile(rf"^{_CURRENCY}\s*", re.IGNORECASE)
_TRAILING_CURRENCY = re.compile(rf"(?<![^\d\s.]){_CURRENCY}$", re.IGNORECASE)
_MINUS = "-−–"  # hyphen, Unicode minus, en dash (Word "autocorrects" minus signs)
_SPACE_GROUPED = re.compile(r"^\d{1,3}(?: \d{3})+(?:[.,]\d+)?$")
_WESTERN_GROUPS = re.compile(r"^\d{1,3}(?:X\d{3})+$")
_INDIAN_GROUPS = re.compile(r"^\d{1,2}(?:X\d{2})*X\d{3}$")
_PLAIN = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_MAX_MINOR_UNITS = 2**63  # stored as a signed 64-bit integer
_KW_SUFFIX = re.compile(r"\s*(?:kw|квт|किलोवाट|किलो वाट)\.?$", re.IGNORECASE)


def _grouped(digits: str, sep: str, *, indian: bool) -> bool:
    shape = digits.replace(sep, "X")
    return bool(_WESTERN_GROUPS.match(shape) or (indian and _INDIAN_GROUPS.match(shape)))


def _canonical_number(s: str) -> str:
    """Digits with "," "." or space grouping -> "1234.56"; raises ValueError."""
    if " " in s:
        # Spaces group thousands ("1 234,56"), so a "," or "." left is the decimal mark.
        if not _SPACE_GROUPED.match(s):
            raise ValueError(s)
        s = s.replace(" ", "").replace(",", ".")
    elif "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        group = "." if dec == "," else ","
        whole, frac = s.split(dec) if s.count(dec) == 1 else ("", "")
        if not frac.isdigit() or not _grouped(whole, group, indian=group == ","):
            raise ValueError(s)
        s = f"{whole.replace(group, '')}.{frac}"
    elif "," in s or "." in s:
        sep = "," if "," in s else "."
        head, _, tail = s.partition(sep)
        if s.count(sep) > 1:
            if not _grouped(s, sep, indian=sep == ","):
                raise ValueError(s)
            s = s.replace(sep, "")
        elif len(tail) == 3 and head.isdigit() and 1 <= len(head) <= 3 and head[0] != "0":
            s = head + tail  # "1,234" / "1.234": a thousands separator, by rule
        else:
            s = f"{head}.{tail}"  # "1234,56" / "1,5": a decimal mark
    if not _PLAIN.match(s):
        raise ValueError(s)
    return s


def _parse_number_text(text: str) -> Decimal:
    """Signed Decimal from a cleaned number string with currency already removed."""
    s, negative = text, False
    if s[:1] == "+":
        s = s[1:].lstrip()
    elif s[:1] and s[0] in _MINUS:
        s, negative = s[1:].lstrip(), True
    d = Decimal(_canonical_number(s))
    return -d if negative else d


def _strip_money_decoration(s: str) -> str:
    """Remove "/-", parentheses, currency signs and codes; keep the sign as "-"."""
    negative = False
    while True:  # they nest in any order: "(₹ 500/-)", "-₹5", "₹ -5", "Rs. 500/-"
        before = s
        s = s.removesuffix("/-").rstrip()  # Indian "500/-": "and no paise"
        if s.startswith("(") and s.endswith(")"):  # accounting negative
            if negative:
                raise ValueError(s)
            s, negative = s[1:-1].strip(), True
        if s and s[0] in _MINUS:
            if negative:
                raise ValueError(s)
            s, negative = s[1:].lstrip(), True
        s = _TRAILING_CURRENCY.sub("", _LEADING_CURRENCY.sub("", s)).rstrip()
        if s == before:
            return f"-{s}" if negative else s


def _number_from_cell(value: object, what: str, *, strip: re.Pattern[str] | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not {what}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return _float_to_decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CellError("not a finite number")
        return value
    if not isinstance(value, str):
        raise _unsupported(value)
    text = _clean(to_ascii_digits(value))
    if not text:
        return None
    try:
        if strip is None:
            return _parse_number_text(_strip_money_decoration(text))
        return _parse_number_text(strip.sub("", text))
    except (ValueError, InvalidOperation):
        raise CellError(f'"{value.strip()}" is not {what}') from None


# Most amount cells: ASCII digits, optionally grouped by commas (Western or Indian, the
# first group not starting with 0), optionally a point and no more decimals than the
# currency has. Read directly; anything else takes the general path below.
_PLAIN_AMOUNT = re.compile(
    r"([1-9][0-9]{0,2}(?:,[0-9]{3})+|[1-9][0-9]?(?:,[0-9]{2})*,[0-9]{3}|[0-9]+)(?:\.([0-9]{1,2}))?"
)
_PLAIN_AMOUNT_DIGITS = 15  # 10**15 * 100 minor units is far below the 64-bit limit


def parse_amount(value: object, exponent: int = 2) -> int | None:
    """Money as integer minor units (paise, poisha, kopecks); blank -> None.

    "1,23,456.50", "123,456.50", "1 234,56", "1.234,56", "₹ 500/-", "(12.50)" all work.
    A single "," or "." followed by exactly three digits is a thousands separator.
    """
    if type(value) is str:
        m = _PLAIN_AMOUNT.fullmatch(value)
        if m is not None:
            whole, frac = m[1].replace(",", ""), m[2] or ""
            if len(frac) <= exponent and len(whole) <= _PLAIN_AMOUNT_DIGITS:
                return int(whole + frac.ljust(exponent, "0"))
    elif type(value) is int and abs(value) < 10**_PLAIN_AMOUNT_DIGITS:
        return value * 10**exponent
    return _general_amount(value, exponent)


def _general_amount(value: object, exponent: int) -> int | None:
    amount = _number_from_cell(value, "an amount", strip=None)
    if amount is None:
        return None
    shown = value.strip() if isinstance(value, str) else value
    # copy_abs() is exact (abs() would overflow the context on Decimal("1E+999999999")).
    if amount.copy_abs() >= _MAX_MINOR_UNITS:
        raise CellError(f'"{shown}" is too large for an amount')
    minor = amount.scaleb(exponent)
    if minor.copy_abs() >= _MAX_MINOR_UNITS:
        raise CellError(f'"{shown}" is too large for an amount')
    if minor != minor.to_integral_value():
        raise CellError(f'"{shown}" has more than {exponent} decimal places')
    return int(minor)


def parse_decimal(value: object) -> Decimal | None:
    """A plain quantity such as a sanctioned load ("1.5", "2 kW", "1,5"); blank -> None."""
    return _number_from_cell(value, "a number", strip=_KW_SUFFIX)


# --- dates -------------------------------------------------------------------------

_EXCEL_1900 = datetime.datetime(1899, 12, 30)  # day 0 once the 1900-02-29 bug is counted
_EXCEL_1904 = datetime.datetime(1904, 1, 1)
_MIN_SERIAL_YEAR, _MAX_SERIAL_YEAR = 1990, 2100
_MIN_YEAR, _MAX_YEAR = 1900, 2100

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[ap]m)?)?"
_DMY = re.compile(rf"^(\d{{1,2}})([/.\-])(\d{{1,2}})\2(\d{{4}}|\d{{2}}){_TIME}$", re.I)
_YMD = re.compile(rf"^(\d{{4}})([/.\-])(\d{{1,2}})\2(\d{{1,2}}){_TIME}$", re.I)
_D_MON_Y = re.compile(
    r"^(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]*([a-z]+)\.?[\s\-/.,]*(\d{4}|\d{2})$", re.I
)


def from_excel_serial(serial: float, *, date1904: bool = False) -> datetime.datetime:
    """An Excel serial day number as a datetime, rounded to the second."""
    if date1904:
        base = _EXCEL_1904
    elif serial < 61:
        # Excel pretends 1900-02-29 existed (Lotus bug): serials 1..59 are one day off.
        base = _EXCEL_1900 + datetime.timedelta(days=1)
    else:
        base = _EXCEL_1900
    days = int(serial // 1)
    seconds = round((serial - days) * 86400)
    return base + datetime.timedelta(days=days, seconds=seconds)


def _two_digit_year(yy: int) -> int:
    return 2000 + yy if yy < 70 else 1900 + yy  # POSIX %y pivot


def _make_date(year: int, month: int, day: int, raw: str) -> datetime.date:
    try:
        result = datetime.date(year, month, day)
    except ValueError:
        raise CellError(f'"{raw}" is not a valid date (day/month/year)') from None
    if not _MIN_YEAR <= result.year <= _MAX_YEAR:
        raise CellError(f'"{raw}" is not a plausible date')
    return result


def _date_from_text(raw: str) -> datetime.date:
    s = _clean(to_ascii_digits(raw))
    if m := _YMD.match(s):
        return _make_date(int(m[1]), int(m[3]), int(m[4]), raw)
    if m := _DMY.match(s):
        year = int(m[4]) if len(m[4]) == 4 else _two_digit_year(int(m[4]))
        return _make_date(year, int(m[3]), int(m[1]), raw)
    if (m := _D_MON_Y.match(s)) and m[2].lower() in _MONTHS:
        year = int(m[3]) if len(m[3]) == 4 else _two_digit_year(int(m[3]))
        return _make_date(year, _MONTHS[m[2].lower()], int(m[1]), raw)
    raise CellError(f'"{raw.strip()}" is not a date (expected day/month/year)')


def parse_date(value: object, *, date1904: bool = False) -> datetime.date | None:
    """A date from a date cell, an Excel serial or day-first text; blank -> None."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a date")
    if isinstance(value, int | float):
        if value != value or not 0 < value < 2_958_466:  # beyond year 9999
            raise CellError(f"{value!r} is not a plausible date")
        result = from_excel_serial(value, date1904=date1904).date()
        if not _MIN_SERIAL_YEAR <= result.year <= _MAX_SERIAL_YEAR:
            raise CellError(f"{value!r} is not a plausible date (it would be {result:%d/%m/%Y})")
        return result
    if isinstance(value, str):
        return _date_from_text(value) if value.strip() else None
    raise _unsupported(value)
