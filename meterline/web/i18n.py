"""The console's languages: gettext catalogs and locale-aware number, money and date formats.

Catalogs are plain ``.po`` files read at start-up with Babel, so there is no compile
step to forget; English is the msgid, so a missing translation shows English, never a key.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

from meterline.domain.enums import LANGUAGES
from meterline.services.tenants import locale_for

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "console"

# What the switcher shows: each language in its own script, so anyone can find theirs.
LANGUAGE_NAMES = {"en": "English", "hi": "हिन्दी", "bn": "বাংলা", "ru": "Русский"}
assert tuple(LANGUAGE_NAMES) == LANGUAGES


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where shown."""
    return message


@cache
def translations(language: str) -> NullTranslations:
    """The catalog for `language`, compiled in memory once per process."""
    po = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)  # a fuzzy entry is a guess: show English instead
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def pick_language(*candidates: str | None) -> str:
    """The first supported language among the candidates, else English."""
    for c in candidates:
        if c in LANGUAGES:
            return c
    return "en"


def from_accept_language(header: str | None) -> str | None:
    """Best supported language from an Accept-Language header (for the login page)."""
    if not header:
        return None
    prefs = []
    for part in header.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        prefs.append((weight, tag.strip().replace("-", "_")))
    prefs.sort(key=lambda p: -p[0])
    found = Locale.negotiate([t for _, t in prefs if t], list(LANGUAGES), sep="_")
    return str(found.language) if found else None


@dataclass(frozen=True)
class Formatter:
    """Formats values for one locale, currency and time zone: what a template needs."""

    locale: Locale
    currency: str
    exponent: int
    tz: dt.tzinfo

    @classmethod
    def create(
        cls, language: str, country: str, currency: str, exponent: int, timezone: str
    ) -> Formatter:
        return cls(locale_for(language, country), currency, exponent, ZoneInfo(timezone))

    def money(self, minor: int | None) -> str:
        if minor is None:
            return "—"
        # Integer minor units -> exact Decimal; a float would round paisa away.
        amount = Decimal(minor).scaleb(-self.exponent)
        return format_currency(amount, self.currency, locale=self.locale)

    def number(self, value: int | Decimal | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.locale)

    def date(self, value: dt.date | None) -> str:
        return "—" if value is None else format_date(value, "medium", locale=self.locale)

    def datetime(self, value: dt.datetime | None) -> str:
        if value is None:
            return "—"
        return format_datetime(value, "medium", tzinfo=self.tz, locale=self.locale)

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.tz).date()
