"""Turning one master-sheet row into a clean record, or the reasons it cannot be one.

Pure: no I/O. The importer feeds it the cells of a row and the header match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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
            text = repr((self.account, sorted(self.given.items())))
            self._digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return self._digest


def cell_text(v: object) -> str | None:
    """A raw cell as a person reads it in a report: 9876543210.0 -> "9876543210"."""
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _account(raw: object, ctx: RowContext) -> str:
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


# Field -> (key in MasterRecord.given, reader). One table lookup per cell.
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


def read_row(
    cells: Sequence[object],
    header: HeaderMatch,
    ctx: RowContext,
    memo: dict[str, dict[Any, Any]] | None = None,
) -> MasterRecord | list[RowProblem]:
    """Read every recognised column of a row; all problems are reported, not just the first.

    `memo` (one dict per file, kept by the caller) remembers the readings of text cells
    of MEMO_FIELDS; the same text read twice gives the same value, so results are equal.
    """
    problems: list[RowProblem] = []
    values: dict[str, Any] = {}
    area_parts: dict[str, str] = {}
    n = len(cells)
    for col, fname in header.columns.items():
        raw = cells[col] if col < n else None
        known = None
        if memo is not None and type(raw) is str and fname in MEMO_FIELDS:
            known = memo.get(fname)
            if known is None:
                known = memo[fname] = {}
            elif len(known) > MEMO_LIMIT:
                known.clear()
            hit = known.get(raw, _MISS)
            if hit is not _MISS:
                reader = READERS.get(fname)
                if reader is not None:
                    values[reader[0]] = hit
                elif hit:
                    area_parts[fname] = hit
                continue
        if (
            raw is not None
            and not isinstance(raw, _PLAIN)
            and type(raw).__name__ == "FormulaWithoutValue"
        ):
            title = header.titles.get(col, fname)
            problems.append(
                RowProblem(title, cell_text(getattr(raw, "formula", raw)), _FORMULA_REASON)
            )
            continue
        try:
            reader = READERS.get(fname)
            if reader is not None:
                value = values[reader[0]] = reader[1](raw, ctx)
            else:  # one level of the area tree
                value = C.parse_text(raw)
                if value:
                    area_parts[fname] = value
        except C.CellError as exc:
            problems.append(RowProblem(header.titles.get(col, fname), cell_text(raw), exc.reason))
            continue
        if known is not None:
            known[raw] = value

    if problems:
        return problems
    record = MasterRecord(account=values.pop("account"))
    record.given = values
    if header.has_area:
        record.given["area_path"] = tuple(
            area_parts[f] for f in AREA_LEVEL_FIELDS if f in area_parts
        )
    return record


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
