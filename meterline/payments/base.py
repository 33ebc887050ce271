"""The plug-in interface every payment gateway adapter implements (like `channels.base`).

A gateway type (``sandbox``, ``razorpay``) is a class with:

- ``type_name``: how a tenant's gateway account names it;
- ``Config``: a pydantic model of its settings (secrets as ``env:NAME``, unknown keys refused);
- ``create_checkout()``: the gateway's payment page for one of our payment links;
- ``parse_webhook()``: the gateway's notification, its signature checked over the raw body,
  turned into ``PaymentEvent``s;
- ``fetch_status()``: the server-side status check of a checkout (what the browser's return
  redirect triggers, since the redirect itself proves nothing).

Adapters do no database work and read no clock: the payments service owns both. Calls are
synchronous (httpx.Client): one request per consumer's click, never a bulk path.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import httpx

# The env: secret resolution, SecretStr handling and "no unknown keys" rules are the
# channels' (one implementation for every provider's settings).
from meterline.channels.base import CallbackRequest, ChannelConfig

__all__ = [
    "BadWebhook",
    "CallbackRequest",
    "Checkout",
    "CheckoutRequest",
    "ForgedWebhook",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "PaymentEvent",
    "hmac_sha256_hex",
]


class GatewayConfig(ChannelConfig):
    """Base of every gateway's settings (see `ChannelConfig`)."""


class GatewayError(Exception):
    """The gateway refused or could not be reached (names the gateway's code and text)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message, self.code, self.retryable, self.field = message, code, retryable, field


class ForgedWebhook(Exception):
    """A webhook without a valid signature for this gateway account."""


class BadWebhook(Exception):
    """An authentic webhook that cannot be understood (names what and where)."""


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str  # our link code: the gateway echoes it back in webhooks
    amount_minor: int
    currency: str
    description: str
    customer_name: str | None
    customer_phone: str | None  # E.164
    return_url: str  # where the gateway sends the browser afterwards (proves nothing)
    site_url: str  # our public base URL (the sandbox's pay page is one of ours)
    expires_at: datetime


@dataclass(frozen=True)
class Checkout:
    provider_ref: str  # the gateway's id of this checkout (Razorpay: plink_...)
    url: str  # where to send the consumer's browser


@dataclass(frozen=True)
class PaymentEvent:
    """A payment the gateway says was captured, for one of our links."""

    provider_payment_id: str
    reference: str | None  # our link code, when the gateway echoes it
    provider_ref: str | None  # the gateway's checkout id
    amount_minor: int
    currency: str
    paid: bool = True


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Gateway:
    type_name: ClassVar[str]
    Config: ClassVar[type[GatewayConfig]]

    def __init__(self, config: GatewayConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self.http = http

    def require_http(self) -> httpx.Client:
        if self.http is None:
            raise RuntimeError(f"gateway type {self.type_name} needs an httpx.Client")
        return self.http

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        raise NotImplementedError

    def parse_webhook(self, request: CallbackRequest) -> list[PaymentEvent]:
        raise NotImplementedError

    def fetch_status(self, provider_ref: str) -> list[PaymentEvent]:
        """The captured payments of a checkout, asked of the gateway server to server."""
        raise NotImplementedError
