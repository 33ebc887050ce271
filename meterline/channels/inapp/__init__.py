"""The in-app inbox: the message row itself is the consumer's inbox entry.

Sending is therefore only a formality for the dispatcher: the message is delivered the
moment it is written, and the consumer app reads it from the message table.
"""

from __future__ import annotations

from typing import ClassVar

from meterline.channels.base import Channel, ChannelConfig, OutboundMessage, Outcome, SendResult


class InAppConfig(ChannelConfig):
    """The inbox has no settings."""


class InAppChannel(Channel):
    type_name: ClassVar[str] = "inapp"
    address_kind: ClassVar[str] = "consumer"
    Config: ClassVar[type[ChannelConfig]] = InAppConfig

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(Outcome.delivered, provider_message_id=f"inapp-{message.message_id}")
