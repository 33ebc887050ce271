"""Message templates: checked when saved, rendered fast and locale-correct when sent.

Operators write templates in Jinja2 syntax (``{{ amount }}``, ``{% if pay_url %}``)
per notification kind and language. Three rules keep that safe and cheap:

* A template is checked when it is saved (`validate_template`): it may use only its
  kind's variables and the common ones, must parse, may not reach for private
  attributes, include other templates or render to empty text. It runs in Jinja's
  sandbox with `StrictUndefined`, so whatever slips past the checks fails loudly at
  render time (`TemplateRefused`) instead of sending a half-empty SMS.
* Data is checked against the kind before rendering (`MissingData`: a required
  variable absent, a float where money is expected, a naive datetime ...), and every
  value is turned into its display string by its declared type first, so a template
  author writes ``{{ amount }}`` and gets ``₹1,23,456.50`` (en_IN), ``১,২৩,৪৫৬.৫০৳``
  (bn_BD) or ``123 456,50 ₽`` (ru_RU). Template code therefore sees strings only: it
  can test a variable (``{% if pay_url %}``) but not do arithmetic on it. An absent
  optional variable (missing, None or blank) is the empty string; a key the kind does
  not declare is refused, so a misspelt optional variable is not silently dropped.
* Bulk sends render a million messages, so `Renderer` compiles each source once, turns
  plain templates (text, variables, ``if``/``elif``/``else`` on variables) into a
  single Python expression instead of going through Jinja's runtime, and formats money
  and numbers with precomputed per-locale patterns rather than Babel's general
  formatter. Each fast formatter checks itself against Babel when it is built and
  falls back to Babel for a locale where it would differ; the test suite checks them
  against Babel over generated amounts.

Dates and times are Babel's medium date (and short time, in the context's time zone)
with its narrow no-break spaces (U+202F, as in "2:07 pm") made ordinary spaces: one
such character would otherwise force an English SMS from GSM-7 (160 characters a
part) into UCS-2 (70). Money keeps Babel's exact output (Russian "1 234,50 ₽" with
U+00A0): Russian text is UCS-2 anyway, and so is any text with ₹ or ৳.

Digits: Babel always formats with Latin digits. Where the locale's CLDR default
numbering system is a native one whose symbols equal the Latin ones (Bengali: ``beng``),
money, numbers, dates and times are shown in native digits, by a plain digit-for-digit
substitution of Babel's output.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError, localedata
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    get_minus_sign_symbol,
    get_plus_sign_symbol,
)
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from meterline.domain.notification_kinds import KindSpec, VarType, kind_spec

__all__ = [
    "LocaleContext",
    "MissingData",
    "Renderer",
    "TemplateRefused",
    "format_value",
    "validate_template",
]


# --- errors ------------------------------------------------------------------------


class TemplateRefused(ValueError):
    """A template that cannot be used for its kind.

    ``.kind`` is the kind, ``.unknown`` the sorted unknown variable names (empty for
    other reasons), ``.line`` the line of a syntax error (else None).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        unknown: tuple[str, ...] = (),
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.unknown = unknown
        self.line = line


class MissingData(ValueError):
    """Data for a notification lacks a required variable or has a value of a wrong type.

    ``.kind`` and ``.variable`` name where (None when not known, as in `format_value`);
    ``.reason`` says what is wrong.
    """

    def __init__(self, kind: str | None, variable: str | None, reason: str) -> None:
        where = f"data for {kind}" if kind else "value"
        if variable:
            where += f": {variable!r}"
        super().__init__(f"{where} {reason}")
        self.kind = kind
        self.variable = variable
        self.reason = reason


class _BadValue(ValueError):
    """Raised by the formatters; the caller adds the kind and variable name."""


