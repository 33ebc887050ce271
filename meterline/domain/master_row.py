"""Turning one master-sheet row into a clean record, or the reasons it cannot be one.

Pure: no I/O. The importer feeds it the cells of a row and the header match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple

from meterline.domain import cells as C
from meterline.domain.enums import LANGUAGES, Billing, Service
from meterline.domain.headers import AREA_LEVEL_FIELDS, HeaderMatch

SERVICE_WORDS: dict[str, Service] = {}
for _svc, _words in {
    Service.electricity: ("electricity", "electric", "power", "elec", "बिजली", "विद्युत",
                          "বিদ্যুৎ", "বিদ্যুত", "электроэнергия", "электричество", "эл"),
    Service.water: ("water", "पानी", "जल", "পানি", "вода", "хвс", "гвс", "водоснабжение"),
    Service.heat: ("heat", "heating", "हीटिंग", "তাপ", "отопление", "тепло", "теплоснабжение"),
    Service.gas: ("gas", "गैस", "গ্যাস", "газ"),
    Service.savings: ("savings", "saving", "deposit", "बचत", "সঞ্চয়", "সঞ্চয়", "вклад"),
}.items():  # fmt: skip
    for _w in _words:
        SERVICE_WORDS[_w] = _svc

BILLING_WORDS: dict[str, Billing] = {}
for _bill, _words in {
    Billing.prepaid: ("prepaid", "pre paid", "pre-paid", "प्रीपेड", "प्री पेड", "প্রিপেইড",
                      "предоплата", "предоплатный"),
    Billing.postpaid: ("postpaid", "post paid", "post-paid", "पोस्टपेड", "पोस्ट पेड",
                       "পোস্টপেইড", "постоплата", "кредитный"),
}.items():  # fmt: skip
    for _w in _words:
        BILLING_WORDS[_w] = _bill

LANGUAGE_WORDS = {
    "en": "en", "english": "en", "hi": "hi", "hindi": "hi", "हिंदी": "hi", "हिन्दी": "hi",
    "bn": "bn", "bengali": "bn", "bangla": "bn", "বাংলা": "bn",
    "ru": "ru", "russian": "ru", "русский": "ru",
}  # fmt: skip


@dataclass(frozen=True)
class RowContext:
    """What a row needs to know about its tenant to be read."""

    phone_region: str
    currency_exponent: int
    default_service: Service
    default_billing: Billing
    default_language: str
    date1904: bool = False


@dataclass
class RowProblem:
    column: str | None  # the header as the operator wrote it
    value: str | None
    reason: str


@dataclass
class MasterRecord:
    """The clean values of one row. Only fields whose column exists are present in `given`."""

    account: str
    given: dict[str, Any] = field(default_factory=dict)
    _digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def phones(self) -> list[str]:
        return list(self.given.get("phones") or [])

    @property
    def area_path(self) -> tuple[str, ...]:
        return tuple(self.given.get("area_path") or ())

    def digest(self) -> str:
        """Stable digest of what the row says: equal digests mean nothing to update.

        Computed once and kept, so it can be made in the reading process.
        """
        if self._digest is None:
            text = digest_text(self.account, self.given)
            self._digest = hashlib.blake2b(
                text.encode("utf-8", "surrogatepass"), digest_size=16
            ).hexdigest()
        return self._digest


# The text a record's digest is taken of: every field as key, a type tag and its value,
# separated by \x1f (lists by \x1e). Cleaned cells never hold these separators (str.split
# treats them as spaces), and a value that does, or is not printable, is written as its
# repr under a tag of its own, so two different records never give the same text.
# (It replaced repr() of the whole record, which cost three times as much: an existing
# database sees each account as changed once, and the update finds nothing to change.)
_TEXT, _NONE, _LIST, _TUPLE, _INT, _REPR = "'", "~", "[", "(", "#", "?"
_BY_STR = {Decimal: "$", date: "!", Service: "@", Billing: "&"}  # str() is exact for these


def digest_text(account: str, given: dict[str, Any]) -> str:
    parts = [_TEXT + account if account.isprintable() else _REPR + repr(account)]
    for key in sorted(given):
        v = given[key]
        t = type(v)
        if t is str and v.isprintable():
            parts.append(key + _TEXT + v)
        elif v is None:
            parts.append(key + _NONE)
        elif (t is list or t is tuple) and _plain_texts(v):
            parts.append(key + (_LIST if t is list else _TUPLE) + "\x1e".join(v))
        elif t is int:
            parts.append(key + _INT + str(v))
        elif t in _BY_STR:
            parts.append(key + _BY_STR[t] + str(v))
        else:
            parts.append(key + _REPR + repr(v))
    return "\x1f".join(parts)


def _plain_texts(items: list[Any] | tuple[Any, ...]) -> bool:
    """Texts that join unambiguously: printable, none empty (so [] differs from [""])."""
    if "" in items:
        return False
    try:
        return "".join(items).isprintable()
    except TypeError:  # not all str
        return False


def cell_text(v: object) -> str | None:
    """A raw cell as a person reads it in a report: 9876543210.0 -> "9876543210"."""
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _account(raw: object, ctx: RowContext) -> str:
    return _account_text(raw)


def _account_text(raw: object) -> str:
    text = C.parse_text(raw)
    if not text:
        raise C.CellError("account number is missing")
    return text


def _load(raw: object, ctx: RowContext) -> Decimal | None:
    load = C.parse_decimal(raw)
    if load is not None and load < 0:
        raise C.CellError("sanctioned load cannot be negative")
    return load


def _is_formula(raw: object) -> bool:
    # The reader's marker for a formula saved without its value (duck-typed: domain is pure).
    return type(raw).__name__ == "FormulaWithoutValue"


def _text(raw: object, ctx: RowContext) -> str | None:
    return C.parse_text(raw)


# Field -> (key in MasterRecord.given, reader).
READERS: dict[str, tuple[str, Callable[[object, RowContext], Any]]] = {
    "account": ("account", _account),
    "mobile": ("phones", lambda raw, ctx: C.parse_phones(raw, ctx.phone_region)),
    "dues": ("dues_minor", lambda raw, ctx: C.parse_amount(raw, ctx.currency_exponent)),
    "balance": ("balance_minor", lambda raw, ctx: C.parse_amount(raw, ctx.currency_exponent)),
    "due_date": ("due_date", lambda raw, ctx: C.parse_date(raw, date1904=ctx.date1904)),
    "sanctioned_load": ("sanctioned_load_kw", _load),
    "service": (
        "service",
        lambda raw, ctx: _vocabulary(raw, SERVICE_WORDS, "service", ctx.default_service),
    ),
    "billing": (
        "billing",
        lambda raw, ctx: _vocabulary(raw, BILLING_WORDS, "type", ctx.default_billing),
    ),
    "language": ("language", lambda raw, ctx: _language(raw, ctx.default_language)),
    "name": ("name", _text),
    "address": ("address", _text),
    "apartment": ("apartment", _text),
    "meter_serial": ("meter_serial", _text),
}
_FORMULA_REASON = "formula without a calculated value; open and save the file in Excel"
_PLAIN = (str, int, float)


# Fields whose cells repeat across a sheet (a few areas, services, due dates): their
# readings are remembered per text, so a million rows parse each distinct cell once.
MEMO_FIELDS = frozenset(
    ("service", "billing", "language", "due_date", "sanctioned_load", *AREA_LEVEL_FIELDS)
)
MEMO_LIMIT = 4096  # distinct texts remembered per field before starting afresh
_MISS = object()


def _cell_reader(fname: str, ctx: RowContext) -> Callable[[object], Any]:
    """The reader of one field with the tenant's settings bound (the cheapest call)."""
    if fname in AREA_LEVEL_FIELDS or fname in ("name", "address", "apartment", "meter_serial"):
        return C.parse_text
    if fname == "mobile":
        return partial(C.parse_phones, region=ctx.phone_region)
    if fname in ("dues", "balance"):
        return partial(C.parse_amount, exponent=ctx.currency_exponent)
    if fname == "due_date":
        return partial(C.parse_date, date1904=ctx.date1904)
    if fname == "account":
        return _account_text
    reader = READERS[fname][1]
    return lambda raw: reader(raw, ctx)  # a remembered field: called once per distinct text


