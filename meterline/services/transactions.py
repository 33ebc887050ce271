"""Money posted by an integrating system (scenario 5): a cooperative's book-keeping software
posts a deposit and the member gets an SMS with the new balance within seconds.

The ledger entry, the account's new balance and the confirmation message commit in one
transaction. The external reference is unique per tenant: the same post twice (a retry
after a timeout) records nothing new and answers what the first one did; the same
reference with a different amount or account is refused, never merged.

Posts can be recorded a group at a time in one database transaction (group commit, see
services/group_commit.py): each post runs in its own savepoint, so one refused or failing
post leaves the others as they are, and the group shares its look-ups and one credit hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meterline.domain.enums import LedgerKind
from meterline.services import credit
from meterline.services.credit import InsufficientCredit, money_text
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.services.notify import Composer, Notification, NotifyRefused, Queued, Recipient
from meterline.store import ledger_writes as lw
from meterline.store.models import Tenant

# What each transaction type does to the balance, and how the member is told.
SIGN = {LedgerKind.deposit: 1, LedgerKind.payment: 1, LedgerKind.withdrawal: -1}
KIND_OF = {
    LedgerKind.deposit: "deposit_received",
    LedgerKind.payment: "payment_received",
    LedgerKind.withdrawal: "withdrawal_made",
}
# Amounts are stored in 64-bit integer columns.
MAX_MINOR = 2**63 - 1


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


@dataclass(frozen=True)
class TransactionRequest:
    """One post: what to record on which account, under which external reference."""

    account_number: str
    kind: LedgerKind
    amount_minor: int
    reference: str
    occurred_at: datetime | None = None
    note: str | None = None


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
    if scaled > MAX_MINOR:
        raise ServiceError(f"amount {amount!r} is too large")
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
    request = TransactionRequest(account_number, kind, amount_minor, reference, occurred_at, note)
    outcome = record_transactions(session, tenant, [request], now=now)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def record_transactions(
    session: Session, tenant: Tenant, requests: Sequence[TransactionRequest], *, now: datetime
) -> list[TransactionResult | Exception]:
    """Record several posts in `session`'s transaction, each in its own savepoint.

    Answers, in order, each post's result or the error that refused it (ServiceError:
    NotFound, Conflict...; anything else is a fault of that post alone, already rolled
    back to its savepoint). The caller commits.
    """
    return _Group(session, tenant, now).run(requests)


@dataclass
class _Pending:
    """A recorded post whose confirmation still needs its credit held."""

    index: int
    message_id: int
    cost_minor: int
    note: str


class _Group:
    def __init__(self, session: Session, tenant: Tenant, now: datetime) -> None:
        self.session = session
        self.conn: Connection = session.connection()
        self.tenant = tenant
        self.now = now
        self._composer: Composer | None = None

    @property
    def composer(self) -> Composer:
        # Templates, channel account and pricing: looked up once for the whole group.
        if self._composer is None:
            self._composer = Composer(self.session, self.tenant)
        return self._composer

    def run(self, requests: Sequence[TransactionRequest]) -> list[TransactionResult | Exception]:
        out: list[TransactionResult | Exception | None] = [None] * len(requests)
        checked: list[tuple[int, TransactionRequest]] = []
        for i, r in enumerate(requests):
            try:
                checked.append((i, _checked(r)))
            except ServiceError as exc:
                out[i] = exc
        tid = self.tenant.id
        accounts = lw.accounts_by_number(self.conn, tid, {r.account_number for _, r in checked})
        # Posts to one account keep their order; across accounts, rows are locked in id
        # order, so two groups in two processes do not wait on each other in a cycle (a
        # deadlock PostgreSQL still finds fails that post alone, see _record_all).
        checked.sort(
            key=lambda p: accounts[p[1].account_number].id if p[1].account_number in accounts else 0
        )
        # A reference posted twice in one group: the second post is a retry of the first
        # and must find it complete (entry and message), so it waits for the next round.
        rounds: list[list[tuple[int, TransactionRequest]]] = []
        occurrences: dict[str, int] = {}
        for i, r in checked:
            n = occurrences[r.reference] = occurrences.get(r.reference, -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append((i, r))
        for posts in rounds:
            self._round(posts, accounts, out)
        results: list[TransactionResult | Exception] = []
        for o in out:
            assert o is not None
            results.append(o)
        return results

    def _round(
        self,
        posts: list[tuple[int, TransactionRequest]],
        accounts: dict[str, lw.AccountRow],
        out: list[TransactionResult | Exception | None],
    ) -> None:
        seen = lw.entries_by_reference(self.conn, self.tenant.id, {r.reference for _, r in posts})
        fresh: list[tuple[int, lw.AccountRow, TransactionRequest]] = []
        for i, r in posts:
            account = accounts.get(r.account_number)
            try:
                if account is None:
                    raise NotFound(f"no account {r.account_number!r}")
                entry = seen.get(r.reference)
                if entry is not None:
                    out[i] = self._replay(entry, account, r)
                else:
                    fresh.append((i, account, r))
            except Exception as exc:
                out[i] = exc
        recorded = self._record_all(fresh, out)
        pending = self._queue_all(recorded, out)
        self._hold_credit(pending, out)

    def _record_all(
        self,
        fresh: list[tuple[int, lw.AccountRow, TransactionRequest]],
        out: list[TransactionResult | Exception | None],
    ) -> list[tuple[int, lw.AccountRow, TransactionRequest, int, int]]:
        """The balance moves and ledger entries of the new posts: (index, account, post,
        balance after, entry id) for each one recorded.

        First all together in one savepoint; if any of them fails (a reference another
        process has just used, a fault), that savepoint
        is undone and each post runs again in a savepoint of its own, so only the post
        that fails by itself is refused.
        """
        if not fresh:
            return []
        try:
            with self.conn.begin_nested():
                return [(i, a, r, *self._move(a, r)) for i, a, r in fresh]
        except Exception:
            pass
        recorded = []
        for i, account, r in fresh:
            try:
                with self.conn.begin_nested():
                    recorded.append((i, account, r, *self._move(account, r)))
            except IntegrityError:
                # A post with this reference committed first (in another process): the
                # savepoint undid ours; answer as that one did.
                ref = r.reference
                found = lw.entries_by_reference(self.conn, self.tenant.id, [ref]).get(ref)
                try:
                    if found is None:
                        raise
                    out[i] = self._replay(found, account, r)
                except Exception as exc:
                    out[i] = exc
            except Exception as exc:
                out[i] = exc
        return recorded

    def _move(self, account: lw.AccountRow, r: TransactionRequest) -> tuple[int, int]:
        signed = SIGN[r.kind] * r.amount_minor
        balance = lw.move_balance(
            self.conn, account.id, signed, r.amount_minor if r.kind is LedgerKind.payment else None
        )
        entry_id = lw.add_entry(
            self.conn,
            {
                "tenant_id": self.tenant.id,
                "account_id": account.id,
                "kind": r.kind,
                "amount_minor": signed,
                "balance_after_minor": balance,
                "external_ref": r.reference,
                "note": r.note,
                "occurred_at": r.occurred_at or self.now,
                "created_at": self.now,
            },
        )
        return balance, entry_id

    def _queue_all(
        self,
        recorded: list[tuple[int, lw.AccountRow, TransactionRequest, int, int]],
        out: list[TransactionResult | Exception | None],
    ) -> list[_Pending]:
        """The confirmations' rows, written in one statement beside the ledger entries;
        their credit is held for the whole group afterwards. The money is recorded
        whatever happens to a message: the answer says why no confirmation went out."""
        rows: list[dict[str, Any]] = []
        for i, account, r, balance, entry_id in recorded:
            row, error = self._message_row(account, r, balance)
            out[i] = TransactionResult(
                True,
                entry_id,
                account.number,
                r.kind,
                r.amount_minor,
                balance,
                r.reference,
                None,
                error,
            )
            if row is not None:
                row["_index"] = i
                rows.append(row)
        if not rows:
            return []
        index_of = {row.pop("_index"): row for row in rows}
        new_ids = lw.add_messages(self.conn, rows)
        pending: list[_Pending] = []
        for i, row in index_of.items():
            result = out[i]
            assert isinstance(result, TransactionResult)
            key = row["idempotency_key"]
            message_id = new_ids.get(key)
            if message_id is None:  # the key was used before: that message, unchanged
                queued = _queued(lw.message_for_key(self.conn, self.tenant.id, key), False)
            else:
                queued = Queued(
                    message_id=message_id,
                    created=True,
                    status=row["status"],
                    medium=row["medium"],
                    segments=row["segments"],
                    encoding=row["encoding"],
                    cost_minor=row["cost_minor"],
                    due_at=row["due_at"],
                )
                if row["cost_minor"]:
                    pending.append(
                        _Pending(
                            i,
                            message_id,
                            row["cost_minor"],
                            f"{row['kind']} to {row['to_address']}",
                        )
                    )
            out[i] = replace(result, message=queued)
        return pending

    def _message_row(
        self, account: lw.AccountRow, r: TransactionRequest, balance: int
    ) -> tuple[dict[str, Any] | None, str | None]:
        key = f"txn:{r.reference}"
        if account.name is None:
            return None, f"{key}: no consumer {account.consumer_id}"
        at = r.occurred_at or self.now
        data = {
            "account": account.number,
            "amount": r.amount_minor,
            "balance": balance,
            "at": at,
            "reference": r.reference,
        }
        try:
            row = self.composer.row(
                Notification(
                    kind=KIND_OF[r.kind],
                    data=data,
                    idempotency_key=key,
                    consumer_id=account.consumer_id,
                    account_id=account.id,
                ),
                now=self.now,
                batch_id=key,
                recipient=Recipient(
                    account.consumer_id, account.phone, account.language, account.name
                ),
                exact_parts=True,
            )
        except NotifyRefused as exc:
            return None, exc.message
        row["data"] = {**data, "at": at.isoformat()}
        return row, None

    def _hold_credit(
        self, pending: list[_Pending], out: list[TransactionResult | Exception | None]
    ) -> None:
        """One hold for the group's confirmations; if the credit cannot cover them all,
        one at a time in order, and a confirmation that cannot be paid for is not sent."""
        if not pending:
            return
        total = sum(p.cost_minor for p in pending)
        one = pending[0] if len(pending) == 1 else None
        try:
            credit.hold(
                self.session,
                self.tenant,
                total,
                messages=len(pending),
                message_id=one.message_id if one else None,
                note=one.note if one else f"{len(pending)} transaction confirmations",
            )
            return
        except InsufficientCredit as exc:
            if one is not None:
                self._unpaid(one, out, exc)
                return
        for p in pending:
            try:
                credit.hold(
                    self.session,
                    self.tenant,
                    p.cost_minor,
                    messages=1,
                    message_id=p.message_id,
                    note=p.note,
                )
            except InsufficientCredit as exc:
                self._unpaid(p, out, exc)

    def _unpaid(
        self, p: _Pending, out: list[TransactionResult | Exception | None], exc: InsufficientCredit
    ) -> None:
        lw.drop_message(self.conn, p.message_id)
        result = out[p.index]
        assert isinstance(result, TransactionResult)
        out[p.index] = replace(result, message=None, message_error=exc.message)

    def _replay(
        self, entry: lw.EntryRow, account: lw.AccountRow, r: TransactionRequest
    ) -> TransactionResult:
        same = (
            entry.account_id == account.id
            and entry.kind == r.kind
            and entry.amount_minor == SIGN[r.kind] * r.amount_minor
        )
        if not same:
            first = lw.account_number(self.conn, entry.account_id)
            raise Conflict(
                f"reference {r.reference!r} was already used for a {entry.kind} of "
                f"{money_text(abs(entry.amount_minor), self.tenant.currency)} on account "
                f"{first or '?'}; a reference cannot be reused"
            )
        message = lw.message_for_key(self.conn, self.tenant.id, f"txn:{r.reference}")
        return TransactionResult(
            False,
            entry.id,
            account.number,
            r.kind,
            r.amount_minor,
            entry.balance_after_minor,
            r.reference,
            _queued(message, False),
            None if message else "no confirmation was queued for this transaction",
        )


def _checked(r: TransactionRequest) -> TransactionRequest:
    if r.kind not in SIGN:
        raise ServiceError(f"type {r.kind!r} is not one of: {', '.join(map(str, SIGN))}")
    reference = r.reference.strip()
    if not reference:
        raise ServiceError("reference is required: it makes a retried post safe")
    if r.amount_minor <= 0:
        raise ServiceError(f"amount {r.amount_minor} must be a positive number")
    return replace(r, reference=reference) if reference != r.reference else r


def _queued(message: lw.MessageRow | None, created: bool) -> Queued | None:
    return None if message is None else Queued.of(message, created=created)
