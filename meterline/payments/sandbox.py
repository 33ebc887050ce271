"""The sandbox gateway: a page of ours that approves or declines, for demos and tests.

Its result reaches the payments service the way a real gateway's does: as a webhook body
signed with the account's ``webhook_secret`` and checked by `parse_webhook`, never as a
browser redirect. The sandbox page builds that body server-side (`signed_result`).
"""

from __future__ import annotations

import json
import secrets
from typing import ClassVar

from pydantic import SecretStr

from meterline.channels.base import secrets_equal
from meterline.payments.base import (
    BadWebhook,
    CallbackRequest,
    Checkout,
    CheckoutRequest,
    ForgedWebhook,
    Gateway,
    GatewayConfig,
    PaymentEvent,
    hmac_sha256_hex,
)

SIGNATURE_HEADER = "x-sandbox-signature"


class SandboxGatewayConfig(GatewayConfig):
    webhook_secret: SecretStr


class SandboxGateway(Gateway):
    type_name: ClassVar[str] = "sandbox"
    Config: ClassVar[type[GatewayConfig]] = SandboxGatewayConfig
    config: SandboxGatewayConfig

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        return Checkout(
            provider_ref=f"sbx_{request.reference}",
            url=f"{request.site_url.rstrip('/')}/p/{request.reference}/sandbox",
        )

    def signed_result(
        self, reference: str, amount_minor: int, currency: str, *, approve: bool
    ) -> CallbackRequest:
        """What the sandbox "gateway" posts back after the consumer's choice."""
        body = json.dumps(
            {
                "event": "payment.approved" if approve else "payment.declined",
                "reference": reference,
                "checkout_id": f"sbx_{reference}",
                "payment_id": f"sbxpay_{secrets.token_hex(8)}",
                "amount": amount_minor,
                "currency": currency,
            }
        ).encode()
        signature = hmac_sha256_hex(self.config.webhook_secret.get_secret_value(), body)
        return CallbackRequest(
            method="POST",
            url="sandbox:",
            headers={"content-type": "application/json", SIGNATURE_HEADER: signature},
            query={},
            body=body,
        )

    def parse_webhook(self, request: CallbackRequest) -> list[PaymentEvent]:
        expected = hmac_sha256_hex(self.config.webhook_secret.get_secret_value(), request.body)
        if not secrets_equal(request.headers.get(SIGNATURE_HEADER), expected):
            raise ForgedWebhook(f"{SIGNATURE_HEADER} is missing or does not match the body")
        try:
            event = json.loads(request.body)
            kind = event["event"]
            if kind == "payment.declined":
                return []
            if kind != "payment.approved":
                raise BadWebhook(f"event: unknown sandbox event {kind!r}")
            amount = event["amount"]
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise BadWebhook("amount: must be an integer of minor units")
            return [
                PaymentEvent(
                    provider_payment_id=str(event["payment_id"]),
                    reference=str(event["reference"]),
                    provider_ref=str(event["checkout_id"]),
                    amount_minor=amount,
                    currency=str(event["currency"]),
                )
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadWebhook(f"sandbox webhook body is not understood: {exc!r}") from None

    def fetch_status(self, provider_ref: str) -> list[PaymentEvent]:
        # The sandbox keeps nothing: its results arrive only as signed webhooks.
        return []
