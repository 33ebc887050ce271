"""The sandbox and in-app channels: no provider, every dispatcher path on demand."""

from __future__ import annotations

import time

import pytest

from meterline.channels.base import ChannelConfigError, OutboundMessage, Outcome, SendResult
from meterline.channels.registry import build_channel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def message(to: str = "+8801711000001", message_id: int = 11) -> OutboundMessage:
    return OutboundMessage(message_id, f"ref-{message_id}", to, "hello", "notice", "en")


SANDBOX = {
    "unreachable": ["+8801711000002"],
    "reject": ["+8801711000003"],
    "flaky": ["+8801711000004"],
}


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("+8801711000001", SendResult(Outcome.delivered, provider_message_id="sandbox-11")),
        (
            "+8801711000002",
            SendResult(
                Outcome.fallback,
                error_code="unreachable",
                error_text="sandbox: number is unreachable",
                unreachable=True,
            ),
        ),
        (
            "+8801711000003",
            SendResult(
                Outcome.give_up,
                error_code="rejected",
                error_text="sandbox: number is on the reject list",
            ),
        ),
        (
            "+8801711000004",
            SendResult(
                Outcome.retry,
                error_code="busy",
                error_text="sandbox: number is busy, try again later",
            ),
        ),
    ],
)
async def test_sandbox_answers_by_number(to: str, expected: SendResult) -> None:
    channel = build_channel("sandbox", SANDBOX, None)
    assert await channel.send(message(to)) == expected


async def test_sandbox_reject_wins_over_the_other_lists() -> None:
    both = "+8801711000009"
    channel = build_channel("sandbox", {"reject": [both], "unreachable": [both]}, None)
    assert (await channel.send(message(both))).outcome is Outcome.give_up


async def test_sandbox_latency() -> None:
    channel = build_channel("sandbox", {"latency_ms": 50}, None)
    started = time.perf_counter()
    result = await channel.send(message())
    assert result.outcome is Outcome.delivered
    assert time.perf_counter() - started >= 0.045


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"latency_ms": -1}, "latency_ms: Input should be greater than or equal to 0"),
        ({"reject": "+8801711000003"}, "reject: Input should be a valid list"),
        ({"delay": 5}, "delay: Extra inputs are not permitted"),
    ],
)
def test_sandbox_settings_are_checked(config: dict[str, object], says: str) -> None:
    with pytest.raises(ChannelConfigError, match=says):
        build_channel("sandbox", config, None)


async def test_inapp_is_delivered_the_moment_it_is_written() -> None:
    channel = build_channel("inapp", {}, None)
    assert channel.address_kind == "consumer"
    result = await channel.send(message("consumer:42", message_id=77))
    assert result == SendResult(Outcome.delivered, provider_message_id="inapp-77")
    with pytest.raises(ChannelConfigError, match="Extra inputs"):
        build_channel("inapp", {"anything": 1}, None)
