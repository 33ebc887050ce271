"""End to end: notify -> the real dispatcher -> an ``smpp`` channel account -> smpp34's SMSC,
and the SMSC's delivery receipts back through the dispatcher's drain hook to the messages
(SQLite, and PostgreSQL when METERLINE_TEST_PG_URL is set)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from meterline.domain.enums import MessageStatus
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings
from meterline.services.message_parts import accepted_parts, actual_cost_minor
from meterline.services.notify import Notification, notify
from meterline.store.models import Message, MessageEvent, MessagePart, Tenant
from tests.support.smsc import Smsc, Submit

NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
PRICE = 25  # paisa per part

BN_LONG = "আপনার বিদ্যুৎ বিলের বকেয়া ৳১,২৫০ টাকা ৩০ নভেম্বরের মধ্যে পরিশোধ করুন। " * 3
HI_LONG = "आपका बिजली बिल ₹1,250 बकाया है, कृपया 30 नवंबर तक भुगतान करें। " * 3


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


def part_number(submit: Submit) -> int:
    return submit.short_message[5] if submit.esm_class & 0x40 else 1


def receipts(submit: Submit) -> str:
    """The SMSC's verdict per part: the Hindi reminder's second part cannot be delivered."""
    if submit.destination_addr.endswith("9876543211") and part_number(submit) == 2:
        return "UNDELIV"
    return "DELIVRD"


def setup(runtime: Runtime, tenant: Tenant, smsc: Smsc) -> int:
    with runtime.sessions() as s, s.begin():
        account = add_channel_account(
            s,
            tenant.id,
            name="operator-smpp",
            type_name="smpp",
            config={
                "host": "127.0.0.1",
                "port": smsc.port,
                "system_id": smsc.system_id,
                "password": smsc.password,
                "source_addr": "ALGELC",
                "tps": 50,
                "throttle_pause_s": 0.2,
                "reconnect_initial_s": 0.05,
                "link_wait_s": 0.5,
            },
            rate_per_second=1000,
        )
        credit.set_pricing(s, tenant.id, sms_price_minor=PRICE)
        credit.top_up(s, tenant.id, 100_000, by="test")
        return account.id


def queue(runtime: Runtime, tenant: Tenant, key: str, text: str, phone: str) -> int:
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        assert t is not None
        n = Notification(kind="custom", data={"text": text}, idempotency_key=key, phone=phone)
        return notify(s, t, n, now=NOON_IST).message_id


def message_segments(runtime: Runtime, message_id: int) -> int:
    with runtime.sessions() as s:
        m = s.get(Message, message_id)
        assert m is not None
        return m.segments


def statuses(runtime: Runtime, ids: list[int]) -> dict[int, MessageStatus]:
    with runtime.sessions() as s:
        return {m.id: m.status for m in s.scalars(select(Message).where(Message.id.in_(ids)))}


def run_dispatcher(runtime: Runtime, ids: list[int], timeout: float = 15.0) -> Dispatcher:
    """Rounds as a worker runs them, the clock a second further each round, until every
    message has its final status; then the dispatcher closes (and unbinds)."""
    clock = Clock(NOON_IST)
    dispatcher = Dispatcher(
        runtime.sessions,
        settings=DispatchSettings(claim_seconds=30),
        clock=clock,
        rng=random.Random(7),
        worker="w1",
    )

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await dispatcher.run_once()
                final = statuses(runtime, ids).values()
                if all(st in (MessageStatus.delivered, MessageStatus.failed) for st in final):
                    return
                clock.now += timedelta(seconds=1)
                await asyncio.sleep(0.05)
            raise AssertionError(f"messages not final in time: {statuses(runtime, ids)}")
        finally:
            await dispatcher.aclose()

    asyncio.run(loop())
    return dispatcher


@pytest.mark.pg
def test_parts_go_out_once_and_their_receipts_roll_up_to_each_message(
    runtime: Runtime, tenant: Tenant, smsc: Smsc
) -> None:
    account_id = setup(runtime, tenant, smsc)
    bn = queue(runtime, tenant, "bn-1", BN_LONG, "9876543210")
    hi = queue(runtime, tenant, "hi-1", HI_LONG, "9876543211")
    short = queue(runtime, tenant, "en-1", "Power cut tomorrow 10-12.", "9876543212")
    smsc.auto_receipts = receipts
    smsc.reject_next(0x58)  # the first part the SMSC sees is throttled once

    run_dispatcher(runtime, [bn, hi, short])

    assert len(smsc.bind_attempts) == 1  # the adapter and its bind outlive the rounds
    assert statuses(runtime, [bn, hi, short]) == {
        bn: MessageStatus.delivered,
        hi: MessageStatus.failed,
        short: MessageStatus.delivered,
    }
    with runtime.sessions() as s:
        messages = {m.id: m for m in s.scalars(select(Message))}
        # Every part reached the SMSC exactly once (the throttled one after a pause).
        accepted = smsc.accepted()
        assert len(accepted) == sum(m.segments for m in messages.values())
        assert len({(a.destination_addr, part_number(a)) for a in accepted}) == len(accepted)
        assert [s.status for s in smsc.submits].count(0x58) == 1
        for mid in (bn, hi):
            m = messages[mid]
            n = m.segments
            assert n >= 3 and m.encoding == "UCS-2"
            parts = s.scalars(
                select(MessagePart).where(MessagePart.message_id == mid).order_by("part_no")
            ).all()
            assert [p.part_no for p in parts] == list(range(1, n + 1))
            assert m.provider_message_id == parts[0].provider_message_id
            assert accepted_parts(s, mid) == n
            assert actual_cost_minor(s, m) == n * PRICE == m.cost_minor
        hi_parts = s.scalars(
            select(MessagePart.status).where(MessagePart.message_id == hi).order_by("part_no")
        ).all()
        assert hi_parts[1] == "failed" and set(hi_parts) - {"failed"} <= {"delivered"}
        assert messages[hi].error_code == "UNDELIV:001"
        assert f"part 2/{messages[hi].segments}" in (messages[hi].error_text or "")
        assert actual_cost_minor(s, messages[short]) == PRICE
        assert s.scalar(select(MessagePart.id).where(MessagePart.message_id == short)) is None
        # The throttled attempt is in its message's history (the sends run concurrently, so
        # which message drew it varies); that message still ended with its receipts' status.
        history = [
            (e.message_id, e.event, e.status, e.error_code)
            for e in s.scalars(select(MessageEvent).order_by(MessageEvent.id))
        ]
        throttled = [mid for mid, _, _, code in history if code == "ESME_RTHROTTLED"]
        assert len(throttled) == 1
        # Each part's receipt is in its message's history too.
        hi_part_events = [
            (ev, st, code) for mid, ev, st, code in history if mid == hi and ev == "part_status"
        ]
        assert len(hi_part_events) == messages[hi].segments
        assert ("part_status", "failed", "UNDELIV:001") in hi_part_events
        assert (bn, "status", "delivered", None) in history
        assert messages[bn].channel_account_id == account_id


@pytest.mark.pg
def test_a_receipt_for_an_unknown_part_is_counted_not_an_error(
    runtime: Runtime, tenant: Tenant, smsc: Smsc
) -> None:
    setup(runtime, tenant, smsc)
    short = queue(runtime, tenant, "en-1", "Power cut tomorrow 10-12.", "9876543212")

    def receipt_and_a_stranger(submit: Submit) -> str:
        smsc.send_receipt("ffff0001", "DELIVRD")  # an id we never sent
        return "DELIVRD"

    smsc.auto_receipts = receipt_and_a_stranger
    dispatcher = run_dispatcher(runtime, [short])
    assert statuses(runtime, [short]) == {short: MessageStatus.delivered}
    # The stranger is held a while (its message may not be recorded yet), then dropped and
    # counted.
    assert (dispatcher.pushed.held, dispatcher.pushed.dropped) == (1, 0)
    dispatcher.clock.now += timedelta(seconds=61)  # type: ignore[attr-defined]
    dispatcher.pushed.apply()
    assert (dispatcher.pushed.held, dispatcher.pushed.dropped) == (0, 1)


@pytest.mark.pg
def test_a_receipt_that_comes_before_its_parts_are_recorded_still_lands(
    runtime: Runtime, tenant: Tenant, smsc: Smsc
) -> None:
    """Part 1 is taken and its receipt comes at once; part 2 stays throttled past the
    in-place resends, so the message's parts are recorded only on the dispatcher's resend,
    after part 1's receipt has arrived."""
    setup(runtime, tenant, smsc)
    bn = queue(runtime, tenant, "bn-1", BN_LONG, "9876543210")
    smsc.auto_receipts = receipts
    smsc.reject_next(0, 0x58, 0x58, 0x58, 0x58)
    dispatcher = run_dispatcher(runtime, [bn])
    assert statuses(runtime, [bn]) == {bn: MessageStatus.delivered}
    assert dispatcher.pushed.dropped == 0
    # One bind for the whole run, and each part taken once (the resend skipped part 1).
    assert len(smsc.bind_attempts) == 1
    assert len(smsc.accepted()) == message_segments(runtime, bn)
    with runtime.sessions() as s:
        parts = s.scalars(select(MessagePart.status).where(MessagePart.message_id == bn)).all()
    assert parts and set(parts) == {"delivered"}


