"""Meta's WhatsApp Cloud API, type ``whatsapp_cloud``.

Sends ``POST {graph_url}/{phone_number_id}/messages`` with ``Authorization: Bearer
{access_token}``: free text (``type: text``, the rendered body) while the customer-service
window is open (the customer wrote to us less than 24 hours ago, as the contact point's
``details["wa_last_inbound_at"]`` says), otherwise the kind's approved template with its
body parameters and URL button. Meta answers ``{"messages": [{"id": "wamid..."}]}`` or a
Graph API error ``{"error": {"code": 131026, ...}}`` which the tables in
:mod:`.errors` interpret.

Webhooks (statuses and the customer's own messages) are signed in
``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the raw body keyed with
the app secret. Subscribing, Meta first calls the URL with ``GET ?hub.mode=subscribe
&hub.verify_token=...&hub.challenge=...`` and expects the challenge back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from meterline.channels.base import (
    BadCallback,
    CallbackRequest,
    Channel,
    ChannelConfig,
    ChannelConfigError,
    DeliveryStatus,
    ForgedCallback,
    InboundMessage,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
    parse_retry_after,
    redact,
    secrets_equal,
    transport_error_result,
)
from meterline.channels.whatsapp_cloud.config import TemplateSpec, WhatsAppCloudConfig
from meterline.channels.whatsapp_cloud.errors import (
    ERRORS,
    RETRY_AFTER,
    TEMPLATE_ERRORS,
    UNREACHABLE,
    config_problem,
)
from meterline.domain.notification_kinds import UnknownKind, kind_spec
from meterline.domain.templates import MissingData, format_value

__all__ = [
    "ERRORS",
    "LAST_INBOUND",
    "WINDOW",
    "TemplateProblem",
    "WhatsAppCloudChannel",
    "WhatsAppCloudConfig",
    "hub_signature",
]

WINDOW = timedelta(hours=24)  # Meta's customer-service window
LAST_INBOUND = "wa_last_inbound_at"  # the contact point's details key (ISO UTC)
SIGNATURE_HEADER = "x-hub-signature-256"
MAX_CHALLENGE = 256

# Webhook status values; None: not a delivery status we track.
STATUSES: dict[str, DeliveryStatus | None] = {
    "sent": DeliveryStatus.sent,
    "delivered": DeliveryStatus.delivered,
    "read": DeliveryStatus.read,
    "played": DeliveryStatus.read,  # a voice message listened to
    "failed": DeliveryStatus.failed,
    "deleted": None,
    "warning": None,
}


def hub_signature(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class TemplateProblem(ValueError):
    """The message's data cannot fill the kind's template (names what is wrong)."""


def _wa_number(e164: str) -> str:
    """Meta's form of a phone number: E.164 digits without the plus."""
    return e164[1:] if e164.startswith("+") else e164


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _unix_time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class WhatsAppCloudChannel(Channel):
    type_name: ClassVar[str] = "whatsapp_cloud"
    address_kind: ClassVar[str] = "phone"
    Config: ClassVar[type[ChannelConfig]] = WhatsAppCloudConfig
    ERRORS: ClassVar[Mapping[str, Outcome]] = ERRORS

    config: WhatsAppCloudConfig

    def __init__(
        self,
        config: ChannelConfig,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(config, WhatsAppCloudConfig):
            raise TypeError(
                f"whatsapp_cloud channel needs a WhatsAppCloudConfig, not {type(config).__name__}"
            )
        super().__init__(config, http)
        self.messages_url = f"{config.graph_url}/{config.phone_number_id}/messages"
        self._headers = {
            "authorization": f"Bearer {config.access_token.get_secret_value()}",
            "accept": "application/json",
        }
        self._secrets = config.secret_values()
        # Only to judge the customer-service window; injectable for tests.
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- what to send ----------------------------------------------------------------------

    def window_open(self, message: OutboundMessage) -> bool:
        """Whether the customer wrote to us recently enough for free text."""
        details = message.extra.get("details") or {}
        last = _parse_time(details.get(LAST_INBOUND)) if isinstance(details, Mapping) else None
        if last is None:
            return False
        margin = timedelta(seconds=self.config.window_margin_s)
        return self.clock() - last < WINDOW - margin

    def text_payload(self, message: OutboundMessage) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _wa_number(message.to),
            "type": "text",
            "text": {"preview_url": False, "body": message.body},
        }

    def template_payload(self, message: OutboundMessage, spec: TemplateSpec) -> dict[str, Any]:
        """The template message for ``message`` (raises TemplateProblem naming what is wrong)."""
        cfg = self.config
        data = message.extra.get("data")
        data = data if isinstance(data, Mapping) else {}
        try:
            variables = kind_spec(message.kind).template_variables
        except UnknownKind as exc:
            raise TemplateProblem(str(exc)) from None

        def value_of(name: str) -> Any:
            value = data.get(name)
            if value is None or value == "":
                raise TemplateProblem(
                    f"template {spec.name!r} for {message.kind} needs {name!r},"
                    " which the message's data does not have"
                )
            return value

        components: list[dict[str, Any]] = []
        if spec.body:
            ctx = cfg.locale(message.language)
            parameters = []
            for name in spec.body:
                try:
                    text = format_value(variables[name], value_of(name), ctx)
                except MissingData as exc:
                    raise TemplateProblem(
                        f"template {spec.name!r} for {message.kind}: {name!r} {exc.reason}"
                    ) from None
                parameters.append({"type": "text", "text": text})
            components.append({"type": "body", "parameters": parameters})
        if spec.url_button is not None:
            button = spec.url_button
            raw = str(value_of(button.variable))
            if button.strip_prefix is not None:
                if not raw.startswith(button.strip_prefix) or raw == button.strip_prefix:
                    raise TemplateProblem(
                        f"template {spec.name!r} for {message.kind}: {button.variable!r} does not"
                        f" start with the button's fixed part {button.strip_prefix!r}"
                    )
                suffix = raw[len(button.strip_prefix) :]
            else:
                suffix = urlsplit(raw).path.rstrip("/").rpartition("/")[2]
            if not suffix:
                raise TemplateProblem(
                    f"template {spec.name!r} for {message.kind}: {button.variable!r}"
                    " has nothing for the button's URL parameter"
                )
            components.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": str(button.index),
                    "parameters": [{"type": "text", "text": suffix}],
                }
            )
        template: dict[str, Any] = {
            "name": spec.name,
            "language": {"code": cfg.language_code(spec, message.language)},
        }
        if components:
            template["components"] = components
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _wa_number(message.to),
            "type": "template",
            "template": template,
        }

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        spec = self.config.templates.get(message.kind)
        if self.window_open(message):
            result = await self._post(self.text_payload(message), None)
            # Meta judged the window closed after all (its clock, our margin): the template
            # now, rather than a retry that would send the same refused text again.
            if result.error_code == "131047" and spec is not None:
                return await self._send_template(message, spec)
            return result
        if spec is None:
            return SendResult(
                Outcome.give_up,
                error_code="no_template",
                error_text=(
                    f"no WhatsApp template is configured for {message.kind} and the customer"
                    " has not written in the last 24 hours (free text is refused outside that"
                    f" window): add templates.{message.kind} to the channel's settings"
                ),
            )
        return await self._send_template(message, spec)

    async def _send_template(self, message: OutboundMessage, spec: TemplateSpec) -> SendResult:
        try:
            payload = self.template_payload(message, spec)
        except (TemplateProblem, ValueError) as exc:
            return SendResult(Outcome.give_up, error_code="template_data", error_text=str(exc))
        language = payload["template"]["language"]["code"]
        return await self._post(payload, f"{spec.name!r} ({language})")

    async def _post(self, payload: dict[str, Any], template: str | None) -> SendResult:
        http = self.require_http()
        try:
            response = await http.post(
                self.messages_url,
                json=payload,
                headers=self._headers,
                timeout=self.config.timeout_s,
            )
        except httpx.TransportError as exc:
            result = transport_error_result(exc, self.config.timeout_s)
            return SendResult(
                result.outcome,
                error_code=result.error_code,
                error_text=self._clean(result.error_text or ""),
            )
        return self.interpret(response, template)

    def interpret(self, response: httpx.Response, template: str | None = None) -> SendResult:
        """A Graph API answer as a SendResult (raises ChannelConfigError for bad settings)."""
        status = response.status_code
        data = _json_object(response)
        if 200 <= status < 300:
            messages = data.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else None
            wamid = first.get("id") if isinstance(first, dict) else None
            if isinstance(wamid, str) and wamid:
                return SendResult(Outcome.accepted, provider_message_id=wamid)
            return SendResult(
                Outcome.give_up,
                error_code="no_id",
                error_text=f"WhatsApp answered HTTP {status} without messages[0].id",
            )
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        code = _text(error.get("code"))
        details = error.get("error_data")
        detail = _text(details.get("details")) if isinstance(details, dict) else None
        text = self._clean(
            " - ".join(t for t in (_text(error.get("message")), detail) if t)
            or f"WhatsApp answered HTTP {status}"
        )
        problem = config_problem(code)
        if code == "100" and _text(error.get("error_subcode")) == "33":
            # "Object with ID ... does not exist": the phone_number_id, or no access to it.
            problem = "the phone_number_id does not exist or the token cannot use it"
        if problem is not None or status in (401, 403):
            raise ChannelConfigError(
                f"WhatsApp: {problem or 'Meta refused our credentials'}"
                f" (HTTP {status}, error {code or 'none'}): {text}"
            )
        effective = code or f"http_{status}"
        if (
            status == 429
            or status >= 500
            or (code is not None and ERRORS.get(code) is Outcome.retry)
        ):
            after = parse_retry_after(response.headers.get("retry-after"))
            default = RETRY_AFTER.get(code or "")
            if default is not None:
                after = max(after or 0.0, default)
            return SendResult(
                Outcome.retry, error_code=effective, error_text=text, retry_after=after
            )
        return self.failure(code, text, template, effective)

    def failure(
        self, code: str | None, text: str, template: str | None, effective: str | None = None
    ) -> SendResult:
        """A refusal's outcome from the table, with an operator-facing text for templates."""
        if code in TEMPLATE_ERRORS:
            which = f"template {template}" if template else "the template"
            text = f"WhatsApp refused {which}: {TEMPLATE_ERRORS[code]} (error {code}): {text}"
        elif code == "131047":
            why = (
                "Meta found the customer-service window closed when our free text arrived"
                if template is None
                else "Meta refused the template as outside the customer-service window"
            )
            text = f"{why} (no message from the customer in 24 h): {text}"
        return SendResult(
            self.outcome_of(code),
            error_code=effective or code,
            error_text=text,
            unreachable=code in UNREACHABLE,
        )

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- webhooks --------------------------------------------------------------------------

    def verify_subscription(self, query: Mapping[str, str]) -> str | None:
        challenge = query.get("hub.challenge")
        if (
            query.get("hub.mode") == "subscribe"
            and secrets_equal(query.get("hub.verify_token"), self.config.verify_token)
            and challenge
            and len(challenge) <= MAX_CHALLENGE
        ):
            return challenge
        return None

    def _verified_changes(self, request: CallbackRequest) -> list[Mapping[str, Any]]:
        """The ``value`` of each messages change for our phone number, after the signature."""
        presented = request.headers.get(SIGNATURE_HEADER)
        expected = hub_signature(self.config.app_secret.get_secret_value(), request.body)
        if not presented or not secrets_equal(presented, expected):
            raise ForgedCallback("X-Hub-Signature-256 is missing or does not match the body")
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise BadCallback("WhatsApp webhook body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            raise BadCallback("WhatsApp webhook has no 'entry' list")
        values: list[Mapping[str, Any]] = []
        for i, entry in enumerate(payload["entry"]):
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                raise BadCallback(f"WhatsApp webhook entry[{i}] has no 'changes' list")
            for change in changes:
                if not isinstance(change, dict) or change.get("field") != "messages":
                    continue  # account updates, template reviews ...: not ours to apply
                value = change.get("value")
                if not isinstance(value, dict):
                    raise BadCallback(f"WhatsApp webhook entry[{i}] has a change without 'value'")
                metadata = value.get("metadata")
                number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
                if number is not None and str(number) != self.config.phone_number_id:
                    continue  # another number of the same app: its own account applies it
                values.append(value)
        return values

    def parse_callback(self, request: CallbackRequest) -> list[StatusUpdate]:
        updates: list[StatusUpdate] = []
        for value in self._verified_changes(request):
            statuses = value.get("statuses") or []
            if not isinstance(statuses, list):
                raise BadCallback("WhatsApp webhook 'statuses' is not a list")
            for item in statuses:
                update = self._status(item)
                if update is not None:
                    updates.append(update)
        return updates

    def _status(self, item: Any) -> StatusUpdate | None:
        if not isinstance(item, dict):
            raise BadCallback("WhatsApp webhook status is not an object")
        wamid = _text(item.get("id"))
        if wamid is None:
            raise BadCallback("WhatsApp webhook status has no 'id'")
        raw = _text(item.get("status"))
        status = STATUSES.get(raw or "")
        if status is None:
            return None  # deleted, warning, or a status Meta added later: nothing to apply
        at = _unix_time(item.get("timestamp"))
        if status is not DeliveryStatus.failed:
            return StatusUpdate(wamid, status, at=at)
        errors = item.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, dict) else {}
        code = _text(first.get("code"))
        details = first.get("error_data")
        detail = _text(details.get("details")) if isinstance(details, dict) else None
        text = " - ".join(
            t for t in (_text(first.get("title")) or _text(first.get("message")), detail) if t
        )
        result = self.failure(
            code, self._clean(text or "WhatsApp reported the message failed"), None
        )
        outcome = Outcome.give_up if config_problem(code) else result.outcome
        return StatusUpdate(
            wamid,
            status,
            at=at,
            error_code=code,
            error_text=result.error_text,
            outcome=outcome,
            unreachable=result.unreachable,
        )

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        found: list[InboundMessage] = []
        for value in self._verified_changes(request):
            messages = value.get("messages") or []
            if not isinstance(messages, list):
                raise BadCallback("WhatsApp webhook 'messages' is not a list")
            for item in messages:
                if not isinstance(item, dict):
                    raise BadCallback("WhatsApp webhook message is not an object")
                sender = _text(item.get("from"))
                wamid = _text(item.get("id"))
                if sender is None or not sender.isdigit() or wamid is None:
                    raise BadCallback("WhatsApp inbound message needs 'from' (digits) and 'id'")
                kind = _text(item.get("type")) or "unknown"
                body = item.get("text")
                text = _text(body.get("body")) if isinstance(body, dict) else None
                found.append(
                    InboundMessage(
                        sender="+" + sender,
                        provider_message_id=wamid,
                        at=_unix_time(item.get("timestamp")),
                        type=kind,
                        text=text,
                    )
                )
        return found


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list | bool):
        return None
    return str(value)
