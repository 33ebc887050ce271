"""Message templates: save-time checks, data checks, locale formatting, fast paths."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal, get_currency_precision
from hypothesis import example, given, settings
from hypothesis import strategies as st

from meterline.domain import templates
from meterline.domain.default_templates import (
    DEFAULT_TEMPLATES,
    LANGUAGES,
    default_template,
)
from meterline.domain.notification_kinds import KINDS, UnknownKind
from meterline.domain.templates import (
    LocaleContext,
    MissingData,
    Renderer,
    TemplateRefused,
    format_value,
    validate_template,
)

IN = LocaleContext("en", "IN", "INR", "Asia/Kolkata")
HI = LocaleContext("hi", "IN", "INR", "Asia/Kolkata")
BD = LocaleContext("bn", "BD", "BDT", "Asia/Dhaka")
RU = LocaleContext("ru", "RU", "RUB", "Europe/Moscow")
US = LocaleContext("en", "US", "USD", "America/New_York")
CONTEXTS = {"en": IN, "hi": HI, "bn": BD, "ru": RU}

NBSP = "\u00a0"
BENGALI_DIGITS = set("০১২৩৪৫৬৭৮৯")
UTC = dt.UTC

DUES = (
    "{{ org_name }}: dues of {{ amount }} on account {{ account }} were due {{ due_date }}."
    "{% if pay_url %} Pay: {{ pay_url }}{% endif %}"
)


def dues_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "org_name": "PowerCo",
        "account": "1001234",
        "amount": 12345650,
        "due_date": dt.date(2024, 3, 5),
        "pay_url": "https://mtl.in/p/x7",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


# Every kind's variables with a typical value (the common ones added per call).
SAMPLE = {
    "account": "1001234",
    "amount": 50000,
    "balance": 7550,
    "at": dt.datetime(2024, 3, 5, 8, 37, tzinfo=UTC),
    "reference": "TX8812",
    "due_date": dt.date(2024, 3, 15),
    "pay_url": "https://mtl.in/p/x7Kq2",
    "threshold": 10000,
    "load_kw": 6,
    "sanctioned_kw": 5,
    "meter": "M88123",
    "code": "482913",
    "minutes": 10,
    "as_of": dt.date(2024, 3, 31),
    "text": "Office closed on Friday.",
    "grace": "Emergency credit 50 for 3 days",
}


def sample_data(kind: str, *, optional: bool = True) -> dict[str, Any]:
    spec = KINDS[kind]
    names = spec.variables if optional else spec.required
    return {"org_name": "PowerCo", **{name: SAMPLE[name] for name in names}}


# --- save-time validation --------------------------------------------------------------


def test_a_valid_template_passes() -> None:
    validate_template("dues_reminder", DUES)


def test_unknown_variable_is_refused_with_its_name_and_the_known_ones() -> None:
    with pytest.raises(TemplateRefused) as info:
        validate_template("dues_reminder", "{{ org_name }}: {{ amout }} due {{ due_date }}")
    assert str(info.value) == (
        "template for dues_reminder uses unknown variable 'amout' "
        "(known: account, amount, consumer_name, due_date, org_name, pay_url)"
    )
    assert info.value.kind == "dues_reminder"
    assert info.value.unknown == ("amout",)
    assert info.value.line is None


def test_several_unknown_variables_are_listed_sorted() -> None:
    with pytest.raises(TemplateRefused) as info:
        validate_template("otp", "{{ zeta }} {{ code }} {% if alpha %}x{% endif %}")
    assert info.value.unknown == ("alpha", "zeta")
    assert "unknown variables 'alpha', 'zeta'" in str(info.value)


def test_another_kinds_variable_is_unknown() -> None:
    with pytest.raises(TemplateRefused, match="'amount'"):
        validate_template("otp", "{{ code }} {{ amount }}")


def test_syntax_error_is_refused_with_its_line() -> None:
    with pytest.raises(TemplateRefused) as info:
        validate_template("otp", "Code {{ code }}\nvalid {{ minutes }")
    assert info.value.line == 2
    assert "syntax error at line 2" in str(info.value)
    assert info.value.kind == "otp"
    assert info.value.unknown == ()


def test_unclosed_block_is_a_syntax_error() -> None:
    with pytest.raises(TemplateRefused, match="syntax error at line"):
        validate_template("dues_reminder", "{{ amount }}{% if pay_url %} {{ pay_url }}")


def test_unknown_filter_is_refused_with_its_line() -> None:
    with pytest.raises(TemplateRefused) as info:
        validate_template("otp", "{{ org_name }}\n\n{{ code|shout }}")
    assert info.value.line == 3
    assert "shout" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   \n  ",
        "{% if consumer_name %}Dear {{ consumer_name }}{% endif %}",
        "{{ consumer_name }}",
    ],
)
def test_a_template_that_renders_to_empty_text_is_refused(source: str) -> None:
    with pytest.raises(TemplateRefused, match="empty"):
        validate_template("custom", source)


def test_optional_parts_may_be_empty_if_the_rest_is_not() -> None:
    validate_template(
        "custom", "{% if consumer_name %}Dear {{ consumer_name }}, {% endif %}{{ text }}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ code.__class__.__mro__ }}",
        "{{ code['__class__'] }}",
        "{{ org_name._secret }}",
    ],
)
def test_private_attribute_tricks_are_refused_when_saved(source: str) -> None:
    with pytest.raises(TemplateRefused, match="private attribute"):
        validate_template("otp", source)


def test_sandbox_violation_found_by_the_sample_render_is_refused_when_saved() -> None:
    # Not visible in the syntax tree (a filter argument): the sandbox stops it when
    # the template is rendered on sample data during validation.
    with pytest.raises(TemplateRefused, match="SecurityError"):
        validate_template("otp", "{{ code|attr('__class__') }}")


def test_sandbox_violation_hidden_in_a_branch_is_refused_at_render() -> None:
    source = "{{ code }}{% if code == '999999' %}{{ code|attr('__cla' ~ 'ss__') }}{% endif %}"
    validate_template("otp", source)  # the sample data does not take the branch
    renderer = Renderer()
    data = {"org_name": "PowerCo", "code": "123456", "minutes": 5}
    assert renderer.render("otp", source, data, IN) == "123456"
    with pytest.raises(TemplateRefused, match="SecurityError") as info:
        renderer.render("otp", source, {**data, "code": "999999"}, IN)
    assert info.value.kind == "otp"


def test_missing_attribute_is_refused_by_strict_undefined() -> None:
    with pytest.raises(TemplateRefused, match="UndefinedError"):
        validate_template("otp", "{{ code.nothing }}")


@pytest.mark.parametrize(
    "source",
    [
        "{% include 'x.txt' %}",
        "{% extends 'base.txt' %}",
        "{% import 'macros.txt' as m %}{{ code }}",
    ],
)
def test_other_templates_may_not_be_pulled_in(source: str) -> None:
    with pytest.raises(TemplateRefused, match="include, import or extend"):
        validate_template("otp", source)


def test_jinja_globals_are_not_available() -> None:
    with pytest.raises(TemplateRefused, match="'range'"):
        validate_template("otp", "{% for i in range(3) %}{{ code }}{% endfor %}")
    with pytest.raises(TemplateRefused, match="'lipsum'"):
        validate_template("otp", "{{ code }} {{ lipsum() }}")


def test_the_random_filter_is_gone_so_a_resend_is_identical() -> None:
    with pytest.raises(TemplateRefused, match="random"):
        validate_template("otp", "{{ code|random }}")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownKind, match="known:"):
        validate_template("nope", "{{ org_name }}")


def test_template_must_be_text() -> None:
    with pytest.raises(TemplateRefused, match="must be text"):
        validate_template("otp", None)  # type: ignore[arg-type]


def test_ordinary_filters_and_logic_still_work() -> None:
    source = "{{ org_name|upper }}: {{ code }}{% for ch in 'ab' %}{{ loop.index }}{% endfor %}"
    validate_template("otp", source)
    text = Renderer().render("otp", source, {"org_name": "PowerCo", "code": "7", "minutes": 1}, IN)
    assert text == "POWERCO: 712"


# --- data checks at render --------------------------------------------------------------


def test_renders_the_dues_reminder() -> None:
    text = Renderer().render("dues_reminder", DUES, dues_data(), IN)
    assert text == (
        "PowerCo: dues of ₹1,23,456.50 on account 1001234 were due 5 Mar 2024. "
        "Pay: https://mtl.in/p/x7"
    )


@pytest.mark.parametrize("absent", ["amount", "account", "due_date", "org_name"])
def test_missing_required_variable_names_it_and_the_kind(absent: str) -> None:
    data = dues_data()
    del data[absent]
    with pytest.raises(MissingData) as info:
        Renderer().render("dues_reminder", DUES, data, IN)
    assert info.value.variable == absent
    assert info.value.kind == "dues_reminder"
    assert f"'{absent}'" in str(info.value)
    assert "dues_reminder" in str(info.value)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_a_blank_required_value_is_missing(blank: object) -> None:
    with pytest.raises(MissingData, match="'account'"):
        Renderer().render("dues_reminder", DUES, dues_data(account=blank), IN)


def test_a_required_variable_the_template_does_not_show_is_still_required() -> None:
    # The data contract is the kind's, whatever the operator's template shows.
    source = "{{ org_name }}: please pay {{ amount }}"
    data = dues_data()
    del data["due_date"]
    with pytest.raises(MissingData, match="'due_date'"):
        Renderer().render("dues_reminder", source, data, IN)


@pytest.mark.parametrize("absent", [..., None, ""])
def test_optional_variables_may_be_absent(absent: object) -> None:
    text = Renderer().render("dues_reminder", DUES, dues_data(pay_url=absent), IN)
    assert text.endswith("were due 5 Mar 2024.")
    source = "{{ org_name }} {{ consumer_name }}|{{ text }}"
    assert Renderer().render("custom", source, {"org_name": "O", "text": "hi"}, IN) == "O |hi"


def test_payment_received_without_balance() -> None:
    data = sample_data("payment_received", optional=False)
    text = Renderer().render(
        "payment_received", default_template("payment_received", "en"), data, IN
    )
    assert "Balance" not in text
    assert text.startswith("PowerCo: payment of ₹500.00 received")


def test_unknown_data_key_is_refused() -> None:
    with pytest.raises(MissingData, match=r"unknown variable.*'pay_ur'"):
        Renderer().render("dues_reminder", DUES, dues_data(pay_ur="https://x"), IN)


@pytest.mark.parametrize(
    ("changes", "variable", "reason"),
    [
        ({"amount": 123456.5}, "amount", "float"),
        ({"amount": Decimal("1234.50")}, "amount", "Decimal"),
        ({"amount": "1234.50"}, "amount", "minor units"),
        ({"amount": True}, "amount", "bool"),
        ({"due_date": "5 March"}, "due_date", "YYYY-MM-DD"),
        ({"due_date": 20240305}, "due_date", "date"),
        ({"due_date": dt.datetime(2024, 3, 5, 10, 0)}, "due_date", "naive"),
        ({"account": 1001234}, "account", "text"),
        ({"pay_url": b"https://x"}, "pay_url", "text"),
    ],
)
def test_wrong_types_are_refused(changes: dict[str, Any], variable: str, reason: str) -> None:
    with pytest.raises(MissingData, match=reason) as info:
        Renderer().render("dues_reminder", DUES, dues_data(**changes), IN)
    assert info.value.variable == variable


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (dt.datetime(2024, 3, 5, 8, 37), "naive"),
        ("2024-03-05T08:37:00", "naive"),
        ("yesterday", "ISO"),
        (dt.date(2024, 3, 5), "datetime"),
        (1709627820, "datetime"),
    ],
)
def test_datetimes_must_be_aware(value: object, reason: str) -> None:
    data = {"org_name": "PowerCo", "account": "A1", "at": value}
    source = default_template("zero_balance", "en")
    with pytest.raises(MissingData, match=reason) as info:
        Renderer().render("zero_balance", source, data, IN)
    assert info.value.variable == "at"
    assert info.value.kind == "zero_balance"


@pytest.mark.parametrize(
    "value", [5.5, float("nan"), "five", "NaN", "Infinity", Decimal("NaN"), True]
)
def test_numbers_are_never_floats_or_non_finite(value: object) -> None:
    data = {"org_name": "P", "account": "A1", "load_kw": value, "sanctioned_kw": 5,
            "at": dt.datetime(2024, 3, 5, tzinfo=UTC)}  # fmt: skip
    with pytest.raises(MissingData, match="'load_kw'"):
        Renderer().render("overload", default_template("overload", "en"), data, IN)


def test_format_value_refuses_with_missing_data_too() -> None:
    with pytest.raises(MissingData, match="float"):
        format_value("money", 1.5, IN)
    with pytest.raises(ValueError):
        format_value("colour", "red", IN)


# --- locale formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctx", "minor", "shown"),
    [
        (IN, 12345650, "₹1,23,456.50"),
        (IN, -5, "-₹0.05"),
        (IN, 0, "₹0.00"),
        (IN, 100, "₹1.00"),
        (IN, 123456789012, "₹1,23,45,67,890.12"),
        (HI, 12345650, "₹1,23,456.50"),
        (BD, 12345650, "১,২৩,৪৫৬.৫০৳"),
        (BD, -5, "-০.০৫৳"),
        (RU, 123450, f"1{NBSP}234,50{NBSP}₽"),
        (RU, -12345650, f"-123{NBSP}456,50{NBSP}₽"),
        (US, 123456789, "$1,234,567.89"),
    ],
)
def test_money_is_shown_in_the_locale(ctx: LocaleContext, minor: int, shown: str) -> None:
    assert format_value("money", minor, ctx) == shown


def test_bengali_uses_bengali_digits_and_the_taka_sign() -> None:
    text = format_value("money", 987654321, BD)
    assert "৳" in text
    assert not re.search(r"[0-9]", text)
    assert set(text) - {",", ".", "৳"} <= BENGALI_DIGITS


@pytest.mark.parametrize(
    ("ctx", "shown"),
    [
        (IN, "5 Mar 2024"),
        (HI, "5 मार्च 2024"),
        (BD, "৫ মার্চ, ২০২৪"),
        (RU, "5 мар. 2024 г."),  # Babel's U+202F before "г." is an ordinary space
        (US, "Mar 5, 2024"),
    ],
)
def test_dates_are_shown_in_the_locale(ctx: LocaleContext, shown: str) -> None:
    assert format_value("date", dt.date(2024, 3, 5), ctx) == shown
    assert format_value("date", "2024-03-05", ctx) == shown


def test_an_aware_datetime_as_a_date_is_the_local_date() -> None:
    late = dt.datetime(2024, 3, 5, 20, 0, tzinfo=UTC)  # 6 March in India
    assert format_value("date", late, IN) == "6 Mar 2024"
    assert format_value("date", late, RU) == "5 мар. 2024 г."


@pytest.mark.parametrize(
    ("ctx", "shown"),
    [
        # 20:37 UTC is 02:07 next day in Kolkata (+05:30), 02:37 in Dhaka (+06:00),
        # 23:37 in Moscow (+03:00) and 15:37 in New York (EST, -05:00).
        (IN, "6 Mar 2024, 2:07 am"),
        (HI, "6 मार्च 2024, 2:07 am"),
        (BD, "৬ মার্চ, ২০২৪ ২:৩৭ AM"),
        (RU, "5 мар. 2024 г., 23:37"),
        (US, "Mar 5, 2024, 3:37 PM"),
    ],
)
def test_datetimes_are_shown_in_the_tenants_time_zone(ctx: LocaleContext, shown: str) -> None:
    utc = dt.datetime(2024, 3, 5, 20, 37, 59, tzinfo=UTC)
    assert format_value("datetime", utc, ctx) == shown
    # The same instant given in another offset, or as an ISO string, is the same time.
    assert (
        format_value("datetime", utc.astimezone(dt.timezone(dt.timedelta(hours=-7))), ctx) == shown
    )
    assert format_value("datetime", "2024-03-05T20:37:00+00:00", ctx) == shown


@pytest.mark.parametrize("ctx", [IN, BD, RU, US, LocaleContext("en", "GB", "GBP", "Europe/London")])
@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=dt.datetime(1990, 1, 1),
        max_value=dt.datetime(2060, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_memoised_datetimes_equal_babels_date_and_time(
    ctx: LocaleContext, moment: dt.datetime
) -> None:
    # The formatter memoises dates, times of day and minutes; Babel does it afresh.
    tz = ZoneInfo(ctx.timezone)
    date_text = format_date(moment.astimezone(tz).date(), "medium", locale=ctx.locale_id)
    time_text = format_time(moment, "short", tzinfo=tz, locale=ctx.locale_id)
    glue = str(get_datetime_format("medium", locale=ctx.locale_id)).replace("'", "")
    expected = glue.replace("{0}", time_text).replace("{1}", date_text).replace("\u202f", " ")
    expected = expected.translate(templates._native_digits(ctx.locale_id) or {})
    assert format_value("datetime", moment, ctx) == expected


def test_summer_time_is_applied() -> None:
    ctx = LocaleContext("en", "GB", "GBP", "Europe/London")
    assert format_value("datetime", dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC), ctx).endswith(
        "13:00"
    )
    assert format_value("datetime", dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC), ctx).endswith(
        "12:00"
    )


@pytest.mark.parametrize(
    ("ctx", "value", "shown"),
    [
        (IN, 1234567, "12,34,567"),
        (IN, Decimal("5.50"), "5.5"),
        (IN, "7.25", "7.25"),
        (IN, -3, "-3"),
        (BD, 1234567, "১২,৩৪,৫৬৭"),
        (RU, Decimal("1234.5"), f"1{NBSP}234,5"),
        (US, 1234567, "1,234,567"),
    ],
)
def test_numbers_are_shown_in_the_locale(ctx: LocaleContext, value: object, shown: str) -> None:
    assert format_value("number", value, ctx) == shown


def test_text_and_urls_are_shown_as_they_are() -> None:
    assert format_value("text", "A-1001 ১২", BD) == "A-1001 ১২"
    assert format_value("url", "https://x.in/p?a=1&b=2", IN) == "https://x.in/p?a=1&b=2"


def test_the_babel_locale_is_language_and_country_when_babel_knows_it() -> None:
    assert IN.locale_id == "en_IN"
    assert BD.locale_id == "bn_BD"
    assert RU.locale_id == "ru_RU"
    assert LocaleContext("en", "RU", "RUB", "Europe/Moscow").locale_id == "en"
    assert LocaleContext("ru", "BD", "BDT", "Asia/Dhaka").locale_id == "ru"


@pytest.mark.parametrize(
    "args",
    [
        ("EN", "IN", "INR", "Asia/Kolkata"),
        ("en", "India", "INR", "Asia/Kolkata"),
        ("en", "IN", "rupee", "Asia/Kolkata"),
        ("en", "IN", "INR", ""),
    ],
)
def test_malformed_locale_context_is_refused(args: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError):
        LocaleContext(*args)


def test_unknown_language_or_time_zone_is_refused_on_use() -> None:
    with pytest.raises(ValueError, match="locale data"):
        format_value("text", "x", LocaleContext("zz", "IN", "INR", "Asia/Kolkata"))
    with pytest.raises(ValueError, match="time zone"):
        format_value("text", "x", LocaleContext("en", "IN", "INR", "Asia/Nowhere"))


# --- the fast money and number formatters against Babel ----------------------------------

MONEY_LOCALES = [
    ("en_IN", "INR"),
    ("hi_IN", "INR"),
    ("bn_BD", "BDT"),
    ("bn_IN", "INR"),
    ("ru_RU", "RUB"),
    ("en_US", "USD"),
    ("en", "KWD"),  # three decimals
    ("ja_JP", "JPY"),  # none
]
# Babel rounds past the decimal context's 28 digits; amounts stay inside that.
AMOUNTS = st.integers(min_value=-(10**25), max_value=10**25) | st.integers(-(10**7), 10**7)


def babel_money(locale_id: str, currency: str, minor: int) -> str:
    """Babel's own output for ``minor`` units; native digits where the locale uses them."""
    major = Decimal(minor).scaleb(-get_currency_precision(currency))
    text = format_currency(major, currency, locale=locale_id)
    return text.translate(templates._native_digits(locale_id) or {})


