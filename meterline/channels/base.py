"""The plug-in interface every channel adapter implements.

A channel type (``sms_http``, ``twilio``, ``sandbox``, later ``whatsapp_cloud``, ``smpp``,
``telegram``, ``webpush``) is a class with:

- ``type_name``: how channel accounts name it in configuration;
- ``address_kind``: which contact point it sends to (``phone``, ``telegram``, ``webpush``);
- ``Config``: a pydantic model of its settings, checked when an account is saved;
- ``send()``: one attempt at handing one message to the provider, answering a
  ``SendResult`` whose ``outcome`` tells the dispatcher what to do next;
- ``parse_callback()``: a provider's status callback turned into ``StatusUpdate``s,
  after checking that the provider really sent it;
- ``ERRORS``: the provider's error codes and what each means (retry, fall back, give up);
- optionally ``parse_inbound()`` (the recipients' own messages in a callback, e.g. a
  WhatsApp reply that opens the 24-hour window) and ``verify_subscription()`` (a
  provider's ``GET`` handshake on the callback URL, e.g. Meta's ``hub.challenge``).

Adapters do no database work and read no clock of their own: the dispatcher owns state,
time and retries; an adapter only speaks the provider's wire format.
"""

from __future__ import annotations

import hmac
import os
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Union, get_args, get_origin
from urllib.parse import urlsplit

import aiohttp
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationInfo, field_validator


class Outcome(StrEnum):
    """What an attempt's result means for the message."""

    accepted = "accepted"  # the provider took it; status callbacks may follow
    delivered = "delivered"  # taken and already delivered (sandbox, in-app)
    retry = "retry"  # transient: the same channel again, later
    fallback = "fallback"  # this channel cannot reach the recipient: try the next one
    give_up = "give_up"  # permanent: retrying or falling back would not help


class DeliveryStatus(StrEnum):
    """Statuses a provider reports after accepting a message (forward-only)."""

    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


ENV_PREFIX = "env:"
REDACTED = "**********"


