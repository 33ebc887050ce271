"""The console's catalogs are complete and its formats follow the locale."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from meterline.store.queries import ascii_digits, phone_query
from meterline.web.i18n import (
    LOCALES_DIR,
    Formatter,
    from_accept_language,
    pick_language,
    translations,
)

WEB = Path(LOCALES_DIR).parent
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _source_ids() -> set[str | tuple[str, ...]]:
    found = extract_from_dir(
        str(WEB),
        method_map=[("templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}},
        keywords={**DEFAULT_KEYWORDS, "N_": None},
    )
    ids: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _ctx in found:
        ids.add(message if isinstance(message, str) else tuple(message))
    return ids


SOURCE_IDS = _source_ids()


def test_extraction_finds_the_console_strings() -> None:
    assert "Wrong username or password." in SOURCE_IDS  # from console.py
    assert "Defaulters only" in SOURCE_IDS  # from a template
    assert "Sanctioned load" in SOURCE_IDS  # marked with N_


@pytest.mark.parametrize("lang", ["hi", "bn", "ru"])
def test_catalog_is_complete_and_consistent(lang: str) -> None:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "console.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}
    assert SOURCE_IDS - ids == set(), "untranslated: run the update in locales/README.md"
    assert ids - SOURCE_IDS == set(), "obsolete entries: remove them"
    for m in catalog:
        if not m.id:
            continue
        assert not m.fuzzy, m.id
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert len(strings) == (catalog.num_plurals if isinstance(m.id, tuple) else 1)
        source = m.id[-1] if isinstance(m.id, tuple) else m.id
        for s in strings:
            assert s.strip(), m.id
            assert set(PLACEHOLDER.findall(s)) == set(PLACEHOLDER.findall(source)), m.id


def test_template_pot_is_current() -> None:
    with (LOCALES_DIR / "console.pot").open("rb") as f:
        pot = read_po(f)
    assert {m.id if isinstance(m.id, str) else tuple(m.id) for m in pot if m.id} == SOURCE_IDS


def test_russian_plurals() -> None:
    t = translations("ru")
    one, few, many = "%(num)s account matches", "%(num)s accounts match", "Найден"
    assert t.ngettext(one, few, 21).startswith(many)
    assert "лицевых счёта" in t.ngettext(one, few, 3)
    assert "лицевых счетов" in t.ngettext(one, few, 11)


def test_english_is_the_msgid() -> None:
    assert translations("en").gettext("Dues") == "Dues"
    assert translations("hi").gettext("Dues") == "बकाया राशि"
    assert translations("bn").gettext("Defaulters only") == "শুধু বকেয়াদার"


@pytest.mark.parametrize(
    ("lang", "country", "currency", "expected"),
    [
        ("en", "IN", "INR", "₹1,23,456.50"),
        ("hi", "IN", "INR", "₹1,23,456.50"),
        ("bn", "BD", "BDT", "1,23,456.50৳"),
        ("ru", "RU", "RUB", "123 456,50 ₽"),
    ],
)
def test_money_is_exact_and_local(lang: str, country: str, currency: str, expected: str) -> None:
    fmt = Formatter.create(lang, country, currency, 2, "Asia/Kolkata")
    assert fmt.money(12345650).replace("\xa0", " ") == expected
    assert fmt.money(None) == "—"


def test_money_in_a_currency_without_minor_units() -> None:
    assert Formatter.create("en", "JP", "JPY", 0, "Asia/Tokyo").money(1234) == "¥1,234"


def test_dates_are_in_the_tenants_time_zone() -> None:
    fmt = Formatter.create("en", "IN", "INR", 2, "Asia/Kolkata")
    late = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    assert fmt.today(late).isoformat() == "2026-03-02"
    # The day period's case is CLDR's to choose ("am" before Babel 2.19, "AM" after).
    assert fmt.datetime(late).replace("\u202f", " ").lower() == "2 mar 2026, 1:30:00 am"


def test_language_choice() -> None:
    assert pick_language("xx", None, "bn", "ru") == "bn"
    assert pick_language(None) == "en"
    assert from_accept_language("ru-RU,ru;q=0.9,en;q=0.5") == "ru"
    assert from_accept_language("fr-FR, bn;q=0.8") == "bn"
    assert from_accept_language("fr-FR") is None


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("98765 43210", "IN", "+919876543210"),
        ("098765-43210", "IN", "+919876543210"),
        ("+91 (98765) 43210", "IN", "+919876543210"),
        ("९८७६५ ४३२१०", "IN", "+919876543210"),
        ("০১৭১২-৩৪৫৬৭৮", "BD", "+8801712345678"),
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("54321", "IN", None),
    ],
)
def test_phone_query_accepts_what_people_type(typed: str, region: str, e164: str | None) -> None:
    assert phone_query(typed, region)[0] == e164


def test_ascii_digits() -> None:
    assert ascii_digits("A/C ১২৩-४५६") == "A/C 123-456"
