"""SMS encoding, segments and cost: what the operator is charged must match what the SMSC bills."""

from __future__ import annotations

import pickle
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meterline.domain.sms import (
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    SmsEncoding,
    SmsEstimate,
    SmsTooLong,
    encoding_of,
    estimate,
    segment_count,
    to_gsm7_septets,
)

GSM7 = SmsEncoding.gsm7
UCS2 = SmsEncoding.ucs2

# --- an independent copy of the TS 23.038 tables ----------------------------------------------
# Written by Unicode name from the unicode.org GSM0338 mapping, not copied from the module, so a
# look-alike or a shifted row in the module's table shows up here.

_NAMED_BASIC = {
    0x00: "COMMERCIAL AT",
    0x01: "POUND SIGN",
    0x02: "DOLLAR SIGN",
    0x03: "YEN SIGN",
    0x04: "LATIN SMALL LETTER E WITH GRAVE",
    0x05: "LATIN SMALL LETTER E WITH ACUTE",
    0x06: "LATIN SMALL LETTER U WITH GRAVE",
    0x07: "LATIN SMALL LETTER I WITH GRAVE",
    0x08: "LATIN SMALL LETTER O WITH GRAVE",
    0x09: "LATIN CAPITAL LETTER C WITH CEDILLA",
    0x0B: "LATIN CAPITAL LETTER O WITH STROKE",
    0x0C: "LATIN SMALL LETTER O WITH STROKE",
    0x0E: "LATIN CAPITAL LETTER A WITH RING ABOVE",
    0x0F: "LATIN SMALL LETTER A WITH RING ABOVE",
    0x10: "GREEK CAPITAL LETTER DELTA",
    0x11: "LOW LINE",
    0x12: "GREEK CAPITAL LETTER PHI",
    0x13: "GREEK CAPITAL LETTER GAMMA",
    0x14: "GREEK CAPITAL LETTER LAMDA",
    0x15: "GREEK CAPITAL LETTER OMEGA",
    0x16: "GREEK CAPITAL LETTER PI",
    0x17: "GREEK CAPITAL LETTER PSI",
    0x18: "GREEK CAPITAL LETTER SIGMA",
    0x19: "GREEK CAPITAL LETTER THETA",
    0x1A: "GREEK CAPITAL LETTER XI",
    0x1C: "LATIN CAPITAL LETTER AE",
    0x1D: "LATIN SMALL LETTER AE",
    0x1E: "LATIN SMALL LETTER SHARP S",
    0x1F: "LATIN CAPITAL LETTER E WITH ACUTE",
    0x24: "CURRENCY SIGN",
    0x40: "INVERTED EXCLAMATION MARK",
    0x5B: "LATIN CAPITAL LETTER A WITH DIAERESIS",
    0x5C: "LATIN CAPITAL LETTER O WITH DIAERESIS",
    0x5D: "LATIN CAPITAL LETTER N WITH TILDE",
    0x5E: "LATIN CAPITAL LETTER U WITH DIAERESIS",
    0x5F: "SECTION SIGN",
    0x60: "INVERTED QUESTION MARK",
    0x7B: "LATIN SMALL LETTER A WITH DIAERESIS",
    0x7C: "LATIN SMALL LETTER O WITH DIAERESIS",
    0x7D: "LATIN SMALL LETTER N WITH TILDE",
    0x7E: "LATIN SMALL LETTER U WITH DIAERESIS",
    0x7F: "LATIN SMALL LETTER A WITH GRAVE",
}


def _expected_basic() -> dict[int, str]:
    table = {septet: unicodedata.lookup(name) for septet, name in _NAMED_BASIC.items()}
    table[0x0A] = "\n"
    table[0x0D] = "\r"
    for septet in range(0x20, 0x80):  # the rest of 0x20-0x7F is plain ASCII
        table.setdefault(septet, chr(septet))
    assert 0x1B not in table  # the escape to the extension table
    return table


EXPECTED_BASIC = _expected_basic()
EXPECTED_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    unicodedata.lookup("EURO SIGN"): 0x65,
}
REF_BASIC = frozenset(EXPECTED_BASIC.values())
REF_EXTENSION = frozenset(EXPECTED_EXTENSION)


# --- a slow, obviously correct reference ------------------------------------------------------


def ref_units(ch: str, encoding: SmsEncoding) -> int:
    if encoding is GSM7:
        return 2 if ch in REF_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def ref_split(text: str) -> tuple[SmsEncoding, int, list[str]]:
    """Character-by-character greedy split: a part ends when the next character would not fit."""
    gsm = all(ch in REF_BASIC or ch in REF_EXTENSION for ch in text)
    encoding = GSM7 if gsm else UCS2
    single, limit = (160, 153) if gsm else (70, 67)
    total = sum(ref_units(ch, encoding) for ch in text)
    if total <= single:
        return encoding, total, [text]
    parts: list[str] = []
    current, used = "", 0
    for ch in text:
        width = ref_units(ch, encoding)
        if used + width > limit:
            parts.append(current)
            current, used = "", 0
        current += ch
        used += width
    parts.append(current)
    return encoding, total, parts


