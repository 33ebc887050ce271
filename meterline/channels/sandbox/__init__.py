"""The sandbox channel: a pretend SMS provider for demos, training and tests.

Every message is "delivered" at once, except to numbers the account lists as unreachable
(fall back, the address cannot be reached on this channel at all), rejected (give up),
flaky (retry later) or accept_only (accepted, with no delivery report: a status callback
may follow, or none, which is what a timeout fallback waits for), so an operator can watch
each path of the dispatcher without a real provider. A sandbox account can stand in for
any medium (``--medium whatsapp``). The console lists sandbox messages from the message
table, so the adapter keeps nothing.

Status callbacks (with ``callback_secret`` set, presented in ``X-Meterline-Secret``):
``{"id": "sandbox-12", "status": "failed", "error_code": "unreachable"}`` or a list of
them; an error code the table below says falls back marks the address unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

import anyio
import httpx
from pydantic import Field, SecretStr

from meterline.channels.base import (
    BadCallback,
    CallbackRequest,
    Channel,
    ChannelConfig,
    DeliveryStatus,
    ForgedCallback,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
    secrets_equal,
)


class SandboxConfig(ChannelConfig):
    unreachable: list[str] = Field(
        default_factory=list
    )  # answered with fallback, code "unreachable"
    reject: list[str] = Field(default_factory=list)  # answered with give_up, code "rejected"
    flaky: list[str] = Field(default_factory=list)  # answered with retry, code "busy"
    latency_ms: int = Field(default=0, ge=0, le=60_000)  # how long each send takes
    # answered accepted (not delivered): a status callback may follow, or none at all
    accept_only: list[str] = Field(default_factory=list)
    callback_secret: SecretStr | None = None  # status callbacks are refused without it


class SandboxChannel(Channel):
    type_name: ClassVar[str] = "sandbox"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = SandboxConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = {
        "unreachable": Outcome.fallback,
        "rejected": Outcome.give_up,
        "busy": Outcome.retry,
        "131026": Outcome.fallback,  # WhatsApp's "message undeliverable" (not on WhatsApp)
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
        self._accept_only = frozenset(config.accept_only)

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.config.latency_ms:
            await anyio.sleep(self.config.latency_ms / 1000)
        for numbers, code, text in self._answers:
            if message.to in numbers:
                outcome = self.outcome_of(code)
                return SendResult(
                    outcome,
                    error_code=code,
                    error_text=text,
                    unreachable=outcome is Outcome.fallback,
                )
        pid = f"sandbox-{message.message_id}"
        if message.to in self._accept_only:
            return SendResult(Outcome.accepted, provider_message_id=pid)
        return SendResult(Outcome.delivered, provider_message_id=pid)

    def parse_callback(self, request: CallbackRequest) -> list[StatusUpdate]:
        if not secrets_equal(
            request.headers.get("x-meterline-secret"), self.config.callback_secret
        ):
            raise ForgedCallback("the sandbox callback does not carry the channel's secret")
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            raise BadCallback(f"sandbox callback: the body is not JSON ({exc})") from None
        items = body if isinstance(body, list) else [body]
        updates = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("id") or not item.get("status"):
                raise BadCallback(f"sandbox callback item {i}: give an id and a status")
            try:
                status = DeliveryStatus(str(item["status"]))
            except ValueError:
                raise BadCallback(
                    f"sandbox callback item {i}: unknown status {item['status']!r}"
                ) from None
            code = item.get("error_code")
            outcome = self.outcome_of(str(code)) if status is DeliveryStatus.failed else None
            at = item.get("at")
            updates.append(
                StatusUpdate(
                    str(item["id"]),
                    status,
                    at=datetime.fromisoformat(at) if at else None,
                    error_code=str(code) if code is not None else None,
                    error_text=item.get("error_text"),
                    outcome=outcome,
                    unreachable=outcome is Outcome.fallback,
                )
            )
        return updates