@pytest.mark.parametrize(("locale_id", "currency"), MONEY_LOCALES)
@settings(max_examples=400, deadline=None)
@given(minor=AMOUNTS)
@example(minor=0)
@example(minor=-1)
@example(minor=99)
@example(minor=-100)
@example(minor=10**25)
@example(minor=-(10**25))
@example(minor=12345650)
def test_fast_money_equals_babel(locale_id: str, currency: str, minor: int) -> None:
    money = templates._money_format(locale_id, currency)
    assert money.fast, "the fast path must be in use for this locale"
    assert money.format(minor) == babel_money(locale_id, currency, minor)


@pytest.mark.parametrize("locale_id", ["en_IN", "hi_IN", "en_US", "ru_RU", "en"])
@settings(max_examples=200, deadline=None)
@given(minor=AMOUNTS)
def test_latin_digit_locales_equal_babel_character_for_character(
    locale_id: str, minor: int
) -> None:
    assert templates._native_digits(locale_id) is None
    currency = {"en_IN": "INR", "hi_IN": "INR", "en_US": "USD", "ru_RU": "RUB", "en": "EUR"}[
        locale_id
    ]
    major = Decimal(minor).scaleb(-2)
    assert templates._money_format(locale_id, currency).format(minor) == format_currency(
        major, currency, locale=locale_id
    )


