"""Prepaid messaging credit: a per-tenant ledger of top-ups, holds, debits and releases.

``balance`` is what the tenant has paid for and not yet spent; ``held`` is reserved for
queued messages. A message's cost is held when it is queued, debited when the provider
accepts it, released when it is refused before sending. Every change is one conditional
UPDATE on the tenant's credit row (atomic under any number of concurrent workers) plus one
ledger entry carrying the totals after it, so the ledger can be audited line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from babel.numbers import get_currency_precision
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from meterline.domain import sms as sms_rules
from meterline.domain.enums import CreditEntryKind
from meterline.services.errors import ServiceError
from meterline.store.models import CreditAccount, CreditEntry, Tenant
from meterline.store.upsert import insert_ignoring_conflicts

# Prepared once: a hold is on the path of every confirmation (see store/ledger_writes.py).
_CREDIT = cast(Table, CreditAccount.__table__)
_ADD_ENTRY = insert(cast(Table, CreditEntry.__table__))
_HOLD = (
    update(_CREDIT)
    .where(
        _CREDIT.c.tenant_id == bindparam("for_tenant"),
        _CREDIT.c.balance_minor - _CREDIT.c.held_minor - bindparam("amount")
        >= -_CREDIT.c.overdraft_minor,
    )
    .values(held_minor=_CREDIT.c.held_minor + bindparam("amount"))
    .returning(_CREDIT.c.balance_minor, _CREDIT.c.held_minor, _CREDIT.c.overdraft_minor)
)


class InsufficientCredit(ServiceError):
    """A send that would take the credit below zero (or below the allowed overdraft)."""


@dataclass(frozen=True)
class CreditTotals:
    balance_minor: int
    held_minor: int
    overdraft_minor: int

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.held_minor


def money_text(amount_minor: int, currency: str) -> str:
    """'1234.50 INR': plain and unambiguous for error messages and logs."""
    digits = get_currency_precision(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d} {currency}" if digits else f"{sign}{whole} {currency}"


def credit_account(session: Session, tenant_id: int) -> CreditAccount:
    """The tenant's credit row, created (empty, price 0) the first time it is asked for."""
    account = session.get(CreditAccount, tenant_id, populate_existing=True)
    if account is not None:
        return account
    insert_ignoring_conflicts(session, CreditAccount, [{"tenant_id": tenant_id}])
    account = session.get(CreditAccount, tenant_id, populate_existing=True)
    assert account is not None
    return account


def _entry(
    session: Session,
    tenant_id: int,
    kind: CreditEntryKind,
    amount: int,
    totals: tuple[int, int],
    *,
    messages: int = 0,
    message_id: int | None = None,
    note: str | None = None,
    by: str | None = None,
) -> None:
    session.connection().execute(
        _ADD_ENTRY,
        {
            "tenant_id": tenant_id,
            "kind": kind,
            "amount_minor": amount,
            "messages": messages,
            "message_id": message_id,
            "balance_after_minor": totals[0],
            "held_after_minor": totals[1],
            "note": note,
            "created_by": by,
        },
    )


def top_up(
    session: Session, tenant_id: int, amount_minor: int, *, by: str, note: str | None = None
) -> CreditTotals:
    if amount_minor <= 0:
        raise ServiceError(f"a top-up must be a positive amount, not {amount_minor}")
    credit_account(session, tenant_id)
    row = session.execute(
        update(CreditAccount)
        .where(CreditAccount.tenant_id == tenant_id)
        .values(balance_minor=CreditAccount.balance_minor + amount_minor)
        .returning(
            CreditAccount.balance_minor, CreditAccount.held_minor, CreditAccount.overdraft_minor
        )
    ).one()
    _entry(
        session, tenant_id, CreditEntryKind.topup, amount_minor, (row[0], row[1]), note=note, by=by
    )
    return CreditTotals(*row)