# --- locale ------------------------------------------------------------------------

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class LocaleContext:
    """Who a message is for: language, country, currency and time zone of the tenant.

    The Babel locale is ``language_country`` when Babel knows it (``bn_BD``), else just
    the language (``en`` for ``en``/``RU``).
    """

    language: str  # "en", "hi", "bn", "ru"
    country: str  # ISO 3166 alpha-2: "IN", "BD", "RU"
    currency: str  # ISO 4217: "INR", "BDT", "RUB"
    timezone: str  # IANA: "Asia/Kolkata", "Asia/Dhaka", "Europe/Moscow"

    def __post_init__(self) -> None:
        if not _LANGUAGE.match(self.language):
            raise ValueError(f"language must be an ISO 639 code like 'en', got {self.language!r}")
        if not _COUNTRY.match(self.country):
            raise ValueError(f"country must be an ISO code like 'IN', got {self.country!r}")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency must be an ISO code like 'INR', got {self.currency!r}")
        if not self.timezone:
            raise ValueError("timezone must be an IANA name like 'Asia/Kolkata'")

    @property
    def locale_id(self) -> str:
        """The Babel locale identifier used for formatting (``en_IN``, ``bn_BD``, ``en``)."""
        return _locale_id(self.language, self.country)


@lru_cache(maxsize=256)
def _locale_id(language: str, country: str) -> str:
    for candidate in (f"{language}_{country}", language):
        if localedata.exists(candidate):
            try:
                Locale.parse(candidate)
            except (UnknownLocaleError, ValueError):
                continue
            return candidate
    raise ValueError(f"no locale data for language {language!r} (country {country!r})")


@lru_cache(maxsize=256)
def _locale(locale_id: str) -> Locale:
    return Locale.parse(locale_id)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


# Zero of each native digit script we substitute (CLDR numbering system -> U+xxx0).
_NATIVE_ZERO: Final = {
    "beng": 0x09E6,
    "deva": 0x0966,
    "gujr": 0x0AE6,
    "guru": 0x0A66,
    "knda": 0x0CE6,
    "mlym": 0x0D66,
    "mymr": 0x1040,
    "orya": 0x0B66,
    "tamldec": 0x0BE6,
    "telu": 0x0C66,
    "thai": 0x0E50,
}
_Digits = dict[int, int] | None


@lru_cache(maxsize=256)
def _native_digits(locale_id: str) -> _Digits:
    """A str.translate table to the locale's default digits, or None for Latin digits.

    Only when the default numbering system's decimal, group, sign symbols equal the
    Latin ones (true of ``beng``): then native output is exactly Babel's output with
    the digits swapped. Otherwise (Arabic, Persian ...) we keep Babel's Latin output.
    """
    locale = _locale(locale_id)
    system = locale.default_numbering_system
    zero = _NATIVE_ZERO.get(system)
    if zero is None:
        return None
    try:
        for getter in (
            get_decimal_symbol,
            get_group_symbol,
            get_minus_sign_symbol,
            get_plus_sign_symbol,
        ):
            if getter(locale, numbering_system="default") != getter(locale):
                return None
    except Exception:  # an unsupported numbering system: keep Latin digits
        return None
    return str.maketrans("0123456789", "".join(chr(zero + i) for i in range(10)))


# --- fast number and money formatting -------------------------------------------------


def _group(digits: str, first: int, rest: int, sep: str) -> str:
    """Insert ``sep`` like Babel's NumberPattern._format_int (``first``, then ``rest``)."""
    size = len(digits)
    if size <= first:
        return digits
    if size <= first + rest:
        return digits[:-first] + sep + digits[-first:]
    head = digits[:-first]
    parts = [digits[-first:]]
    while len(head) > rest:
        parts.append(head[-rest:])
        head = head[:-rest]
    parts.append(head)
    parts.reverse()
    return sep.join(parts)