def test_bengali_output_is_babels_with_bengali_digits() -> None:
    babel = format_currency(Decimal("-123456.50"), "BDT", locale="bn_BD")
    assert babel == "-1,23,456.50৳"  # Babel itself writes Latin digits
    assert templates._money_format("bn_BD", "BDT").format(-12345650) == "-১,২৩,৪৫৬.৫০৳"


NUMBERS = (
    st.integers(min_value=-(10**24), max_value=10**24)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12
    )
    | st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)
)


@pytest.mark.parametrize("locale_id", ["en_IN", "hi_IN", "bn_BD", "bn_IN", "ru_RU", "en_US"])
@settings(max_examples=300, deadline=None)
@given(value=NUMBERS)
@example(value=Decimal("-0"))
@example(value=Decimal("0.0005"))
@example(value=Decimal("0.0015"))
@example(value=Decimal("1E+3"))
@example(value=Decimal("-1234567.8915"))
def test_fast_numbers_equal_babel(locale_id: str, value: int | Decimal) -> None:
    number = templates._number_format(locale_id)
    assert number.fast
    expected = format_decimal(value, locale=locale_id).translate(
        templates._native_digits(locale_id) or {}
    )
    assert number(value) == expected


def test_a_locale_the_fast_path_cannot_match_falls_back_to_babel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pretend the precomputed group symbol is wrong: the self-check at construction
    # sees the difference and the formatter uses Babel for that locale instead.
    monkeypatch.setattr(templates, "get_group_symbol", lambda locale: "#")
    money = templates._MoneyFormat("en_IN", "INR")
    assert not money.fast
    assert money.format(12345650) == "₹1,23,456.50"
    assert money(-5) == "-₹0.05"


