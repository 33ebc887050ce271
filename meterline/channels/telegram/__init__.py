"""Telegram's Bot API, type ``telegram``: one message is one ``sendMessage`` call.

``POST {base_url}/bot{token}/sendMessage`` with a JSON body ``{"chat_id", "text",
"parse_mode"?}``. Telegram answers ``{"ok": true, "result": {"message_id": 42, ...}}`` or
``{"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}``
(a 429 adds ``"parameters": {"retry_after": N}``). Telegram sends no delivery reports: a
message it took is in the recipient's chat, so a send that succeeds is *delivered*.

Limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
about 30 messages a second per bot, which is the channel account's rate limit (the
dispatcher's token bucket; ``DEFAULT_RATE_PER_SECOND``), and one message a second per
chat, which this adapter keeps itself: the dispatcher keeps one adapter per channel
account per process, and a second message to a chat within the interval is answered
``retry`` with the time left, without calling Telegram.

The token is part of every URL, so it is scrubbed from every error text we write and
from httpx's own request log lines (see :class:`_TokenFilter`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from meterline.channels.base import (
    Channel,
    ChannelConfig,
    ChannelConfigError,
    OutboundMessage,
    Outcome,
    SendResult,
    http_url,
    redact,
    transport_error_result,
)

__all__ = [
    "DEFAULT_RATE_PER_SECOND",
    "ERRORS",
    "MAX_TEXT",
    "TelegramChannel",
    "TelegramConfig",
]

DEFAULT_RATE_PER_SECOND = 30.0  # Telegram's broadcast limit per bot
MAX_TEXT = 4096  # characters in one message's text, after entity parsing

# What Telegram's error codes mean for us. 400 and 403 carry many descriptions, so the
# ones that mean "this chat cannot be reached" are matched on the description below.
ERRORS: dict[str, Outcome] = {
    "400": Outcome.give_up,  # Bad Request: a message Telegram will never take as it is
    "403": Outcome.fallback,  # the bot may not write to this chat (blocked, kicked ...)
    "429": Outcome.retry,  # Too Many Requests: retry after parameters.retry_after
    "chat_not_found": Outcome.fallback,
}

# 400 descriptions that mean the chat id leads nowhere (so the contact is unreachable).
_GONE_CHAT = re.compile(r"chat not found|PEER_ID_INVALID|user not found|chat_id is empty", re.I)
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")


class _TokenFilter(logging.Filter):
    """Scrubs bot tokens from httpx's "HTTP Request: POST https://.../bot<token>/..." lines.

    httpx logs every request URL at INFO; with logging set to INFO that would print the
    token. One filter holds every token of this process's Telegram adapters.
    """

    def __init__(self) -> None:
        super().__init__("telegram-token")
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            cleaned = redact(message, self.tokens)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_TOKEN_FILTER = _TokenFilter()
logging.getLogger("httpx").addFilter(_TOKEN_FILTER)


class TelegramConfig(ChannelConfig):
    bot_token: SecretStr  # from @BotFather: "123456789:AA..."; write env:NAME
    base_url: str = "https://api.telegram.org"
    parse_mode: Literal["HTML", "MarkdownV2", "Markdown"] | None = None
    disable_notification: bool = False
    # Telegram's per-chat limit: at most one message a second to the same chat.
    chat_interval_s: float = Field(default=1.0, ge=0, le=60)
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        # "<bot id>:<secret>"; the check never quotes the value.
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", value.get_secret_value()):
            raise ValueError("must look like a BotFather token: '<bot id>:<35 characters>'")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value).rstrip("/")


class TelegramChannel(Channel):
    type_name: ClassVar[str] = "telegram"
    address_kind: ClassVar[str] = "telegram"
    Config: ClassVar[type[ChannelConfig]] = TelegramConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = ERRORS

    config: TelegramConfig

    def __init__(
        self,
        config: ChannelConfig,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(config, TelegramConfig):
            raise TypeError(f"telegram channel needs a TelegramConfig, not {type(config).__name__}")
        super().__init__(config, http)
        token = config.bot_token.get_secret_value()
        self.send_url = f"{config.base_url}/bot{token}/sendMessage"
        self._secrets = config.secret_values()
        _TOKEN_FILTER.tokens.add(token)
        # A monotonic clock for the per-chat interval only (seconds; injected by tests).
        self._clock = clock
        self._next_at: dict[str, float] = {}  # chat id -> earliest next send

    # -- per-chat pacing -----------------------------------------------------------------

    def wait_for(self, chat: str) -> float:
        """Seconds until ``chat`` may get its next message (0: now)."""
        return max(0.0, self._next_at.get(chat, 0.0) - self._clock())

    def _hold(self, chat: str, seconds: float) -> None:
        now = self._clock()
        if len(self._next_at) > 10_000:  # forget chats whose interval has long passed
            self._next_at = {c: t for c, t in self._next_at.items() if t > now}
        self._next_at[chat] = max(self._next_at.get(chat, 0.0), now + seconds)

    # -- sending -------------------------------------------------------------------------

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        chat: int | str = int(message.to) if message.to.lstrip("-").isdigit() else message.to
        body: dict[str, Any] = {"chat_id": chat, "text": message.body}
        if self.config.parse_mode is not None:
            body["parse_mode"] = self.config.parse_mode
        if self.config.disable_notification:
            body["disable_notification"] = True
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        chat = message.to.strip()
        if not _CHAT_ID.match(chat):
            return SendResult(
                Outcome.give_up,
                error_code="bad_chat_id",
                error_text=f"{chat[:40]!r} is not a Telegram chat id (a number or @channel)",
            )
        if len(message.body) > MAX_TEXT:
            return SendResult(
                Outcome.give_up,
                error_code="too_long",
                error_text=f"text is {len(message.body)} characters; Telegram takes {MAX_TEXT}",
            )
        wait = self.wait_for(chat)
        if wait > 0:
            return SendResult(
                Outcome.retry,
                error_code="chat_interval",
                error_text=f"chat {chat} had a message under {self.config.chat_interval_s:g} s ago",
                retry_after=wait,
            )
        # Held before the request is made: concurrent sends to the same chat in one round
        # see it at once.
        self._hold(chat, self.config.chat_interval_s)
        http = self.require_http()
        try:
            response = await http.post(
                self.send_url, json=self.payload(message), timeout=self.config.timeout_s
            )
        except httpx.TransportError as exc:
            result = transport_error_result(exc, self.config.timeout_s)
            return SendResult(
                result.outcome,
                error_code=result.error_code,
                error_text=self._clean(result.error_text or ""),
            )
        return self.interpret(response, chat)

    def interpret(self, response: httpx.Response, chat: str) -> SendResult:
        status = response.status_code
        data = _json_object(response)
        code = data.get("error_code", status)
        code = code if isinstance(code, int) else status
        description = self._clean(str(data.get("description") or f"HTTP {status}"))[:300]
        if data.get("ok") is True and status == 200:
            result = data.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            if message_id is None:
                return SendResult(
                    Outcome.give_up,
                    error_code="no_message_id",
                    error_text="Telegram answered ok without result.message_id",
                )
            # message_id is unique only within its chat.
            return SendResult(Outcome.delivered, provider_message_id=f"{chat}:{message_id}")
        if code in (401, 404):
            # Unauthorized / Not Found: the token is wrong or revoked (the URL names the bot).
            raise ChannelConfigError(
                f"Telegram refused the bot token (HTTP {status}: {description}); check bot_token"
            )
        if code == 429:
            parameters = data.get("parameters")
            after = parameters.get("retry_after") if isinstance(parameters, dict) else None
            retry_after = float(after) if isinstance(after, int | float) and after >= 0 else None
            if retry_after is not None:
                self._hold(chat, retry_after)
            return SendResult(
                Outcome.retry, error_code="429", error_text=description, retry_after=retry_after
            )
        if status >= 500 or code >= 500:
            return SendResult(Outcome.retry, error_code=str(code), error_text=description)
        if code == 403:
            # Blocked by the user, user deactivated, kicked from the group, or the user never
            # started the bot: nothing we resend will get through.
            return SendResult(
                Outcome.fallback, error_code="403", error_text=description, unreachable=True
            )
        parameters = data.get("parameters")
        moved = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
        if code == 400 and isinstance(moved, int):
            # A group became a supergroup: the old id is dead, the contact needs the new one.
            return SendResult(
                Outcome.fallback,
                error_code="chat_migrated",
                error_text=f"{description}; the chat's new id is {moved}",
                unreachable=True,
            )
        if code == 400 and _GONE_CHAT.search(description):
            return SendResult(
                Outcome.fallback,
                error_code="chat_not_found",
                error_text=description,
                unreachable=True,
            )
        return SendResult(self.outcome_of(str(code)), error_code=str(code), error_text=description)

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