class _PatternParts:
    """What a Babel NumberPattern needs at format time, precomputed.

    ``supported`` is False for pattern features the fast path does not implement
    (scientific, significant digits, percent, quoted literals, currency names).
    """

    def __init__(
        self,
        pattern: Any,
        locale: Locale,
        currency: str | None,
    ) -> None:
        self.supported = not (
            pattern.exp_prec
            or "@" in pattern.pattern
            or pattern.scale
            or pattern.number_pattern == ""
            or min(pattern.grouping) <= 0
        )
        affixes = []
        for affix in (*pattern.prefix, *pattern.suffix):
            if "¤¤¤" in affix:  # the currency's plural name depends on the amount
                self.supported = False
            if currency is not None:
                affix = affix.replace("¤¤", currency.upper())
                affix = affix.replace("¤", get_currency_symbol(currency, locale))
            if "'" in affix:  # quoted literals: leave them to Babel
                self.supported = False
            affixes.append(affix)
        self.pos_prefix, self.neg_prefix, self.pos_suffix, self.neg_suffix = affixes
        self.first, self.rest = pattern.grouping
        self.min_int = pattern.int_prec[0]
        self.frac_min, self.frac_max = pattern.frac_prec
        self.group = get_group_symbol(locale)
        self.decimal = get_decimal_symbol(locale)
        self.grouped = self._grouper()

    def integer(self, digits: str) -> str:
        if len(digits) < self.min_int:
            digits = digits.zfill(self.min_int)
        return _group(digits, self.first, self.rest, self.group)

    def _grouper(self) -> Callable[[int], str]:
        """A function: non-negative int -> its grouped digits (Latin)."""
        first, rest, sep = self.first, self.rest, self.group
        if self.min_int > 1:
            integer = self.integer
            return lambda n: integer(str(n))
        if first == rest == 3:
            # Python's own thousands grouping is Babel's (3, 3) grouping, done in C.
            if sep == ",":
                return "{:,}".format
            return lambda n: f"{n:,}".replace(",", sep)
        two, three = first + rest, first + 2 * rest

        def grouped(n: int) -> str:  # e.g. Indian (3, 2): 1,23,45,678
            text = str(n)
            size = len(text)
            if size <= first:
                return text
            if size <= two:
                return text[:-first] + sep + text[-first:]
            if size <= three:  # up to 99,99,99,999: no loop
                return text[:-two] + sep + text[-two:-first] + sep + text[-first:]
            return _group(text, first, rest, sep)

        return grouped


_MONEY_PROBES: Final = (
    0,
    1,
    -1,
    5,
    -99,
    100,
    101,
    999,
    1000,
    12345,
    -123456,
    1234567,
    12345650,
    -987654321,
    10**12 + 1,
    -(10**15) - 23,
    10**20 + 5,
)


class _MoneyFormat:
    """Formats an int of minor units like Babel's format_currency (standard pattern).

    ``format`` is the fast closure when it matches Babel on the probe amounts (checked
    here, once per locale and currency), else Babel itself.
    """

    def __init__(self, locale_id: str, currency: str) -> None:
        self.locale = _locale(locale_id)
        self.currency = currency
        self.precision: int = get_currency_precision(currency)
        self.digits = _native_digits(locale_id)
        parts = _PatternParts(self.locale.currency_formats["standard"], self.locale, currency)
        fast = self._fast_function(parts) if parts.supported else None
        self.fast = fast is not None and all(fast(v) == self.babel(v) for v in _MONEY_PROBES)
        self.format: Callable[[int], str] = fast if fast is not None and self.fast else self.babel

    def __call__(self, minor: int) -> str:
        return self.format(minor)

    def _fast_function(self, parts: _PatternParts) -> Callable[[int], str]:
        # Everything is bound to closure variables: this runs once per money value.
        pos_prefix, neg_prefix = parts.pos_prefix, parts.neg_prefix
        pos_suffix, neg_suffix = parts.pos_suffix, parts.neg_suffix
        grouped = parts.grouped
        digits = self.digits
        precision = self.precision
        unit = 10**precision
        if precision == 0:
            fractions: tuple[str, ...] = ("",)
        elif precision <= 4:
            fractions = tuple(parts.decimal + str(i).zfill(precision) for i in range(unit))
        else:  # no such currency today; keep it correct rather than precompute 10^n strings
            fractions = ()

        def money(minor: int) -> str:
            if minor < 0:
                units, cents = divmod(-minor, unit)
                prefix, suffix = neg_prefix, neg_suffix
            else:
                units, cents = divmod(minor, unit)
                prefix, suffix = pos_prefix, pos_suffix
            frac = fractions[cents] if fractions else parts.decimal + str(cents).zfill(precision)
            text = prefix + grouped(units) + frac + suffix
            return text.translate(digits) if digits else text

        return money

    def babel(self, minor: int) -> str:
        """The reference: Babel's own format_currency (then native digits if any)."""
        text = format_currency(
            Decimal(f"{minor}E-{self.precision}"), self.currency, locale=self.locale
        )
        return text.translate(self.digits) if self.digits else text