def test_every_babel_locale_formats_like_babel_fast_or_not() -> None:
    from babel import localedata

    probes = [0, -7, 1234567, -98765432101]
    for locale_id in localedata.locale_identifiers()[::7]:
        money = templates._money_format(locale_id, "EUR")
        for minor in probes:
            assert money.format(minor) == babel_money(locale_id, "EUR", minor), locale_id


# --- the fast template path against Jinja ---------------------------------------------------

KNOWN = ["org_name", "consumer_name", "account", "amount", "due_date", "pay_url"]
_CHUNK = st.text(alphabet=st.sampled_from(list("ab .,:\n\t₹৳ক")), max_size=6)


def _blocks(depth: int) -> st.SearchStrategy[str]:
    leaf = _CHUNK | st.sampled_from(KNOWN).map(lambda n: "{{ " + n + " }}")
    if depth == 0:
        return st.lists(leaf, max_size=4).map("".join)

    def if_block(parts: tuple[str, bool, str, list[tuple[str, str]], str | None]) -> str:
        name, negate, body, elifs, otherwise = parts
        out = "{% if " + ("not " if negate else "") + name + " %}" + body
        for elif_name, elif_body in elifs:
            out += "{% elif " + elif_name + " %}" + elif_body
        if otherwise is not None:
            out += "{% else %}" + otherwise
        return out + "{% endif %}"

    inner = _blocks(depth - 1)
    branch = st.tuples(
        st.sampled_from(KNOWN),
        st.booleans(),
        inner,
        st.lists(st.tuples(st.sampled_from(KNOWN), inner), max_size=2),
        st.none() | inner,
    ).map(if_block)
    return st.lists(leaf | branch, max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    body=_blocks(2),
    present=st.fixed_dictionaries({name: st.booleans() for name in KNOWN}),
)
def test_the_fast_path_renders_exactly_like_jinja(body: str, present: dict[str, bool]) -> None:
    source = "{{ org_name }}|" + body
    compiled = templates._compile("dues_reminder", source)
    assert compiled.fast
    values = {name: (f"<{name}>" if present[name] else "") for name in KNOWN}
    values["org_name"] = "PowerCo"
    assert compiled._render(values) == templates._ENV.from_string(source).render(values)