@pytest.mark.pg
def test_a_dropped_link_mid_run_loses_nothing_and_sends_nothing_twice(
    runtime: Runtime, tenant: Tenant, smsc: Smsc
) -> None:
    setup(runtime, tenant, smsc)
    smsc.auto_receipts = receipts
    first = queue(runtime, tenant, "en-1", "Power cut tomorrow 10-12.", "9876543212")
    clock = Clock(NOON_IST)
    dispatcher = Dispatcher(
        runtime.sessions,
        settings=DispatchSettings(claim_seconds=30),
        clock=clock,
        rng=random.Random(7),
        worker="w1",
    )

    async def until_final(ids: list[int]) -> None:
        deadline = time.monotonic() + 15
        while any(
            st not in (MessageStatus.delivered, MessageStatus.failed)
            for st in statuses(runtime, ids).values()
        ):
            assert time.monotonic() < deadline, statuses(runtime, ids)
            await dispatcher.run_once()
            clock.now += timedelta(seconds=1)
            await asyncio.sleep(0.05)

    async def scenario() -> list[int]:
        try:
            await until_final([first])
            smsc.refuse = True  # the link drops and stays down for a while
            smsc.drop()
            later = [
                queue(runtime, tenant, f"en-{i}", f"Reading due on the {i}th.", "9876543212")
                for i in range(2, 5)
            ]
            await asyncio.sleep(0.3)
            await dispatcher.run_once()  # sends while down: retried, not lost
            assert all(st is MessageStatus.queued for st in statuses(runtime, later).values())
            smsc.refuse = False
            await until_final(later)
            return later
        finally:
            await dispatcher.aclose()

    later = asyncio.run(scenario())
    assert set(statuses(runtime, [first, *later]).values()) == {MessageStatus.delivered}
    texts = sorted(s.short_message for s in smsc.accepted())
    assert len(texts) == 4 == len(set(texts))  # each message reached the SMSC exactly once
    with runtime.sessions() as s:
        retried = s.scalars(
            select(MessageEvent.error_code).where(MessageEvent.message_id.in_(later))
        ).all()
    assert "link_down" in retried
