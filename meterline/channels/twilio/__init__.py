"""Twilio's Programmable Messaging API (and look-alikes that copy it), type ``twilio``.

One send is ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form
body (To, From or MessagingServiceSid, Body, StatusCallback) and HTTP basic auth
``AccountSid:AuthToken``; Twilio answers 201 with the message's ``sid``, or an error object
``{"code": 21211, "message": ..., "more_info": ..., "status": 400}`` whose code the
``ERRORS`` table below interprets.

Status callbacks are form posts signed in ``X-Twilio-Signature``: base64 of the
HMAC-SHA1, keyed with the auth token, of the full URL Twilio called followed by every POST
parameter's name and value, in parameter-name order (see :func:`twilio_signature`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from meterline.channels.base import (
    BadCallback,
    CallbackRequest,
    Channel,
    ChannelConfig,
    ChannelConfigError,
    DeliveryStatus,
    ForgedCallback,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
    http_url,
    parse_retry_after,
    redact,
    secrets_equal,
    transport_error_result,
)

__all__ = [
    "CONFIG_ERRORS",
    "ERRORS",
    "TwilioChannel",
    "TwilioConfig",
    "twilio_signature",
]

# Twilio error codes (https://www.twilio.com/docs/api/errors) and what each means for us.
ERRORS: dict[str, Outcome] = {
    "21211": Outcome.give_up,  # invalid 'To' phone number
    "21408": Outcome.give_up,  # permission to send to this region is not enabled
    "21610": Outcome.give_up,  # recipient unsubscribed (replied STOP)
    "21612": Outcome.fallback,  # 'To' number is not currently reachable by SMS
    "21614": Outcome.fallback,  # 'To' number is not a mobile number
    "21617": Outcome.give_up,  # body longer than 1600 characters
    "30001": Outcome.retry,  # queue overflow
    "30003": Outcome.fallback,  # unreachable destination handset
    "30004": Outcome.give_up,  # message blocked
    "30005": Outcome.give_up,  # unknown destination handset
    "30006": Outcome.fallback,  # landline or unreachable carrier
    "30007": Outcome.give_up,  # filtered by the carrier
    "30008": Outcome.retry,  # unknown error
    "20429": Outcome.retry,  # too many requests
}

# Codes that mean the account's settings are wrong: no message gets through until an
# operator fixes them, so the dispatcher must stop using the account, not retry.
CONFIG_ERRORS: dict[str, str] = {
    "20003": "Twilio refused our credentials",  # authentication failed
    "21212": "Twilio says the From number is invalid",
    "21606": "Twilio says the From number cannot send messages",
    "21660": "Twilio says the From number does not belong to this account",
    "30002": "Twilio says the account is suspended",
}

# MessageStatus values: None = interim, no update (the message has not left Twilio yet).
STATUSES: dict[str, DeliveryStatus | None] = {
    "queued": None,
    "accepted": None,
    "scheduled": None,
    "sending": None,
    "sent": DeliveryStatus.sent,
    "delivered": DeliveryStatus.delivered,
    "read": DeliveryStatus.read,
    "undelivered": DeliveryStatus.failed,
    "failed": DeliveryStatus.failed,
    "canceled": DeliveryStatus.failed,
}

API_VERSION = "2010-04-01"


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` for a request to ``url`` carrying the POST ``params``.

    Names sorted, and a name's values sorted, as Twilio's own helper libraries do.
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port.

    Twilio signs the URL as it was configured, which may differ from what a proxy hands
    us only by an explicit default port; its helper libraries accept both forms.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    without = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}")) if port else without
    return list(dict.fromkeys([url, without, with_port]))


class TwilioConfig(ChannelConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_number: str | None = None  # an E.164 number or alphanumeric sender id
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    base_url: str = "https://api.twilio.com"
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")

    @model_validator(mode="after")
    def _has_sender(self) -> TwilioConfig:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("set from_number or messaging_service_sid (or both)")
        return self


class TwilioChannel(Channel):
    type_name: ClassVar[str] = "twilio"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = TwilioConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = ERRORS

    config: TwilioConfig

    def __init__(self, config: ChannelConfig, http: httpx.AsyncClient | None = None) -> None:
        if not isinstance(config, TwilioConfig):
            raise TypeError(f"twilio channel needs a TwilioConfig, not {type(config).__name__}")
        super().__init__(config, http)
        self.messages_url = (
            f"{config.base_url}/{API_VERSION}/Accounts/{config.account_sid}/Messages.json"
        )
        self._auth = httpx.BasicAuth(config.account_sid, config.auth_token.get_secret_value())
        self._secrets = config.secret_values()

    def form(self, message: OutboundMessage) -> dict[str, str]:
        cfg = self.config
        form = {"To": message.to, "Body": message.body}
        if cfg.from_number is not None:
            form["From"] = cfg.from_number
        if cfg.messaging_service_sid is not None:
            form["MessagingServiceSid"] = cfg.messaging_service_sid
        if message.callback_url:
            form["StatusCallback"] = message.callback_url
        return form

    async def send(self, message: OutboundMessage) -> SendResult:
        http = self.require_http()
        try:
            response = await http.post(
                self.messages_url,
                data=self.form(message),
                auth=self._auth,
                headers={"accept": "application/json"},
                timeout=self.config.timeout_s,
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
        data = _json_object(response)
        code = _text(data.get("code"))
        text = _text(data.get("message"))
        if status in (401, 403) or code == "20003":
            raise ChannelConfigError(
                f"Twilio refused our credentials (HTTP {status}, error {code or 'none'})"
            )
        if code in CONFIG_ERRORS:
            detail = f": {self._clean(text)}" if text else ""
            raise ChannelConfigError(f"{CONFIG_ERRORS[code]} (error {code}){detail}")
        if 200 <= status < 300:
            sid = _text(data.get("sid"))
            if sid is not None:
                return SendResult(Outcome.accepted, provider_message_id=sid)
            return SendResult(
                Outcome.give_up,
                error_code="no_sid",
                error_text=f"Twilio answered HTTP {status} without a message sid",
            )
        effective = code or f"http_{status}"
        error_text = self._clean(text or f"Twilio answered HTTP {status}")
        if status == 429 or code == "20429" or status >= 500:
            return SendResult(
                Outcome.retry,
                error_code=effective,
                error_text=error_text,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return SendResult(self.outcome_of(code), error_code=effective, error_text=error_text)

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- status callbacks -------------------------------------------------------------------

    def signature_ok(self, url: str, params: list[tuple[str, str]], signature: str | None) -> bool:
        if not signature:
            return False
        token = self.config.auth_token.get_secret_value()
        # Every variant is checked (no early exit), so timing does not tell which one matched.
        results = [
            secrets_equal(signature, twilio_signature(token, variant, params))
            for variant in _url_variants(url)
        ]
        return any(results)

    def parse_callback(self, request: CallbackRequest) -> list[StatusUpdate]:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        params = parse_qsl(text, keep_blank_values=True) if text else []
        if text is None or not self.signature_ok(
            request.url, params, request.headers.get("x-twilio-signature")
        ):
            raise ForgedCallback("X-Twilio-Signature is missing or does not match")
        fields = dict(params)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        if not sid:
            raise BadCallback("Twilio callback has no MessageSid")
        raw = fields.get("MessageStatus") or fields.get("SmsStatus")
        if not raw:
            raise BadCallback("Twilio callback has no MessageStatus")
        if raw not in STATUSES:
            raise BadCallback(f"unknown status {raw[:50]!r} in field 'MessageStatus'")
        status = STATUSES[raw]
        if status is None:
            return []
        if status is not DeliveryStatus.failed:
            return [StatusUpdate(sid, status)]
        code = fields.get("ErrorCode") or None
        outcome = Outcome.give_up if code in CONFIG_ERRORS else self.outcome_of(code)
        error_text = fields.get("ErrorMessage") or f"Twilio reported {raw!r}"
        return [StatusUpdate(sid, status, error_code=code, error_text=error_text, outcome=outcome)]


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return str(value)
