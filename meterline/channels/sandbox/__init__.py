"""The sandbox channel: a pretend SMS provider for demos, training and tests.

Every message is "delivered" at once, except to numbers the account lists as unreachable
(fall back), rejected (give up) or flaky (retry later), so an operator can watch each path
of the dispatcher without a real provider. The console lists sandbox messages from the
message table, so the adapter keeps nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import anyio
import httpx
from pydantic import Field

from meterline.channels.base import (
    Channel,
    ChannelConfig,
    OutboundMessage,
    Outcome,
    SendResult,
)


class SandboxConfig(ChannelConfig):
    unreachable: list[str] = Field(
        default_factory=list
    )  # answered with fallback, code "unreachable"
    reject: list[str] = Field(default_factory=list)  # answered with give_up, code "rejected"
    flaky: list[str] = Field(default_factory=list)  # answered with retry, code "busy"
    latency_ms: int = Field(default=0, ge=0, le=60_000)  # how long each send takes


class SandboxChannel(Channel):
    type_name: ClassVar[str] = "sandbox"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = SandboxConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = {
        "unreachable": Outcome.fallback,
        "rejected": Outcome.give_up,
        "busy": Outcome.retry,
    }

    config: SandboxConfig

    def __init__(self, config: ChannelConfig, http: httpx.AsyncClient | None = None) -> None:
        if not isinstance(config, SandboxConfig):
            raise TypeError(f"sandbox channel needs a SandboxConfig, not {type(config).__name__}")
        super().__init__(config, None)
        # Sets, so a send is one lookup however long the lists grow.
        self._answers = [
            (frozenset(config.reject), "rejected", "sandbox: number is on the reject list"),
            (frozenset(config.unreachable), "unreachable", "sandbox: number is unreachable"),
            (frozenset(config.flaky), "busy", "sandbox: number is busy, try again later"),
        ]

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.config.latency_ms:
            await anyio.sleep(self.config.latency_ms / 1000)
        for numbers, code, text in self._answers:
            if message.to in numbers:
                return SendResult(self.outcome_of(code), error_code=code, error_text=text)
        return SendResult(Outcome.delivered, provider_message_id=f"sandbox-{message.message_id}")
