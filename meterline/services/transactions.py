"""Money posted by an integrating system (scenario 5): a cooperative's book-keeping software
posts a deposit and the member gets an SMS with the new balance within seconds.

The ledger entry, the account's new balance and the confirmation message commit in one
transaction. The external reference is unique per tenant: the same post twice (a retry
after a timeout) records nothing new and answers what the first one did; the same
reference with a different amount or account is refused, never merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meterline.domain.enums import LedgerKind
from meterline.services.credit import InsufficientCredit, money_text
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.services.notify import Notification, NotifyRefused, Queued, notify
from meterline.store.models import Account, LedgerEntry, Message, Tenant

# What each transaction type does to the balance, and how the member is told.
SIGN = {LedgerKind.deposit: 1, LedgerKind.payment: 1, LedgerKind.withdrawal: -1}
KIND_OF = {
    LedgerKind.deposit: "deposit_received",
    LedgerKind.payment: "payment_received",
    LedgerKind.withdrawal: "withdrawal_made",
}


@dataclass(frozen=True)
class TransactionResult:
    created: bool
    entry_id: int
    account: str
    type: LedgerKind
    amount_minor: int
    balance_minor: int
    reference: str
    message: Queued | None
    message_error: str | None


def to_minor(amount: str | int | Decimal, currency: str, *, allow_zero: bool = False) -> int:
    """'1234.5' INR -> 123450; refuses floats' imprecision by taking text or Decimal.

    Amounts of money moved must be positive; prices and limits may be zero (`allow_zero`).
    """
    digits = get_currency_precision(currency)
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ServiceError(f"amount {amount!r} is not a number") from None
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        raise ServiceError(f"amount {amount!r} must be a positive number")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ServiceError(
            f"amount {amount!r} has more than {digits} decimal places for {currency}"
        )
    return int(scaled)


def record_transaction(
    session: Session,
    tenant: Tenant,
    *,
    account_number: str,
    kind: LedgerKind,
    amount_minor: int,
    reference: str,
    now: datetime,
    occurred_at: datetime | None = None,
    note: str | None = None,
) -> TransactionResult:
    """Record the transaction and queue its confirmation in `session`'s transaction."""
    if kind not in SIGN:
        raise ServiceError(f"type {kind!r} is not one of: {', '.join(map(str, SIGN))}")
    reference = reference.strip()
    if not reference:
        raise ServiceError("reference is required: it makes a retried post safe")
    account = session.scalar(
        select(Account).where(Account.tenant_id == tenant.id, Account.number == account_number)
    )
    if account is None:
        raise NotFound(f"no account {account_number!r}")
    existing = session.scalar(_entry_for(tenant.id, reference))
    if existing is not None:
        return _replay(session, tenant, existing, account, kind, amount_minor, reference)
    try:
        # The balance update and its ledger entry in one savepoint: a concurrent post with
        # the same reference that committed first undoes both, and we answer as it did.
        with session.begin_nested():
            # One statement, so concurrent posts to one account never lose an update.
            balance = session.execute(
                update(Account)
                .where(Account.id == account.id)
                .values(
                    balance_minor=func.coalesce(Account.balance_minor, 0)
                    + _credit_of(kind, amount_minor),
                    dues_minor=_dues_after(kind, amount_minor),
                )
                .returning(Account.balance_minor)
            ).scalar_one()
            assert balance is not None
            entry = LedgerEntry(
                tenant_id=tenant.id,
                account_id=account.id,
                kind=kind,
                amount_minor=SIGN[kind] * amount_minor,
                balance_after_minor=balance,
                external_ref=reference,
                note=note,
                occurred_at=occurred_at or now,
                created_at=now,
            )
            session.add(entry)
            session.flush()
    except IntegrityError:
        existing = session.scalar(_entry_for(tenant.id, reference))
        assert existing is not None
        return _replay(session, tenant, existing, account, kind, amount_minor, reference)
    queued: Queued | None = None
    error: str | None = None
    try:
        with session.begin_nested():
            queued = notify(
                session,
                tenant,
                Notification(
                    kind=KIND_OF[kind],
                    data={
                        "account": account.number,
                        "amount": amount_minor,
                        "balance": balance,
                        "at": occurred_at or now,
                        "reference": reference,
                    },
                    idempotency_key=f"txn:{reference}",
                    consumer_id=account.consumer_id,
                    account_id=account.id,
                ),
                now=now,
                account_checked=True,
            )
    except (NotifyRefused, InsufficientCredit, NotFound) as exc:
        # The money is recorded whatever happens to the message; the answer says why no
        # confirmation went out.
        error = exc.message
    return TransactionResult(
        True, entry.id, account.number, kind, amount_minor, balance, reference, queued, error
    )


def _credit_of(kind: LedgerKind, amount_minor: int) -> Any:
    # A payment settles dues first: only what is left over is credit on the balance (a
    # bill paid in full is not also money in hand). Both SET expressions read the row as
    # it was before this UPDATE, on PostgreSQL and SQLite alike.
    if kind is not LedgerKind.payment:
        return SIGN[kind] * amount_minor
    return case(
        (Account.dues_minor >= amount_minor, 0),
        (Account.dues_minor > 0, amount_minor - Account.dues_minor),
        else_=amount_minor,
    )


def _dues_after(kind: LedgerKind, amount_minor: int) -> Any:
    # A payment settles dues first; deposits and withdrawals leave them alone.
    if kind is not LedgerKind.payment:
        return Account.dues_minor
    return case((Account.dues_minor > amount_minor, Account.dues_minor - amount_minor), else_=0)


def _entry_for(tenant_id: int, reference: str) -> Any:
    return select(LedgerEntry).where(
        LedgerEntry.tenant_id == tenant_id, LedgerEntry.external_ref == reference
    )


def _message_for(tenant_id: int, reference: str) -> Any:
    return select(Message).where(
        Message.tenant_id == tenant_id, Message.idempotency_key == f"txn:{reference}"
    )


def _replay(
    session: Session,
    tenant: Tenant,
    entry: LedgerEntry,
    account: Account,
    kind: LedgerKind,
    amount_minor: int,
    reference: str,
) -> TransactionResult:
    same = (
        entry.account_id == account.id
        and entry.kind == kind
        and entry.amount_minor == SIGN[kind] * amount_minor
    )
    if not same:
        first = session.get(Account, entry.account_id)
        raise Conflict(
            f"reference {reference!r} was already used for a {entry.kind} of "
            f"{money_text(abs(entry.amount_minor), tenant.currency)} on account "
            f"{first.number if first else '?'}; a reference cannot be reused"
        )
    message = session.scalar(_message_for(tenant.id, reference))
    queued = Queued.of(message, created=False) if message else None
    return TransactionResult(
        False,
        entry.id,
        account.number,
        kind,
        amount_minor,
        entry.balance_after_minor,
        reference,
        queued,
        None if message else "no confirmation was queued for this transaction",
    )