def resolve_env_reference(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``"env:NAME"`` becomes the value of the environment variable NAME; anything else is kept.

    Lets a channel account's stored settings name a secret instead of holding it. A variable
    that is missing or empty is an error naming the variable (never its value).
    """
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :].strip()
    if not name:
        raise ValueError("env: without a variable name (write env:NAME)")
    resolved = (os.environ if environ is None else environ).get(name)
    if resolved is None:
        raise ValueError(f"environment variable {name} is not set")
    if not resolved:
        raise ValueError(f"environment variable {name} is empty")
    return resolved


def _holds_secret(annotation: Any) -> bool:
    """Whether a field's type is, or contains (Optional, dict values, list items), SecretStr."""
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


def _resolve_secrets(value: Any, annotation: Any) -> Any:
    if annotation is SecretStr:
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            return SecretStr(resolve_env_reference(raw)) if raw.startswith(ENV_PREFIX) else value
        return resolve_env_reference(value) if isinstance(value, str) else value
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        secret_args = [arg for arg in args if _holds_secret(arg)]
        return _resolve_secrets(value, secret_args[0]) if len(secret_args) == 1 else value
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        return {key: _resolve_secrets(item, args[1]) for key, item in value.items()}
    if origin in (list, tuple) and args and isinstance(value, list | tuple):
        return type(value)(_resolve_secrets(item, args[0]) for item in value)
    return value


def _secret_strings(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secret_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_strings(item)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by asterisks.

    For texts that come from outside (a provider's error message may echo what we sent).
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def secrets_equal(presented: str | bytes | None, expected: SecretStr | str | None) -> bool:
    """Compare a presented secret with the configured one in constant time.

    Nothing configured or nothing presented never matches.
    """
    if presented is None or expected is None:
        return False
    want = expected.get_secret_value() if isinstance(expected, SecretStr) else expected
    if not want:
        return False
    got = presented if isinstance(presented, bytes) else presented.encode()
    return hmac.compare_digest(got, want.encode())


def http_url(value: str) -> str:
    """A provider address from a channel's settings, checked: http(s) with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds; the HTTP-date form needs a clock, so it gives None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _no_answer(exc: BaseException, timed_out: bool, timeout_s: float) -> SendResult:
    """A send that got no HTTP answer: always worth another try (the reference dedupes)."""
    if timed_out:
        return SendResult(
            Outcome.retry,
            error_code="timeout",
            error_text=f"provider did not answer within {timeout_s:g} s ({type(exc).__name__})",
        )
    detail = str(exc) or type(exc).__name__
    return SendResult(
        Outcome.retry,
        error_code="connection",
        error_text=f"could not reach the provider: {type(exc).__name__}: {detail}",
    )


def transport_error_result(exc: httpx.TransportError, timeout_s: float) -> SendResult:
    """A send through httpx that got no answer."""
    return _no_answer(exc, isinstance(exc, httpx.TimeoutException), timeout_s)


def aiohttp_error_result(exc: aiohttp.ClientError | TimeoutError, timeout_s: float) -> SendResult:
    """As transport_error_result, for a send made with aiohttp directly (Channel.aio)."""
    # aiohttp's ServerTimeoutError is a TimeoutError too.
    return _no_answer(exc, isinstance(exc, TimeoutError), timeout_s)


class ChannelConfig(BaseModel):
    """Base of every channel's configuration: unknown keys are refused, not ignored.

    Secret fields are ``SecretStr`` (so a repr or log line shows asterisks); a secret written
    as ``"env:NAME"`` is read from the environment variable NAME when the config is validated.
    Validation errors never echo input values (``hide_input_in_errors``).
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _resolve_env_secrets(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if not _holds_secret(annotation):
            return value
        return _resolve_secrets(value, annotation)

    def secret_values(self) -> list[str]:
        """Every secret this config holds, for scrubbing texts that might echo one."""
        found: list[str] = []
        for name in type(self).model_fields:
            found.extend(_secret_strings(getattr(self, name)))
        return [value for value in found if value]


@dataclass(frozen=True)
class OutboundMessage:
    message_id: int
    reference: str  # stable across resends of the same message: providers may dedupe on it
    to: str  # the address: E.164 phone, Telegram chat id, push endpoint ...
    body: str
    kind: str
    language: str
    segments: int = 1
    encoding: str | None = None  # "GSM-7" / "UCS-2" for SMS
    callback_url: str | None = None  # where the provider should post status callbacks
    # Channel-specific inputs, filled by the dispatcher:
    #   "data":    the notification's variables as stored with the message (JSON-safe), for
    #              providers that render their own templates (WhatsApp template parameters);
    #   "details": the contact point's details (a Web Push subscription's keys, the time of
    #              the customer's last WhatsApp message ...).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    retry_after: float | None = None  # seconds, when the provider said how long to wait
    # The provider says this address cannot be reached on this channel at all (WhatsApp
    # 131026, a Telegram chat that blocked the bot, a Web Push subscription gone with 404/410):
    # the dispatcher remembers it on the contact point so later messages skip the channel.
    unreachable: bool = False
    # The provider's id of every part when a message went out as several separately
    # acknowledged parts (SMPP: one submit_sm per part); receipts come back per part and are
    # rolled up to the message (services.message_parts). Empty for one-part sends.
    part_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: DeliveryStatus
    at: datetime | None = None
    error_code: str | None = None
    error_text: str | None = None
    outcome: Outcome | None = None  # for failed: what the error means (from ERRORS)
    unreachable: bool = False  # for failed: as SendResult.unreachable


@dataclass(frozen=True)
class InboundMessage:
    """A message the recipient sent us on this channel (a WhatsApp reply ...).

    Only what delivery needs: who wrote and when (a WhatsApp reply opens the 24-hour
    window for free text and proves the number is on WhatsApp).
    """

    sender: str  # an address of the channel's address_kind (E.164 for phone)
    provider_message_id: str
    at: datetime | None = None  # when the provider says it was sent
    type: str = "text"  # the provider's message type: text, button, image ...
    text: str | None = None


@dataclass(frozen=True)
class CallbackRequest:
    """A provider's HTTP callback, framework-neutral so adapters never import the web layer."""

    method: str
    url: str  # the full URL as the provider called it (Twilio signs it)
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes


class ChannelConfigError(Exception):
    """The channel account's settings are wrong (bad credentials, missing sender ...).

    An operator must fix them; the dispatcher stops using the account and says why.
    """


class ForgedCallback(Exception):
    """A callback that does not carry the channel's secret or a valid signature."""


class BadCallback(Exception):
    """A callback that is authentic but cannot be understood (names what and where)."""


class Channel:
    type_name: ClassVar[str]
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]]
    ERRORS: ClassVar[Mapping[str, Outcome]] = {}
    # The dispatcher's aiohttp session (the connection pool its httpx client sends through
    # too), handed over by build_channel. An adapter on the hot path may post with it
    # directly and skip httpx's per-request objects (sms_http does); None elsewhere.
    aio: aiohttp.ClientSession | None = None

    def __init__(self, config: ChannelConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.http = http

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config!r}>"

    def require_http(self) -> httpx.AsyncClient:
        """The HTTP client a provider adapter sends with (the dispatcher owns and closes it)."""
        if self.http is None:
            raise RuntimeError(f"channel type {self.type_name} needs an httpx.AsyncClient")
        return self.http

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    @property
    def max_batch(self) -> int:
        """How many messages one provider request may carry (1: no batch endpoint)."""
        return 1

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        """One result per message, in order. Adapters with a batch endpoint override this;
        by default each message is its own request."""
        return [await self.send(message) for message in messages]

    def parse_callback(self, request: CallbackRequest) -> list[StatusUpdate]:
        raise BadCallback(f"channel type {self.type_name} takes no status callbacks")

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        """Messages from recipients in a callback (after ``parse_callback`` accepted it).

        Channels whose callbacks carry replies override this; it must verify the request
        as ``parse_callback`` does (raising ``ForgedCallback``).
        """
        return []

    def verify_subscription(self, query: Mapping[str, str]) -> str | None:
        """A provider's webhook subscription handshake (``GET`` on the callback URL).

        Answers the text to echo when ``query`` proves the provider knows our verify
        token, None to refuse. Channels without a handshake refuse every one.
        """
        return None

    async def drain_status_updates(self) -> list[StatusUpdate]:
        """Status reports that reached the adapter on its own connection (SMPP deliver_sm
        receipts) since the last call; the dispatcher applies them each round like HTTP
        callbacks. Adapters whose reports arrive over HTTP have none."""
        return []

    async def aclose(self) -> None:
        """Release what the adapter holds open (an SMPP bind); the dispatcher calls it when
        it drops the adapter or stops."""

    @classmethod
    def outcome_of(cls, code: str | None, default: Outcome = Outcome.give_up) -> Outcome:
        """What a provider error code means; unknown codes give up (never retry blindly)."""
        if code is None:
            return default
        return cls.ERRORS.get(str(code), default)
