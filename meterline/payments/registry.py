"""Gateway types by name, and building a gateway from an account's stored settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from meterline.channels.base import ChannelConfigError
from meterline.channels.registry import describe_validation_error
from meterline.payments.base import Gateway
from meterline.payments.razorpay import RazorpayGateway
from meterline.payments.sandbox import SandboxGateway

GATEWAY_TYPES: dict[str, type[Gateway]] = {
    cls.type_name: cls for cls in (SandboxGateway, RazorpayGateway)
}


class GatewayConfigError(ChannelConfigError):
    """A gateway account's settings are wrong or name an unknown type."""


def build_gateway(
    type_name: str, config: Mapping[str, Any], http: httpx.Client | None = None
) -> Gateway:
    cls = GATEWAY_TYPES.get(type_name)
    if cls is None:
        valid = ", ".join(sorted(GATEWAY_TYPES))
        raise GatewayConfigError(f"unknown gateway type {type_name!r}; valid types: {valid}")
    try:
        parsed = cls.Config.model_validate(dict(config))
    except ValidationError as exc:
        raise GatewayConfigError(
            f"{type_name} gateway settings are invalid: {describe_validation_error(exc)}"
        ) from None
    return cls(parsed, http)
