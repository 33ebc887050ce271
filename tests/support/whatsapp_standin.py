"""A real HTTP server standing in for Meta's WhatsApp Cloud API, for tests.

It speaks the Graph API messages endpoint, ``POST /{version}/{phone_number_id}/messages``,
with Meta's payload shapes:

- success: ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid...", "message_status": "accepted"}]}``;
- errors: ``{"error": {"message", "type", "code", "error_data": {"messaging_product",
  "details"}, "error_subcode", "fbtrace_id"}}`` with Meta's HTTP statuses (401 for a bad
  or expired token, 404 for a template that does not exist, 400 for the rest).

It checks the Bearer token and the phone number id, validates a template message against
the templates it knows (name and language, body parameter count, URL button, paused or
disabled), and knows, per number, whether it is on WhatsApp. As the real Cloud API does, a
send to a number that is not on WhatsApp is *accepted*, and a ``failed`` status with error
131026 follows by webhook; free text outside the customer's 24-hour window is accepted and
fails with 131047. Other behaviours (a synchronous error code, rate limits) are set per
number with :meth:`WhatsAppStandin.behave`.

Webhooks are posted like Meta posts them: signed in ``X-Hub-Signature-256`` with the app
secret, one status per request, to ``callback_url``. They queue up as sends are accepted
(sent, delivered, read; or failed) and go out when a test calls :meth:`flush_webhooks`,
optionally out of order and twice; :meth:`post_inbound` posts a customer's message.

Everything received is kept in ``received`` (the exact JSON) for tests to assert on.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.gateway_standin import (
    Receive,
    Scope,
    Send,
    _answer,
    _headers,
)
from tests.support.threaded_server import ThreadedServer

PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
WABA_ID = "102290129340398"
ACCESS_TOKEN = "EAAstandin-whatsapp-access-token"
APP_SECRET = "standin-whatsapp-app-secret"
VERSION = "v21.0"
WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Template:
    """An approved (or paused, disabled) message template at Meta."""

    name: str
    language: str
    body_params: int = 0
    url_button: bool = False
    status: str = "APPROVED"  # APPROVED, PAUSED, DISABLED


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the stand-in answered
    wamid: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    """Answer this error instead of accepting (per number), ``times`` times or for ever."""

    code: int
    http_status: int = 400
    message: str | None = None
    details: str | None = None
    times: int | None = None


@dataclass
class _Pending:
    wamid: str
    to: str
    statuses: list[dict[str, Any]] = field(default_factory=list)


# Meta's texts for the codes the stand-in answers (titles as in its error-code table).
TITLES: dict[int, tuple[str, str]] = {
    100: ("Invalid parameter", "Invalid parameter"),
    131008: ("Required parameter is missing", "Required parameter is missing"),
    131009: ("Parameter value is not valid", "Parameter value is not valid"),
    131026: ("Message undeliverable", "Message Undeliverable."),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer"
        " last replied to this number.",
    ),
    131051: ("Unsupported message type", "Unsupported message type"),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone"
        " number to the same phone number in a short period of time.",
    ),
    130429: (
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone"
        " number in a short period of time",
    ),
    80007: ("Rate limit issues", "The WhatsApp Business Account has reached its rate limit"),
    132000: (
        "Number of parameters does not match the expected number of params",
        "body: number of localizable_params ({got}) does not match the expected number of"
        " params ({want})",
    ),
    132001: (
        "Template name does not exist in the translation",
        "template name ({name}) does not exist in {language}",
    ),
    132012: ("Parameter format does not match format in the created template", "{details}"),
    132015: ("Template is Paused", "Template is paused due to low quality so it cannot be sent"),
    132016: ("Template is Disabled", "Template has been paused too many times due to low quality"),
    131000: ("Something went wrong", "Something went wrong"),
}


def graph_error(code: int, *, subcode: int | None = 2494010, **fmt: Any) -> dict[str, Any]:
    """Meta's Graph API error body for ``code``."""
    title, details = TITLES.get(code, ("Error", "Error"))
    error: dict[str, Any] = {
        "message": f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details.format(**fmt)},
        "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUv",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def token_error(expired: bool) -> dict[str, Any]:
    """Meta's answer to an expired or unknown access token (HTTP 401, code 190)."""
    if expired:
        message = (
            "Error validating access token: Session has expired on Tuesday, 10-Mar-26"
            " 04:00:00 PDT. The current time is Tuesday, 10-Mar-26 05:12:31 PDT."
        )
        subcode: int | None = 463
    else:
        message = "Invalid OAuth access token - Cannot parse access token"
        subcode = None
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "AfQa1xgZbBNyj0Xs7Qq4mJk",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def sign(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``, written here independently of the adapter's."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(value: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    """A ``messages`` webhook around one change value."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def status_item(
    wamid: str, status: str, recipient: str, at: int, error_code: int | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(at),
        "recipient_id": recipient,
    }
    if status in ("sent", "delivered", "read"):
        item["conversation"] = {
            "id": "b7a8e5c0d2f14c3e9a6b1d0f2e4c6a8b",
            "origin": {"type": "utility"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    if error_code is not None:
        title, details = TITLES.get(error_code, ("Error", "Error"))
        item["errors"] = [
            {
                "code": error_code,
                "title": title,
                "message": title,
                "error_data": {"details": details},
            }
        ]
    return item


class WhatsAppStandin:
    """The stand-in served by uvicorn in a background thread of this process."""

    def __init__(
        self,
        *,
        phone_number_id: str = PHONE_NUMBER_ID,
        access_token: str = ACCESS_TOKEN,
        app_secret: str = APP_SECRET,
        templates: list[Template] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.app_secret = app_secret
        self.templates = {(t.name, t.language): t for t in templates or []}
        self.host = host
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.not_on_whatsapp: set[str] = set()  # wa ids (digits)
        self.behaviours: dict[str, Behaviour] = {}
        self.last_inbound: dict[str, float] = {}  # wa id -> unix time of their last message
        self.token_expired = False
        self.callback_url: str | None = None
        self.read_receipts = True
        self.pending: list[_Pending] = []
        self._ids = itertools.count(1)
        self._server: ThreadedServer | None = None
        self.url = ""

    @property
    def graph_url(self) -> str:
        return f"{self.url}/{VERSION}"

    # -- control ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.not_on_whatsapp.clear()
            self.behaviours.clear()
            self.last_inbound.clear()
            self.pending.clear()
            self.token_expired = False
            self.read_receipts = True

    def behave(self, number: str, code: int, http_status: int = 400, **kw: Any) -> None:
        with self.lock:
            self.behaviours[number.lstrip("+")] = Behaviour(code, http_status, **kw)

    def sends(self) -> list[dict[str, Any]]:
        """The JSON of every request to the messages endpoint, in order."""
        with self.lock:
            return [r.json() for r in self.received]

    # -- the server ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        status, answer, wamid = self.answer(scope, body)
        with self.lock:
            self.received.append(Received(scope["path"], _headers(scope), body, status, wamid))
        await _answer(send, status, answer)

    def answer(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any], str | None]:
        path: str = scope["path"]
        headers = _headers(scope)
        parts = path.strip("/").split("/")
        if scope["method"] != "POST" or len(parts) != 3 or parts[2] != "messages":
            return 400, graph_error(100, subcode=None), None
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.access_token}" or self.token_expired:
            return (
                401,
                token_error(expired=self.token_expired and auth.endswith(self.access_token)),
                None,
            )
        if parts[1] != self.phone_number_id:
            answer = graph_error(100, subcode=33)
            answer["error"]["message"] = (
                f"Unsupported post request. Object with ID '{parts[1]}' does not exist, cannot"
                " be loaded due to missing permissions, or does not support this operation."
            )
            return 400, answer, None
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, graph_error(100, subcode=None), None
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            return 400, graph_error(100, subcode=None), None
        to = str(payload.get("to", ""))
        if not to.isdigit():
            return 400, graph_error(131009), None
        with self.lock:
            behaviour = self.behaviours.get(to)
            if behaviour is not None and behaviour.times is not None:
                behaviour.times -= 1
                if behaviour.times <= 0:
                    del self.behaviours[to]
        if behaviour is not None:
            answer = graph_error(behaviour.code)
            if behaviour.details is not None:
                answer["error"]["error_data"]["details"] = behaviour.details
            if behaviour.message is not None:
                answer["error"]["message"] = behaviour.message
            return behaviour.http_status, answer, None
        kind = payload.get("type")
        fails_with: int | None = None
        if kind == "text":
            text = payload.get("text")
            if not isinstance(text, dict) or not isinstance(text.get("body"), str):
                return 400, graph_error(131008), None
            if not text["body"] or len(text["body"]) > 4096:
                return 400, graph_error(100), None
            last = self.last_inbound.get(to)
            if last is None or time.time() - last > WINDOW_S:
                fails_with = 131047  # accepted, then failed by webhook, as Meta does
        elif kind == "template":
            refused = self.check_template(payload.get("template"))
            if refused is not None:
                return refused[0], refused[1], None
        else:
            return 400, graph_error(131051), None
        if to in self.not_on_whatsapp:
            fails_with = 131026
        wamid = f"wamid.HBgM{to}FQIAERgS{next(self._ids):020X}"
        now = int(time.time())
        if fails_with is not None:
            statuses = [status_item(wamid, "failed", to, now, fails_with)]
        else:
            statuses = [
                status_item(wamid, "sent", to, now),
                status_item(wamid, "delivered", to, now + 1),
            ]
            if self.read_receipts:
                statuses.append(status_item(wamid, "read", to, now + 2))
        with self.lock:
            self.pending.append(_Pending(wamid, to, statuses))
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [message],
            },
            wamid,
        )

    def check_template(self, template: Any) -> tuple[int, dict[str, Any]] | None:
        """Meta's checks of a template message: None when it may go."""
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            return 400, graph_error(131008)
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(code, str):
            return 400, graph_error(131008)
        known = self.templates.get((template["name"], code))
        if known is None:
            return 404, graph_error(132001, name=template["name"], language=code)
        if known.status == "PAUSED":
            return 400, graph_error(132015)
        if known.status == "DISABLED":
            return 400, graph_error(132016)
        components = template.get("components") or []
        if not isinstance(components, list):
            return 400, graph_error(100)
        body_params: list[Any] = []
        buttons: list[dict[str, Any]] = []
        for component in components:
            if not isinstance(component, dict):
                return 400, graph_error(100)
            if component.get("type") == "body":
                body_params = component.get("parameters") or []
            elif component.get("type") == "button":
                buttons.append(component)
            else:
                return 400, graph_error(100)
        if len(body_params) != known.body_params:
            return 400, graph_error(132000, got=len(body_params), want=known.body_params)
        for param in body_params:
            if (
                not isinstance(param, dict)
                or param.get("type") != "text"
                or not isinstance(param.get("text"), str)
                or not param["text"].strip()
            ):
                return 400, graph_error(132012, details="body parameters must be non-empty text")
        if known.url_button:
            url_buttons = [
                b for b in buttons if b.get("sub_type") == "url" and str(b.get("index")) == "0"
            ]
            params = url_buttons[0].get("parameters") if url_buttons else None
            if not params or not isinstance(params, list) or not params[0].get("text"):
                return 400, graph_error(131008)
        elif buttons:
            return 400, graph_error(132000, got=len(buttons), want=0)
        return None

    # -- webhooks --------------------------------------------------------------------------

    def post(
        self,
        payload: dict[str, Any],
        *,
        signature: str | None = "valid",
        tamper: bool = False,
        url: str | None = None,
    ) -> httpx.Response:
        """Post one webhook: ``signature`` "valid", "forged" (another secret), or None."""
        target = url or self.callback_url
        assert target, "set callback_url first"
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "facebookexternalua"}
        if signature == "valid":
            headers["x-hub-signature-256"] = sign(self.app_secret, body)
        elif signature == "forged":
            headers["x-hub-signature-256"] = sign("not-" + self.app_secret, body)
        if tamper:  # signed, then changed on the way
            changed = (
                body.replace(b'"delivered"', b'"failed"')
                .replace(b'"sent"', b'"failed"')
                .replace(b'"Hello"', b'"Hijacked"')
            )
            assert changed != body, "nothing to tamper with"
            body = changed
        with httpx.Client(timeout=10) as client:
            return client.post(target, content=body, headers=headers)

    def flush_webhooks(
        self, *, order: str = "in_order", duplicate: bool = False, url: str | None = None
    ) -> list[httpx.Response]:
        """Post every queued status, one webhook each: ``in_order`` or ``reversed``, each
        once or (``duplicate``) twice."""
        with self.lock:
            pending, self.pending = self.pending, []
        items = [item for p in pending for item in p.statuses]
        if order == "reversed":
            items.reverse()
        elif order != "in_order":
            raise ValueError(f"unknown order {order!r}")
        if duplicate:
            items = [item for item in items for _ in (0, 1)]
        return [
            self.post(envelope({"statuses": [item]}, self.phone_number_id), url=url)
            for item in items
        ]

    def post_inbound(
        self,
        number: str,
        text: str = "Hello",
        *,
        at: int | None = None,
        signature: str | None = "valid",
        url: str | None = None,
    ) -> httpx.Response:
        """A customer's message, as Meta posts it; it also opens their window here."""
        wa_id = number.lstrip("+")
        sent_at = int(time.time()) if at is None else at
        with self.lock:
            self.last_inbound[wa_id] = max(self.last_inbound.get(wa_id, 0), sent_at)
            wamid = f"wamid.HBgM{wa_id}FQIAEhgU{next(self._ids):020X}"
        value = {
            "contacts": [{"profile": {"name": "Customer"}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(sent_at),
                    "text": {"body": text},
                    "type": "text",
                }
            ],
        }
        return self.post(envelope(value, self.phone_number_id), signature=signature, url=url)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> WhatsAppStandin:
        self._server = ThreadedServer(self, host=self.host, name="wa-standin").start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> WhatsAppStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running(**options: Any) -> Iterator[WhatsAppStandin]:
    """For a pytest fixture: ``yield from running(templates=[...])``."""
    with WhatsAppStandin(**options) as standin:
        yield standin