def test_templates_beyond_the_plain_subset_use_jinja() -> None:
    renderer = Renderer()
    assert renderer.is_fast("otp", "{{ code }}{% if not minutes %}!{% endif %}")
    assert not renderer.is_fast("otp", "{{ code|upper }}")
    assert not renderer.is_fast("otp", "{% if code == '1' %}one{% endif %}{{ code }}")
    assert not renderer.is_fast("otp", "{% set x = code %}{{ x }}")


@pytest.mark.parametrize(("kind", "language"), sorted(DEFAULT_TEMPLATES))
def test_every_default_template_renders_the_same_on_both_paths(kind: str, language: str) -> None:
    source = DEFAULT_TEMPLATES[(kind, language)]
    compiled = templates._compile(kind, source)
    assert compiled.fast
    formats = templates._formats(CONTEXTS[language])
    for optional in (True, False):
        values = compiled.values(sample_data(kind, optional=optional), formats)
        assert compiled._render(values) == templates._ENV.from_string(source).render(values)


def test_the_renderer_compiles_each_source_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = templates._compile

    def counting(kind: str, source: str) -> Any:
        calls.append((kind, source))
        return real(kind, source)

    monkeypatch.setattr(templates, "_compile", counting)
    renderer = Renderer()
    for amount in range(50):
        renderer.render("dues_reminder", DUES, dues_data(amount=amount), IN)
    renderer.render("dues_reminder", DUES + " ", dues_data(), IN)
    assert calls == [("dues_reminder", DUES), ("dues_reminder", DUES + " ")]


