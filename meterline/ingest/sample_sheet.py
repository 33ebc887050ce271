"""A deterministic, realistic consumer master sheet for the demo and the import benchmark.

The rows look like what an Indian electricity office exports: names in four scripts,
mobile numbers typed every which way (numbers, "+91 98765 43210", "098765-43210",
two in one cell, Bengali and Devanagari digits), Indian digit grouping in amounts,
dates as date cells or day-first text. Optionally a few bad rows, a totals row and a
title row above the header, so the importer's refusals can be seen too.

Same seed and same `today` give the same rows, byte for byte.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType

HEADER: list[str] = [
    "Sl No",
    "Account No",
    "Consumer Name",
    "Mobile No",
    "Circle",
    "Division",
    "Sub Division",
    "Feeder",
    "Address",
    "Service",
    "Connection Type",
    "Meter No",
    "Sanctioned Load (kW)",
    "Dues (Rs.)",
    "Due Date",
    "Balance (Rs.)",
    "Language",
]
COL = {name: i for i, name in enumerate(HEADER)}
TITLE = "Aligarh Electricity Office — consumer master, {month}"

# One group of bad rows (one of each kind) per this many good rows, at least one group.
BAD_EVERY = 1000
BAD_KINDS = ("invalid_phone", "missing_account", "duplicate_account", "garbage_amount")

# Area tree: circle -> division -> sub division -> feeders ("a handful of each").
AREAS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "Aligarh Urban": {
        "EDD-I Aligarh": {
            "Ramghat Road": ("Feeder 11kV Ramghat", "Feeder 11kV Quarsi"),
            "Centre Point": ("Feeder 11kV Centre Point", "Feeder 11kV Marris Road"),
        },
        "EDD-II Aligarh": {
            "Sasni Gate": ("Feeder 11kV Sasni Gate", "Feeder 11kV Nagla Mallah"),
            "Jamalpur": ("Feeder 11kV Jamalpur", "Feeder 11kV Medical Road"),
        },
    },
    "Aligarh Rural": {
        "EDD Khair": {
            "Khair": ("Feeder 11kV Khair Town", "Feeder 11kV Jattari"),
            "Tappal": ("Feeder 11kV Tappal",),
        },
        "EDD Atrauli": {
            "Atrauli": ("Feeder 11kV Atrauli", "Feeder 11kV Gangiri"),
            "Iglas": ("Feeder 11kV Iglas", "Feeder 11kV Beswan"),
        },
    },
}
_FEEDERS: list[tuple[str, str, str, str]] = [
    (circle, division, sub, feeder)
    for circle, divisions in AREAS.items()
    for division, subs in divisions.items()
    for sub, feeders in subs.items()
    for feeder in feeders
]

_NAMES = {
    "hi": (
        ("राम", "सुनीता", "मोहन", "गीता", "अनिल", "पूजा", "सुरेश", "कमला", "मोहम्मद", "रेखा"),
        ("शर्मा", "वर्मा", "यादव", "सिंह", "गुप्ता", "खान", "अग्रवाल", "कुमार", "चौहान", "देवी"),
    ),
    "bn": (
        ("রহিম", "করিম", "সুমি", "অমিত", "নাসরিন", "প্রদীপ", "শিউলি", "জাহিদ", "মিতা", "রতন"),
        ("দাস", "রায়", "হোসেন", "বিশ্বাস", "সরকার", "আহমেদ", "ঘোষ", "বেগম", "মণ্ডল", "পাল"),
    ),
    "ru": (
        ("Иван", "Мария", "Сергей", "Ольга", "Алексей", "Наталья", "Дмитрий", "Елена", "Павел"),
        ("Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков"),
    ),
    "en": (
        ("Ramesh", "Anita", "Vijay", "Priya", "Sanjay", "Kavita", "Imran", "Neha", "Rahul"),
        ("Kumar", "Sharma", "Verma", "Singh", "Gupta", "Khan", "Agarwal", "Saxena", "Jain"),
    ),
}
_RU_PATRONYMIC = ("Петрович", "Ивановна", "Сергеевич", "Алексеевна", "Николаевич")
_LANGUAGE_CELL = {
    "hi": ("hi", "Hindi", "हिंदी"),
    "bn": ("bn", "Bengali", "বাংলা"),
    "ru": ("ru", "Russian", "русский"),
    "en": ("en", "English", "English"),
}
_STREETS = {
    "hi": ("सासनी गेट", "रामघाट रोड", "क्वार्सी", "सेंटर पॉइंट", "जमालपुर"),
    "en": ("Ramghat Road", "Marris Road", "Quarsi Bypass", "Civil Lines", "Dodhpur"),
}
_BILLING = {"prepaid": ("Prepaid", "PREPAID", "प्रीपेड"), "postpaid": ("Postpaid", "पोस्टपेड")}
_DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
_BENGALI = str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯")
_ACCOUNT_BASE = 2_100_000_000
_SPREAD = 10**8  # accounts and meters are bijections of the row index modulo this


@dataclass(frozen=True)
class _Good:
    """The facts of one generated consumer, before they are dressed up as cells."""

    account: str
    language: str


def bad_row_count(n: int) -> int:
    """How many bad rows `generate_rows(n, bad_rows=True)` adds to the n good ones."""
    return len(BAD_KINDS) * _bad_groups(n)


def _bad_groups(n: int) -> int:
    return max(1, n // BAD_EVERY) if n > 0 else 0


def indian_grouping(amount: Decimal) -> str:
    """1234567.5 -> "12,34,567.50": lakhs and crores, as Indian sheets print money."""
    whole, frac = f"{amount:.2f}".split(".")
    head, tail = whole[:-3], whole[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return ",".join([*groups, tail]) + "." + frac


def is_indian_mobile(national: int) -> bool:
    """Whether phonenumbers takes this 10-digit number for a valid Indian mobile."""
    number = PhoneNumber(country_code=91, national_number=national)
    return phonenumbers.number_type(number) in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ) and phonenumbers.is_valid_number(number)


def _mobile(rng: random.Random) -> int:
    while True:  # about two in three random 6xxx-9xxx numbers are allocated mobiles
        national = rng.randrange(6_000_000_000, 10_000_000_000)
        if is_indian_mobile(national):
            return national


def _phone_cell(rng: random.Random) -> object:
    """One mobile number written the way some clerk once typed it (or none)."""
    roll = rng.random()
    if roll < 0.02:
        return None  # not every consumer gave a number
    n = _mobile(rng)
    s = str(n)
    if roll < 0.40:
        return n  # a number cell: 9876543210
    if roll < 0.55:
        return f"+91 {s[:5]} {s[5:]}"
    if roll < 0.65:
        return f"0{s[:5]}-{s[5:]}"
    if roll < 0.75:
        return s
    if roll < 0.82:
        return f"{s[:5]} {s[5:]} / {str(_mobile(rng))[:5]} {str(_mobile(rng))[5:]}"
    if roll < 0.86:
        return f"{s[:5]} {s[5:]} / {_mobile(rng)}"
    if roll < 0.90:
        return s.translate(_BENGALI)
    if roll < 0.94:
        return s.translate(_DEVANAGARI)
    if roll < 0.97:
        return f"+91{s}"
    return f"91-{s}"


def _name(rng: random.Random, lang: str) -> str:
    first, last = _NAMES[lang]
    if lang == "ru":
        return f"{rng.choice(last)} {rng.choice(first)} {rng.choice(_RU_PATRONYMIC)}"
    name = f"{rng.choice(first)} {rng.choice(last)}"
    return name.upper() if lang == "en" and rng.random() < 0.3 else name


def _address(rng: random.Random, lang: str, sub: str) -> str:
    house = rng.randrange(1, 999)
    if lang == "hi":
        return f"मकान नं. {house}, {rng.choice(_STREETS['hi'])}, अलीगढ़"
    return f"H.No. {house}, {rng.choice(_STREETS['en'])}, {sub}, Aligarh"


def _amount_cell(rng: random.Random, amount: Decimal) -> object:
    """Money as a sheet holds it: grouped text mostly, sometimes a number or "Rs. 500/-"."""
    roll = rng.random()
    if roll < 0.60:
        return indian_grouping(amount)
    if roll < 0.85:
        return float(amount)
    if roll < 0.95:
        return f"Rs. {indian_grouping(amount)}/-"
    return f"₹ {indian_grouping(amount)}"


def _date_cell(rng: random.Random, d: date) -> object:
    roll = rng.random()
    if roll < 0.70:
        return d
    if roll < 0.90:
        return d.strftime("%d/%m/%Y")
    return d.strftime("%d-%b-%Y")


def _good_row(rng: random.Random, index: int, today: date) -> tuple[list[object], _Good]:
    lang = rng.choices(("hi", "en", "bn", "ru"), weights=(50, 30, 12, 8))[0]
    account = str(_ACCOUNT_BASE + (index * 7919 + 104_729) % _SPREAD)
    circle, division, sub, feeder = rng.choice(_FEEDERS)
    prepaid = rng.random() < 0.30
    row: list[object] = [None] * len(HEADER)
    row[COL["Account No"]] = int(account) if rng.random() < 0.35 else account
    row[COL["Consumer Name"]] = _name(rng, lang)
    row[COL["Mobile No"]] = _phone_cell(rng)
    row[COL["Circle"]], row[COL["Division"]] = circle, division
    row[COL["Sub Division"]], row[COL["Feeder"]] = sub, feeder
    row[COL["Address"]] = _address(rng, lang, sub)
    row[COL["Service"]] = rng.choice(("Electricity", "Electricity", "बिजली"))
    row[COL["Connection Type"]] = rng.choice(_BILLING["prepaid" if prepaid else "postpaid"])
    if rng.random() < 0.95:  # a few old connections have no meter on record
        prefix = "SM" if prepaid else rng.choice(("LT", "AL"))
        row[COL["Meter No"]] = f"{prefix}{(index * 6113 + 77_777) % _SPREAD:08d}"
    load = rng.choice((1, 1, 2, 2, 3, 5, Decimal("1.5"), Decimal("7.5")))
    row[COL["Sanctioned Load (kW)"]] = (
        f"{load} kW" if rng.random() < 0.2 else (float(load) if isinstance(load, Decimal) else load)
    )
    if prepaid:
        balance = Decimal(rng.randrange(-5000, 150_000)) / 100
        row[COL["Balance (Rs.)"]] = _amount_cell(rng, balance) if balance >= 0 else float(balance)
        row[COL["Dues (Rs.)"]] = 0
    else:
        if rng.random() < 0.15:
            row[COL["Dues (Rs.)"]] = rng.choice((0, "0.00", "0"))
        else:
            # Mostly a few hundred to a few thousand rupees; now and then lakhs of arrears.
            rupees = min(rng.lognormvariate(7.5, 1.0), 900_000.0)
            row[COL["Dues (Rs.)"]] = _amount_cell(rng, Decimal(round(rupees * 100)) / 100)
        # Past due dates make defaulters; future ones are bills not yet due.
        row[COL["Due Date"]] = _date_cell(rng, today + timedelta(days=rng.randrange(-75, 25)))
    row[COL["Language"]] = rng.choice(_LANGUAGE_CELL[lang])
    return row, _Good(account=account, language=lang)


def _bad_row(
    rng: random.Random, kind: str, index: int, today: date, previous: _Good
) -> list[object]:
    """A row the importer must refuse, for one clear reason."""
    row, _ = _good_row(rng, index, today)
    if kind == "invalid_phone":
        row[COL["Mobile No"]] = rng.choice(("12345", "98765", "0571-2400123"))
    elif kind == "missing_account":
        row[COL["Account No"]] = None
    elif kind == "duplicate_account":
        row[COL["Account No"]] = previous.account
        row[COL["Meter No"]] = None  # so the repeated account is its only fault
    elif kind == "garbage_amount":
        row[COL["Dues (Rs.)"]] = rng.choice(("abc", "12.34.56", "Rs. ??", "1,2,3"))
    return row


def generate_rows(
    n: int,
    seed: int = 2024,
    bad_rows: bool = False,
    *,
    totals: bool = False,
    today: date | None = None,
) -> Iterator[list[object]]:
    """n good data rows (plus bad ones and a totals row when asked), in HEADER's column order.

    Row values are ints, floats, strings, dates or None, as a spreadsheet reader returns
    them. Account numbers and meter serials of good rows are unique.
    """
    rng = random.Random(seed)
    today = today or date.today()
    groups = _bad_groups(n) if bad_rows else 0
    # Bad rows go in clumps spread through the sheet, each after a good row.
    after = {(g * n) // groups + n // (2 * groups) for g in range(groups)} if groups else set()
    serial = 0
    total_dues = Decimal(0)
    extra = n  # bad rows take row indexes past the good ones: no clash of account or meter
    for i in range(n):
        row, good = _good_row(rng, i, today)
        serial += 1
        row[COL["Sl No"]] = serial
        total_dues += _plain_amount(row[COL["Dues (Rs.)"]])
        yield row
        if i in after:
            for kind in BAD_KINDS:
                bad = _bad_row(rng, kind, extra, today, good)
                extra += 1
                serial += 1
                bad[COL["Sl No"]] = serial
                yield bad
    if totals:
        row = [None] * len(HEADER)
        row[COL["Sl No"]] = "Total"
        row[COL["Dues (Rs.)"]] = indian_grouping(total_dues)
        yield row


def _plain_amount(cell: object) -> Decimal:
    """The generator's own money cells back to a Decimal, for the totals row."""
    if isinstance(cell, int | float):
        return Decimal(str(cell))
    text = str(cell).replace("Rs.", "").replace("₹", "").replace("/-", "").replace(",", "")
    return Decimal(text.strip())


