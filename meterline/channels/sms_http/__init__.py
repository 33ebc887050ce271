"""A configurable HTTP SMS gateway (``sms_http``): one adapter for the many look-alike APIs.

What an answer means:

- 2xx with a message id: accepted (delivery reports may follow);
- 2xx without an id: give up, saying where the id was looked for (or, when the answer
  carries an error code, whatever the error table says of it);
- 429: retry, after Retry-After seconds when the gateway says so;
- 5xx, timeouts, refused connections: retry (our reference lets the gateway dedupe);
- 401/403: the credentials are wrong, which no retry fixes: ChannelConfigError;
- other 4xx: the error code from the body through the error table, else give up.

Settings are described in :mod:`meterline.channels.sms_http.config`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx

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
    aiohttp_error_result,
    parse_retry_after,
    redact,
    secrets_equal,
    transport_error_result,
)
from meterline.channels.sms_http.config import (
    DEFAULT_ERRORS,
    DEFAULT_STATUS_MAP,
    SmsHttpConfig,
)

__all__ = ["DEFAULT_ERRORS", "DEFAULT_STATUS_MAP", "SmsHttpChannel", "SmsHttpConfig", "dig"]

_SNIPPET = 200  # characters of an unexpected answer quoted in an error text


def dig(data: Any, path: str | None) -> str | None:
    """The scalar at a dotted path (``error.code``, ``messages.0.id``) as text, else None."""
    if path is None:
        return None
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    if current is None or isinstance(current, Mapping | list) or current == "":
        return None
    if isinstance(current, bool):
        return str(current).lower()
    return str(current)


class SmsHttpChannel(Channel):
    type_name: ClassVar[str] = "sms_http"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = SmsHttpConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = DEFAULT_ERRORS

    config: SmsHttpConfig

    def __init__(self, config: ChannelConfig, http: httpx.AsyncClient | None = None) -> None:
        if not isinstance(config, SmsHttpConfig):
            raise TypeError(f"sms_http channel needs an SmsHttpConfig, not {type(config).__name__}")
        super().__init__(config, http)
        self.errors: dict[str, Outcome] = {
            **DEFAULT_ERRORS,
            **{code: Outcome(meaning) for code, meaning in config.errors.items()},
        }
        self.status_map: dict[str, str] = {
            status.casefold(): meaning
            for status, meaning in {**DEFAULT_STATUS_MAP, **config.status_map}.items()
        }
        self._secrets = config.secret_values()
        self._headers: dict[str, str] = {"accept": "application/json"}
        if config.auth_header is not None and config.auth_token is not None:
            token = config.auth_token.get_secret_value()
            scheme = config.auth_scheme.strip()
            self._headers[config.auth_header] = f"{scheme} {token}" if scheme else token
        self._auth: httpx.Auth = httpx.Auth()  # no-op: no basic auth
        if config.basic_user is not None and config.basic_password is not None:
            self._auth = httpx.BasicAuth(
                config.basic_user, config.basic_password.get_secret_value()
            )
        # The lean path over the dispatcher's aiohttp session (self.aio): headers, auth and
        # timeouts built once, the same bytes on the wire as through httpx.
        self._aio_headers = dict(self._headers)
        if config.basic_user is not None and config.basic_password is not None:
            pair = f"{config.basic_user}:{config.basic_password.get_secret_value()}"
            self._aio_headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode(
                "ascii"
            )
        self._aio_headers["content-type"] = (
            "application/json"
            if config.body_format == "json"
            else "application/x-www-form-urlencoded"
        )
        t = config.timeout_s  # as httpx's: each of connect, pool wait and read
        self._aio_timeout = aiohttp.ClientTimeout(
            total=None, connect=t, sock_connect=t, sock_read=t
        )
        # The body fields every message shares, built once.
        self._fixed: dict[str, str] = dict(config.extra_fields)
        self._fixed.update({k: v.get_secret_value() for k, v in config.secret_fields.items()})
        if config.sender is not None:
            self._fixed[config.sender_field] = config.sender

    def error_outcome(self, code: str | None) -> Outcome:
        """What an error code means for this account (its `errors` over the defaults)."""
        if code is None:
            return Outcome.give_up
        return self.errors.get(code, Outcome.give_up)

    # -- sending ----------------------------------------------------------------------------

    def payload(self, message: OutboundMessage) -> dict[str, str]:
        """The body fields for one message (secrets included: never log this)."""
        cfg = self.config
        body = dict(self._fixed)
        body[cfg.to_field] = message.to
        body[cfg.text_field] = message.body
        if cfg.reference_field is not None:
            body[cfg.reference_field] = message.reference
        if cfg.callback_field is not None and message.callback_url:
            body[cfg.callback_field] = self.callback_url(message.callback_url)
        return body

    def callback_url(self, url: str) -> str:
        """Our status-callback URL as the gateway should call it.

        With ``callback_secret_in="query"`` the secret rides in the URL, since the gateway
        calls back exactly what we gave it; with "header" the gateway is set up to send it.
        """
        cfg = self.config
        if cfg.callback_secret_in != "query" or cfg.callback_secret is None:
            return url
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append((cfg.callback_secret_name, cfg.callback_secret.get_secret_value()))
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def max_batch(self) -> int:
        return self.config.batch_size

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        """Many messages in one request to the gateway's batch endpoint.

        A refusal of the whole request (429, 5xx, a transport error, a 4xx) applies to
        every message in it; resending a batch is safe because each message carries its
        own reference.
        """
        cfg = self.config
        if cfg.batch_size == 1 or len(messages) == 1:
            return [await self.send(m) for m in messages]
        answer = await self._post({cfg.batch_field: [self.payload(m) for m in messages]})
        if isinstance(answer, SendResult):  # no answer: the whole request failed
            return [answer] * len(messages)
        status, headers, content = answer
        if not 200 <= status < 300:
            return [self.read_answer(status, headers, content)] * len(messages)
        entries = _dig_list(_json_or_none(content), cfg.batch_results_path)
        if entries is None or len(entries) != len(messages):
            got = "no list" if entries is None else f"{len(entries)} entries"
            retry = SendResult(
                Outcome.retry,
                error_code="batch_answer",
                error_text=self._clean(
                    f"gateway answered a batch of {len(messages)} with {got} at "
                    f"{cfg.batch_results_path!r}: {_snippet(content)}"
                ),
            )
            return [retry] * len(messages)
        return [self._entry_result(entry, status) for entry in entries]

    def _entry_result(self, entry: Any, status: int) -> SendResult:
        provider_id = dig(entry, self.config.id_path)
        if provider_id is not None:
            return SendResult(Outcome.accepted, provider_message_id=provider_id)
        code = dig(entry, self.config.error_code_path)
        text = dig(entry, self.config.error_text_path)
        return SendResult(
            self.error_outcome(code) if code else Outcome.give_up,
            error_code=code or "no_message_id",
            error_text=self._clean(text or f"batch entry without a message id (HTTP {status})"),
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        answer = await self._post(self.payload(message))
        if isinstance(answer, SendResult):
            return answer
        return self.read_answer(*answer)

    async def _post(
        self, body: Mapping[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes] | SendResult:
        """POST one body to the gateway: its status, headers and content, or the retry
        result of a request that got no answer. With the dispatcher's aiohttp session
        (``self.aio``) the request skips httpx: most of a send's CPU was httpx building
        and reading its request and response objects."""
        cfg = self.config
        try:
            if self.aio is not None:
                if cfg.body_format == "json":
                    data = json.dumps(
                        body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                    ).encode()
                else:
                    data = urlencode(body).encode()
                async with self.aio.post(
                    cfg.url,
                    data=data,
                    headers=self._aio_headers,
                    timeout=self._aio_timeout,
                    allow_redirects=False,  # as httpx: a moved gateway is an error to fix
                ) as resp:
                    return resp.status, resp.headers, await resp.read()
            http = self.require_http()
            if cfg.body_format == "json":
                response = await http.post(
                    cfg.url,
                    json=body,
                    headers=self._headers,
                    auth=self._auth,
                    timeout=cfg.timeout_s,
                )
            else:
                response = await http.post(
                    cfg.url,
                    data=body,
                    headers=self._headers,
                    auth=self._auth,
                    timeout=cfg.timeout_s,
                )
            return response.status_code, response.headers, response.content
        except httpx.TransportError as exc:
            result = transport_error_result(exc, cfg.timeout_s)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = aiohttp_error_result(exc, cfg.timeout_s)
        return SendResult(
            result.outcome,
            error_code=result.error_code,
            error_text=redact(result.error_text or "", self._secrets),
        )

    def interpret(self, response: httpx.Response) -> SendResult:
        """What the gateway's answer to a send means."""
        return self.read_answer(response.status_code, response.headers, response.content)

    def read_answer(self, status: int, headers: Mapping[str, str], content: bytes) -> SendResult:
        """What the gateway's answer (status, headers with case-blind get, body) means."""
        if status in (401, 403):
            raise ChannelConfigError(f"gateway refused our credentials (HTTP {status})")
        data = _json_or_none(content)
        code = dig(data, self.config.error_code_path)
        text = dig(data, self.config.error_text_path)
        if 200 <= status < 300:
            provider_id = dig(data, self.config.id_path)
            if provider_id is not None:
                return SendResult(Outcome.accepted, provider_message_id=provider_id)
            if code is not None:
                return SendResult(
                    self.error_outcome(code),
                    error_code=code,
                    error_text=self._clean(text or f"gateway answered HTTP {status} with an error"),
                )
            return SendResult(
                Outcome.give_up,
                error_code="no_message_id",
                error_text=self._clean(
                    f"gateway answered HTTP {status} without a message id at "
                    f"{self.config.id_path!r}: {_snippet(content)}"
                ),
            )
        effective = code or f"http_{status}"
        error_text = self._clean(text or f"gateway answered HTTP {status}: {_snippet(content)}")
        if status == 429 or status >= 500:
            return SendResult(
                Outcome.retry,
                error_code=effective,
                error_text=error_text,
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        if 400 <= status < 500:
            return SendResult(
                self.error_outcome(effective), error_code=effective, error_text=error_text
            )
        # 1xx/3xx: httpx follows no redirects, so a moved gateway shows up here.
        where = headers.get("location")
        hint = f" (to {where}: check the url setting)" if where else ""
        return SendResult(
            Outcome.give_up,
            error_code=effective,
            error_text=self._clean(f"gateway answered unexpected HTTP {status}{hint}"),
        )

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- status callbacks -------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> list[StatusUpdate]:
        cfg = self.config
        if cfg.callback_secret is None:
            raise ForgedCallback("this sms_http account has no callback_secret: callbacks refused")
        name = cfg.callback_secret_name
        if cfg.callback_secret_in == "query":
            presented = request.query.get(name)
        else:
            presented = request.headers.get(name.lower())
        if not secrets_equal(presented, cfg.callback_secret):
            raise ForgedCallback(
                f"callback without this account's secret (expected in {cfg.callback_secret_in} "
                f"{name!r})"
            )
        items = self._callback_items(request)
        updates = []
        for index, item in enumerate(items):
            where = f"item {index}: " if len(items) > 1 else ""
            update = self._status_update(item, where)
            if update is not None:
                updates.append(update)
        return updates

    def _callback_items(self, request: CallbackRequest) -> list[Mapping[str, Any]]:
        cfg = self.config
        if cfg.callback_format == "query":
            params = dict(request.query)
            if cfg.callback_secret_in == "query":
                params.pop(cfg.callback_secret_name, None)
            return [params]
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadCallback(f"callback body is not UTF-8 (byte {exc.start})") from None
        if cfg.callback_format == "form":
            return [dict(parse_qsl(text, keep_blank_values=True))]
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadCallback(
                f"callback body is not valid JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}"
            ) from None
        if isinstance(data, Mapping):
            return [data]
        if isinstance(data, list):
            for index, item in enumerate(data):
                if not isinstance(item, Mapping):
                    raise BadCallback(f"callback item {index} is not a JSON object")
            return data
        raise BadCallback("callback body must be a JSON object or a list of objects")

    def _status_update(self, item: Mapping[str, Any], where: str) -> StatusUpdate | None:
        cfg = self.config
        provider_id = dig(item, cfg.callback_id_field)
        if provider_id is None:
            raise BadCallback(
                f"{where}callback has no message id in field {cfg.callback_id_field!r}"
            )
        raw = dig(item, cfg.callback_status_field)
        if raw is None:
            raise BadCallback(
                f"{where}callback has no status in field {cfg.callback_status_field!r}"
            )
        meaning = self.status_map.get(raw.casefold())
        if meaning is None:
            raise BadCallback(
                f"{where}unknown status {raw[:50]!r} in field {cfg.callback_status_field!r} "
                "(map it in status_map)"
            )
        if meaning == "ignore":
            return None
        status = DeliveryStatus(meaning)
        if status is not DeliveryStatus.failed:
            return StatusUpdate(provider_id, status)
        code = dig(item, cfg.callback_error_field)
        return StatusUpdate(
            provider_id,
            status,
            error_code=code,
            error_text=f"gateway reported {raw[:50]!r}",
            outcome=self.error_outcome(code),
        )


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def _dig_list(data: Any, path: str) -> list[Any] | None:
    current = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current if isinstance(current, list) else None


def _snippet(content: bytes) -> str:
    text = content[:_SNIPPET].decode("utf-8", "replace").strip()
    return repr(text) if text else "(empty body)"
