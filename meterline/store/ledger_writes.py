"""The statements behind a posted transaction (scenario 5), as prepared Core statements.

A deposit confirmation is on the hot path of an integrating system: each statement here
is built once, so SQLAlchemy compiles it once and each call is a bind and a round trip,
not an ORM query built, keyed and compiled again. The account and reference look-ups
take a whole group of posts at a time (see services/group_commit.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterline.domain.enums import ContactKind, LedgerKind
from meterline.store.models import Account, Consumer, ContactPoint, LedgerEntry, Message

ACCOUNTS = cast(Table, Account.__table__)
CONSUMERS = cast(Table, Consumer.__table__)
CONTACTS = cast(Table, ContactPoint.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)
MESSAGES = cast(Table, Message.__table__)
a, c, cp, e, m = ACCOUNTS.c, CONSUMERS.c, CONTACTS.c, ENTRIES.c, MESSAGES.c


@dataclass(frozen=True)
class AccountRow:
    id: int
    number: str
    consumer_id: int
    name: str | None  # None: the consumer is not this tenant's (never expected)
    language: str | None
    phone: str | None  # the first phone on file, primary first


@dataclass(frozen=True)
class EntryRow:
    id: int
    account_id: int
    kind: LedgerKind
    amount_minor: int
    balance_after_minor: int


@dataclass(frozen=True)
class MessageRow:
    id: int
    status: Any
    medium: Any
    segments: int
    encoding: str | None
    cost_minor: int
    due_at: Any


_FIRST_PHONE = (
    select(cp.value)
    .where(cp.consumer_id == c.id, cp.kind == ContactKind.phone)
    .order_by(cp.is_primary.desc(), cp.id)
    .limit(1)
    .scalar_subquery()
)
_ACCOUNTS = (
    select(a.id, a.number, a.consumer_id, c.name, c.preferred_language, _FIRST_PHONE)
    .select_from(
        ACCOUNTS.outerjoin(CONSUMERS, and_(c.id == a.consumer_id, c.tenant_id == a.tenant_id))
    )
    .where(
        a.tenant_id == bindparam("tenant_id"), a.number.in_(bindparam("numbers", expanding=True))
    )
)
_ENTRIES = select(e.id, e.external_ref, e.account_id, e.kind, e.amount_minor, e.balance_after_minor)
_ENTRIES_FOR_REFS = _ENTRIES.where(
    e.tenant_id == bindparam("tenant_id"), e.external_ref.in_(bindparam("refs", expanding=True))
)
_ACCOUNT_NUMBER = select(a.number).where(a.id == bindparam("account_id"))
_MESSAGE_FOR_KEY = select(
    m.id, m.status, m.medium, m.segments, m.encoding, m.cost_minor, m.due_at
).where(m.tenant_id == bindparam("tenant_id"), m.idempotency_key == bindparam("key"))
# One statement per post, so concurrent posts to one account never lose an update. A
# payment settles dues first; deposits and withdrawals leave them alone.
_MOVE = (
    update(ACCOUNTS)
    .where(a.id == bindparam("account_id"))
    .values(balance_minor=func.coalesce(a.balance_minor, 0) + bindparam("delta"))
    .returning(a.balance_minor)
)
_PAY = (
    update(ACCOUNTS)
    .where(a.id == bindparam("account_id"))
    .values(
        # A payment settles dues first: only what is left over is credit on the balance (a
        # bill paid in full is not also money in hand). Both SET expressions read the row
        # as it was before this UPDATE, on PostgreSQL and SQLite alike.
        balance_minor=func.coalesce(a.balance_minor, 0)
        + case(
            (a.dues_minor >= bindparam("paid"), 0),
            (a.dues_minor > 0, bindparam("paid") - a.dues_minor),
            else_=bindparam("paid"),
        ),
        dues_minor=case(
            (a.dues_minor > bindparam("paid"), a.dues_minor - bindparam("paid")), else_=0
        ),
    )
    .returning(a.balance_minor)
)
_ADD_ENTRY = insert(ENTRIES).returning(e.id)
_DROP_MESSAGE = MESSAGES.delete().where(m.id == bindparam("message_id"))
# The rows that went in answer with their key: a key used before inserts nothing.
_ADD_MESSAGES = {
    "postgresql": postgresql.insert(MESSAGES)
    .on_conflict_do_nothing()
    .returning(m.id, m.idempotency_key),
    "sqlite": sqlite.insert(MESSAGES).on_conflict_do_nothing().returning(m.id, m.idempotency_key),
}


def accounts_by_number(
    conn: Connection, tenant_id: int, numbers: Collection[str]
) -> dict[str, AccountRow]:
    rows = conn.execute(_ACCOUNTS, {"tenant_id": tenant_id, "numbers": list(numbers)})
    return {row[1]: AccountRow(*row) for row in rows}


def entries_by_reference(
    conn: Connection, tenant_id: int, refs: Collection[str]
) -> dict[str, EntryRow]:
    rows = conn.execute(_ENTRIES_FOR_REFS, {"tenant_id": tenant_id, "refs": list(refs)})
    return {
        ref: EntryRow(id_, acc, kind, amount, after) for id_, ref, acc, kind, amount, after in rows
    }


def account_number(conn: Connection, account_id: int) -> str | None:
    return conn.execute(_ACCOUNT_NUMBER, {"account_id": account_id}).scalar()


def move_balance(conn: Connection, account_id: int, delta: int, paid: int | None) -> int:
    """Add `delta` to the balance (and settle `paid` of the dues); the balance after."""
    if paid is None:
        found = conn.execute(_MOVE, {"account_id": account_id, "delta": delta})
    else:
        found = conn.execute(_PAY, {"account_id": account_id, "delta": delta, "paid": paid})
    balance = found.scalar_one()
    assert balance is not None
    return int(balance)


def add_entry(conn: Connection, row: Mapping[str, Any]) -> int:
    return int(conn.execute(_ADD_ENTRY, dict(row)).scalar_one())


def add_messages(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING of one tenant's message rows, in one statement
    (SQLAlchemy's insertmanyvalues); the new ids by idempotency key (a key used before
    is not among them)."""
    stmt = _ADD_MESSAGES[conn.dialect.name]
    params = [dict(row) for row in rows]
    found = conn.execute(stmt, params[0] if len(params) == 1 else params)
    return {key: int(id_) for id_, key in found}


def drop_message(conn: Connection, message_id: int) -> None:
    conn.execute(_DROP_MESSAGE, {"message_id": message_id})


def message_for_key(conn: Connection, tenant_id: int, key: str) -> MessageRow | None:
    row = conn.execute(_MESSAGE_FOR_KEY, {"tenant_id": tenant_id, "key": key}).first()
    return MessageRow(*row) if row is not None else None
