"""Posted transactions written a group per database transaction: each post is answered as
if it had been alone (one bad post never fails the others), a reference is recorded once
however many times and from however many processes it is posted, and balances, ledger
entries, confirmations and held credit add up under concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from meterline.domain.enums import Billing, LedgerKind, Service, TenantKind
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.services.group_commit import GroupCommitter, Post
from meterline.services.transactions import TransactionRequest, TransactionResult
from meterline.services.transactions import record_transactions as record_group
from meterline.store.models import Account, Consumer, ContactPoint, LedgerEntry, Message, Tenant

NOON_DHAKA = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
PRICE = 35


@pytest.fixture
def coop(runtime: Runtime) -> int:
    """A cooperative with five members (M-0..M-4, 100.00 each), an SMS channel, credit."""
    with runtime.sessions() as s, s.begin():
        from meterline.services.tenants import create_tenant

        t = create_tenant(
            s,
            slug="shapla",
            name="Shapla",
            country="BD",
            currency="BDT",
            timezone="Asia/Dhaka",
            kind=TenantKind.cooperative,
        )
        for i in range(5):
            c = Consumer(tenant_id=t.id, name=f"Member {i}", preferred_language="bn")
            s.add(c)
            s.flush()
            s.add(
                ContactPoint(
                    tenant_id=t.id,
                    consumer_id=c.id,
                    kind="phone",
                    value=f"+88017123456{i:02d}",
                    is_primary=True,
                )
            )
            s.add(
                Account(
                    tenant_id=t.id,
                    consumer_id=c.id,
                    number=f"M-{i}",
                    service=Service.savings,
                    billing=Billing.prepaid,
                    balance_minor=100_00,
                )
            )
        add_channel_account(s, t.id, name="sandbox", type_name="sandbox", config={})
        credit.set_pricing(s, t.id, sms_price_minor=PRICE)
        credit.top_up(s, t.id, 1_000_000, by="test")
        return t.id


def deposit(account: str, amount: int, ref: str, kind: LedgerKind = LedgerKind.deposit) -> Any:
    return TransactionRequest(account, kind, amount, ref)


def run_group(runtime: Runtime, tenant_id: int, requests: list[TransactionRequest]) -> list[Any]:
    with runtime.sessions() as s, s.begin():
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        return record_group(s, tenant, requests, now=NOON_DHAKA)


def counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions() as s:
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
        messages = s.scalar(select(func.count()).select_from(Message))
        return int(entries or 0), int(messages or 0)


def test_one_group_answers_each_post_as_if_it_were_alone(runtime: Runtime, coop: int) -> None:
    run_group(runtime, coop, [deposit("M-0", 10_00, "OLD")])
    out = run_group(
        runtime,
        coop,
        [
            deposit("M-1", 50_00, "A"),
            deposit("M-9", 50_00, "B"),  # no such account
            deposit("M-1", 25_00, "C"),  # same account: balances in order
            deposit("M-2", 99_00, "OLD"),  # a used reference, another account and amount
            deposit("M-0", 10_00, "OLD"),  # a retry of the earlier post
            deposit("M-3", 5_00, "A"),  # this group's own reference, reused
            deposit("M-1", 10_00, "D", LedgerKind.withdrawal),
            deposit("M-4", 0, "E"),  # not a positive amount
            deposit("M-1", 50_00, "A"),  # a retry of this group's first post
        ],
    )
    a, b, c, old, retry, reused, d, e, again = out
    assert isinstance(a, TransactionResult) and isinstance(c, TransactionResult)
    assert (a.created, a.balance_minor, c.balance_minor) == (True, 150_00, 175_00)
    assert isinstance(d, TransactionResult) and d.balance_minor == 165_00
    assert isinstance(b, NotFound) and "'M-9'" in b.message
    assert isinstance(old, Conflict) and "'OLD'" in old.message and "M-0" in old.message
    assert isinstance(retry, TransactionResult) and retry.created is False
    assert retry.balance_minor == 110_00 and retry.message is not None
    assert isinstance(reused, Conflict) and "M-1" in reused.message
    assert isinstance(e, ServiceError) and "positive" in e.message
    assert isinstance(again, TransactionResult) and again.created is False
    assert (again.entry_id, again.balance_minor) == (a.entry_id, a.balance_minor)
    assert again.message is not None and a.message is not None
    assert again.message.message_id == a.message.message_id and not again.message.created
    for result in (a, c, d):
        assert result.message is not None and result.message.created
        assert result.message.cost_minor == PRICE * result.message.segments
    assert counts(runtime) == (4, 4)
    with runtime.sessions() as s:
        assert s.scalar(select(Account.balance_minor).where(Account.number == "M-1")) == 165_00
        rows = s.execute(
            select(LedgerEntry.external_ref, LedgerEntry.balance_after_minor).order_by(
                LedgerEntry.id
            )
        ).all()
        assert [tuple(r) for r in rows] == [
            ("OLD", 110_00),
            ("A", 150_00),
            ("C", 175_00),
            ("D", 165_00),
        ]
        body = s.scalar(select(Message.body).where(Message.idempotency_key == "txn:C"))
        assert body is not None and "১৭৫.০০" in body  # its own balance, not the group's last
    with runtime.sessions() as s:
        costs = s.scalar(select(func.sum(Message.cost_minor)))
    assert credit_totals(runtime, coop).held_minor == costs  # held for all four, once


def credit_totals(runtime: Runtime, tenant_id: int) -> credit.CreditTotals:
    with runtime.sessions() as s:
        return credit.totals(s, tenant_id)


def test_a_post_that_fails_in_the_database_fails_alone(runtime: Runtime, coop: int) -> None:
    # An amount beyond a 64-bit column: the database refuses the statement. The group's
    # shared savepoint is undone and every post runs again alone; only that one fails.
    out = run_group(
        runtime,
        coop,
        [deposit("M-0", 1_00, "F1"), deposit("M-1", 10**30, "F2"), deposit("M-2", 2_00, "F3")],
    )
    assert isinstance(out[0], TransactionResult) and out[0].balance_minor == 101_00
    assert isinstance(out[1], Exception) and not isinstance(out[1], TransactionResult)
    assert isinstance(out[2], TransactionResult) and out[2].balance_minor == 102_00
    assert counts(runtime) == (2, 2)
    with runtime.sessions() as s:
        assert s.scalar(select(Account.balance_minor).where(Account.number == "M-1")) == 100_00


def test_when_credit_covers_only_some_confirmations_the_money_is_all_recorded(
    runtime: Runtime, coop: int
) -> None:
    first = run_group(runtime, coop, [deposit("M-4", 1_00, "C-first")])[0]
    parts = first.message.segments  # each confirmation is as long as this one
    with runtime.sessions() as s, s.begin():
        available = credit.totals(s, coop).available_minor
        # Enough for two more confirmations, not three.
        credit.set_pricing(s, coop, sms_price_minor=available // (2 * parts))
    out = run_group(runtime, coop, [deposit(f"M-{i}", 1_00, f"C{i}") for i in range(3)])
    assert all(isinstance(r, TransactionResult) and r.created for r in out)
    sent = [r for r in out if r.message is not None]
    unpaid = [r for r in out if r.message is None]
    assert len(sent) == 2 and len(unpaid) == 1
    assert "not enough messaging credit" in (unpaid[0].message_error or "")
    assert counts(runtime) == (4, 3)  # every deposit recorded; no unpaid message left
    held = first.message.cost_minor + sum(r.message.cost_minor for r in sent)
    assert credit_totals(runtime, coop).held_minor == held


def test_the_group_committer_answers_each_caller_and_shares_transactions(
    runtime: Runtime, coop: int
) -> None:
    committer = GroupCommitter(runtime.sessions, clock=lambda: NOON_DHAKA)
    answers: dict[str, Any] = {}
    start = threading.Barrier(12)

    def post(ref: str, account: str, amount: str) -> None:
        start.wait()
        try:
            answers[ref] = committer.post(coop, Post(account, LedgerKind.deposit, amount, ref))
        except Exception as exc:
            answers[ref] = exc

    posts = [(f"G{i}", f"M-{i % 5}", "1.00") for i in range(10)]
    posts += [("BAD-AMOUNT", "M-0", "1.234"), ("NOBODY", "M-77", "1.00")]
    threads = [threading.Thread(target=post, args=p) for p in posts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(answers["BAD-AMOUNT"], ServiceError)
    assert "decimal places" in answers["BAD-AMOUNT"].message
    assert isinstance(answers["NOBODY"], NotFound)
    good = [answers[f"G{i}"] for i in range(10)]
    assert all(isinstance(r, TransactionResult) and r.created for r in good)
    assert counts(runtime) == (10, 10)
    with runtime.sessions() as s:
        total = s.scalar(select(func.sum(Account.balance_minor)))
        assert total == 5 * 100_00 + 10 * 1_00


@pytest.mark.parametrize("committers", [1, 2])
def test_concurrent_posts_of_one_reference_record_it_once(
    runtime: Runtime, coop: int, committers: int
) -> None:
    """Two committers stand for two web processes, each with its own connections."""
    groups = [GroupCommitter(runtime.sessions, clock=lambda: NOON_DHAKA) for _ in range(committers)]
    results: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def post(n: int) -> None:
        start.wait()
        for i in range(5):
            ref = f"SAME-{i}"
            try:
                r: Any = groups[n % committers].post(
                    coop, Post("M-3", LedgerKind.deposit, "10.00", ref)
                )
            except Exception as exc:
                r = exc
            with lock:
                results.append((ref, r))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for _, r in results if isinstance(r, Exception)]
    created = Counter(ref for ref, r in results if r.created)
    assert created == {f"SAME-{i}": 1 for i in range(5)}
    by_ref: dict[str, set[tuple[int, int, int | None]]] = {}
    for ref, r in results:
        message_id = r.message.message_id if r.message else None
        by_ref.setdefault(ref, set()).add((r.entry_id, r.balance_minor, message_id))
    assert all(len(answers) == 1 for answers in by_ref.values())  # everyone hears the same
    assert counts(runtime) == (5, 5)
    with runtime.sessions() as s:
        assert s.scalar(select(Account.balance_minor).where(Account.number == "M-3")) == 150_00
        afters = sorted(s.scalars(select(LedgerEntry.balance_after_minor)))
        assert afters == [110_00, 120_00, 130_00, 140_00, 150_00]


def test_concurrent_posts_to_one_account_keep_the_ledger_right(runtime: Runtime, coop: int) -> None:
    groups = [GroupCommitter(runtime.sessions, clock=lambda: NOON_DHAKA) for _ in range(2)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def post(n: int) -> None:
        start.wait()
        for i in range(10):
            try:
                groups[n % 2].post(coop, Post("M-4", LedgerKind.deposit, "1.00", f"P{n}-{i}"))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with runtime.sessions() as s:
        assert s.scalar(select(Account.balance_minor).where(Account.number == "M-4")) == 180_00
        afters = sorted(s.scalars(select(LedgerEntry.balance_after_minor)))
        assert afters == [100_00 + k * 1_00 for k in range(1, 81)]
        held = s.scalar(select(func.sum(Message.cost_minor)))
    assert credit_totals(runtime, coop).held_minor == held
