"""The messaging engine through its use cases: notify, credit, dispatch, callbacks.

Real databases (SQLite and PostgreSQL), real HTTP to the provider stand-in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from meterline.channels.base import CallbackRequest
from meterline.domain.enums import Billing, CreditState, MessageStatus, Service
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.notify import Notification, NotifyRefused, notify, notify_many
from meterline.services.status_callbacks import handle_callback
from meterline.store.models import (
    Account,
    ChannelAccount,
    Consumer,
    ContactPoint,
    CreditEntry,
    Message,
    MessageEvent,
    Tenant,
)
from tests.support.gateway_standin import GatewayStandin

NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)  # 12:00 in Kolkata


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def standin() -> Iterator[GatewayStandin]:
    with GatewayStandin() as gw:
        yield gw


def setup_sms(
    runtime: Runtime,
    tenant: Tenant,
    config: dict[str, Any],
    *,
    type_name: str = "sms_http",
    price: int = 25,
    topup: int = 100_000,
    rate: float = 10_000,
) -> int:
    with runtime.sessions() as s, s.begin():
        account = add_channel_account(
            s,
            tenant.id,
            name="gateway",
            type_name=type_name,
            config=config,
            rate_per_second=rate,
        )
        credit.set_pricing(s, tenant.id, sms_price_minor=price)
        if topup:
            credit.top_up(s, tenant.id, topup, by="test")
        return account.id


def sms_http_config(gw: GatewayStandin, **extra: Any) -> dict[str, Any]:
    return {"url": gw.sms_url, "body_format": "json", "timeout_s": 2.0, **extra}


def queue(runtime: Runtime, tenant: Tenant, n: Notification, now: datetime = NOON_IST) -> int:
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        assert t is not None
        return notify(s, t, n, now=now).message_id


def custom(
    key: str, text: str = "Power cut tomorrow 10-12 in your area.", phone: str = "9876543210"
) -> Notification:
    return Notification(kind="custom", data={"text": text}, idempotency_key=key, phone=phone)


def dispatcher(runtime: Runtime, clock: Clock, **settings: Any) -> Dispatcher:
    return Dispatcher(
        runtime.sessions,
        settings=DispatchSettings(**{"claim_seconds": 30, **settings}),
        clock=clock,
        rng=random.Random(7),
        worker=settings.pop("worker", "w1") if "worker" in settings else "w1",
    )


def message(runtime: Runtime, message_id: int) -> Message:
    with runtime.sessions() as s:
        m = s.get(Message, message_id)
        assert m is not None
        return m


def events(runtime: Runtime, message_id: int) -> list[MessageEvent]:
    with runtime.sessions() as s:
        return list(
            s.scalars(
                select(MessageEvent)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.id)
            )
        )


def totals(runtime: Runtime, tenant: Tenant) -> credit.CreditTotals:
    with runtime.sessions() as s:
        return credit.totals(s, tenant.id)


# --- notify ---------------------------------------------------------------------------


def test_the_same_key_twice_is_one_message_and_one_hold(runtime, tenant, standin) -> None:
    setup_sms(runtime, tenant, sms_http_config(standin))
    first = queue(runtime, tenant, custom("k-1"))
    again = queue(runtime, tenant, custom("k-1", text="a different text, same key"))
    assert first == again
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1
        holds = s.scalars(select(CreditEntry).where(CreditEntry.kind == "hold")).all()
    assert [h.amount_minor for h in holds] == [25]
    assert totals(runtime, tenant).held_minor == 25


def test_a_message_is_rendered_in_the_consumers_language_and_costed(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox", price=30)
    with runtime.sessions() as s, s.begin():
        c = Consumer(tenant_id=tenant.id, name="Ramesh Kumar", preferred_language="hi")
        s.add(c)
        s.flush()
        s.add(
            ContactPoint(
                tenant_id=tenant.id,
                consumer_id=c.id,
                kind="phone",
                value="+919876543210",
                is_primary=True,
            )
        )
        a = Account(
            tenant_id=tenant.id,
            consumer_id=c.id,
            number="AL-1",
            service=Service.electricity,
            billing=Billing.postpaid,
        )
        s.add(a)
        s.flush()
        consumer_id, account_id = c.id, a.id
    mid = queue(
        runtime,
        tenant,
        Notification(
            kind="dues_reminder",
            data={
                "account": "AL-1",
                "amount": 12345650,
                "due_date": "2026-03-01",
                "pay_url": "https://pay.example/x",
            },
            idempotency_key="dues:AL-1:2026-03",
            consumer_id=consumer_id,
            account_id=account_id,
        ),
    )
    m = message(runtime, mid)
    assert m.language == "hi" and m.to_address == "+919876543210"
    assert "₹1,23,456.50" in m.body and "बकाया" in m.body
    assert m.encoding == "UCS-2"
    assert m.cost_minor == 30 * m.segments and m.credit_state == CreditState.held


def test_bad_input_is_refused_with_its_reason_and_nothing_is_written(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox")
    with pytest.raises(NotifyRefused, match=r"'12345'.*not a valid number"):
        queue(runtime, tenant, custom("bad-phone", phone="12345"))
    with pytest.raises(NotifyRefused, match=r"otp.*code"):
        queue(
            runtime,
            tenant,
            Notification(
                kind="otp", data={"minutes": 5}, idempotency_key="otp-1", phone="9876543210"
            ),
        )
    with pytest.raises(NotifyRefused, match="unknown"):
        queue(
            runtime,
            tenant,
            Notification(kind="no_such_kind", data={}, idempotency_key="x", phone="9876543210"),
        )
    with pytest.raises(NotifyRefused, match="needs 11 SMS parts; the maximum is 10"):
        queue(runtime, tenant, custom("long", text="x" * (153 * 10 + 1)))
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
    assert totals(runtime, tenant).held_minor == 0


def test_a_send_the_credit_cannot_cover_is_refused(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox", price=50, topup=120)
    queue(runtime, tenant, custom("a"))
    queue(runtime, tenant, custom("b"))
    with pytest.raises(credit.InsufficientCredit, match=r"needs 0.50 INR.*0.20 INR is available"):
        queue(runtime, tenant, custom("c"))
    with runtime.sessions() as s, s.begin():
        credit.set_pricing(s, tenant.id, overdraft_minor=100)
    queue(runtime, tenant, custom("c"))  # the overdraft covers it
    t = totals(runtime, tenant)
    assert (t.balance_minor, t.held_minor) == (120, 150)


def test_non_urgent_messages_wait_out_quiet_hours_urgent_ones_do_not(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox")
    night = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # 22:30 in Kolkata
    reminder = queue(runtime, tenant, custom("promo"), now=night)
    otp = queue(
        runtime,
        tenant,
        Notification(
            kind="otp",
            data={"code": "4821", "minutes": 5},
            idempotency_key="otp",
            phone="9876543210",
        ),
        now=night,
    )
    assert message(runtime, otp).due_at == night
    due = message(runtime, reminder).due_at
    assert due == datetime(2026, 3, 11, 2, 30, tzinfo=UTC)  # 08:00 in Kolkata
    report = drain(dispatcher(runtime, Clock(night)))
    assert report.delivered == 1
    assert message(runtime, reminder).status == MessageStatus.queued


# --- dispatch over real HTTP ----------------------------------------------------------


def test_messages_reach_the_gateway_once_and_credit_is_debited(runtime, tenant, standin) -> None:
    setup_sms(runtime, tenant, sms_http_config(standin))
    ids = [queue(runtime, tenant, custom(f"m{i}", phone=f"98765432{i:02d}")) for i in range(20)]
    report = drain(dispatcher(runtime, Clock(NOON_IST)))
    assert report.sent == 20
    assert standin.stats()["sent"] == 20
    got = {r.json()["reference"] for r in standin.requests("sms")}
    assert got == {f"ml-{tenant.id}-{i}" for i in ids}
    m = message(runtime, ids[0])
    assert m.status == MessageStatus.sent and m.provider_message_id and m.sent_at
    assert m.credit_state == CreditState.debited
    t = totals(runtime, tenant)
    assert (t.balance_minor, t.held_minor) == (100_000 - 20 * 25, 0)
    [attempt] = events(runtime, ids[0])
    assert (attempt.event, attempt.status, attempt.attempt) == ("attempt", "sent", 1)


def test_transient_errors_retry_with_backoff_permanent_ones_refund(
    runtime, tenant, standin
) -> None:
    setup_sms(runtime, tenant, sms_http_config(standin))
    flaky = queue(runtime, tenant, custom("flaky", phone="9811111111"))
    bad = queue(runtime, tenant, custom("bad", phone="9822222222"))
    standin.fail_next(2, status=503, to="+919811111111")
    standin.behave(to="+919822222222", status=400, code="INVALID_NUMBER", text="no such number")
    clock = Clock(NOON_IST)
    d = dispatcher(runtime, clock)
    drain(d)
    m = message(runtime, flaky)
    assert m.status == MessageStatus.queued and m.attempts == 1
    first_wait = (m.due_at - clock.now).total_seconds()
    assert 1.0 <= first_wait <= 2.0  # base 2 s, jittered
    assert message(runtime, bad).status == MessageStatus.failed
    assert message(runtime, bad).credit_state == CreditState.refunded
    clock.now += timedelta(seconds=3)
    drain(dispatcher(runtime, clock))
    m = message(runtime, flaky)
    assert m.attempts == 2 and 2.0 <= (m.due_at - clock.now).total_seconds() <= 4.0
    clock.now += timedelta(seconds=5)
    drain(dispatcher(runtime, clock))
    assert message(runtime, flaky).status == MessageStatus.sent
    assert [e.status for e in events(runtime, flaky)] == ["queued", "queued", "sent"]
    t = totals(runtime, tenant)
    assert (t.balance_minor, t.held_minor) == (100_000 - 25, 0)


def test_retries_stop_at_the_limit(runtime, tenant, standin) -> None:
    setup_sms(runtime, tenant, sms_http_config(standin))
    mid = queue(runtime, tenant, custom("doomed"))
    standin.fail_next(100, status=500)
    clock = Clock(NOON_IST)
    for _ in range(3):
        drain(
            dispatcher(
                runtime,
                clock,
                retry=__import__("meterline.domain.retry", fromlist=["RetryPolicy"]).RetryPolicy(
                    max_attempts=3
                ),
            )
        )
        clock.now += timedelta(minutes=10)
    m = message(runtime, mid)
    assert m.status == MessageStatus.failed and m.attempts == 3
    assert "gave up after 3 attempts" in (m.error_text or "")
    assert totals(runtime, tenant).held_minor == 0


def test_wrong_credentials_pause_the_channel_and_lose_nothing(runtime, tenant, standin) -> None:
    standin.behave(status=401, code="AUTH", text="bad token")
    setup_sms(
        runtime, tenant, sms_http_config(standin, auth_header="Authorization", auth_token="nope")
    )
    ids = [queue(runtime, tenant, custom(f"p{i}")) for i in range(3)]
    drain(dispatcher(runtime, Clock(NOON_IST)))
    with runtime.sessions() as s:
        account = s.scalars(select(ChannelAccount)).one()
        assert "credentials" in (account.disabled_reason or "")
        assert "nope" not in account.disabled_reason
    for mid in ids:
        m = message(runtime, mid)
        assert m.status == MessageStatus.queued and m.attempts == 0
        assert m.credit_state == CreditState.held


def test_a_killed_workers_claim_expires_and_another_worker_sends(runtime, tenant, standin) -> None:
    setup_sms(runtime, tenant, sms_http_config(standin))
    mid = queue(runtime, tenant, custom("orphan"))
    from meterline.store import outbox

    with runtime.sessions() as s, s.begin():
        [claimed] = outbox.claim(
            s, channel_account_id=1, worker="dead", now=NOON_IST, limit=10, claim_seconds=30
        )
    assert message(runtime, mid).status == MessageStatus.sending
    early = drain(dispatcher(runtime, Clock(NOON_IST + timedelta(seconds=10))))
    assert early.claimed == 0  # the claim still holds
    late = drain(dispatcher(runtime, Clock(NOON_IST + timedelta(seconds=31))))
    assert late.sent == 1
    m = message(runtime, mid)
    assert (m.status, m.claimed_by, m.attempts) == (MessageStatus.sent, "w1", 2)
    # The dead worker's late result is not written over the new one.
    with runtime.sessions() as s, s.begin():
        mine = outbox.record(
            s,
            worker="dead",
            now=NOON_IST,
            outcomes=[outbox.Outcome(claimed, MessageStatus.failed, error_text="late")],
        )
    assert mine == set()
    assert message(runtime, mid).status == MessageStatus.sent


def test_urgent_messages_are_claimed_first_and_the_rate_limit_holds(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox", rate=5)
    bulk = [queue(runtime, tenant, custom(f"b{i}")) for i in range(8)]
    otp = queue(
        runtime,
        tenant,
        Notification(
            kind="otp", data={"code": "1", "minutes": 5}, idempotency_key="otp", phone="9876543210"
        ),
    )
    clock = Clock(NOON_IST)
    d = dispatcher(runtime, clock)
    import asyncio

    first = asyncio.run(d.run_once())
    assert first.claimed == 5  # one second's worth of tokens
    assert message(runtime, otp).status == MessageStatus.delivered
    second = asyncio.run(d.run_once())
    assert second.claimed == 0  # no time has passed: no tokens
    clock.now += timedelta(seconds=1)
    third = asyncio.run(d.run_once())
    assert third.claimed == 4
    asyncio.run(d.aclose())
    assert all(message(runtime, b).status == MessageStatus.delivered for b in bulk)


# --- callbacks ------------------------------------------------------------------------


def test_status_callbacks_only_move_forward(runtime, tenant, standin) -> None:
    account_id = setup_sms(
        runtime,
        tenant,
        sms_http_config(standin, callback_secret="s3cret", callback_secret_in="header"),
    )
    mid = queue(runtime, tenant, custom("cb"))
    drain(dispatcher(runtime, Clock(NOON_IST)))
    pid = message(runtime, mid).provider_message_id

    def post(status: str, secret: str = "s3cret") -> Any:
        import json

        req = CallbackRequest(
            method="POST",
            url="http://x/cb",
            headers={"x-meterline-secret": secret, "content-type": "application/json"},
            query={},
            body=json.dumps({"message_id": pid, "status": status}).encode(),
        )
        with runtime.sessions() as s, s.begin():
            account = s.get(ChannelAccount, account_id)
            return handle_callback(s, account, req, NOON_IST + timedelta(seconds=5))

    assert post("delivered").applied == 1
    assert post("delivered").ignored == 1  # a duplicate
    assert post("failed").ignored == 1  # late noise after delivery
    assert message(runtime, mid).status == MessageStatus.delivered
    from meterline.channels.base import ForgedCallback

    with pytest.raises(ForgedCallback):
        post("read", secret="guess")
    assert message(runtime, mid).status == MessageStatus.delivered
    kinds = [(e.event, e.status) for e in events(runtime, mid)]
    assert kinds == [
        ("attempt", "sent"),
        ("status", "delivered"),
        ("status_ignored", "delivered"),
        ("status_ignored", "failed"),
    ]


# --- bulk ---------------------------------------------------------------------------


def test_bulk_notify_holds_once_and_lists_what_it_refused(runtime, tenant) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox", price=10, topup=1_000)
    items = [custom(f"bulk-{i}", phone=f"98765{i:05d}") for i in range(40)]
    items.append(custom("bulk-bad", phone="123"))
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        result = notify_many(s, t, items, now=NOON_IST)
    assert (result.queued, len(result.refused), result.cost_minor) == (40, 1, 400)
    assert "'123'" in result.refused[0]["reason"]
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        again = notify_many(s, t, items[:10], now=NOON_IST)
    assert (again.queued, again.duplicates) == (0, 10)
    assert totals(runtime, tenant).held_minor == 400
    with pytest.raises(credit.InsufficientCredit), runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        notify_many(
            s, t, [custom(f"more-{i}", phone=f"98766{i:05d}") for i in range(61)], now=NOON_IST
        )
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 40


def test_a_running_worker_follows_changed_quiet_hours(runtime, tenant, standin) -> None:
    from meterline.services.tenants import set_quiet_hours

    setup_sms(runtime, tenant, sms_http_config(standin))
    mid = queue(runtime, tenant, custom("notice", phone="9811111111"))
    standin.fail_next(2, status=503, to="+919811111111")
    clock = Clock(NOON_IST)
    d = dispatcher(runtime, clock)
    import asyncio

    asyncio.run(d.run_once())  # fails, retry in seconds: it is midday
    with runtime.sessions() as s, s.begin():
        set_quiet_hours(s, s.get(Tenant, tenant.id), start="12:00", end="13:00")
    clock.now += timedelta(seconds=5)
    asyncio.run(d.run_once())  # fails again: the retry must wait for 13:00 now
    asyncio.run(d.aclose())
    assert message(runtime, mid).due_at == datetime(2026, 3, 10, 7, 30, tzinfo=UTC)