def hold(
    session: Session,
    tenant: Tenant,
    amount_minor: int,
    *,
    messages: int,
    message_id: int | None = None,
    note: str | None = None,
) -> CreditTotals | None:
    """Reserve `amount_minor` for queued messages, or refuse if the credit cannot cover it.

    The check and the reservation are one statement, so two concurrent senders can never
    both spend the last of the credit.
    """
    if amount_minor <= 0:
        return None
    row = (
        session.connection()
        .execute(_HOLD, {"for_tenant": tenant.id, "amount": amount_minor})
        .one_or_none()
    )
    if row is None:
        now = totals(session, tenant.id)
        raise InsufficientCredit(
            f"not enough messaging credit: this needs {money_text(amount_minor, tenant.currency)}"
            f" for {messages} message(s); {money_text(now.available_minor, tenant.currency)}"
            f" is available (overdraft allowed: "
            f"{money_text(now.overdraft_minor, tenant.currency)}). Top up the credit first."
        )
    _entry(
        session,
        tenant.id,
        CreditEntryKind.hold,
        amount_minor,
        (row[0], row[1]),
        messages=messages,
        message_id=message_id,
        note=note,
    )
    return CreditTotals(*row)


def settle(
    session: Session,
    tenant_id: int,
    *,
    debit_minor: int,
    debit_messages: int,
    release_minor: int,
    release_messages: int,
    message_id: int | None = None,
) -> None:
    """Turn held credit into spending (accepted messages) or give it back (refused ones)."""
    if debit_minor == 0 and release_minor == 0:
        return
    row = session.execute(
        update(CreditAccount)
        .where(CreditAccount.tenant_id == tenant_id)
        .values(
            balance_minor=CreditAccount.balance_minor - debit_minor,
            held_minor=CreditAccount.held_minor - debit_minor - release_minor,
        )
        .returning(CreditAccount.balance_minor, CreditAccount.held_minor)
    ).one()
    if debit_minor:
        _entry(
            session,
            tenant_id,
            CreditEntryKind.debit,
            -debit_minor,
            (row[0], row[1]),
            messages=debit_messages,
            message_id=message_id,
        )
    if release_minor:
        _entry(
            session,
            tenant_id,
            CreditEntryKind.release,
            release_minor,
            (row[0], row[1]),
            messages=release_messages,
            message_id=message_id,
        )


def totals(session: Session, tenant_id: int) -> CreditTotals:
    row = session.execute(
        select(
            CreditAccount.balance_minor, CreditAccount.held_minor, CreditAccount.overdraft_minor
        ).where(CreditAccount.tenant_id == tenant_id)
    ).one_or_none()
    return CreditTotals(*row) if row else CreditTotals(0, 0, 0)


def set_pricing(
    session: Session,
    tenant_id: int,
    *,
    sms_price_minor: int | None = None,
    overdraft_minor: int | None = None,
    max_sms_parts: int | None = None,
) -> CreditAccount:
    account = credit_account(session, tenant_id)
    if sms_price_minor is not None:
        if sms_price_minor < 0:
            raise ServiceError("the SMS price per segment cannot be negative")
        account.sms_price_minor = sms_price_minor
    if overdraft_minor is not None:
        if overdraft_minor < 0:
            raise ServiceError("the overdraft is a limit below zero: give it as a positive amount")
        account.overdraft_minor = overdraft_minor
    if max_sms_parts is not None:
        if not 1 <= max_sms_parts <= 255:
            raise ServiceError("the maximum SMS parts must be between 1 and 255")
        account.max_sms_parts = max_sms_parts
    session.flush()
    return account


def ledger(session: Session, tenant_id: int, limit: int = 100) -> list[CreditEntry]:
    return list(
        session.scalars(
            select(CreditEntry)
            .where(CreditEntry.tenant_id == tenant_id)
            .order_by(CreditEntry.id.desc())
            .limit(limit)
        )
    )


def estimate_view(text: str, price_minor: int, max_parts: int, currency: str) -> dict[str, Any]:
    """The estimate as the API, the CLI and the console's compose box show it."""
    encoding, segments = sms_rules.segment_count(text)
    cost = segments * price_minor
    body: dict[str, Any] = {
        "encoding": str(encoding),
        "characters": len(text),
        "segments": segments,
        "max_parts": max_parts,
        "price_per_segment_minor": price_minor,
        "cost_minor": cost,
        "cost": money_text(cost, currency),
        "currency": currency,
        "too_long": segments > max_parts,
    }
    if segments > max_parts:
        body["error"] = str(sms_rules.SmsTooLong(segments, max_parts))
    return body
