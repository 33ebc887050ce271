"""Recognising a master sheet's columns by their header, in four languages.

Real sheets put title rows above the header, abbreviate ("A/C No."), add units
("Dues (Rs.)") and mix scripts, so headers are normalised before matching.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

# Field name -> header spellings (already in normalised form after `normalise_header`).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "account": (
        "account",
        "account no",
        "account number",
        "ac no",
        "a c no",
        "acc no",
        "acct no",
        "consumer no",
        "consumer number",
        "consumer id",
        "service no",
        "connection no",
        "payer code",
        "member no",
        "member id",
        "member number",
        "खाता संख्या",
        "खाता नंबर",
        "खाता नं",
        "खाता",
        "उपभोक्ता संख्या",
        "उपभोक्ता नंबर",
        "কনজিউমার নম্বর",
        "হিসাব নম্বর",
        "হিসাব নং",
        "হিসাব",
        "গ্রাহক নম্বর",
        "গ্রাহক নং",
        "একাউন্ট নম্বর",
        "সদস্য নম্বর",
        "সদস্য নং",
        "лицевой счет",
        "лицевой счет n",
        "номер лицевого счета",
        "лс",
        "л с",
        "номер счета",
        "код плательщика",
    ),
    "name": (
        "name",
        "consumer name",
        "customer name",
        "member name",
        "full name",
        "consumer",
        "नाम",
        "उपभोक्ता का नाम",
        "उपभोक्ता नाम",
        "ग्राहक का नाम",
        "নাম",
        "গ্রাহকের নাম",
        "গ্রাহকের নাম",
        "সদস্যের নাম",
        "фио",
        "имя",
        "абонент",
        "ф и о",
        "плательщик",
    ),
    "mobile": (
        "mobile",
        "mobile no",
        "mobile number",
        "phone",
        "phone no",
        "phone number",
        "contact",
        "contact no",
        "contact number",
        "cell",
        "whatsapp",
        "whatsapp no",
        "मोबाइल नंबर",
        "मोबाइल",
        "मोबाइल न",
        "फोन",
        "फ़ोन",
        "फोन नंबर",
        "संपर्क",
        "মোবাইল",
        "মোবাইল নম্বর",
        "মোবাইল নং",
        "ফোন",
        "ফোন নম্বর",
        "телефон",
        "мобильный",
        "мобильный телефон",
        "моб телефон",
        "тел",
        "номер телефона",
    ),
    "dues": (
        "dues",
        "due",
        "due amount",
        "amount due",
        "arrears",
        "arrear",
        "outstanding",
        "outstanding amount",
        "total dues",
        "balance due",
        "amount",
        "बकाया राशि",
        "बकाया",
        "देय राशि",
        "बकाया रकम",
        "বকেয়া",
        "বকেয়া টাকা",
        "বকেয়া পরিমাণ",
        "বকেয়া",
        "পাওনা",
        "задолженность",
        "долг",
        "сумма долга",
        "сумма задолженности",
        "к оплате",
    ),
    "due_date": (
        "due date",
        "last date",
        "pay by",
        "payment due date",
        "last date of payment",
        "देय तिथि",
        "अंतिम तिथि",
        "भुगतान की अंतिम तिथि",
        "শেষ তারিখ",
        "পরিশোধের শেষ তারিখ",
        "নির্ধারিত তারিখ",
        "срок оплаты",
        "оплатить до",
        "дата оплаты",
    ),
    "balance": (
        "balance",
        "current balance",
        "closing balance",
        "deposit balance",
        "शेष",
        "शेष राशि",
        "बैलेंस",
        "ব্যালেন্স",
        "স্থিতি",
        "জমা স্থিতি",
        "баланс",
        "остаток",
    ),
    "area": (
        "area",
        "zone",
        "locality",
        "region",
        "location",
        "क्षेत्र",
        "इलाका",
        "এলাকা",
        "অঞ্চল",
        "район",
        "участок",
        "территория",
    ),
    "area_circle": ("circle", "सर्किल", "सर्कल", "সার্কেল"),
    "area_division": ("division", "डिवीजन", "खंड", "বিভাগ", "ডিভিশন", "отделение"),
    "area_subdivision": (
        "sub division",
        "subdivision",
        "sub-division",
        "उपखंड",
        "उप खंड",
        "উপবিভাগ",
        "সাব ডিভিশন",
    ),
    "area_feeder": ("feeder", "फीडर", "ফিডার", "фидер"),
    "area_district": ("district", "जिला", "জেলা", "округ"),
    "area_union": ("union", "ইউনিয়ন"),
    "area_village": ("village", "गांव", "गाँव", "গ্রাম", "село", "деревня"),
    "address": ("address", "पता", "ঠিকানা", "адрес"),
    "apartment": (
        "apartment",
        "flat",
        "flat no",
        "apt",
        "apt no",
        "फ्लैट",
        "फ्लैट नंबर",
        "ফ্ল্যাট",
        "ফ্ল্যাট নং",
        "квартира",
        "кв",
        "номер квартиры",
    ),
    "service": ("service", "utility", "service type", "सेवा", "সেবা", "услуга", "вид услуги"),
    "billing": (
        "billing",
        "billing type",
        "connection type",
        "prepaid postpaid",
        "meter type",
        "प्रकार",
        "कनेक्शन प्रकार",
        "ধরন",
        "সংযোগের ধরন",
        "тип",
        "тип оплаты",
    ),
    "meter_serial": (
        "meter no",
        "meter number",
        "meter serial",
        "meter serial no",
        "meter id",
        "meter",
        "मीटर नंबर",
        "मीटर संख्या",
        "मीटर",
        "মিটার নম্বর",
        "মিটার নং",
        "মিটার",
        "номер счетчика",
        "счетчик",
        "заводской номер",
        "номер прибора учета",
    ),
    "sanctioned_load": (
        "sanctioned load",
        "load",
        "contract load",
        "connected load",
        "स्वीकृत भार",
        "स्वीकृत लोड",
        "অনুমোদিত লোড",
        "অনুমোদিত লোড",
        "разрешенная мощность",
        "мощность",
    ),
    "language": ("language", "lang", "भाषा", "ভাষা", "язык"),
}

FIELDS: tuple[str, ...] = tuple(SYNONYMS)
AREA_LEVEL_FIELDS: tuple[str, ...] = (
    "area_circle", "area_division", "area_subdivision", "area_feeder",
    "area_district", "area_union", "area_village", "area",
)  # fmt: skip

TOTAL_WORDS = frozenset(
    {"total", "grand total", "totals", "sum", "कुल", "योग", "कुल योग", "মোট", "সর্বমোট",
     "итого", "всего", "итого по листу"}
)  # fmt: skip

_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_PUNCT = re.compile(r"[\s.:;,/\\#№_\-'\"*]+")


def normalise_header(text: object) -> str:
    """Casefold, drop units in brackets and punctuation, ё -> е, NFC; "A/C No." -> "a c no"."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFC", str(text)).casefold().replace("ё", "е")
    s = _PARENS.sub(" ", s)
    s = _PUNCT.sub(" ", s)
    return " ".join(s.split())


