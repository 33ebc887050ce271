"""Telegram and Web Push messages through notify and the real dispatcher, over real HTTP
to the Bot API and push service stand-ins, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterline.channels.webpush.keys import VapidKeys, generate_vapid_keys
from meterline.domain.enums import Medium, MessageStatus
from meterline.runtime import Runtime
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher
from meterline.services.notify import Notification, notify
from meterline.services.push_subscriptions import save_subscription
from meterline.store.models import Consumer, ContactPoint, Message, Tenant
from tests.support.push_standin import PushStandin
from tests.support.telegram_standin import TelegramStandin

NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
CHAT = "5550001"
TAMPER = {"account": "1001", "meter": "M-17", "at": NOON_IST}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def tg() -> Iterator[TelegramStandin]:
    with TelegramStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def push() -> Iterator[PushStandin]:
    with PushStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def vapid() -> VapidKeys:
    return generate_vapid_keys()


@pytest.fixture
def world(
    runtime: Runtime,
    tenant: Tenant,
    tg: TelegramStandin,
    push: PushStandin,
    vapid: VapidKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    tg.reset()
    push.reset()
    monkeypatch.setenv("TEST_TG_TOKEN", tg.token)
    monkeypatch.setenv("TEST_VAPID_KEY", vapid.private_key)
    subscription = push.subscribe(vapid.public_key)
    with runtime.sessions() as s, s.begin():
        asha = Consumer(tenant_id=tenant.id, name="Asha Verma", preferred_language="hi")
        s.add(asha)
        s.flush()
        s.add(
            ContactPoint(
                tenant_id=tenant.id, consumer_id=asha.id, kind="phone", value="+919812345678"
            )
        )
        s.add(ContactPoint(tenant_id=tenant.id, consumer_id=asha.id, kind="telegram", value=CHAT))
        save_subscription(
            s, tenant.id, subscription=subscription, consumer_id=asha.id, allow_local=True
        )
        bot = add_channel_account(
            s,
            tenant.id,
            name="bot",
            type_name="telegram",
            config={"bot_token": "env:TEST_TG_TOKEN", "base_url": tg.url},
        )
        browser = add_channel_account(
            s,
            tenant.id,
            name="browser",
            type_name="webpush",
            config={
                "vapid_private_key": "env:TEST_VAPID_KEY",
                "vapid_public_key": vapid.public_key,
                "vapid_subject": "mailto:ops@aligarh.example",
                "open_url": "https://app.aligarh.example/inbox",
            },
        )
        assert bot.rate_per_second == 30.0
        return {
            "consumer": asha.id,
            "endpoint": subscription["endpoint"],
            "bot": bot.id,
            "browser": browser.id,
        }


def queue(runtime: Runtime, tenant: Tenant, consumer: int, medium: Medium, key: str) -> int:
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, tenant.id)
        assert t is not None
        queued = notify(
            s,
            t,
            Notification(
                kind="tamper", data=TAMPER, idempotency_key=key, consumer_id=consumer, medium=medium
            ),
            now=NOON_IST,
        )
        return queued.message_id


def message(runtime: Runtime, message_id: int) -> Message:
    with runtime.sessions() as s:
        row = s.get(Message, message_id)
        assert row is not None
        s.expunge(row)
        return row


def run_round(dispatcher: Dispatcher) -> None:
    async def once() -> None:
        try:
            await dispatcher.run_once()
        finally:
            await dispatcher.aclose()

    asyncio.run(once())


def test_telegram_and_web_push_reach_the_consumers_chat_and_browser(
    runtime: Runtime, tenant: Tenant, world: dict[str, Any], tg: TelegramStandin, push: PushStandin
) -> None:
    to_chat = queue(runtime, tenant, world["consumer"], Medium.telegram, "tamper-tg")
    to_browser = queue(runtime, tenant, world["consumer"], Medium.webpush, "tamper-push")
    assert message(runtime, to_chat).to_address == CHAT
    assert message(runtime, to_browser).to_address == world["endpoint"]

    run_round(Dispatcher(runtime.sessions, clock=Clock(NOON_IST)))

    chat = message(runtime, to_chat)
    assert chat.status is MessageStatus.delivered  # Telegram took it into the chat
    assert chat.channel_account_id == world["bot"]
    assert chat.provider_message_id is not None and chat.provider_message_id.startswith(f"{CHAT}:")
    assert tg.texts_to(CHAT) == [chat.body]
    assert "M-17" in chat.body

    browser = message(runtime, to_browser)
    assert browser.status is MessageStatus.sent  # the push service took it
    assert browser.channel_account_id == world["browser"]
    assert browser.provider_message_id is not None
    [got] = push.delivered
    assert got.endpoint == world["endpoint"]
    assert got.payload == {
        "title": "छेड़छाड़ चेतावनी",
        "body": browser.body,
        "url": "https://app.aligarh.example/inbox",
        "kind": "tamper",
        "message_id": to_browser,
        "lang": "hi",
    }
    assert got.headers["urgency"] == "high"


def test_a_blocked_chat_and_a_gone_subscription_end_the_attempt_on_their_channel(
    runtime: Runtime, tenant: Tenant, world: dict[str, Any], tg: TelegramStandin, push: PushStandin
) -> None:
    tg.chat(CHAT, "blocked")
    push.answer(world["endpoint"], 410)
    to_chat = queue(runtime, tenant, world["consumer"], Medium.telegram, "blocked-tg")
    to_browser = queue(runtime, tenant, world["consumer"], Medium.webpush, "gone-push")
    run_round(Dispatcher(runtime.sessions, clock=Clock(NOON_IST)))
    chat = message(runtime, to_chat)
    # No next channel in this branch's route yet: the fallback fails the message.
    assert (chat.status, chat.error_code) == (MessageStatus.failed, "403")
    assert chat.error_text == "Forbidden: bot was blocked by the user"
    browser = message(runtime, to_browser)
    assert (browser.status, browser.error_code) == (MessageStatus.failed, "410")


def test_two_messages_to_one_chat_go_a_second_apart(
    runtime: Runtime, tenant: Tenant, world: dict[str, Any], tg: TelegramStandin
) -> None:
    first = queue(runtime, tenant, world["consumer"], Medium.telegram, "pace-1")
    second = queue(runtime, tenant, world["consumer"], Medium.telegram, "pace-2")
    clock = Clock(NOON_IST)
    dispatcher = Dispatcher(runtime.sessions, clock=clock)
    run_round(dispatcher)
    states = {message(runtime, m).status for m in (first, second)}
    assert states == {MessageStatus.delivered, MessageStatus.queued}
    held = next(m for m in (first, second) if message(runtime, m).status is MessageStatus.queued)
    assert message(runtime, held).error_code == "chat_interval"
    assert len(tg.received) == 1

    time.sleep(1.0)
    clock.now += timedelta(minutes=1)
    run_round(dispatcher)
    assert message(runtime, held).status is MessageStatus.delivered
    first_at, second_at = (r.at for r in tg.received)
    assert second_at - first_at >= 1.0
