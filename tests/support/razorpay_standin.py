"""A real HTTP server standing in for Razorpay's Payment Links API, for tests.

It speaks what `meterline.payments.razorpay` uses, with Razorpay's payload shapes:

- ``POST /v1/payment_links`` (HTTP basic auth key_id:key_secret): answers the payment link
  entity (``id`` ``plink_...``, ``short_url``, ``status`` "created", ``reference_id`` ...);
  a reused ``reference_id``, an amount under 100 paise or a missing currency answer 400
  with ``{"error": {"code": "BAD_REQUEST_ERROR", "description", "field", "source", "step",
  "reason", "metadata"}}``; wrong credentials answer 401 with the same error shape;
- ``GET /v1/payment_links?reference_id=...``: ``{"payment_links": [...]}``;
- ``GET /v1/payment_links/{id}``: the entity with its ``payments`` list once paid; an
  unknown id answers 400 BAD_REQUEST_ERROR, as Razorpay does;
- ``pay(link_id, webhook_url, webhook_secret, times=3)``: marks the link paid with a new
  ``pay_...`` payment and posts the signed ``payment_link.paid`` event to the webhook URL,
  ``times`` times at once (threads released together by a barrier), as Razorpay's
  at-least-once delivery may.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from tests.support.browser import serving

KEY_ID = "rzp_test_1DP5mmOlF5G5ag"
KEY_SECRET = "standin-razorpay-key-secret"
WEBHOOK_SECRET = "standin-razorpay-webhook-secret"


def _error(status: int, description: str, field_name: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {
        "code": "BAD_REQUEST_ERROR",
        "description": description,
        "source": "business" if field_name else "NA",
        "step": "payment_initiation" if field_name else "NA",
        "reason": "input_validation_failed" if field_name else "NA",
        "metadata": {},
    }
    if field_name:
        error["field"] = field_name
    return JSONResponse({"error": error}, status_code=status)


def _id(prefix: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(14))


@dataclass
class RazorpayStandin:
    key_id: str = KEY_ID
    key_secret: str = KEY_SECRET
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the API ----------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.key_id) and hmac.compare_digest(
            password, self.key_secret
        )

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(("POST", "/v1/payment_links", body))
        if not self._authorised(request):
            return _error(401, "Authentication failed")
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 100:
            return _error(400, "The amount must be atleast INR 1.00.", "amount")
        if not body.get("currency"):
            return _error(400, "The currency field is required.", "currency")
        reference = body.get("reference_id")
        with self._lock:
            if reference and any(v["reference_id"] == reference for v in self.links.values()):
                return _error(400, "Reference Id already exists", "reference_id")
            now = int(time.time())
            link_id = _id("plink_")
            entity = {
                "accept_partial": bool(body.get("accept_partial", False)),
                "amount": amount,
                "amount_paid": 0,
                "callback_method": body.get("callback_method", ""),
                "callback_url": body.get("callback_url", ""),
                "cancelled_at": 0,
                "created_at": now,
                "currency": body["currency"],
                "customer": body.get("customer", {}),
                "description": body.get("description", ""),
                "expire_by": body.get("expire_by", 0),
                "expired_at": 0,
                "first_min_partial_amount": 0,
                "id": link_id,
                "notes": body.get("notes"),
                "notify": body.get("notify", {"sms": False, "email": False}),
                "payments": None,
                "reference_id": reference or "",
                "reminder_enable": bool(body.get("reminder_enable", False)),
                "reminders": [],
                "short_url": f"{self.url}/i/{link_id[6:14]}",
                "status": "created",
                "updated_at": now,
                "upi_link": False,
                "user_id": "",
            }
            self.links[link_id] = entity
        return JSONResponse(entity)

    async def list_links(self, request: Request) -> JSONResponse:
        self.requests.append(("GET", f"/v1/payment_links?{request.url.query}", None))
        if not self._authorised(request):
            return _error(401, "Authentication failed")
        reference = request.query_params.get("reference_id")
        found = [
            e for e in self.links.values() if reference is None or e["reference_id"] == reference
        ]
        return JSONResponse({"payment_links": found})

    async def fetch(self, request: Request) -> JSONResponse:
        link_id = request.path_params["link_id"]
        self.requests.append(("GET", f"/v1/payment_links/{link_id}", None))
        if not self._authorised(request):
            return _error(401, "Authentication failed")
        entity = self.links.get(link_id)
        if entity is None:
            return _error(400, "The id provided does not exist")
        return JSONResponse(entity)

    async def checkout(self, request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>Razorpay stand-in checkout</title>")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/payment_links", self.create, methods=["POST"]),
                Route("/v1/payment_links", self.list_links, methods=["GET"]),
                Route("/v1/payment_links/{link_id}", self.fetch, methods=["GET"]),
                Route("/i/{short}", self.checkout, methods=["GET"]),
            ]
        )

    # --- what the test drives ------------------------------------------------------------

    def mark_paid(self, link_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """The consumer pays at Razorpay: the payment entity (captured)."""
        entity = self.links[link_id]
        paid = entity["amount"] if amount is None else amount
        now = int(time.time())
        order_id = _id("order_")
        payment = {
            "acquirer_data": {"rrn": "".join(secrets.choice("0123456789") for _ in range(12))},
            "amount": paid,
            "amount_refunded": 0,
            "amount_transferred": 0,
            "bank": None,
            "captured": True,
            "card_id": None,
            "contact": entity["customer"].get("contact", ""),
            "created_at": now,
            "currency": entity["currency"],
            "description": f"#{link_id[6:]}",
            "email": "void@razorpay.com",
            "entity": "payment",
            "error_code": None,
            "error_description": None,
            "fee": 236,
            "id": _id("pay_"),
            "international": False,
            "invoice_id": None,
            "method": "upi",
            "notes": [],
            "order_id": order_id,
            "refund_status": None,
            "status": "captured",
            "tax": 36,
            "vpa": "gaurav.kumar@exampleupi",
            "wallet": None,
        }
        entity["status"] = "paid"
        entity["amount_paid"] = paid
        entity["order_id"] = order_id
        entity["updated_at"] = now
        entity["payments"] = [
            {
                "amount": paid,
                "created_at": now,
                "method": "upi",
                "payment_id": payment["id"],
                "plink_id": link_id,
                "status": "captured",
                "updated_at": now,
            }
        ]
        return payment

    def paid_event(self, link_id: str, payment: dict[str, Any]) -> bytes:
        entity = {k: v for k, v in self.links[link_id].items() if k != "payments"}
        order = {
            "amount": entity["amount"],
            "amount_due": 0,
            "amount_paid": payment["amount"],
            "attempts": 1,
            "created_at": entity["created_at"],
            "currency": entity["currency"],
            "entity": "order",
            "id": entity["order_id"],
            "notes": [],
            "offer_id": None,
            "receipt": None,
            "status": "paid",
        }
        event = {
            "entity": "event",
            "account_id": "acc_BFQ7uQEaa7j2z7",
            "event": "payment_link.paid",
            "contains": ["payment_link", "order", "payment"],
            "payload": {
                "payment_link": {"entity": entity},
                "order": {"entity": order},
                "payment": {"entity": payment},
            },
            "created_at": int(time.time()),
        }
        return json.dumps(event).encode()

    def post_webhook(
        self, webhook_url: str, body: bytes, secret: str, *, times: int = 1
    ) -> list[httpx.Response]:
        """Posts `body`, signed with `secret`, `times` times at once."""
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-razorpay-signature": signature,
            "x-razorpay-event-id": _id("evt_"),
            "user-agent": "Razorpay-Webhook/v1",
        }
        barrier = threading.Barrier(times)
        answers: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * times

        def deliver(i: int) -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                try:
                    answers[i] = client.post(webhook_url, content=body, headers=headers)
                except BaseException as exc:
                    answers[i] = exc

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(times)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        out = []
        for a in answers:
            if isinstance(a, BaseException):
                raise a
            out.append(a)
        return out

    def pay(
        self,
        link_id: str,
        webhook_url: str,
        webhook_secret: str = WEBHOOK_SECRET,
        *,
        times: int = 1,
        amount: int | None = None,
    ) -> tuple[dict[str, Any], list[httpx.Response]]:
        payment = self.mark_paid(link_id, amount=amount)
        body = self.paid_event(link_id, payment)
        return payment, self.post_webhook(webhook_url, body, webhook_secret, times=times)


@contextmanager
def razorpay_standin(**kwargs: Any) -> Iterator[RazorpayStandin]:
    standin = RazorpayStandin(**kwargs)
    with serving(standin.app()) as url:
        standin.url = url
        yield standin
