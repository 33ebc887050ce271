"""Under concurrent sends and concurrent workers the credit ledger always adds up:
balance = top-ups - cost of accepted messages, and no send overspends the credit."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from meterline.domain.enums import CreditState, MessageStatus
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.notify import Notification, notify
from meterline.store.models import CreditEntry, Message, Tenant

NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
THREADS, PER_THREAD, PRICE, TOPUP = 8, 25, 10, 1500  # credit for about 150 of 200


def test_concurrent_sends_never_overspend_and_the_ledger_adds_up(
    runtime: Runtime, tenant: Tenant
) -> None:
    rejected = [f"+9198100000{i:02d}" for i in range(0, 100, 7)]
    with runtime.sessions() as s, s.begin():
        add_channel_account(
            s,
            tenant.id,
            name="sb",
            type_name="sandbox",
            config={"reject": rejected},
            rate_per_second=100_000,
        )
        credit.set_pricing(s, tenant.id, sms_price_minor=PRICE)
        credit.top_up(s, tenant.id, TOPUP, by="test")
    refused: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def sender(n: int) -> None:
        for i in range(PER_THREAD):
            key = f"t{n}-{i}"
            try:
                with runtime.sessions() as s, s.begin():
                    t = s.get(Tenant, tenant.id)
                    assert t is not None
                    notify(
                        s,
                        t,
                        Notification(
                            kind="custom",
                            data={"text": "Water supply off on Sunday"},
                            idempotency_key=key,
                            phone=f"98100000{(n * PER_THREAD + i) % 100:02d}",
                        ),
                        now=NOON_IST,
                    )
            except credit.InsufficientCredit:
                refused.append(key)
            except BaseException as exc:
                errors.append(exc)

    def worker(name: str) -> None:
        d = Dispatcher(
            runtime.sessions,
            settings=DispatchSettings(idle_seconds=0.01),
            worker=name,
            clock=lambda: NOON_IST,
            rng=random.Random(name),
        )
        try:
            asyncio.run(d.run(stop))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    senders = [threading.Thread(target=sender, args=(n,)) for n in range(THREADS)]
    for t in workers + senders:
        t.start()
    for t in senders:
        t.join()
    stop.set()
    for t in workers:
        t.join()
    assert errors == []
    drain(Dispatcher(runtime.sessions, clock=lambda: NOON_IST))

    with runtime.sessions() as s:

        def total(*where) -> int:  # type: ignore[no-untyped-def]
            return int(
                s.scalar(select(func.coalesce(func.sum(Message.cost_minor), 0)).where(*where)) or 0
            )

        queued = s.scalar(select(func.count()).select_from(Message))
        accepted = total(Message.status.in_([MessageStatus.sent, MessageStatus.delivered]))
        refunded = total(Message.credit_state == CreditState.refunded)
        entries = s.scalars(select(CreditEntry)).all()
        final = credit.totals(s, tenant.id)

    # Refunds of rejected messages free credit for later sends, so more than
    # TOPUP / PRICE may be queued; what is spent never exceeds what was paid.
    assert len(refused) + queued == THREADS * PER_THREAD and refused
    assert 0 < accepted <= TOPUP
    assert refunded > 0  # some numbers were rejected by the provider
    assert final.balance_minor == TOPUP - accepted
    assert final.held_minor == 0
    by_kind: dict[str, int] = {}
    for e in entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + e.amount_minor
    assert by_kind["topup"] + by_kind["debit"] == final.balance_minor
    assert by_kind["hold"] + by_kind["debit"] - by_kind["release"] == final.held_minor
    assert accepted + refunded == queued * PRICE