def part_units(part: str, encoding: SmsEncoding) -> int:
    return sum(ref_units(ch, encoding) for ch in part)


# --- the alphabet ------------------------------------------------------------------------------


def test_basic_table_matches_ts_23_038() -> None:
    assert len(EXPECTED_BASIC) == 127
    assert frozenset(EXPECTED_BASIC.values()) == GSM7_BASIC_CHARS
    for septet, ch in EXPECTED_BASIC.items():
        assert to_gsm7_septets(ch) == [septet], (hex(septet), ch)


def test_extension_table_matches_ts_23_038() -> None:
    assert frozenset(EXPECTED_EXTENSION) == GSM7_EXTENSION_CHARS
    for ch, value in EXPECTED_EXTENSION.items():
        assert to_gsm7_septets(ch) == [0x1B, value]
    assert not GSM7_BASIC_CHARS & GSM7_EXTENSION_CHARS


def test_characters_named_in_the_brief_are_gsm() -> None:
    listed = (
        "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\n\r"
    )
    assert set(listed) <= GSM7_BASIC_CHARS
    assert encoding_of(listed) is GSM7
    assert estimate(listed).units == len(listed)


def test_only_backtick_and_extension_chars_of_printable_ascii_are_not_basic() -> None:
    printable = {chr(c) for c in range(0x20, 0x7F)}
    assert printable - GSM7_BASIC_CHARS == {"`", "^", "{", "}", "\\", "[", "~", "]", "|"}


@pytest.mark.parametrize(
    "ch",
    [
        "`",
        "\t",
        "\x1b",  # the escape itself is not a character of the text
        "\x00",
        "\u00a0",  # no-break space
        "ç",  # only capital Ç is in the table
        "á",
        "í",
        "ó",
        "ú",
        "’",  # curly quotes pasted from a word processor
        "“",
        "\u2126",  # OHM SIGN, looks like Ω
        "\u2206",  # INCREMENT, looks like Δ
        "Ж",
        "ক",
        "क",
        "😀",
    ],
)
def test_one_character_outside_the_tables_makes_it_ucs2(ch: str) -> None:
    text = "Your bill is due " + ch
    assert encoding_of(text) is UCS2
    assert estimate(text).encoding is UCS2
    assert segment_count(text)[0] is UCS2
    with pytest.raises(ValueError, match="not in the GSM 7-bit alphabet"):
        to_gsm7_septets(ch)


def test_to_gsm7_septets_escapes_extension_characters() -> None:
    assert to_gsm7_septets("") == []
    assert to_gsm7_septets("a€[") == [0x61, 0x1B, 0x65, 0x1B, 0x3C]
    assert to_gsm7_septets("@\n") == [0x00, 0x0A]


# --- GSM-7 lengths and boundaries -------------------------------------------------------------


def test_empty_text_is_one_segment() -> None:
    est = estimate("")
    assert est == SmsEstimate(encoding=GSM7, characters=0, units=0, segments=1, parts=("",))
    assert segment_count("") == (GSM7, 1)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 10, 10)],
)
def test_gsm7_boundaries(length: int, segments: int) -> None:
    text = "x" * length
    est = estimate(text)
    assert (est.encoding, est.characters, est.units, est.segments) == (
        GSM7,
        length,
        length,
        segments,
    )
    assert segment_count(text) == (GSM7, segments)
    if segments > 1:
        assert [len(p) for p in est.parts[:-1]] == [153] * (segments - 1)


def test_extension_characters_count_two_septets() -> None:
    assert estimate("€").units == 2
    assert estimate("{a}").units == 5
    assert estimate("€" * 80) == SmsEstimate(GSM7, 80, 160, 1, ("€" * 80,))
    assert segment_count("x" * 158 + "€") == (GSM7, 1)  # 160 septets
    assert segment_count("x" * 159 + "€") == (GSM7, 2)  # 161 septets
    est = estimate("€" * 81)
    assert (est.units, est.segments) == (162, 2)
    assert [len(p) for p in est.parts] == [76, 5]  # 152 septets: a 77th € would not fit


def test_split_never_falls_inside_an_escape_pair() -> None:
    # 152 + 2 would put ESC as septet 153 of part one and the € in part two.
    text = "a" * 152 + "€" + "b" * 20
    est = estimate(text)
    assert est.parts == ("a" * 152, "€" + "b" * 20)
    assert est.segments == 2
    assert segment_count(text) == (GSM7, 2)
    # 151 + 2 = 153 exactly: the pair fits at the end of part one.
    text = "a" * 151 + "|" + "b" * 20
    assert estimate(text).parts == ("a" * 151 + "|", "b" * 20)


