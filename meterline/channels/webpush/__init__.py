"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), type ``webpush``.

The address is the subscription's endpoint URL at the browser's push service (FCM,
Mozilla autopush, Apple ...); its keys (``p256dh``, ``auth``) come with the message in
``extra["details"]["keys"]``, from the contact point. One send is a ``POST`` to the
endpoint with the encrypted payload, ``Content-Encoding: aes128gcm``, ``TTL``, ``Urgency``
and ``Authorization: vapid t=<JWT>,k=<public key>``. The push service answers 201 (or 202)
when it has taken the message; it reports nothing later, so a send is *accepted*.

pywebpush encrypts (``WebPusher.encode``) and py-vapid signs the JWT, but the request
goes out on the dispatcher's shared async httpx client, not through pywebpush's own
``send`` (blocking ``requests``, or a new aiohttp session per call): encrypting is one
ECDH and one AES-GCM, well under a millisecond, so it runs inline on the event loop,
and the network wait shares the dispatcher's connection pool and timeouts like every
other adapter. No thread pool, no second HTTP stack. The signed VAPID header is cached
per push service origin until an hour before it expires.

Answers: 2xx accepted; 404/410 the subscription is gone (fallback, unreachable: the
dispatcher deletes the contact); 413 the payload is too large (give up); 429 retry after
``Retry-After``; 401, and 400/403 that name the VAPID credentials, mean the account's keys
are wrong (ChannelConfigError); 5xx and transport errors retry.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pydantic import Field, SecretStr, field_validator, model_validator
from pywebpush import WebPusher, WebPushException

from meterline.channels.base import (
    Channel,
    ChannelConfig,
    ChannelConfigError,
    OutboundMessage,
    Outcome,
    SendResult,
    parse_retry_after,
    redact,
    transport_error_result,
)
from meterline.channels.webpush.keys import (
    check_endpoint,
    check_subscription_keys,
    check_vapid_public_key,
    public_key_text,
    vapid_private_key,
)
from meterline.domain.notification_kinds import UnknownKind, kind_spec
from meterline.domain.push_titles import push_title

__all__ = ["ERRORS", "MAX_PLAINTEXT", "WebPushChannel", "WebPushConfig", "push_payload"]

# Push services take at least 4096 bytes of encrypted body; aes128gcm adds an 86-byte
# header, a 16-byte tag and a padding delimiter.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
VAPID_LIFETIME_S = 12 * 3600  # RFC 8292: at most 24 hours
VAPID_RENEW_S = 3600  # sign afresh when the cached header has less than this left

ERRORS: dict[str, Outcome] = {
    "404": Outcome.fallback,  # subscription expired or unknown
    "410": Outcome.fallback,  # subscription gone (the user unsubscribed)
    "413": Outcome.give_up,  # payload too large
    "429": Outcome.retry,
}

# Words push services use when they refuse our VAPID credentials (FCM, autopush, Apple).
_VAPID_TROUBLE = re.compile(
    r"vapid|authori[sz]ation|jwt|crypto-key|credential|BadJwtToken|InvalidProviderToken|"
    r"signature|\baud\b|\bsub\b|\bexp\b|sender id",
    re.I,
)

Urgency = Literal["very-low", "low", "normal", "high"]


def urgency_of(kind: str) -> Urgency:
    """Alerts (priority 80 and up: tamper, overload, balance, OTP) are ``high``: the push
    service wakes the device for them; confirmations are ``normal``; statements ``low``."""
    try:
        spec = kind_spec(kind)
    except UnknownKind:
        return "normal"
    if spec.priority >= 80:
        return "high"
    return "normal" if spec.urgent or spec.priority >= 20 else "low"


def push_payload(message: OutboundMessage, url: str | None) -> dict[str, Any]:
    """What the service worker receives: small JSON in the recipient's language."""
    return {
        "title": push_title(message.kind, message.language),
        "body": message.body,
        "url": url,
        "kind": message.kind,
        "message_id": message.message_id,
        "lang": message.language,
    }


def _encoded(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) <= MAX_PLAINTEXT:
        return data
    # A notification shows a few lines: shorten the body rather than lose the message.
    body = str(payload["body"])
    while len(data) > MAX_PLAINTEXT and body:
        body = body[: max(0, len(body) - max(1, (len(data) - MAX_PLAINTEXT)))]
        data = json.dumps(
            {**payload, "body": body.rstrip() + "…"}, ensure_ascii=False, separators=(",", ":")
        ).encode()
    return data


