"""The Web Push adapter over real HTTP, against a push service stand-in that checks the
VAPID signature and decrypts what it receives."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from meterline.channels.base import ChannelConfigError, OutboundMessage, Outcome
from meterline.channels.registry import build_channel
from meterline.channels.webpush import MAX_PLAINTEXT, WebPushChannel, WebPushConfig
from meterline.channels.webpush.keys import VapidKeys, generate_vapid_keys
from tests.support.ports import free_port
from tests.support.push_standin import PushStandin

pytestmark = pytest.mark.anyio

SUBJECT = "mailto:ops@utility.example"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def standin() -> Iterator[PushStandin]:
    with PushStandin() as push:
        yield push


@pytest.fixture
def push(standin: PushStandin) -> PushStandin:
    standin.reset()
    return standin


@pytest.fixture(scope="module")
def vapid() -> VapidKeys:
    return generate_vapid_keys()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def settings(vapid: VapidKeys, **overrides: Any) -> dict[str, Any]:
    return {
        "vapid_private_key": vapid.private_key,
        "vapid_public_key": vapid.public_key,
        "vapid_subject": SUBJECT,
    } | overrides


def webpush(
    vapid: VapidKeys, http: httpx.AsyncClient | None, clock: Any = None, **overrides: Any
) -> WebPushChannel:
    if clock is not None:
        return WebPushChannel(
            WebPushConfig.model_validate(settings(vapid, **overrides)), http, clock=clock
        )
    built = build_channel("webpush", settings(vapid, **overrides), http)
    assert isinstance(built, WebPushChannel)
    return built


def message(
    subscription: dict[str, Any],
    *,
    kind: str = "dues_reminder",
    language: str = "en",
    body: str = "Dues of ₹1,250.00 on account 1001 are due on 5 Dec 2026.",
    data: dict[str, Any] | None = None,
) -> OutboundMessage:
    return OutboundMessage(
        message_id=77,
        reference="ml-1-77",
        to=subscription["endpoint"],
        body=body,
        kind=kind,
        language=language,
        extra={"details": {"keys": subscription["keys"]}, "data": data or {}},
    )


async def test_the_push_service_decrypts_the_payload_in_the_recipients_language(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    subscription = push.subscribe(vapid.public_key)
    result = await webpush(vapid, http).send(
        message(
            subscription,
            language="ru",
            body="Задолженность 1 250,00 ₽ по счёту 1001.",
            data={"pay_url": "https://pay.example/p/AB12"},
        )
    )
    assert result.outcome is Outcome.accepted
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith(f"{push.url}/m/")
    [got] = push.delivered
    assert got.endpoint == subscription["endpoint"]
    assert got.payload == {
        "title": "Напоминание об оплате",
        "body": "Задолженность 1 250,00 ₽ по счёту 1001.",
        "url": "https://pay.example/p/AB12",
        "kind": "dues_reminder",
        "message_id": 77,
        "lang": "ru",
    }
    assert got.headers["content-encoding"] == "aes128gcm"
    assert got.headers["urgency"] == "normal"
    assert got.headers["ttl"] == "86400"
    assert got.claims["aud"] == push.url
    assert got.claims["sub"] == SUBJECT
    assert time.time() < got.claims["exp"] <= time.time() + 24 * 3600


async def test_alerts_are_high_urgency_with_a_short_ttl_and_the_default_link(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    subscription = push.subscribe(vapid.public_key)
    channel = webpush(vapid, http, open_url="https://app.utility.example/inbox")
    result = await channel.send(
        message(subscription, kind="tamper", language="hi", body="मीटर M-17 पर छेड़छाड़")
    )
    assert result.outcome is Outcome.accepted
    [got] = push.delivered
    assert got.headers["urgency"] == "high"
    assert got.headers["ttl"] == "3600"
    assert got.payload["title"] == "छेड़छाड़ चेतावनी"
    assert got.payload["url"] == "https://app.utility.example/inbox"


async def test_a_body_too_large_for_one_push_is_shortened_not_lost(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    subscription = push.subscribe(vapid.public_key)
    result = await webpush(vapid, http).send(message(subscription, body="বকেয়া " * 1500))
    assert result.outcome is Outcome.accepted
    [got] = push.delivered
    assert got.payload["body"].endswith("…")
    assert len(got.payload["body"].encode()) < MAX_PLAINTEXT


@pytest.mark.parametrize("status", [404, 410])
async def test_a_subscription_that_is_gone_falls_back_and_is_unreachable(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient, status: int
) -> None:
    subscription = push.subscribe(vapid.public_key)
    push.answer(subscription["endpoint"], status)
    result = await webpush(vapid, http).send(message(subscription))
    assert result.outcome is Outcome.fallback
    assert result.unreachable is True
    assert result.error_code == str(status)


async def test_an_endpoint_the_service_does_not_know_is_gone(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    subscription = push.subscribe(vapid.public_key)
    push.reset()  # the browser unsubscribed: the service forgot the endpoint
    result = await webpush(vapid, http).send(message(subscription))
    assert (result.outcome, result.unreachable, result.error_code) == (
        Outcome.fallback,
        True,
        "410",
    )


async def test_413_gives_up_and_429_and_5xx_retry(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    channel = webpush(vapid, http)
    big, busy, broken = (push.subscribe(vapid.public_key) for _ in range(3))
    push.answer(big["endpoint"], 413)
    push.answer(busy["endpoint"], 429, retry_after=7)
    push.answer(broken["endpoint"], 503)
    too_large = await channel.send(message(big))
    assert (too_large.outcome, too_large.unreachable) == (Outcome.give_up, False)
    limited = await channel.send(message(busy))
    assert (limited.outcome, limited.retry_after) == (Outcome.retry, 7)
    down = await channel.send(message(broken))
    assert (down.outcome, down.error_code) == (Outcome.retry, "503")


async def test_a_subscription_made_with_another_key_is_a_vapid_config_error(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    subscription = push.subscribe(generate_vapid_keys().public_key)
    with pytest.raises(ChannelConfigError, match="VAPID") as caught:
        await webpush(vapid, http).send(message(subscription))
    assert "403" in str(caught.value)
    assert vapid.private_key not in str(caught.value)
    assert push.delivered == []


async def test_an_expired_vapid_token_is_a_config_error(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    # A server clock two days behind signs a JWT that has already expired.
    subscription = push.subscribe(vapid.public_key)
    channel = webpush(vapid, http, clock=lambda: time.time() - 2 * 86400)
    with pytest.raises(ChannelConfigError, match="401"):
        await channel.send(message(subscription))
    assert push.refused[-1][1:] == (401, "Invalid JWT: exp must be in the next 24 hours")


async def test_the_signed_vapid_header_is_reused_until_it_nears_expiry(
    push: PushStandin, vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    now = [time.time()]
    channel = webpush(vapid, http, clock=lambda: now[0])
    first = push.subscribe(vapid.public_key)
    second = push.subscribe(vapid.public_key)
    await channel.send(message(first))
    await channel.send(message(second))
    now[0] += 11.5 * 3600  # under an hour left: sign afresh
    await channel.send(message(first))
    headers = [d.headers["authorization"] for d in push.delivered]
    assert headers[0] == headers[1]
    assert headers[2] != headers[0]


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ({}, "has no keys"),
        ({"keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh is missing"),
        ({"keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "P-256 point"),
    ],
)
async def test_missing_or_bad_keys_give_up_without_a_request(
    push: PushStandin,
    vapid: VapidKeys,
    http: httpx.AsyncClient,
    details: dict[str, Any],
    problem: str,
) -> None:
    subscription = push.subscribe(vapid.public_key)
    bad = OutboundMessage(
        message_id=1,
        reference="r",
        to=subscription["endpoint"],
        body="x",
        kind="custom",
        language="en",
        extra={"details": details},
    )
    result = await webpush(vapid, http).send(bad)
    assert result.outcome is Outcome.give_up
    assert result.error_code == "bad_subscription"
    assert problem in (result.error_text or "")
    assert push.delivered == [] and push.refused == []


async def test_an_unreachable_push_service_retries(
    vapid: VapidKeys, http: httpx.AsyncClient
) -> None:
    port = free_port()
    with PushStandin() as other:
        subscription = other.subscribe(vapid.public_key)
    subscription["endpoint"] = f"http://127.0.0.1:{port}/push/x"
    result = await webpush(vapid, http).send(message(subscription))
    assert (result.outcome, result.error_code) == (Outcome.retry, "connection")


def test_settings_are_checked_and_the_private_key_comes_from_the_environment(
    vapid: VapidKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAPID_KEY", vapid.private_key)
    channel = build_channel("webpush", settings(vapid, vapid_private_key="env:VAPID_KEY"))
    assert vapid.private_key not in repr(channel)
    other = generate_vapid_keys()
    with pytest.raises(ChannelConfigError, match="not the public half") as caught:
        build_channel("webpush", settings(vapid, vapid_public_key=other.public_key))
    assert vapid.private_key not in str(caught.value)
    with pytest.raises(ChannelConfigError, match="vapid_subject"):
        build_channel("webpush", settings(vapid, vapid_subject="ops@utility.example"))
    with pytest.raises(ChannelConfigError, match="vapid_private_key") as caught:
        build_channel("webpush", settings(vapid, vapid_private_key="c2hvcnQ"))
    assert "c2hvcnQ" not in str(caught.value)