def test_escape_pairs_can_add_a_segment() -> None:
    # 306 septets is 2 full parts by arithmetic, but the pair that cannot straddle the first
    # boundary leaves part one a septet short, and the last "a" spills into a third part.
    text = "a" * 152 + "€" + "a" * 152
    assert estimate(text).units == 153 * 2
    assert segment_count(text) == (GSM7, 3)
    assert estimate(text).parts == ("a" * 152, "€" + "a" * 151, "a")


# --- UCS-2 lengths and boundaries -------------------------------------------------------------

SCRIPT_LETTERS = {"bengali": "ক", "hindi": "क", "russian": "Ж"}


@pytest.mark.parametrize("letter", SCRIPT_LETTERS.values(), ids=SCRIPT_LETTERS.keys())
@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 3, 3), (67 * 3 + 1, 4)],
)
def test_ucs2_boundaries(letter: str, length: int, segments: int) -> None:
    text = letter * length
    est = estimate(text)
    assert (est.encoding, est.characters, est.units, est.segments) == (
        UCS2,
        length,
        length,
        segments,
    )
    assert segment_count(text) == (UCS2, segments)
    if segments > 1:
        assert [len(p) for p in est.parts[:-1]] == [67] * (segments - 1)


def test_bengali_counts_code_points_not_letters() -> None:
    # "বিদ্যুৎ" (electricity) is one word but seven code points: vowel signs and the virama count.
    word = "বিদ্যুৎ"
    assert len(word) == 7
    est = estimate(word)
    assert (est.encoding, est.characters, est.units, est.segments) == (UCS2, 7, 7, 1)
    assert segment_count(word * 10) == (UCS2, 1)  # 70 units: still one SMS
    assert segment_count(word * 10 + "।") == (UCS2, 2)  # the full stop (dari) tips it over


def test_mixed_text_one_cyrillic_letter_makes_it_ucs2() -> None:
    english = "Dear customer, your bill is due. " * 4 + "Pay before the 15th to avoid late fee!"
    assert len(english) == 170
    assert segment_count(english) == (GSM7, 2)
    mixed = english + "Ж"
    est = estimate(mixed)
    assert (est.encoding, est.units, est.segments) == (UCS2, 171, 3)
    assert segment_count(mixed) == (UCS2, 3)


def test_emoji_count_two_units() -> None:
    assert estimate("😀").units == 2
    assert estimate("😀" * 35) == SmsEstimate(UCS2, 35, 70, 1, ("😀" * 35,))
    est = estimate("😀" * 36)
    assert (est.characters, est.units, est.segments) == (36, 72, 2)
    assert [len(p) for p in est.parts] == [33, 3]  # 66 units: a 34th emoji would need 68


def test_emoji_at_a_part_boundary_stays_whole() -> None:
    text = "ক" * 66 + "😀" + "খ" * 10
    est = estimate(text)
    assert est.parts == ("ক" * 66, "😀" + "খ" * 10)
    assert segment_count(text) == (UCS2, 2)
    # 65 + 2 = 67: the pair fits exactly at the end of part one.
    text = "ক" * 65 + "😀" + "খ" * 10
    assert estimate(text).parts == ("ক" * 65 + "😀", "খ" * 10)


def test_surrogate_pairs_can_add_a_segment() -> None:
    text = "ক" * 66 + "😀" + "ক" * 66
    assert estimate(text).units == 67 * 2
    assert segment_count(text) == (UCS2, 3)
    assert estimate(text).parts == ("ক" * 66, "😀" + "ক" * 65, "ক")


def test_lone_surrogate_is_refused_clearly() -> None:
    text = "abc\udc80"
    with pytest.raises(ValueError, match="lone surrogate at index 3"):
        estimate(text)
    with pytest.raises(ValueError, match="lone surrogate at index 3"):
        segment_count(text)


# --- the part limit ---------------------------------------------------------------------------


def test_over_max_parts_is_refused_not_truncated() -> None:
    assert estimate("x" * 153 * 10).segments == 10
    with pytest.raises(SmsTooLong) as info:
        estimate("x" * (153 * 11 + 1))
    assert str(info.value) == "message needs 12 SMS parts; the maximum is 10"
    assert (info.value.segments, info.value.max_parts) == (12, 10)
    assert isinstance(info.value, ValueError)
    # the bulk path counts, it does not judge
    assert segment_count("x" * (153 * 11 + 1)) == (GSM7, 12)