def test_the_renderer_cache_is_bounded() -> None:
    renderer = Renderer(max_templates=3)
    for i in range(10):
        renderer.render(
            "otp", f"{{{{ code }}}} #{i}", {"org_name": "P", "code": "1", "minutes": 2}, IN
        )
    assert len(renderer._compiled) == 3


def test_an_invalid_template_is_refused_by_the_renderer_too() -> None:
    with pytest.raises(TemplateRefused, match="'amout'"):
        Renderer().render("dues_reminder", "{{ amout }}", dues_data(), IN)


def test_trailing_newline_is_dropped_and_block_lines_are_trimmed() -> None:
    source = "{{ org_name }}\n{% if pay_url %}\nPay: {{ pay_url }}\n{% endif %}\nBye\n"
    text = Renderer().render("dues_reminder", source, dues_data(), IN)
    assert text == "PowerCo\nPay: https://mtl.in/p/x7\nBye"


# --- default templates -----------------------------------------------------------------------


def test_there_is_a_default_for_every_kind_and_language() -> None:
    assert set(DEFAULT_TEMPLATES) == {(k, lang) for k in KINDS for lang in LANGUAGES}
    assert len(DEFAULT_TEMPLATES) == 4 * len(KINDS) == 52
    assert LANGUAGES == ("en", "hi", "bn", "ru")


