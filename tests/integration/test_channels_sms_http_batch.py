"""The sms_http batch endpoint: many messages per request, one result per message."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import httpx
import pytest

from meterline.channels.base import ChannelConfigError, OutboundMessage, Outcome
from meterline.channels.registry import build_channel
from tests.support.gateway_standin import GatewayStandin

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["httpx", "aiohttp"])
def via(request: pytest.FixtureRequest) -> str:
    """Through httpx, or an aiohttp session handed over as Channel.aio (the dispatcher's)."""
    return str(request.param)


@pytest.fixture
def gw(via: str) -> Iterator[GatewayStandin]:
    SEND_VIA["kind"] = via
    with GatewayStandin() as standin:
        yield standin


def msgs(n: int, start: int = 0) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            message_id=i,
            reference=f"ref-{i}",
            to=f"+91981000{i:04d}",
            body=f"code {i}",
            kind="otp",
            language="en",
        )
        for i in range(start, start + n)
    ]


SEND_VIA = {"kind": "httpx"}


async def send_batch(gw: GatewayStandin, messages: list[OutboundMessage], **config: object):
    settings = {"url": gw.sms_url, "batch_size": 50, **config}
    if SEND_VIA["kind"] == "aiohttp":
        async with aiohttp.ClientSession() as session:
            channel = build_channel("sms_http", settings, None, session)
            assert channel.max_batch == 50
            return await channel.send_batch(messages)
    async with httpx.AsyncClient() as http:
        channel = build_channel("sms_http", settings, http)
        assert channel.max_batch == 50
        return await channel.send_batch(messages)


async def test_one_request_carries_the_batch_and_each_message_gets_its_own_id(gw) -> None:
    results = await send_batch(gw, msgs(20))
    assert [r.outcome for r in results] == [Outcome.accepted] * 20
    assert len({r.provider_message_id for r in results}) == 20
    assert gw.stats()["batches"] == 1 and gw.stats()["sent"] == 20
    assert [r.json()["reference"] for r in gw.requests("sms")] == [f"ref-{i}" for i in range(20)]


async def test_an_error_for_one_message_stays_with_that_message(gw) -> None:
    gw.behave(to="+919810000003", status=400, code="INVALID_NUMBER", text="no such number")
    results = await send_batch(gw, msgs(5), errors={"INVALID_NUMBER": "give_up"})
    assert [r.outcome for r in results] == [Outcome.accepted] * 3 + [Outcome.give_up] + [
        Outcome.accepted
    ]
    assert results[3].error_code == "INVALID_NUMBER" and results[3].provider_message_id is None


async def test_a_refused_request_refuses_every_message_in_it_and_a_resend_is_deduped(gw) -> None:
    gw.fail_next(1, status=503)
    first = await send_batch(gw, msgs(4))
    assert {r.outcome for r in first} == {Outcome.retry}
    again = await send_batch(gw, msgs(4))
    twice = await send_batch(gw, msgs(4))
    assert [r.provider_message_id for r in again] == [r.provider_message_id for r in twice]
    assert gw.stats()["sent"] == 4 and gw.stats()["duplicates"] == 4


async def test_credentials_refused_for_the_batch_raise(gw) -> None:
    gw.behave(status=401)
    with pytest.raises(ChannelConfigError):
        await send_batch(gw, msgs(3))


def test_a_batch_needs_json() -> None:
    with pytest.raises(ChannelConfigError, match="batch_size above 1 needs body_format json"):
        build_channel("sms_http", {"url": "http://x/sms", "batch_size": 10, "body_format": "form"})