_LOOKUP: dict[str, str] = {}
for _field, _names in SYNONYMS.items():
    for _name in _names:
        _LOOKUP.setdefault(normalise_header(_name), _field)


def match_header(text: object) -> str | None:
    """The field a header cell names, or None."""
    key = normalise_header(text)
    if not key:
        return None
    field = _LOOKUP.get(key)
    if field is None and key.endswith((" no", " number", " nos")):
        field = _LOOKUP.get(key.rsplit(" ", 1)[0])
    return field


@dataclass(frozen=True)
class HeaderMatch:
    row: int  # the spreadsheet row number of the header
    columns: dict[int, str]  # column index -> field
    titles: dict[int, str]  # column index -> header text as written

    @cached_property
    def account_column(self) -> int:
        col = self.column_of("account")
        assert col is not None, "a header match always has the account column"
        return col

    @cached_property
    def has_area(self) -> bool:
        return any(f in AREA_LEVEL_FIELDS for f in self.columns.values())

    @cached_property
    def normalised_titles(self) -> dict[int, str]:
        # Asked for every data row (repeated-header check): normalise the header once.
        return {i: normalise_header(t) for i, t in self.titles.items()}

    def column_of(self, field: str) -> int | None:
        for col, f in self.columns.items():
            if f == field:
                return col
        return None