class _Column(NamedTuple):
    col: int  # the cell's index in the row
    key: str  # in MasterRecord.given; an area level's field name until the path is built
    title: str  # the header as the operator wrote it, for problems
    read: Callable[[object], Any]
    known: dict[Any, Any] | None  # remembered readings (MEMO_FIELDS), else None


class RowReader:
    """`read_row` for every row of one sheet: the columns' readers are looked up once.

    `memo` (one dict per file) remembers the readings of text cells of MEMO_FIELDS; the
    same text read twice gives the same value, so results are equal.
    """

    def __init__(
        self,
        header: HeaderMatch,
        ctx: RowContext,
        memo: dict[str, dict[Any, Any]] | None = None,
    ) -> None:
        self.columns: list[_Column] = []
        for col, fname in header.columns.items():
            reader = READERS.get(fname)
            known = (
                memo.setdefault(fname, {}) if memo is not None and fname in MEMO_FIELDS else None
            )
            self.columns.append(
                _Column(
                    col,
                    reader[0] if reader is not None else fname,
                    header.titles.get(col, fname),
                    _cell_reader(fname, ctx),
                    known,
                )
            )
        present = set(header.columns.values())
        self.area_fields = [f for f in AREA_LEVEL_FIELDS if f in present]
        self.has_area = header.has_area
        self.width = max(header.columns, default=-1) + 1

    def read(self, cells: Sequence[object]) -> MasterRecord | list[RowProblem]:
        """Read every recognised column of a row; all problems are reported, not just the first."""
        problems: list[RowProblem] | None = None
        values: dict[str, Any] = {}
        if len(cells) < self.width:  # trailing empty cells are not stored
            cells = (*cells, *(None,) * (self.width - len(cells)))
        for col, key, title, read, known in self.columns:
            raw = cells[col]
            if known is not None and type(raw) is str:
                hit = known.get(raw, _MISS)
                if hit is not _MISS:
                    values[key] = hit
                    continue
            elif raw is not None and not isinstance(raw, _PLAIN) and _is_formula(raw):
                problems = problems or []
                formula = cell_text(getattr(raw, "formula", raw))
                problems.append(RowProblem(title, formula, _FORMULA_REASON))
                continue
            try:
                value = values[key] = read(raw)
            except C.CellError as exc:
                problems = problems or []
                problems.append(RowProblem(title, cell_text(raw), exc.reason))
                continue
            if known is not None and type(raw) is str:
                if len(known) >= MEMO_LIMIT:
                    known.clear()
                known[raw] = value

        if problems:
            return problems
        account = values.pop("account")
        if self.has_area:
            parts = [values.pop(f) for f in self.area_fields]
            values["area_path"] = tuple(p for p in parts if p)
        return MasterRecord(account, values)


def read_row(
    cells: Sequence[object],
    header: HeaderMatch,
    ctx: RowContext,
    memo: dict[str, dict[Any, Any]] | None = None,
) -> MasterRecord | list[RowProblem]:
    """Read every recognised column of a row (see RowReader, which a whole sheet uses)."""
    return RowReader(header, ctx, memo).read(cells)


def _vocabulary(raw: object, words: dict[str, Any], what: str, default: Any) -> Any:
    text = C.parse_text(raw)
    if not text:
        return default
    key = " ".join(text.casefold().replace("ё", "е").split())
    if key in words:
        return words[key]
    raise C.CellError(f"unknown {what} {text!r}")


def _language(raw: object, default: str) -> str:
    text = C.parse_text(raw)
    if not text:
        return default
    code = LANGUAGE_WORDS.get(text.casefold())
    if code is None or code not in LANGUAGES:
        raise C.CellError(f"unknown language {text!r} (use en, hi, bn or ru)")
    return code
