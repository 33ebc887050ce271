"""Channel types by name, and building a channel from an account's stored settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from pydantic import ValidationError

from meterline.channels.base import Channel, ChannelConfigError
from meterline.channels.inapp import InAppChannel
from meterline.channels.sandbox import SandboxChannel
from meterline.channels.smpp import SmppChannel
from meterline.channels.sms_http import SmsHttpChannel
from meterline.channels.telegram import TelegramChannel
from meterline.channels.twilio import TwilioChannel
from meterline.channels.webpush import WebPushChannel
from meterline.channels.whatsapp_cloud import WhatsAppCloudChannel

CHANNEL_TYPES: dict[str, type[Channel]] = {
    cls.type_name: cls
    for cls in (
        SandboxChannel,
        InAppChannel,
        SmsHttpChannel,
        TwilioChannel,
        SmppChannel,
        TelegramChannel,
        WebPushChannel,
        WhatsAppCloudChannel,
    )
}


class UnknownChannelType(ChannelConfigError, LookupError):
    """A channel account names a type this installation does not have."""


def channel_type(name: str) -> type[Channel]:
    """The channel class called ``name``; an unknown name lists the valid ones."""
    try:
        return CHANNEL_TYPES[name]
    except KeyError:
        valid = ", ".join(sorted(CHANNEL_TYPES))
        raise UnknownChannelType(f"unknown channel type {name!r}; valid types: {valid}") from None


def describe_validation_error(error: ValidationError) -> str:
    """Pydantic's messages as one line per problem, naming the field, never echoing input."""
    lines = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in item["loc"]) or "(settings)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def build_channel(
    type_name: str,
    config: Mapping[str, Any],
    http: httpx.AsyncClient | None = None,
    aio: aiohttp.ClientSession | None = None,
) -> Channel:
    """A ready channel from its type name and stored settings (``env:NAME`` secrets resolved).

    Invalid settings raise ChannelConfigError with pydantic's messages (no values, so no
    secrets, are quoted).
    """
    cls = channel_type(type_name)
    try:
        parsed = cls.Config.model_validate(dict(config))
    except ValidationError as exc:
        raise ChannelConfigError(
            f"{type_name} channel settings are invalid: {describe_validation_error(exc)}"
        ) from None
    channel = cls(parsed, http)
    channel.aio = aio
    return channel