_NUMBER_PROBES: Final = (
    0,
    7,
    -7,
    1234,
    -1234567,
    10**18 + 3,
    Decimal("0.5"),
    Decimal("-1234.5678"),
    Decimal("12.3450"),
    Decimal("0.0004"),
    Decimal("1E+5"),
    Decimal("99999.9995"),
)


class _NumberFormat:
    """Formats an int or Decimal like Babel's format_decimal (the locale's pattern)."""

    def __init__(self, locale_id: str) -> None:
        self.locale = _locale(locale_id)
        self.digits = _native_digits(locale_id)
        parts = _PatternParts(self.locale.decimal_formats[None], self.locale, None)
        self.parts = parts
        self.quantum = Decimal(1).scaleb(-parts.frac_max)
        # An int has no fraction: Babel pads "0" to the minimum fraction digits.
        self.int_frac = (
            parts.decimal + "0" * parts.frac_min if parts.frac_min and parts.frac_max else ""
        )
        self.fast = parts.supported and all(self._fast(v) == self.babel(v) for v in _NUMBER_PROBES)

    def __call__(self, value: int | Decimal) -> str:
        return self._fast(value) if self.fast else self.babel(value)

    def _fast(self, value: int | Decimal) -> str:
        p = self.parts
        if type(value) is int:
            negative = value < 0
            text = p.grouped(-value if negative else value) + self.int_frac
        else:
            assert isinstance(value, Decimal)
            negative = value.is_signed()
            whole, _, frac = f"{abs(value).normalize().quantize(self.quantum):f}".partition(".")
            frac = frac or "0"
            if len(frac) < p.frac_min:
                frac += "0" * (p.frac_min - len(frac))
            if p.frac_max == 0 or (p.frac_min == 0 and int(frac) == 0):
                frac = ""
            else:
                frac = p.decimal + frac[: p.frac_min] + frac[p.frac_min :].rstrip("0")
            text = p.integer(whole) + frac
        if negative:
            text = p.neg_prefix + text + p.neg_suffix
        else:
            text = p.pos_prefix + text + p.pos_suffix
        return text.translate(self.digits) if self.digits else text

    def babel(self, value: int | Decimal) -> str:
        """The reference: Babel's own format_decimal (then native digits if any)."""
        text = format_decimal(value, locale=self.locale)
        return text.translate(self.digits) if self.digits else text


@lru_cache(maxsize=256)
def _money_format(locale_id: str, currency: str) -> _MoneyFormat:
    return _MoneyFormat(locale_id, currency)


@lru_cache(maxsize=256)
def _number_format(locale_id: str) -> _NumberFormat:
    return _NumberFormat(locale_id)


# --- per-context formatters -----------------------------------------------------------

_MEMO_LIMIT: Final = 8192


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