class WebPushConfig(ChannelConfig):
    vapid_private_key: SecretStr  # base64url 32-byte scalar or a PEM block; write env:NAME
    vapid_public_key: str  # base64url 65-byte point: the browser's applicationServerKey
    vapid_subject: str  # "mailto:ops@utility.example" or an https URL (RFC 8292 "sub")
    ttl_s: int = Field(default=86_400, ge=0, le=2_419_200)  # how long the service keeps it
    urgent_ttl_s: int = Field(default=3_600, ge=0, le=2_419_200)  # for high-urgency kinds
    open_url: str | None = None  # where a click leads when the message has no link of its own
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("vapid_private_key")
    @classmethod
    def _private(cls, value: SecretStr) -> SecretStr:
        vapid_private_key(value.get_secret_value())  # raises a ValueError that quotes nothing
        return value

    @field_validator("vapid_public_key")
    @classmethod
    def _public(cls, value: str) -> str:
        return check_vapid_public_key(value)

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if re.fullmatch(r"mailto:[^@\s]+@[^@\s]+\.[^@\s]+|mailto:[^@\s]+@localhost", value):
            return value
        if value.startswith("https://") and urlsplit(value).hostname:
            return value
        raise ValueError("must be a mailto: address or an https:// URL to reach the sender")

    @field_validator("open_url")
    @classmethod
    def _open(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _pair(self) -> WebPushConfig:
        key = vapid_private_key(self.vapid_private_key.get_secret_value())
        if public_key_text(key) != self.vapid_public_key:
            raise ValueError("vapid_public_key is not the public half of vapid_private_key")
        return self


class WebPushChannel(Channel):
    type_name: ClassVar[str] = "webpush"
    address_kind: ClassVar[str] = "webpush"
    Config: ClassVar[type[ChannelConfig]] = WebPushConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = ERRORS

    config: WebPushConfig

    def __init__(
        self,
        config: ChannelConfig,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(config, WebPushConfig):
            raise TypeError(f"webpush channel needs a WebPushConfig, not {type(config).__name__}")
        super().__init__(config, http)
        self._key: ec.EllipticCurvePrivateKey = vapid_private_key(
            config.vapid_private_key.get_secret_value()
        )
        self._vapid = Vapid02(self._key)
        self._secrets = config.secret_values()
        self._clock = clock  # wall clock (seconds): only for the JWT's "exp"
        self._signed: dict[str, tuple[str, int]] = {}  # audience -> (header, exp)

    def vapid_header(self, endpoint: str) -> str:
        """``Authorization: vapid t=<JWT>,k=<key>`` for the endpoint's push service."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = int(self._clock())
        cached = self._signed.get(audience)
        if cached is not None and cached[1] - now > VAPID_RENEW_S:
            return cached[0]
        exp = now + VAPID_LIFETIME_S
        claims = {"aud": audience, "exp": exp, "sub": self.config.vapid_subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        self._signed[audience] = (header, exp)
        return header

    def request(self, message: OutboundMessage) -> tuple[str, dict[str, str], bytes]:
        """The endpoint, headers and encrypted body of one push (ValueError: bad input)."""
        endpoint = check_endpoint(message.to)
        details = message.extra.get("details") or {}
        keys = details.get("keys") if isinstance(details, Mapping) else None
        if not isinstance(keys, Mapping):
            raise ValueError("the subscription has no keys (details.keys.p256dh and .auth)")
        checked = check_subscription_keys(keys.get("p256dh"), keys.get("auth"))
        data = message.extra.get("data") or {}
        url = data.get("pay_url") if isinstance(data, Mapping) else None
        payload = _encoded(push_payload(message, url or self.config.open_url))
        subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": checked.p256dh, "auth": checked.auth},
        }
        try:
            body = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
        except WebPushException as exc:
            raise ValueError(f"cannot encrypt for this subscription: {exc.message}") from None
        urgency = urgency_of(message.kind)
        ttl = self.config.urgent_ttl_s if urgency == "high" else self.config.ttl_s
        headers = {
            "authorization": self.vapid_header(endpoint),
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(ttl),
            "urgency": urgency,
        }
        return endpoint, headers, bytes(body)

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            endpoint, headers, body = self.request(message)
        except ValueError as exc:
            return SendResult(Outcome.give_up, error_code="bad_subscription", error_text=str(exc))
        http = self.require_http()
        try:
            response = await http.post(
                endpoint, content=body, headers=headers, timeout=self.config.timeout_s
            )
        except httpx.TransportError as exc:
            result = transport_error_result(exc, self.config.timeout_s)
            return SendResult(
                result.outcome,
                error_code=result.error_code,
                error_text=redact(result.error_text or "", self._secrets),
            )
        return self.interpret(response)

    def interpret(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        text = redact(response.text[:300].strip(), self._secrets)
        said = f"push service answered HTTP {status}" + (f": {text}" if text else "")
        if 200 <= status < 300:
            # The Location header names the push message resource at the service.
            return SendResult(
                Outcome.accepted, provider_message_id=response.headers.get("location")
            )
        if status in (404, 410):
            return SendResult(
                Outcome.fallback, error_code=str(status), error_text=said, unreachable=True
            )
        if status == 401 or (status in (400, 403) and _VAPID_TROUBLE.search(text)):
            raise ChannelConfigError(
                f"the push service refused our VAPID credentials ({said}); check"
                " vapid_private_key, vapid_public_key and vapid_subject"
            )
        if status == 429 or status >= 500:
            return SendResult(
                Outcome.retry,
                error_code=str(status),
                error_text=said,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return SendResult(self.outcome_of(str(status)), error_code=str(status), error_text=said)
