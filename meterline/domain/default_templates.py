"""The templates Meterline ships for every notification kind in en, hi, bn and ru.

An operator starts from these and may override any of them per language. They are
plain text for SMS: short (alerts and codes aim at one UCS-2 part, 70 characters, with
a short organisation name), no emoji, dates and amounts formatted by the renderer
(``{{ amount }}`` is already ``₹1,23,456.50``), optional variables behind ``{% if %}``.
Sentences do not end right after a date: Russian dates end in "г." already.

``custom`` is the operator's own text, unwrapped: it is the whole message (a greeting,
a notice), and a prefix such as a Bengali organisation name would turn an English
notice from GSM-7 (160 characters a part) into UCS-2 (70).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from meterline.domain.notification_kinds import kind_spec

__all__ = ["DEFAULT_LANGUAGE", "DEFAULT_TEMPLATES", "LANGUAGES", "default_template"]

DEFAULT_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "hi", "bn", "ru")

_EN = {
    "deposit_received": (
        "{{ org_name }}: {{ amount }} deposited to a/c {{ account }} ({{ at }}). "
        "Balance {{ balance }}. Ref {{ reference }}"
    ),
    "withdrawal_made": (
        "{{ org_name }}: {{ amount }} withdrawn from a/c {{ account }} ({{ at }}). "
        "Balance {{ balance }}. Ref {{ reference }}"
    ),
    "payment_received": (
        "{{ org_name }}: payment of {{ amount }} received for a/c {{ account }} ({{ at }})."
        "{% if balance %} Balance {{ balance }}.{% endif %} Ref {{ reference }}"
    ),
    "dues_reminder": (
        "{{ org_name }}: dues of {{ amount }} on account {{ account }}, due {{ due_date }}."
        "{% if pay_url %} Pay: {{ pay_url }}{% endif %}"
    ),
    "low_balance": (
        "{{ org_name }}: a/c {{ account }} balance {{ balance }} is below {{ threshold }} "
        "({{ at }}). Please recharge."
    ),
    "zero_balance": (
        "{{ org_name }}: a/c {{ account }} balance is zero ({{ at }}). Please recharge."
        "{% if grace %} {{ grace }}{% endif %}"
    ),
    "overload_normal": (
        "{{ org_name }}: a/c {{ account }} load {{ load_kw }} kW is back within sanctioned "
        "{{ sanctioned_kw }} kW ({{ at }})."
    ),
    "tamper_restored": (
        "{{ org_name }}: meter {{ meter }}, a/c {{ account }}: tamper condition cleared ({{ at }})."
    ),
    "overload": (
        "{{ org_name }}: a/c {{ account }} load {{ load_kw }} kW exceeds sanctioned "
        "{{ sanctioned_kw }} kW ({{ at }}). Please reduce load."
    ),
    "tamper": (
        "{{ org_name }}: tampering detected on meter {{ meter }}, a/c {{ account }} "
        "({{ at }}). Please contact us."
    ),
    "otp": "{{ code }} is your {{ org_name }} code, valid {{ minutes }} min. Do not share it.",
    "closing_balance": (
        "{{ org_name }}: a/c {{ account }} closing balance as of {{ as_of }}: {{ balance }}"
    ),
    "custom": "{{ text }}",
}

_HI = {
    "deposit_received": (
        "{{ org_name }}: खाता {{ account }} में {{ amount }} जमा ({{ at }})। "
        "शेष {{ balance }}। संदर्भ {{ reference }}"
    ),
    "withdrawal_made": (
        "{{ org_name }}: खाता {{ account }} से {{ amount }} निकाले गए ({{ at }})। "
        "शेष {{ balance }}। संदर्भ {{ reference }}"
    ),
    "payment_received": (
        "{{ org_name }}: खाता {{ account }} का {{ amount }} भुगतान प्राप्त ({{ at }})।"
        "{% if balance %} शेष {{ balance }}।{% endif %} संदर्भ {{ reference }}"
    ),
    "dues_reminder": (
        "{{ org_name }}: खाता {{ account }} पर {{ amount }} बकाया, देय तिथि {{ due_date }}।"
        "{% if pay_url %} भुगतान करें: {{ pay_url }}{% endif %}"
    ),
    "low_balance": (
        "{{ org_name }}: खाता {{ account }} का शेष {{ balance }}, {{ threshold }} से कम "
        "({{ at }})। कृपया रिचार्ज करें।"
    ),
    "zero_balance": (
        "{{ org_name }}: खाता {{ account }} का शेष शून्य ({{ at }})। कृपया रिचार्ज करें।"
        "{% if grace %} {{ grace }}{% endif %}"
    ),
    "overload_normal": (
        "{{ org_name }}: खाता {{ account }} का लोड {{ load_kw }} kW, स्वीकृत "
        "{{ sanctioned_kw }} kW के भीतर लौट आया ({{ at }})।"
    ),
    "tamper_restored": (
        "{{ org_name }}: मीटर {{ meter }} (खाता {{ account }}) में छेड़छाड़ की स्थिति समाप्त ({{ at }})।"
    ),
    "overload": (
        "{{ org_name }}: खाता {{ account }} का लोड {{ load_kw }} kW, स्वीकृत "
        "{{ sanctioned_kw }} kW से अधिक ({{ at }})। कृपया लोड कम करें।"
    ),
    "tamper": (
        "{{ org_name }}: मीटर {{ meter }} (खाता {{ account }}) में छेड़छाड़ पाई गई "
        "({{ at }})। कृपया संपर्क करें।"
    ),
    "otp": ("{{ code }} आपका {{ org_name }} कोड है, {{ minutes }} मिनट तक मान्य। किसी को न बताएं।"),
    "closing_balance": (
        "{{ org_name }}: खाता {{ account }} का {{ as_of }} तक अंतिम शेष {{ balance }}"
    ),
    "custom": "{{ text }}",
}

_BN = {
    "deposit_received": (
        "{{ org_name }}: হিসাব {{ account }}-এ {{ amount }} জমা হয়েছে ({{ at }})। "
        "ব্যালেন্স {{ balance }}। রেফ {{ reference }}"
    ),
    "withdrawal_made": (
        "{{ org_name }}: হিসাব {{ account }} থেকে {{ amount }} উত্তোলন হয়েছে ({{ at }})। "
        "ব্যালেন্স {{ balance }}। রেফ {{ reference }}"
    ),
    "payment_received": (
        "{{ org_name }}: হিসাব {{ account }}-এর {{ amount }} পরিশোধ পাওয়া গেছে ({{ at }})।"
        "{% if balance %} ব্যালেন্স {{ balance }}।{% endif %} রেফ {{ reference }}"
    ),
    "dues_reminder": (
        "{{ org_name }}: হিসাব {{ account }}-এ {{ amount }} বকেয়া, "
        "পরিশোধের শেষ তারিখ {{ due_date }}।"
        "{% if pay_url %} পরিশোধ করুন: {{ pay_url }}{% endif %}"
    ),
    "low_balance": (
        "{{ org_name }}: হিসাব {{ account }}-এর ব্যালেন্স {{ balance }}, "
        "{{ threshold }}-এর কম ({{ at }})। রিচার্জ করুন।"
    ),
    "zero_balance": (
        "{{ org_name }}: হিসাব {{ account }}-এর ব্যালেন্স শূন্য ({{ at }})। রিচার্জ করুন।"
        "{% if grace %} {{ grace }}{% endif %}"
    ),
    "overload_normal": (
        "{{ org_name }}: হিসাব {{ account }}-এ লোড {{ load_kw }} kW, অনুমোদিত "
        "{{ sanctioned_kw }} kW-এর মধ্যে ফিরেছে ({{ at }})।"
    ),
    "tamper_restored": (
        "{{ org_name }}: মিটার {{ meter }} (হিসাব {{ account }})-এ কারসাজির অবস্থা দূর হয়েছে ({{ at }})।"
    ),
    "overload": (
        "{{ org_name }}: হিসাব {{ account }}-এ লোড {{ load_kw }} kW, অনুমোদিত "
        "{{ sanctioned_kw }} kW-এর বেশি ({{ at }})। লোড কমান।"
    ),
    "tamper": (
        "{{ org_name }}: মিটার {{ meter }} (হিসাব {{ account }})-এ কারসাজি ধরা পড়েছে "
        "({{ at }})। যোগাযোগ করুন।"
    ),
    "otp": ("{{ code }} আপনার {{ org_name }} কোড, {{ minutes }} মিনিট বৈধ। কাউকে জানাবেন না।"),
    "closing_balance": (
        "{{ org_name }}: হিসাব {{ account }}-এর {{ as_of }} তারিখের সমাপনী ব্যালেন্স {{ balance }}"
    ),
    "custom": "{{ text }}",
}

_RU = {
    "deposit_received": (
        "{{ org_name }}: на счёт {{ account }} зачислено {{ amount }} ({{ at }}). "
        "Баланс {{ balance }}. Операция {{ reference }}"
    ),
    "withdrawal_made": (
        "{{ org_name }}: со счёта {{ account }} снято {{ amount }} ({{ at }}). "
        "Баланс {{ balance }}. Операция {{ reference }}"
    ),
    "payment_received": (
        "{{ org_name }}: получена оплата {{ amount }} по счёту {{ account }} ({{ at }})."
        "{% if balance %} Баланс {{ balance }}.{% endif %} Операция {{ reference }}"
    ),
    "dues_reminder": (
        "{{ org_name }}: задолженность по л/с {{ account }} {{ amount }}, "
        "срок оплаты {{ due_date }}"
        "{% if pay_url %} Оплатить: {{ pay_url }}{% endif %}"
    ),
    "low_balance": (
        "{{ org_name }}: баланс л/с {{ account }} {{ balance }}, ниже {{ threshold }} "
        "({{ at }}). Пополните счёт."
    ),
    "zero_balance": (
        "{{ org_name }}: баланс л/с {{ account }} исчерпан ({{ at }}). Пополните счёт."
        "{% if grace %} {{ grace }}{% endif %}"
    ),
    "overload_normal": (
        "{{ org_name }}: л/с {{ account }}, нагрузка {{ load_kw }} кВт снова в пределах "
        "разрешённой {{ sanctioned_kw }} кВт ({{ at }})."
    ),
    "tamper_restored": (
        "{{ org_name }}: счётчик {{ meter }}, л/с {{ account }}: вмешательство устранено "
        "({{ at }})."
    ),
    "overload": (
        "{{ org_name }}: л/с {{ account }}, нагрузка {{ load_kw }} кВт выше разрешённой "
        "{{ sanctioned_kw }} кВт ({{ at }}). Снизьте нагрузку."
    ),
    "tamper": (
        "{{ org_name }}: вмешательство в счётчик {{ meter }}, л/с {{ account }} "
        "({{ at }}). Свяжитесь с нами."
    ),
    "otp": "{{ code }} — ваш код {{ org_name }}, действует {{ minutes }} мин. Никому не сообщайте.",
    "closing_balance": (
        "{{ org_name }}: остаток по счёту {{ account }} на {{ as_of }}: {{ balance }}"
    ),
    "custom": "{{ text }}",
}

DEFAULT_TEMPLATES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        (kind, language): source
        for language, table in (("en", _EN), ("hi", _HI), ("bn", _BN), ("ru", _RU))
        for kind, source in table.items()
    }
)
"""(kind, language) -> template source, for every kind and language in `LANGUAGES`."""


def default_template(kind: str, language: str) -> str:
    """The shipped template for ``kind`` in ``language``, English for other languages.

    An unknown kind raises `UnknownKind` (a ValueError).
    """
    kind_spec(kind)  # UnknownKind for a kind that does not exist
    source = DEFAULT_TEMPLATES.get((kind, language))
    return source if source is not None else DEFAULT_TEMPLATES[(kind, DEFAULT_LANGUAGE)]