def test_sms_too_long_survives_pickling() -> None:
    # It may cross a process boundary (worker pools); the attributes must come back.
    err = pickle.loads(pickle.dumps(SmsTooLong(12, 10)))
    assert (err.segments, err.max_parts, str(err)) == (
        12,
        10,
        "message needs 12 SMS parts; the maximum is 10",
    )


def test_max_parts_argument() -> None:
    assert estimate("ক" * 67 * 3, max_parts=3).segments == 3
    with pytest.raises(SmsTooLong, match="needs 4 SMS parts; the maximum is 3"):
        estimate("ক" * (67 * 3 + 1), max_parts=3)
    assert estimate("x" * 160, max_parts=1).segments == 1
    with pytest.raises(SmsTooLong, match="needs 2 SMS parts; the maximum is 1"):
        estimate("x" * 161, max_parts=1)
    with pytest.raises(ValueError, match="at least 1"):
        estimate("x", max_parts=0)


# --- cost -------------------------------------------------------------------------------------


def test_cost_is_segments_times_price() -> None:
    assert estimate("").cost_minor(25) == 25
    assert estimate("x" * 160).cost_minor(25) == 25
    assert estimate("x" * 161).cost_minor(25) == 50
    assert estimate("ক" * 71).cost_minor(35) == 70
    assert estimate("ক" * (67 * 3 + 1)).cost_minor(35) == 140
    assert estimate("x").cost_minor(0) == 0


@pytest.mark.parametrize("price", [0.25, 1.0, True, "25"])
def test_cost_takes_integer_minor_units_only(price: object) -> None:
    with pytest.raises(TypeError, match="minor units"):
        estimate("x").cost_minor(price)  # type: ignore[arg-type]


def test_cost_refuses_negative_price() -> None:
    with pytest.raises(ValueError, match="negative"):
        estimate("x").cost_minor(-1)


# --- properties -------------------------------------------------------------------------------

_GSM_ALPHABET = sorted(REF_BASIC | REF_EXTENSION)
gsm_texts = st.text(alphabet=st.sampled_from(_GSM_ALPHABET), max_size=700)
# Few distinct characters and many wide ones, so escape pairs land on boundaries often.
escape_heavy = st.one_of(
    st.text(alphabet=st.sampled_from(["a", "€", "{", "\f", "é", " "]), max_size=700),
    st.text(alphabet=st.sampled_from(["a", "{", "|", " "]), max_size=700),  # the ASCII path
)
astral_heavy = st.text(alphabet=st.sampled_from(["ক", "া", "😀", "𝄞", "a", "€"]), max_size=400)
any_texts = st.text(max_size=400)  # excludes lone surrogates
ascii_texts = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=400)  # "`", controls
texts = st.one_of(gsm_texts, escape_heavy, astral_heavy, ascii_texts, any_texts)

NO_LIMIT = 10**6


@given(texts)
@example("a" * 152 + "€" * 2)
@example("ক" * 66 + "😀" * 2)
def test_matches_reference_split(text: str) -> None:
    encoding, units, parts = ref_split(text)
    est = estimate(text, max_parts=NO_LIMIT)
    assert est == SmsEstimate(encoding, len(text), units, len(parts), tuple(parts))


@given(texts)
def test_parts_join_back_to_the_text(text: str) -> None:
    assert "".join(estimate(text, max_parts=NO_LIMIT).parts) == text


@given(texts)
def test_every_part_within_its_limit(text: str) -> None:
    est = estimate(text, max_parts=NO_LIMIT)
    assert all(est.parts) or est.parts == ("",)  # no empty parts but the empty text's own
    if est.segments == 1:
        limit = 160 if est.encoding is GSM7 else 70
    else:
        limit = 153 if est.encoding is GSM7 else 67
    assert all(part_units(p, est.encoding) <= limit for p in est.parts)
    assert sum(part_units(p, est.encoding) for p in est.parts) == est.units


@given(texts)
def test_segment_count_agrees_with_estimate(text: str) -> None:
    est = estimate(text, max_parts=NO_LIMIT)
    assert segment_count(text) == (est.encoding, est.segments)


@given(texts)
def test_gsm7_iff_every_character_in_the_tables(text: str) -> None:
    in_tables = all(ch in REF_BASIC or ch in REF_EXTENSION for ch in text)
    assert (encoding_of(text) is GSM7) == in_tables


@given(texts, st.integers(min_value=1, max_value=12))
def test_refused_exactly_when_over_the_limit(text: str, max_parts: int) -> None:
    needed = segment_count(text)[1]
    if needed > max_parts:
        with pytest.raises(SmsTooLong) as info:
            estimate(text, max_parts=max_parts)
        assert (info.value.segments, info.value.max_parts) == (needed, max_parts)
    else:
        assert estimate(text, max_parts=max_parts).segments == needed