class _Formats:
    """Value -> display string for each VarType, for one LocaleContext."""

    def __init__(self, ctx: LocaleContext) -> None:
        locale_id = ctx.locale_id
        self.locale = _locale(locale_id)
        self.tz = _zone(ctx.timezone)
        self.digits = _native_digits(locale_id)
        self.money_format = _money_format(locale_id, ctx.currency)
        self.number_format = _number_format(locale_id)
        # Dates and minutes repeat across a bulk send (a due date, "as of"), so the
        # Babel call is made once per distinct value.
        self._dates: dict[dt.date, str] = {}
        self._minutes: dict[dt.datetime, str] = {}
        self._times: dict[int, str] = {}  # minute of the day -> short time
        glue = str(get_datetime_format("medium", locale=self.locale)).replace("'", "")
        self._glue = glue.replace("\u202f", " ")  # not _display: "{0}" must stay Latin
        self.by_type: dict[VarType, Callable[[Any], str]] = {
            VarType.text: self.text,
            VarType.url: self.text,
            VarType.money: self.money,
            VarType.number: self.number,
            VarType.date: self.date,
            VarType.datetime: self.datetime,
        }

    @staticmethod
    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        raise _BadValue(f"must be text (str), got {_describe(value)}")

    def money(self, value: Any) -> str:
        if type(value) is int:
            return self.money_format.format(value)
        raise _BadValue(
            f"must be an int of minor units (paisa, poisha, kopeck), got {_describe(value)}"
        )

    def number(self, value: Any) -> str:
        if type(value) is int:
            return self.number_format(value)
        if isinstance(value, str):
            try:
                value = Decimal(value.strip())
            except InvalidOperation:
                raise _BadValue(f"must be a number, got {_describe(value)}") from None
        if isinstance(value, Decimal) and value.is_finite():
            try:
                return self.number_format(value)
            except InvalidOperation:
                raise _BadValue(f"is too large to show, got {_describe(value)}") from None
        raise _BadValue(
            f"must be an int, Decimal or numeric str (not float), got {_describe(value)}"
        )

    def date(self, value: Any) -> str:
        if isinstance(value, dt.datetime):
            if value.utcoffset() is None:
                raise _BadValue(f"must be a date or an aware datetime, got naive {value!r}")
            value = value.astimezone(self.tz).date()
        elif isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError:
                raise _BadValue(f"must be a date (YYYY-MM-DD), got {_describe(value)}") from None
        elif not isinstance(value, dt.date):
            raise _BadValue(f"must be a date, got {_describe(value)}")
        return self._date_text(value)

    def _date_text(self, value: dt.date) -> str:
        text = self._dates.get(value)
        if text is None:
            text = self._display(format_date(value, "medium", locale=self.locale))
            if len(self._dates) >= _MEMO_LIMIT:
                self._dates.clear()
            self._dates[value] = text
        return text

    def _display(self, text: str) -> str:
        text = text.replace("\u202f", " ")
        return text.translate(self.digits) if self.digits else text

    def datetime(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise _BadValue(f"must be an ISO datetime, got {_describe(value)}") from None
        if not isinstance(value, dt.datetime):
            raise _BadValue(f"must be a timezone-aware datetime, got {_describe(value)}")
        if value.utcoffset() is None:
            raise _BadValue(f"must be timezone-aware (UTC), got naive {value!r}")
        # Shown to the minute: the local wall-clock minute is the memo key. A new
        # minute is put together from the memoised date and time of day (a short time
        # depends on the hour and minute only), so alerts stamped with many different
        # times do not each pay for two Babel calls.
        local = value.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        text = self._minutes.get(local)
        if text is None:
            minute = local.hour * 60 + local.minute
            time_text = self._times.get(minute)
            if time_text is None:
                time_text = self._display(format_time(local.time(), "short", locale=self.locale))
                self._times[minute] = time_text
            date_text = self._date_text(local.date())
            text = self._glue.replace("{0}", time_text).replace("{1}", date_text)
            if len(self._minutes) >= _MEMO_LIMIT:
                self._minutes.clear()
            self._minutes[local] = text
        return text


_FORMATS: dict[LocaleContext, _Formats] = {}


def _formats(ctx: LocaleContext) -> _Formats:
    formats = _FORMATS.get(ctx)
    if formats is None:
        formats = _Formats(ctx)
        if len(_FORMATS) >= 1024:
            _FORMATS.clear()
        _FORMATS[ctx] = formats
    return formats


def format_value(vartype: VarType | str, value: Any, ctx: LocaleContext) -> str:
    """``value`` as shown in a message for ``ctx``, by its declared type.

    money: int of minor units -> ``₹1,23,456.50``; number: int/Decimal/numeric str;
    date: date, ISO string or aware datetime (its local date); datetime: aware
    datetime, shown in ``ctx.timezone``; text and url: str as is. A value of the wrong
    type (a float, a naive datetime) raises `MissingData`.
    """
    try:
        return _formats(ctx).by_type[VarType(vartype)](value)
    except _BadValue as exc:
        raise MissingData(None, None, str(exc)) from None


# --- the template environment -----------------------------------------------------------

_ENV = SandboxedEnvironment(
    autoescape=False,  # SMS and chat text, not HTML
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,  # a block tag at the end of a line takes its newline with it
    lstrip_blocks=True,
)
_ENV.globals.clear()  # no range/lipsum/dict...: every name a template uses is a variable
_ENV.filters.pop("random", None)  # a resend must produce the same text

_SAMPLE_CONTEXT: Final = LocaleContext("en", "IN", "INR", "Asia/Kolkata")
_SAMPLE_VALUES: Final[Mapping[VarType, object]] = {
    VarType.text: "Sample",
    VarType.url: "https://example.org/p/1",
    VarType.money: 12345650,
    VarType.number: 5,
    VarType.date: dt.date(2024, 3, 5),
    VarType.datetime: dt.datetime(2024, 3, 5, 8, 37, tzinfo=dt.UTC),
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    vartype: VarType
    required: bool


class _Compiled:
    """One checked template of one kind, ready to render."""

    def __init__(
        self,
        spec: KindSpec,
        fields: tuple[_Field, ...],
        render: Callable[[dict[str, str]], str],
        fast: bool,
    ) -> None:
        self.spec = spec
        self.kind = spec.name
        self.fields = fields
        self.known = frozenset(f.name for f in fields)
        # (name, type, required, shown as is) per variable: the render loop's plan.
        self._plan = tuple(
            (f.name, f.vartype, f.required, f.vartype in (VarType.text, VarType.url))
            for f in fields
        )
        self._render = render
        self.fast = fast

    def values(self, data: Mapping[str, Any], formats: _Formats) -> dict[str, str]:
        """Data checked against the kind and turned into display strings."""
        values: dict[str, str] = {}
        present = 0
        by_type = formats.by_type
        get = data.get
        for name, vartype, required, textual in self._plan:
            value = get(name, _ABSENT)
            if type(value) is str:
                present += 1
                if value and not value.isspace():
                    if textual:
                        values[name] = value
                        continue
                else:
                    value = None
            elif value is _ABSENT:
                value = None
            else:
                present += 1
            if value is None:
                if required:
                    raise MissingData(self.kind, name, "is required but missing")
                values[name] = ""
                continue
            try:
                values[name] = by_type[vartype](value)
            except _BadValue as exc:
                raise MissingData(self.kind, name, str(exc)) from None
        if present != len(data):
            extra = sorted(str(k) for k in data if k not in self.known)
            raise MissingData(
                self.kind,
                None,
                f"has unknown variable(s) {', '.join(map(repr, extra))} "
                f"(known: {', '.join(sorted(self.known))})",
            )
        return values

    def render(self, data: Mapping[str, Any], formats: _Formats) -> str:
        values = self.values(data, formats)
        try:
            text = self._render(values)
        except Exception as exc:  # SecurityError, UndefinedError, TypeError ...
            raise TemplateRefused(
                self.kind,
                f"template for {self.kind} failed to render: {type(exc).__name__}: {exc}",
            ) from exc
        if not text or text.isspace():
            raise TemplateRefused(self.kind, f"template for {self.kind} rendered to empty text")
        return text


_ABSENT: Final = object()


def _python_expression(body: list[nodes.Node]) -> str | None:
    """A Python expression over ``v`` equal to rendering ``body``, or None if not plain.

    Plain means: literal text, ``{{ name }}``, ``{{ 'literal' }}`` and
    ``{% if [not] name %}`` / ``elif`` / ``else``. Since every value is already a str,
    Jinja would output ``str(value)`` = the value and test its truthiness, which is
    what the expression does. Only repr()'d literals and names go into the code.
    """
    parts: list[str] = []
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append(repr(child.data))
                elif isinstance(child, nodes.Name) and child.ctx == "load":
                    parts.append(f"v[{child.name!r}]")
                elif isinstance(child, nodes.Const) and isinstance(child.value, str):
                    parts.append(repr(child.value))
                else:
                    return None
        elif isinstance(node, nodes.If):
            branch = _if_expression(node)
            if branch is None:
                return None
            parts.append(branch)
        else:
            return None
    return " + ".join(parts) if parts else "''"


def _if_expression(node: nodes.If) -> str | None:
    otherwise = _python_expression(node.else_)
    for elif_ in reversed(node.elif_):
        test, then = _test_expression(elif_.test), _python_expression(elif_.body)
        if test is None or then is None or otherwise is None:
            return None
        otherwise = f"({then} if {test} else {otherwise})"
    test, then = _test_expression(node.test), _python_expression(node.body)
    if test is None or then is None or otherwise is None:
        return None
    return f"({then} if {test} else {otherwise})"


def _test_expression(test: nodes.Node) -> str | None:
    if isinstance(test, nodes.Name) and test.ctx == "load":
        return f"v[{test.name!r}]"
    if isinstance(test, nodes.Not) and isinstance(test.node, nodes.Name):
        return f"(not v[{test.node.name!r}])"
    return None


def _syntax_error(kind: str, exc: TemplateSyntaxError) -> TemplateRefused:
    return TemplateRefused(
        kind,
        f"template for {kind}: syntax error at line {exc.lineno}: {exc.message}",
        line=exc.lineno,
    )


def _compile(kind: str, source: str) -> _Compiled:
    """Check ``source`` for ``kind`` and compile it; `TemplateRefused` says why not."""
    spec = kind_spec(kind)
    if not isinstance(source, str):
        raise TemplateRefused(kind, f"template for {kind} must be text, got {_describe(source)}")
    known = spec.template_variables
    try:
        ast = _ENV.parse(source)
        # Runs the code generator, which also refuses unknown filters and tests.
        undeclared = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError as exc:  # TemplateAssertionError included
        raise _syntax_error(kind, exc) from None

    unknown = tuple(sorted(undeclared - set(known)))
    if unknown:
        noun = "variable" if len(unknown) == 1 else "variables"
        raise TemplateRefused(
            kind,
            f"template for {kind} uses unknown {noun} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known))})",
            unknown=unknown,
        )
    if any(True for _ in meta.find_referenced_templates(ast)):
        raise TemplateRefused(
            kind, f"template for {kind} may not include, import or extend other templates"
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value if isinstance(node.arg.value, str) else None
        if attr is not None and attr.startswith("_"):
            raise TemplateRefused(
                kind,
                f"template for {kind} uses the private attribute {attr!r} "
                f"at line {node.lineno}; only variables may be used",
                line=node.lineno,
            )
    try:
        template = _ENV.from_string(source)  # also resolves filters and tests
    except TemplateSyntaxError as exc:
        raise _syntax_error(kind, exc) from None

    expression = _python_expression(ast.body)
    render: Callable[[dict[str, str]], str]
    if expression is not None:
        render = eval(f"lambda v: {expression}", {"__builtins__": {}})
    else:
        render = template.render
    required = spec.required_variables
    fields = tuple(_Field(name, vartype, name in required) for name, vartype in known.items())
    compiled = _Compiled(spec, fields, render, fast=expression is not None)

    # Render sample data with every variable, then with only the required ones: this
    # catches what parsing cannot (sandbox violations, bad filter use) and a template
    # that says nothing when the optional variables are absent.
    formats = _formats(_SAMPLE_CONTEXT)
    full = {f.name: _SAMPLE_VALUES[f.vartype] for f in fields}
    minimal = {f.name: full[f.name] for f in fields if f.required}
    for sample in (full, minimal):
        compiled.render(sample, formats)
    return compiled


def validate_template(kind: str, source: str) -> None:
    """Refuse (`TemplateRefused`) a template that cannot serve ``kind``; for save time.

    Refused: a syntax error (with its line), a variable that is neither the kind's nor
    common (with the names), a private attribute (``''.__class__``), an include,
    import or extends, a render error on sample data (the sandbox's SecurityError
    included), and text that renders empty when optional variables are absent.
    An unknown kind raises `UnknownKind`.
    """
    _compile(kind, source)


# --- rendering ---------------------------------------------------------------------------


class Renderer:
    """Compiles each template source once (cache keyed by kind and source) and renders
    many messages fast.

    One Renderer can be shared by threads; a bulk send should keep one for its run.
    """

    def __init__(self, *, max_templates: int = 512) -> None:
        self._max = max_templates
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def render(self, kind: str, source: str, data: Mapping[str, Any], ctx: LocaleContext) -> str:
        """The message text of ``source`` for ``data`` (a kind's variables) in ``ctx``.

        Raises `MissingData` (a required variable absent, a value of the wrong type, a
        variable the kind does not have), `TemplateRefused` (the template fails its
        checks, or fails at render time, e.g. a sandbox violation) or `UnknownKind`.
        """
        compiled = self._compiled.get((kind, source))
        if compiled is None:
            compiled = _compile(kind, source)
            if len(self._compiled) >= self._max:
                self._compiled.pop(next(iter(self._compiled)), None)
            self._compiled[(kind, source)] = compiled
        formats = _FORMATS.get(ctx) or _formats(ctx)
        return compiled.render(data, formats)

    def is_fast(self, kind: str, source: str) -> bool:
        """Whether ``source`` renders without Jinja's runtime (plain text, variables, ifs)."""
        return _compile(kind, source).fast
