"""Read-only, tenant-scoped queries behind the operator console.

Every function takes the tenant id and puts it in every WHERE clause, so a console page
cannot show another tenant's row even when handed a foreign id. The list queries are
written for a million accounts per tenant: filters that can use an index go on
``accounts`` alone, the count avoids joins, and joins are only paid for the 50 rows shown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

import phonenumbers
from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import Session

from meterline.domain.enums import Billing, ContactKind, Service
from meterline.store.models import (
    Account,
    Area,
    Bill,
    Consumer,
    ContactPoint,
    ImportRun,
    LedgerEntry,
    Meter,
)

PER_PAGE = 50
T = TypeVar("T")

# Only phone-ish characters: such a query is a number, never part of a name.
_NUMERIC = re.compile(r"[0-9\s+\-().]+")
MIN_PHONE_DIGITS = 5


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.per_page + len(self.items)


def _offset(page: int, per_page: int) -> int:
    return (max(page, 1) - 1) * per_page


# --- dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    consumers: int
    accounts: int
    defaulters: int


def defaulter_condition(today: date) -> ColumnElement[bool]:
    """Owes money and the due date has passed (in the tenant's time zone: `today`)."""
    return (Account.dues_minor > 0) & (Account.due_date < today)


def dashboard_counts(session: Session, tenant_id: int, today: date) -> Counts:
    def count(stmt: Select[Any]) -> int:
        return int(session.scalar(stmt) or 0)

    return Counts(
        consumers=count(select(func.count()).where(Consumer.tenant_id == tenant_id)),
        accounts=count(select(func.count()).where(Account.tenant_id == tenant_id)),
        defaulters=count(
            select(func.count()).where(Account.tenant_id == tenant_id, defaulter_condition(today))
        ),
    )


# --- imports -----------------------------------------------------------------------------


def list_imports(
    session: Session, tenant_id: int, page: int = 1, per_page: int = PER_PAGE
) -> Page[ImportRun]:
    total = int(session.scalar(select(func.count()).where(ImportRun.tenant_id == tenant_id)) or 0)
    runs = session.scalars(
        select(ImportRun)
        .where(ImportRun.tenant_id == tenant_id)
        .order_by(ImportRun.started_at.desc(), ImportRun.id.desc())
        .limit(per_page)
        .offset(_offset(page, per_page))
    ).all()
    return Page(list(runs), total, max(page, 1), per_page)


def import_run(session: Session, tenant_id: int, import_id: int) -> ImportRun | None:
    return session.scalar(
        select(ImportRun).where(ImportRun.id == import_id, ImportRun.tenant_id == tenant_id)
    )


# --- consumers list ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountFilter:
    q: str = ""
    area_id: int | None = None
    service: Service | None = None
    billing: Billing | None = None
    defaulters: bool = False


@dataclass(frozen=True)
class AccountRow:
    account_id: int
    consumer_id: int
    number: str
    name: str
    phone: str | None
    service: Service
    billing: Billing
    area_path: str | None
    dues_minor: int
    due_date: date | None
    balance_minor: int | None


@dataclass(frozen=True)
class AreaOption:
    id: int
    path: str
    depth: int


def tenant_areas(session: Session, tenant_id: int) -> list[AreaOption]:
    rows = session.execute(
        select(Area.id, Area.path).where(Area.tenant_id == tenant_id).order_by(Area.path)
    ).all()
    return [AreaOption(r.id, r.path, r.path.count(" / ")) for r in rows]


def ascii_digits(text: str) -> str:
    """Any script's digits -> 0-9: people type ৯৮৭ or ९८७ as readily as 987."""
    return "".join(
        str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch for ch in text
    )


def phone_query(text: str, region: str) -> tuple[str | None, str]:
    """What a person typed -> (E.164 if it is a whole number, its bare digits).

    "98765 43210", "098765-43210" and "+91 98765 43210" all give +919876543210 in India.
    """
    typed = ascii_digits(text).strip()
    digits = re.sub(r"\D", "", typed)
    try:
        parsed = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        return None, digits
    if phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), digits
    return None, digits