class HeaderError(ValueError):
    pass


def column_letter(index: int) -> str:
    """0 -> "A", 27 -> "AB": how a person names a column."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def match_row(
    row_number: int, cells: Sequence[object], mapping: Mapping[str, str] | None = None
) -> HeaderMatch | None:
    """Read one row as a header: the explicit mapping wins, synonyms fill the rest.

    A row is a header when it names the account column and at least one other field.
    """
    titles = {i: str(c).strip() for i, c in enumerate(cells) if c is not None and str(c).strip()}
    columns: dict[int, str] = {}
    # The operator's explicit mapping first (by header text or column letter), so it wins.
    for wanted_field, wanted in (mapping or {}).items():
        for i, title in titles.items():
            by_title = normalise_header(title) == normalise_header(wanted)
            if by_title or column_letter(i) == wanted.strip().upper():
                columns[i] = wanted_field
                break
    taken = set(columns.values())
    for i, title in titles.items():
        guess = None if i in columns else match_header(title)
        if guess is not None and guess not in taken:
            columns[i] = guess
            taken.add(guess)
    if "account" not in columns.values() or len(columns) < 2:
        return None
    return HeaderMatch(row=row_number, columns=columns, titles=titles)


def is_repeated_header(cells: Sequence[object], header: HeaderMatch) -> bool:
    """A header row copied again further down (sheets glued together)."""
    titles = header.normalised_titles
    # Cheap test first: a repeated header repeats the account column's title as text.
    acc = header.account_column
    account = cells[acc] if acc < len(cells) else None
    if not isinstance(account, str):
        return False
    if account.isdigit() and not titles.get(acc, "").isdigit():
        return False  # a plain account number (most rows), without normalising it
    if normalise_header(account) != titles.get(acc):
        return False
    same = sum(
        1 for i, norm in titles.items() if i < len(cells) and normalise_header(cells[i]) == norm
    )
    return same >= max(2, len(titles) // 2)


def is_totals_row(cells: Sequence[object]) -> bool:
    for c in cells:
        if c is None or str(c).strip() == "":
            continue
        if isinstance(c, str):
            # A serial number (most rows) is never a totals word: no need to normalise it.
            return not c.isdigit() and normalise_header(c) in TOTAL_WORDS
        return False
    return False


def parse_mapping(raw: str | None) -> dict[str, str]:
    """`{"account": "Cons. ID"}` or `account=Cons. ID; mobile=Cell` -> field -> column."""
    if not raw or not raw.strip():
        return {}
    pairs: list[tuple[object, object]] = []
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError:
        loaded = None
    if isinstance(loaded, dict):
        pairs = list(loaded.items())
    else:
        for part in raw.replace("\n", ";").split(";"):
            if part.strip():
                if "=" not in part:
                    raise ValueError(f"mapping {part.strip()!r}: write FIELD=COLUMN")
                k, v = part.split("=", 1)
                pairs.append((k, v))
    mapping = {str(k).strip(): str(v).strip() for k, v in pairs}
    unknown = [k for k in mapping if k not in FIELDS]
    if unknown:
        raise ValueError(
            f"unknown field(s) in mapping: {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    return mapping