def _csv_cell(v: object) -> object:
    if isinstance(v, date):
        return v.strftime("%d/%m/%Y")  # how Excel in an Indian locale saves a date to CSV
    return v


def write_csv(
    path: Path,
    n: int,
    *,
    seed: int = 2024,
    bad_rows: bool = False,
    totals: bool = False,
    title: bool = False,
    today: date | None = None,
) -> Path:
    """Write the sheet as UTF-8 CSV with a BOM (what Excel's "CSV UTF-8" saves)."""
    today = today or date.today()
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        if title:
            w.writerow([TITLE.format(month=today.strftime("%B %Y"))])
        w.writerow(HEADER)
        for row in generate_rows(n, seed, bad_rows, totals=totals, today=today):
            w.writerow([_csv_cell(v) for v in row])
    return path


def write_xlsx(
    path: Path,
    n: int,
    *,
    seed: int = 2024,
    bad_rows: bool = False,
    totals: bool = False,
    title: bool = True,
    today: date | None = None,
) -> Path:
    """Write the sheet as .xlsx, streaming (write-only mode), so a million rows fit in memory."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    today = today or date.today()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Consumers")
    if title:
        ws.append([TITLE.format(month=today.strftime("%B %Y"))])
        ws.append([])
    ws.append(HEADER)
    due = COL["Due Date"]
    for row in generate_rows(n, seed, bad_rows, totals=totals, today=today):
        if isinstance(row[due], date):
            cell = WriteOnlyCell(ws, value=row[due])
            cell.number_format = "DD/MM/YYYY"
            row[due] = cell
        ws.append(row)
    wb.save(path)
    return path