def _contains(text: str) -> str:
    """A LIKE pattern for `text` anywhere, its own % and _ taken literally (escape \\)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _like(column: Any, text: str) -> ColumnElement[bool]:
    return column.like(_contains(text), escape="\\")


def _name_condition(session: Session, q: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        # A scan of the tenant's names unless pg_trgm's GIN index on consumers.name exists.
        return Consumer.name.ilike(_contains(q), escape="\\")
    if q.isascii():
        return _like(Consumer.name, q)  # SQLite's LIKE already ignores ASCII case
    # ...but not Cyrillic case: also try the usual capitalisations, so that "иванов"
    # finds "Иванов" without a custom collation.
    variants = sorted({q, q.lower(), q.upper(), q.title(), q.capitalize()})
    return or_(*(_like(Consumer.name, v) for v in variants))


def _search_condition(
    session: Session, tenant_id: int, q: str, region: str
) -> ColumnElement[bool] | None:
    q = " ".join(q.split())
    if not q:
        return None
    numeric = _NUMERIC.fullmatch(ascii_digits(q)) is not None
    e164, digits = phone_query(q, region) if numeric else (None, "")
    # A whole account number is the commonest search: one index probe, and if it hits,
    # that account is the answer, without scanning names or phones.
    candidates = sorted({q, q.upper(), *([digits] if digits else [])})
    exact = session.scalars(
        select(Account.number).where(Account.tenant_id == tenant_id, Account.number.in_(candidates))
    ).all()
    if exact:
        return Account.number.in_(exact)
    if not numeric:
        names = select(Consumer.id).where(
            Consumer.tenant_id == tenant_id, _name_condition(session, q)
        )
        return Account.consumer_id.in_(names)
    phones = select(ContactPoint.consumer_id).where(
        ContactPoint.tenant_id == tenant_id, ContactPoint.kind == ContactKind.phone
    )
    if e164:
        # A whole number: one probe of ix_contact_points_tenant_value.
        return Account.consumer_id.in_(phones.where(ContactPoint.value == e164))
    if len(digits) >= MIN_PHONE_DIGITS:
        # A fragment of a number: a scan of the tenant's phones, still no join.
        return Account.consumer_id.in_(phones.where(_like(ContactPoint.value, digits)))
    return false()


def _filter_conditions(
    session: Session, tenant_id: int, f: AccountFilter, today: date, region: str
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Account.tenant_id == tenant_id]
    search = _search_condition(session, tenant_id, f.q, region)
    if search is not None:
        conds.append(search)
    if f.area_id is not None:
        path = session.scalar(
            select(Area.path).where(Area.id == f.area_id, Area.tenant_id == tenant_id)
        )
        if path is None:
            conds.append(false())  # another tenant's area, or gone: nothing matches
        else:
            subtree = select(Area.id).where(
                Area.tenant_id == tenant_id,
                or_(Area.path == path, Area.path.startswith(path + " / ", autoescape=True)),
            )
            conds.append(Account.area_id.in_(subtree))
    if f.service is not None:
        conds.append(Account.service == f.service)
    if f.billing is not None:
        conds.append(Account.billing == f.billing)
    if f.defaulters:
        conds.append(defaulter_condition(today))
    return conds


def search_accounts(
    session: Session,
    tenant_id: int,
    f: AccountFilter,
    *,
    today: date,
    phone_region: str,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page[AccountRow]:
    """One row per account (what an office calls a consumer number), by account number."""
    conds = _filter_conditions(session, tenant_id, f, today, phone_region)
    # Counted on accounts alone: the name and phone filters are IN-subqueries, not joins.
    total = int(session.scalar(select(func.count()).select_from(Account).where(*conds)) or 0)
    # The page's ids first, from accounts alone (an index walk even on page 20,000), then
    # the joins and the phone lookup for those 50 rows only.
    ids = list(
        session.scalars(
            select(Account.id)
            .where(*conds)
            .order_by(Account.number)
            .limit(per_page)
            .offset(_offset(page, per_page))
        )
    )
    if not ids:
        return Page([], total, max(page, 1), per_page)
    phone = (
        select(ContactPoint.value)
        .where(
            ContactPoint.consumer_id == Account.consumer_id,
            ContactPoint.kind == ContactKind.phone,
        )
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Account.id,
            Account.consumer_id,
            Account.number,
            Consumer.name,
            phone.label("phone"),
            Account.service,
            Account.billing,
            Area.path,
            Account.dues_minor,
            Account.due_date,
            Account.balance_minor,
        )
        .join(Consumer, Consumer.id == Account.consumer_id)
        .outerjoin(Area, Area.id == Account.area_id)
        .where(Account.tenant_id == tenant_id, Account.id.in_(ids))
        .order_by(Account.number)
    ).all()
    return Page([AccountRow(*r) for r in rows], total, max(page, 1), per_page)


# --- one consumer ------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountDetail:
    account: Account
    area_path: str | None
    meters: list[Meter] = field(default_factory=list)


@dataclass(frozen=True)
class ConsumerDetail:
    consumer: Consumer
    contacts: list[ContactPoint]
    accounts: list[AccountDetail]
    bills: list[Bill]
    ledger: list[LedgerEntry]
    account_numbers: dict[int, str]


HISTORY_ROWS = 50


def consumer_detail(session: Session, tenant_id: int, consumer_id: int) -> ConsumerDetail | None:
    """Everything the consumer page shows, or None when the id is not this tenant's."""
    consumer = session.scalar(
        select(Consumer).where(Consumer.id == consumer_id, Consumer.tenant_id == tenant_id)
    )
    if consumer is None:
        return None
    contacts = session.scalars(
        select(ContactPoint)
        .where(ContactPoint.tenant_id == tenant_id, ContactPoint.consumer_id == consumer.id)
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.kind, ContactPoint.id)
    ).all()
    acc_rows = session.execute(
        select(Account, Area.path)
        .outerjoin(Area, Area.id == Account.area_id)
        .where(Account.tenant_id == tenant_id, Account.consumer_id == consumer.id)
        .order_by(Account.number)
    ).all()
    ids = [a.id for a, _ in acc_rows]
    meters = _by_account(
        session.scalars(
            select(Meter)
            .where(Meter.tenant_id == tenant_id, Meter.account_id.in_(ids))
            .order_by(Meter.serial)
        ).all()
    )
    bills = session.scalars(
        select(Bill)
        .where(Bill.tenant_id == tenant_id, Bill.account_id.in_(ids))
        .order_by(Bill.period.desc(), Bill.id.desc())
        .limit(HISTORY_ROWS)
    ).all()
    ledger = session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.account_id.in_(ids))
        .order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc())
        .limit(HISTORY_ROWS)
    ).all()
    return ConsumerDetail(
        consumer=consumer,
        contacts=list(contacts),
        accounts=[AccountDetail(a, path, meters.get(a.id, [])) for a, path in acc_rows],
        bills=list(bills),
        ledger=list(ledger),
        account_numbers={a.id: a.number for a, _ in acc_rows},
    )


def _by_account(meters: Sequence[Meter]) -> dict[int, list[Meter]]:
    out: dict[int, list[Meter]] = {}
    for m in meters:
        if m.account_id is not None:
            out.setdefault(m.account_id, []).append(m)
    return out