@pytest.mark.parametrize(("kind", "language"), sorted(DEFAULT_TEMPLATES))
def test_every_default_template_is_valid(kind: str, language: str) -> None:
    validate_template(kind, DEFAULT_TEMPLATES[(kind, language)])


SCRIPT = {"hi": "DEVANAGARI", "bn": "BENGALI", "ru": "CYRILLIC"}


def _is_emoji(ch: str) -> bool:
    return ord(ch) >= 0x1F000 or 0x2600 <= ord(ch) <= 0x27BF or ch == "\ufe0f"


@pytest.mark.parametrize(("kind", "language"), sorted(DEFAULT_TEMPLATES))
def test_default_templates_are_plain_text_in_their_language(kind: str, language: str) -> None:
    source = DEFAULT_TEMPLATES[(kind, language)]
    if kind == "custom":  # the operator's text is the whole message
        assert source == "{{ text }}"
    else:
        assert "{{ org_name }}" in source
    assert not any(_is_emoji(ch) for ch in source)
    assert "\n" not in source
    if language in SCRIPT and kind != "custom":
        letters = [ch for ch in source if ch.isalpha()]
        script = [ch for ch in letters if SCRIPT[language] in unicodedata.name(ch, "")]
        assert script, f"{kind}/{language} has no {SCRIPT[language]} text"
    text = Renderer().render(kind, source, sample_data(kind), CONTEXTS[language])
    assert "{" not in text and "None" not in text
    assert not text.endswith(" ") and "  " not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_otp_and_short_alerts_fit_one_ucs2_part(language: str) -> None:
    ctx = CONTEXTS[language]
    otp = Renderer().render("otp", default_template("otp", language), sample_data("otp"), ctx)
    assert len(otp) <= 70, otp


