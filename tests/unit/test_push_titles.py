"""Every notification kind has a push title in every language, and urgency follows the kind."""

from __future__ import annotations

from meterline.channels.webpush import urgency_of
from meterline.domain.enums import LANGUAGES
from meterline.domain.notification_kinds import KINDS
from meterline.domain.push_titles import PUSH_TITLES, push_title


def test_every_kind_has_a_title_in_every_language() -> None:
    assert set(PUSH_TITLES) == set(LANGUAGES)
    for language, titles in PUSH_TITLES.items():
        assert set(titles) == set(KINDS), language
        assert all(title.strip() for title in titles.values())
    # Translated, not copied from English.
    for language in ("hi", "bn", "ru"):
        assert all(PUSH_TITLES[language][k] != PUSH_TITLES["en"][k] for k in KINDS)


def test_unknown_languages_and_kinds_fall_back() -> None:
    assert push_title("tamper", "fr") == "Tamper alert"
    assert push_title("no_such_kind", "ru") == "Уведомление"


def test_alerts_are_high_reminders_normal_statements_low() -> None:
    assert {
        k: urgency_of(k) for k in ("tamper", "overload", "low_balance", "otp")
    } == dict.fromkeys(("tamper", "overload", "low_balance", "otp"), "high")
    assert urgency_of("dues_reminder") == "normal"
    assert urgency_of("payment_received") == "normal"
    assert urgency_of("closing_balance") == "low"
    assert urgency_of("no_such_kind") == "normal"
