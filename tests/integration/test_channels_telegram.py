"""The Telegram adapter over real HTTP, against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from meterline.channels.base import REDACTED, ChannelConfigError, OutboundMessage, Outcome
from meterline.channels.registry import build_channel
from meterline.channels.telegram import TelegramChannel, TelegramConfig
from tests.support.ports import free_port
from tests.support.telegram_standin import TelegramStandin

pytestmark = pytest.mark.anyio

CHAT = "123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def standin() -> Iterator[TelegramStandin]:
    with TelegramStandin() as tg:
        yield tg


@pytest.fixture
def tg(standin: TelegramStandin) -> TelegramStandin:
    standin.reset()
    return standin


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def telegram(
    tg: TelegramStandin,
    http: httpx.AsyncClient | None,
    clock: Clock | None = None,
    **overrides: Any,
) -> TelegramChannel:
    settings = {"bot_token": tg.token, "base_url": tg.url} | overrides
    config = TelegramConfig.model_validate(settings)
    if clock is None:
        built = build_channel("telegram", settings, http)
        assert isinstance(built, TelegramChannel)
        return built
    return TelegramChannel(config, http, clock=clock)


def message(to: str = CHAT, body: str = "Tamper alert on meter M-17 at 10:42.") -> OutboundMessage:
    return OutboundMessage(
        message_id=9, reference="ml-1-9", to=to, body=body, kind="tamper", language="en"
    )


async def test_a_message_sent_is_delivered_with_chat_and_message_id(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    result = await telegram(tg, http).send(message())
    assert result.outcome is Outcome.delivered
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith(f"{CHAT}:")
    [got] = tg.received
    assert got.token == tg.token
    # A numeric chat id goes as a JSON number, as the Bot API documents it.
    assert got.body == {"chat_id": 123456789, "text": "Tamper alert on meter M-17 at 10:42."}


async def test_parse_mode_and_silent_sends_are_passed_on(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    channel = telegram(tg, http, parse_mode="HTML", disable_notification=True)
    result = await channel.send(message("@meterline_notices", "<b>Outage</b> tonight"))
    assert result.outcome is Outcome.delivered
    assert tg.received[-1].body == {
        "chat_id": "@meterline_notices",
        "text": "<b>Outage</b> tonight",
        "parse_mode": "HTML",
        "disable_notification": True,
    }


@pytest.mark.parametrize(
    ("mode", "code", "text"),
    [
        ("blocked", "403", "Forbidden: bot was blocked by the user"),
        ("deactivated", "403", "Forbidden: user is deactivated"),
        ("kicked", "403", "Forbidden: bot was kicked from the group chat"),
        ("not_found", "chat_not_found", "Bad Request: chat not found"),
    ],
)
async def test_a_chat_that_cannot_be_reached_falls_back_and_is_unreachable(
    tg: TelegramStandin, http: httpx.AsyncClient, mode: str, code: str, text: str
) -> None:
    tg.chat(CHAT, mode)
    result = await telegram(tg, http).send(message())
    assert result.outcome is Outcome.fallback
    assert result.unreachable is True
    assert result.error_code == code
    assert result.error_text == text


async def test_a_group_that_became_a_supergroup_names_its_new_id(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    tg.chat("-4001", "migrated")
    result = await telegram(tg, http).send(message("-4001"))
    assert (result.outcome, result.unreachable, result.error_code) == (
        Outcome.fallback,
        True,
        "chat_migrated",
    )
    assert result.error_text == (
        "Bad Request: group chat was upgraded to a supergroup chat;"
        " the chat's new id is -1001234567890"
    )


async def test_429_retries_after_telegrams_retry_after_and_holds_the_chat(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    channel = telegram(tg, http, clock)
    tg.chat(CHAT, "rate_limited", retry_after=7)
    result = await channel.send(message())
    assert result.outcome is Outcome.retry
    assert result.retry_after == 7
    assert result.error_code == "429"
    assert result.unreachable is False
    # Within the 7 s the adapter does not call Telegram again for this chat.
    tg.chat(CHAT, "ok")
    clock.now += 3
    early = await channel.send(message())
    assert early.outcome is Outcome.retry
    assert early.retry_after == pytest.approx(4)
    assert len(tg.received) == 1
    clock.now += 4
    assert (await channel.send(message())).outcome is Outcome.delivered


async def test_one_message_a_second_per_chat(tg: TelegramStandin, http: httpx.AsyncClient) -> None:
    clock = Clock()
    channel = telegram(tg, http, clock)
    assert (await channel.send(message())).outcome is Outcome.delivered
    clock.now += 0.4
    again = await channel.send(message())
    assert again.outcome is Outcome.retry
    assert again.error_code == "chat_interval"
    assert again.retry_after == pytest.approx(0.6)
    # Another chat is not held back by the first one.
    assert (await channel.send(message("987654321"))).outcome is Outcome.delivered
    clock.now += 0.6
    assert (await channel.send(message())).outcome is Outcome.delivered
    assert [str(r.body["chat_id"]) for r in tg.received] == [CHAT, "987654321", CHAT]


async def test_concurrent_sends_to_one_chat_let_only_one_through(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    channel = telegram(tg, http, Clock())
    results = await asyncio.gather(*(channel.send(message(body=f"part {i}")) for i in range(4)))
    outcomes = sorted(str(r.outcome) for r in results)
    assert outcomes == ["delivered", "retry", "retry", "retry"]
    assert len(tg.received) == 1


async def test_a_wrong_token_is_a_config_error_that_never_shows_the_token(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    wrong = "7123456789:AAHwrongwrongwrongwrongwrongwrong000"
    with pytest.raises(ChannelConfigError) as caught:
        await telegram(tg, http, bot_token=wrong).send(message())
    assert "401" in str(caught.value)
    assert "Unauthorized" in str(caught.value)
    assert wrong not in str(caught.value)
    assert tg.received == []


async def test_a_base_url_that_leads_nowhere_is_a_config_error(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ChannelConfigError) as caught:
        await telegram(tg, http, base_url=f"{tg.url}/api/v2").send(message())
    assert "404" in str(caught.value)
    assert tg.token not in str(caught.value)


async def test_server_errors_and_timeouts_retry(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    tg.chat(CHAT, "server_error")
    failed = await telegram(tg, http).send(message())
    assert failed.outcome is Outcome.retry
    assert failed.error_code == "500"
    tg.chat("42", "slow", delay=1.0)
    slow = await telegram(tg, http, timeout_s=0.2).send(message("42"))
    assert slow.outcome is Outcome.retry
    assert slow.error_code == "timeout"


async def test_an_unreachable_api_retries_without_quoting_the_token(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    port = free_port()
    result = await telegram(tg, http, base_url=f"http://127.0.0.1:{port}").send(message())
    assert result.outcome is Outcome.retry
    assert result.error_code == "connection"
    assert tg.token not in (result.error_text or "")


async def test_other_bad_requests_give_up(tg: TelegramStandin, http: httpx.AsyncClient) -> None:
    tg.chat(CHAT, "too_long")
    result = await telegram(tg, http).send(message())
    assert result.outcome is Outcome.give_up
    assert result.error_code == "400"
    assert result.error_text == "Bad Request: message is too long"
    assert result.unreachable is False


async def test_bad_addresses_and_oversized_texts_give_up_before_calling_telegram(
    tg: TelegramStandin, http: httpx.AsyncClient
) -> None:
    channel = telegram(tg, http)
    bad = await channel.send(message("+919812345678"))
    assert bad.outcome is Outcome.give_up
    assert bad.error_code == "bad_chat_id"
    long = await channel.send(message(body="x" * 4097))
    assert long.outcome is Outcome.give_up
    assert long.error_code == "too_long"
    assert tg.received == []


async def test_httpx_request_log_lines_do_not_show_the_token(
    tg: TelegramStandin, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        await telegram(tg, http).send(message())
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("sendMessage" in line for line in lines)
    assert all(tg.token not in line for line in lines)
    assert any(REDACTED in line for line in lines)


def test_settings_take_the_token_from_the_environment_and_never_show_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
    monkeypatch.setenv("TG_BOT_TOKEN", token)
    channel = build_channel("telegram", {"bot_token": "env:TG_BOT_TOKEN"})
    assert isinstance(channel, TelegramChannel)
    assert channel.config.bot_token.get_secret_value() == token
    assert channel.config.base_url == "https://api.telegram.org"
    assert token not in repr(channel)
    with pytest.raises(ChannelConfigError) as caught:
        build_channel("telegram", {"bot_token": "not-a-token-at-all"})
    assert "bot_token" in str(caught.value)
    assert "not-a-token-at-all" not in str(caught.value)
    with pytest.raises(ChannelConfigError, match="TG_MISSING is not set"):
        build_channel("telegram", {"bot_token": "env:TG_MISSING"})
