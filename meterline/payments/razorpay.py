"""Razorpay Payment Links: a checkout per payment link, the ``payment_link.paid`` webhook,
and a server-side status check.

- create: ``POST /v1/payment_links`` (HTTP basic auth ``key_id:key_secret``), amount in
  paise, ``reference_id`` = our link code, ``callback_url`` = our return page;
- webhook: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with the webhook
  secret; only ``payment_link.paid`` credits anything;
- status: ``GET /v1/payment_links/{id}``, its ``payments`` list (captured ones count).

Error answers are ``{"error": {"code": "BAD_REQUEST_ERROR", "description": ..., "field":
...}}``; the description is passed on to the operator, secrets scrubbed.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from meterline.channels.base import redact, secrets_equal
from meterline.payments.base import (
    BadWebhook,
    CallbackRequest,
    Checkout,
    CheckoutRequest,
    ForgedWebhook,
    Gateway,
    GatewayConfig,
    GatewayError,
    PaymentEvent,
    hmac_sha256_hex,
)

SIGNATURE_HEADER = "x-razorpay-signature"
PAID_EVENT = "payment_link.paid"


class RazorpayConfig(GatewayConfig):
    key_id: str = Field(min_length=1)
    key_secret: SecretStr
    webhook_secret: SecretStr
    base_url: str = "https://api.razorpay.com"
    timeout_s: float = Field(default=15.0, gt=0, le=120)


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadWebhook(f"{where}: expected an integer amount in paise, got {value!r}")
    return value


class RazorpayGateway(Gateway):
    type_name: ClassVar[str] = "razorpay"
    Config: ClassVar[type[GatewayConfig]] = RazorpayConfig
    config: RazorpayConfig

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.config.key_id, self.config.key_secret.get_secret_value())

    def _url(self, path: str) -> str:
        return f"{self.config.base_url.rstrip('/')}{path}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        http = self.require_http()
        try:
            response = http.request(
                method,
                self._url(path),
                json=body,
                auth=self._auth(),
                timeout=self.config.timeout_s,
            )
        except httpx.TransportError as exc:
            raise GatewayError(
                f"could not reach Razorpay: {type(exc).__name__}", code="connection", retryable=True
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400 or not isinstance(answer, dict):
            raise self._error(response, answer)
        return answer

    def _error(self, response: httpx.Response, answer: Any) -> GatewayError:
        error = answer.get("error") if isinstance(answer, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) else f"http_{response.status_code}"
        text = (
            str(error.get("description") or "") if isinstance(error, dict) else response.text[:200]
        )
        if isinstance(error, dict) and error.get("field"):
            text = f"{text} (field {error['field']})"
        text = redact(text, self.config.secret_values())
        if response.status_code == 401:
            return GatewayError(
                f"Razorpay refused the key id/secret (HTTP 401): {text}", code="auth"
            )
        retryable = response.status_code >= 500 or response.status_code == 429
        return GatewayError(
            f"Razorpay answered HTTP {response.status_code} {code}: {text}",
            code=code,
            retryable=retryable,
            field=str(error["field"]) if isinstance(error, dict) and error.get("field") else None,
        )

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        customer: dict[str, str] = {}
        if request.customer_name:
            customer["name"] = request.customer_name[:100]
        if request.customer_phone:
            customer["contact"] = request.customer_phone
        body: dict[str, Any] = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "accept_partial": False,
            "reference_id": request.reference,
            "description": request.description[:2048],
            "customer": customer,
            # We send our own reminders; Razorpay's would be a second copy.
            "notify": {"sms": False, "email": False},
            "reminder_enable": False,
            "callback_url": request.return_url,
            "callback_method": "get",
            "expire_by": int(request.expires_at.timestamp()),
        }
        try:
            answer = self._call("POST", "/v1/payment_links", body)
        except GatewayError as exc:
            # Our first request created it but its answer was lost (a timeout): Razorpay
            # now refuses the reference; the link it made is the one to use.
            found = self._existing(request) if exc.field == "reference_id" else None
            if found is None:
                raise
            answer = found
        try:
            return Checkout(provider_ref=str(answer["id"]), url=str(answer["short_url"]))
        except KeyError as exc:
            raise GatewayError(f"Razorpay's answer has no {exc.args[0]!r}") from None

    def _existing(self, request: CheckoutRequest) -> dict[str, Any] | None:
        """The open link Razorpay already has for our reference, if it is for this amount."""
        answer = self._call("GET", f"/v1/payment_links?reference_id={request.reference}")
        for entity in answer.get("payment_links") or []:
            if (
                isinstance(entity, dict)
                and entity.get("reference_id") == request.reference
                and entity.get("amount") == request.amount_minor
                and entity.get("currency") == request.currency
                and entity.get("status") in ("created", "partially_paid", "paid")
            ):
                return entity
        return None

    def parse_webhook(self, request: CallbackRequest) -> list[PaymentEvent]:
        expected = hmac_sha256_hex(self.config.webhook_secret.get_secret_value(), request.body)
        if not secrets_equal(request.headers.get(SIGNATURE_HEADER), expected):
            raise ForgedWebhook(f"{SIGNATURE_HEADER} is missing or does not match the raw body")
        try:
            event = json.loads(request.body)
        except ValueError:
            raise BadWebhook("body is not JSON") from None
        if not isinstance(event, dict) or event.get("entity") != "event":
            raise BadWebhook('body is not a Razorpay event (no "entity": "event")')
        if event.get("event") != PAID_EVENT:
            return []  # payment_link.partially_paid, .expired, .cancelled: nothing to credit
        try:
            link = event["payload"]["payment_link"]["entity"]
            payment = event["payload"]["payment"]["entity"]
        except (KeyError, TypeError):
            raise BadWebhook(
                "payload.payment_link.entity and payload.payment.entity are required"
            ) from None
        if payment.get("status") != "captured":
            return []
        try:
            return [
                PaymentEvent(
                    provider_payment_id=str(payment["id"]),
                    reference=str(link["reference_id"]) if link.get("reference_id") else None,
                    provider_ref=str(link["id"]),
                    amount_minor=_int(payment["amount"], "payload.payment.entity.amount"),
                    currency=str(payment["currency"]),
                )
            ]
        except KeyError as exc:
            raise BadWebhook(f"payload: {exc.args[0]!r} is missing") from None

    def fetch_status(self, provider_ref: str) -> list[PaymentEvent]:
        answer = self._call("GET", f"/v1/payment_links/{provider_ref}")
        events = []
        for item in answer.get("payments") or []:
            if not isinstance(item, dict) or item.get("status") != "captured":
                continue
            events.append(
                PaymentEvent(
                    provider_payment_id=str(item["payment_id"]),
                    reference=answer.get("reference_id"),
                    provider_ref=str(answer.get("id") or provider_ref),
                    amount_minor=_int(item.get("amount"), "payments[].amount"),
                    currency=str(answer.get("currency") or ""),
                )
            )
        return events
