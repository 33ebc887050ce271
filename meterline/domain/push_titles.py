"""The title line of a browser push notification, per kind and language.

The body is the message's rendered text (the tenant's template); a notification also
needs a short title, which is the same for every tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PUSH_TITLES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": {
            "deposit_received": "Deposit received",
            "withdrawal_made": "Withdrawal made",
            "payment_received": "Payment received",
            "dues_reminder": "Payment reminder",
            "low_balance": "Low balance",
            "zero_balance": "Balance used up",
            "overload": "Overload alert",
            "tamper": "Tamper alert",
            "overload_normal": "Load back to normal",
            "tamper_restored": "Meter tamper cleared",
            "otp": "Your code",
            "closing_balance": "Closing balance",
            "custom": "Notice",
        },
        "hi": {
            "deposit_received": "जमा प्राप्त हुआ",
            "withdrawal_made": "निकासी हुई",
            "payment_received": "भुगतान प्राप्त हुआ",
            "dues_reminder": "बकाया भुगतान अनुस्मारक",
            "low_balance": "कम बैलेंस",
            "zero_balance": "बैलेंस समाप्त",
            "overload": "ओवरलोड चेतावनी",
            "tamper": "छेड़छाड़ चेतावनी",
            "overload_normal": "लोड सामान्य हुआ",
            "tamper_restored": "छेड़छाड़ की स्थिति समाप्त",
            "otp": "आपका कोड",
            "closing_balance": "अंतिम शेष",
            "custom": "सूचना",
        },
        "bn": {
            "deposit_received": "জমা পাওয়া গেছে",
            "withdrawal_made": "টাকা তোলা হয়েছে",
            "payment_received": "পেমেন্ট পাওয়া গেছে",
            "dues_reminder": "বকেয়া পরিশোধের অনুস্মারক",
            "low_balance": "ব্যালেন্স কম",
            "zero_balance": "ব্যালেন্স শেষ",
            "overload": "ওভারলোড সতর্কতা",
            "tamper": "কারচুপির সতর্কতা",
            "overload_normal": "লোড স্বাভাবিক হয়েছে",
            "tamper_restored": "কারচুপির অবস্থা কেটে গেছে",
            "otp": "আপনার কোড",
            "closing_balance": "সমাপনী ব্যালেন্স",
            "custom": "বিজ্ঞপ্তি",
        },
        "ru": {
            "deposit_received": "Взнос получен",
            "withdrawal_made": "Выполнено снятие",
            "payment_received": "Платёж получен",
            "dues_reminder": "Напоминание об оплате",
            "low_balance": "Низкий баланс",
            "zero_balance": "Баланс исчерпан",
            "overload": "Перегрузка",
            "tamper": "Вмешательство в счётчик",
            "overload_normal": "Нагрузка в норме",
            "tamper_restored": "Вмешательство устранено",
            "otp": "Ваш код",
            "closing_balance": "Остаток на конец периода",
            "custom": "Уведомление",
        },
    }
)


def push_title(kind: str, language: str) -> str:
    """The title for ``kind`` in ``language`` (English, then "Notice", when missing)."""
    titles = PUSH_TITLES.get(language, PUSH_TITLES["en"])
    return titles.get(kind) or PUSH_TITLES["en"].get(kind) or titles["custom"]