def test_russian_dates_do_not_get_a_double_full_stop() -> None:
    for kind in KINDS:
        text = Renderer().render(kind, default_template(kind, "ru"), sample_data(kind), RU)
        assert "г.." not in text, text


def test_default_template_falls_back_to_english() -> None:
    assert default_template("otp", "ta") == DEFAULT_TEMPLATES[("otp", "en")]
    assert default_template("otp", "bn") == DEFAULT_TEMPLATES[("otp", "bn")]
    with pytest.raises(UnknownKind):
        default_template("nope", "en")


def test_the_default_dues_reminder_in_four_languages() -> None:
    data = sample_data("dues_reminder")
    r = Renderer()
    assert r.render("dues_reminder", default_template("dues_reminder", "en"), data, IN) == (
        "PowerCo: dues of ₹500.00 on account 1001234, due 15 Mar 2024. Pay: https://mtl.in/p/x7Kq2"
    )
    bn = r.render("dues_reminder", default_template("dues_reminder", "bn"), data, BD)
    assert "৫০০.০০৳" in bn and "১৫ মার্চ, ২০২৪" in bn
    ru = r.render("dues_reminder", default_template("dues_reminder", "ru"), data, RU)
    assert f"500,00{NBSP}₽" in ru and "15 мар. 2024 г." in ru
    hi = r.render("dues_reminder", default_template("dues_reminder", "hi"), data, HI)
    assert "₹500.00" in hi and "15 मार्च 2024" in hi
