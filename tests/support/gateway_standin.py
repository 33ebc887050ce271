"""A real HTTP server standing in for SMS providers, for tests and benchmarks.

It speaks:

- the generic gateway (``sms_http``) at ``POST /sms``, JSON or form: answers
  ``{"message_id": "..."}``; dedupes on the reference field (a second post with a known
  reference answers the same id and counts as a duplicate, not a send); optionally checks
  a token header and/or HTTP basic credentials (401 otherwise);
- Twilio's ``POST /2010-04-01/Accounts/{sid}/Messages.json``: basic auth checked against
  the configured sid and token (401 with Twilio's 20003 error JSON otherwise), 201 with a
  message resource on success;
- an inbox at ``/_standin/inbox/...`` that records whatever is posted there, so a test
  can fire a status callback over real HTTP and hand what arrived to ``parse_callback``;
- ``GET /_standin/stats`` (counts as JSON), ``POST /_standin/reset``, and
  ``POST /_standin/behave`` (a behaviour as JSON), for a benchmark in another process.

Behaviours, per destination number or global, make it answer an error (status, provider
code, text), fail the next N requests, answer 429 with Retry-After, or answer slowly.
A slow answer records the send first, as a real gateway that accepted a message and then
answered late would; that is the case the reference dedupe exists for.

In a test::

    with GatewayStandin() as gw:
        gw.behave("+8801711000001", status=400, code="invalid_number")
        ...  # send to f"{gw.url}/sms"
        gw.received[-1].fields["to"]

As its own process (a benchmark's target)::

    python -m tests.support.gateway_standin --port 8765

and to time a bare httpx.AsyncClient loop against such a process::

    python -m tests.support.gateway_standin --bench 20000 --concurrency 200

It is a raw ASGI callable under uvicorn with httptools and uvloop: no framework, no
per-request allocation beyond the record it keeps, so it answers many thousands of
requests a second and is never what a benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn

from meterline.channels.base import CallbackRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TWILIO_SID = "AC" + "5" * 32
TWILIO_TOKEN = "standin-twilio-auth-token"
TWILIO_PREFIX = "/2010-04-01/Accounts/"
INBOX_PREFIX = "/_standin/inbox"
_UNSET: Any = object()
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class Received:
    """One request the stand-in answered."""

    endpoint: str  # "sms", "twilio", "inbox" or "other"
    method: str
    url: str  # as the client called it (scheme, Host header, path, query)
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    fields: dict[str, Any]  # the parsed body (JSON object or form); {} otherwise
    status: int  # what the stand-in answered
    message_id: str | None = None  # the id it answered with
    duplicate: bool = False  # a repeated reference: answered the first id, not sent again

    def json(self) -> Any:
        return json.loads(self.body)

    def callback_request(self) -> CallbackRequest:
        """This request as an adapter's parse_callback receives it."""
        return CallbackRequest(self.method, self.url, self.headers, self.query, self.body)


@dataclass
class Behaviour:
    """How to answer a request, instead of (or before) answering it normally."""

    status: int | None = None  # answer this HTTP status with the provider's error body
    code: str | int | None = None  # the provider error code in that body
    text: str | None = None  # the provider error text in that body
    retry_after: float | None = None  # add a Retry-After header (seconds)
    delay: float = 0.0  # sleep this long before answering (asynchronously)
    body: Any = _UNSET  # answer exactly this JSON (with `status`, default 200)
    times: int | None = None  # apply to this many requests, then drop; None: until cleared


def twilio_signature(token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's request signature, written here independently of the adapter's."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class StandinState:
    """Everything the server remembers; shared with the test thread under one lock."""

    def __init__(
        self,
        *,
        twilio_sid: str = TWILIO_SID,
        twilio_token: str = TWILIO_TOKEN,
        sms_token: str | None = None,
        sms_auth_header: str = "Authorization",
        sms_auth_scheme: str = "Bearer",
        sms_basic: tuple[str, str] | None = None,
        to_field: str = "to",
        reference_field: str = "reference",
        keep: int | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.twilio_sid = twilio_sid
        self.twilio_token = twilio_token
        self.sms_auth: tuple[str, str] | None = None
        if sms_token is not None:
            value = f"{sms_auth_scheme} {sms_token}" if sms_auth_scheme else sms_token
            self.sms_auth = (sms_auth_header.lower(), value)
        self.sms_basic = (
            "Basic " + base64.b64encode(f"{sms_basic[0]}:{sms_basic[1]}".encode()).decode()
            if sms_basic
            else None
        )
        self.twilio_basic = (
            "Basic " + base64.b64encode(f"{twilio_sid}:{twilio_token}".encode()).decode()
        )
        self.to_field = to_field
        self.reference_field = reference_field
        self.inbox_status = 200
        self._ids = itertools.count(1)  # never reset, so ids stay unique across resets
        self.received: deque[Received] | list[Received] = (
            deque(maxlen=keep) if keep is not None else []
        )
        self.references: dict[str, str] = {}
        self.behaviours: dict[str | None, Behaviour] = {}
        self.counts = dict.fromkeys(
            ("requests", "sent", "duplicates", "errors", "sms", "twilio", "inbox"), 0
        )

    def next_id(self) -> int:
        return next(self._ids)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.references.clear()
            self.behaviours.clear()
            for key in self.counts:
                self.counts[key] = 0
            self.inbox_status = 200

    def behaviour_for(self, to: str | None) -> Behaviour | None:
        """The behaviour for this destination (else the global one), used up by one."""
        with self.lock:
            key: str | None = to if to in self.behaviours else None
            found = self.behaviours.get(key)
            if found is None:
                return None
            if found.times is not None:
                found.times -= 1
                if found.times <= 0:
                    del self.behaviours[key]
            return found

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


class StandinApp:
    """The raw ASGI application."""

    def __init__(self, state: StandinState) -> None:
        self.state = state

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
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/sms" and method == "POST":
            await self.sms(scope, body, send)
        elif path.startswith(TWILIO_PREFIX) and method == "POST":
            await self.twilio(scope, body, send)
        elif path.startswith(INBOX_PREFIX):
            await self.inbox(scope, body, send)
        elif path == "/_standin/stats":
            await _answer(send, 200, self.state.stats())
        elif path == "/_standin/reset" and method == "POST":
            self.state.reset()
            await _answer(send, 200, {"ok": True})
        elif path == "/_standin/behave" and method == "POST":
            spec = json.loads(body or b"{}")
            to = spec.pop("to", None)
            with self.state.lock:
                self.state.behaviours[to] = Behaviour(**spec)
            await _answer(send, 200, {"ok": True})
        else:
            await _answer(send, 404, {"error": {"code": "not_found", "message": path}})

    # -- the generic gateway -------------------------------------------------------------

    async def sms(self, scope: Scope, body: bytes, send: Send) -> None:
        state = self.state
        headers = _headers(scope)
        fields = _parse_body(headers.get("content-type", ""), body)
        to = fields.get(state.to_field)
        to = str(to) if to is not None else None

        def record(status: int, message_id: str | None = None, duplicate: bool = False) -> None:
            _record(state, "sms", scope, headers, body, fields, status, message_id, duplicate)

        if (state.sms_auth and headers.get(state.sms_auth[0]) != state.sms_auth[1]) or (
            state.sms_basic and headers.get("authorization") != state.sms_basic
        ):
            record(401)
            await _answer(send, 401, _generic_error("unauthorized", "invalid credentials"))
            return
        batch = fields.get("messages")
        if isinstance(batch, list):
            # A global behaviour answers the whole request; per-number ones, their entry.
            behaviour = state.behaviour_for(None) if None in state.behaviours else None
            if behaviour is None:
                await self.sms_batch(scope, headers, batch, send)
                return
        else:
            behaviour = state.behaviour_for(to)
        if behaviour is not None and (behaviour.status is not None or behaviour.body is not _UNSET):
            status = behaviour.status or 200
            record(status)
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            answer = (
                behaviour.body
                if behaviour.body is not _UNSET
                else _generic_error(
                    str(behaviour.code or _default_code(status)),
                    behaviour.text or f"stand-in answers HTTP {status}",
                )
            )
            await _answer(send, status, answer, behaviour.retry_after)
            return
        reference = fields.get(state.reference_field)
        with state.lock:
            known = state.references.get(str(reference)) if reference is not None else None
            duplicate = known is not None
            message_id = known or f"gw-{state.next_id()}"
            if reference is not None and not duplicate:
                state.references[str(reference)] = message_id
        record(200, message_id, duplicate)
        if behaviour is not None and behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        await _answer(send, 200, {"message_id": message_id, "status": "accepted"})

    async def sms_batch(
        self, scope: Scope, headers: dict[str, str], items: list[Any], send: Send
    ) -> None:
        """The batch endpoint: {"messages": [...]} answered by {"messages": [...]}, one
        entry per message in order (an id, or an error for that message alone). Each
        message is recorded as if it had come on its own."""
        state = self.state
        with state.lock:
            state.counts["batches"] = state.counts.get("batches", 0) + 1
        answers: list[dict[str, Any]] = []
        for item in items:
            item = item if isinstance(item, dict) else {}
            raw = json.dumps(item).encode()
            to = str(item.get(state.to_field))
            behaviour = state.behaviour_for(to) if to in state.behaviours else None
            if behaviour is not None and behaviour.status is not None and behaviour.status >= 400:
                _record(state, "sms", scope, headers, raw, item, behaviour.status, None, False)
                answers.append(
                    _generic_error(
                        str(behaviour.code or _default_code(behaviour.status)),
                        behaviour.text or f"stand-in refuses HTTP {behaviour.status}",
                    )
                )
                continue
            reference = item.get(state.reference_field)
            with state.lock:
                known = state.references.get(str(reference)) if reference is not None else None
                message_id = known or f"gw-{state.next_id()}"
                if reference is not None and known is None:
                    state.references[str(reference)] = message_id
            _record(state, "sms", scope, headers, raw, item, 200, message_id, known is not None)
            answers.append({"message_id": message_id, "status": "accepted"})
        await _answer(send, 200, {"messages": answers})

    # -- Twilio --------------------------------------------------------------------------

    async def twilio(self, scope: Scope, body: bytes, send: Send) -> None:
        state = self.state
        headers = _headers(scope)
        fields = _parse_body("application/x-www-form-urlencoded", body)
        path: str = scope["path"]
        path_sid = path[len(TWILIO_PREFIX) :].partition("/")[0]

        def record(status: int, message_id: str | None = None) -> None:
            _record(state, "twilio", scope, headers, body, fields, status, message_id, False)

        if not path.endswith("/Messages.json"):
            record(404)
            await _answer(
                send, 404, _twilio_error(20404, "The requested resource was not found", 404)
            )
            return
        if headers.get("authorization") != state.twilio_basic or path_sid != state.twilio_sid:
            record(401)
            await _answer(send, 401, _twilio_error(20003, "Authenticate", 401))
            return
        to = fields.get("To")
        batch = fields.get("messages")
        if isinstance(batch, list):
            # A global behaviour answers the whole request; per-number ones, their entry.
            behaviour = state.behaviour_for(None) if None in state.behaviours else None
            if behaviour is None:
                await self.sms_batch(scope, headers, batch, send)
                return
        else:
            behaviour = state.behaviour_for(to)
        if behaviour is not None and (behaviour.status is not None or behaviour.body is not _UNSET):
            status = behaviour.status or 200
            record(status)
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            if behaviour.body is not _UNSET:
                answer = behaviour.body
            else:
                code = behaviour.code if behaviour.code is not None else _default_twilio(status)
                answer = _twilio_error(code, behaviour.text or f"stand-in HTTP {status}", status)
            await _answer(send, status, answer, behaviour.retry_after)
            return
        if not to:
            record(400)
            await _answer(send, 400, _twilio_error(21604, "A 'To' phone number is required.", 400))
            return
        if not fields.get("Body"):
            record(400)
            await _answer(send, 400, _twilio_error(21602, "Message body is required.", 400))
            return
        if not (fields.get("From") or fields.get("MessagingServiceSid")):
            record(400)
            await _answer(
                send, 400, _twilio_error(21603, "A 'From' phone number is required.", 400)
            )
            return
        sid = f"SM{state.next_id():032x}"
        record(201, sid)
        if behaviour is not None and behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        await _answer(
            send,
            201,
            {
                "sid": sid,
                "account_sid": state.twilio_sid,
                "api_version": "2010-04-01",
                "to": to,
                "from": fields.get("From"),
                "messaging_service_sid": fields.get("MessagingServiceSid"),
                "body": fields.get("Body"),
                "status": "queued" if fields.get("From") else "accepted",
                "num_segments": "1",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "uri": f"{TWILIO_PREFIX}{state.twilio_sid}/Messages/{sid}.json",
            },
        )

    # -- the inbox for status callbacks --------------------------------------------------

    async def inbox(self, scope: Scope, body: bytes, send: Send) -> None:
        headers = _headers(scope)
        fields = _parse_body(headers.get("content-type", ""), body)
        status = self.state.inbox_status
        _record(self.state, "inbox", scope, headers, body, fields, status, None, False)
        await _answer(send, status, {"ok": status < 400})


def _record(
    state: StandinState,
    endpoint: str,
    scope: Scope,
    headers: dict[str, str],
    body: bytes,
    fields: dict[str, Any],
    status: int,
    message_id: str | None,
    duplicate: bool,
) -> None:
    query_string = scope.get("query_string", b"").decode("latin-1")
    host = headers.get("host") or "{}:{}".format(*scope["server"])
    url = f"{scope.get('scheme', 'http')}://{host}{scope['path']}"
    if query_string:
        url += "?" + query_string
    item = Received(
        endpoint=endpoint,
        method=scope["method"],
        url=url,
        path=scope["path"],
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
        headers=headers,
        body=body,
        fields=fields,
        status=status,
        message_id=message_id,
        duplicate=duplicate,
    )
    with state.lock:
        state.received.append(item)
        counts = state.counts
        counts["requests"] += 1
        if status >= 400:
            counts["errors"] += 1
        elif duplicate:
            counts["duplicates"] += 1
        elif message_id is not None:
            counts["sent"] += 1
            counts[endpoint] += 1
        elif endpoint == "inbox":
            counts["inbox"] += 1


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {"_": data}
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


async def _answer(send: Send, status: int, data: Any, retry_after: float | None = None) -> None:
    payload = json.dumps(data).encode()
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", f"{retry_after:g}".encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _generic_error(code: str, text: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": text}}


def _default_code(status: int) -> str:
    return {429: "throttled", 500: "internal_error", 503: "unavailable"}.get(status, "error")


def _default_twilio(status: int) -> int:
    return {429: 20429, 500: 20500, 503: 20503}.get(status, 21000)


def _twilio_error(code: int | str, text: str, status: int) -> dict[str, Any]:
    return {
        "code": int(code) if str(code).isdigit() else code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Controls:
    """What the in-thread stand-in and a test share: behaviours and callback firing."""

    state: StandinState
    url: str

    # -- behaviours ---------------------------------------------------------------------

    def behave(
        self,
        to: str | None = None,
        *,
        status: int | None = None,
        code: str | int | None = None,
        text: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        body: Any = _UNSET,
        times: int | None = None,
    ) -> None:
        """Answer requests to ``to`` (None: every destination) this way, ``times`` times."""
        behaviour = Behaviour(status, code, text, retry_after, delay, body, times)
        with self.state.lock:
            self.state.behaviours[to] = behaviour

    def fail_next(self, n: int, status: int = 500, to: str | None = None) -> None:
        self.behave(to, status=status, times=n)

    def rate_limit(
        self, retry_after: float | None = 1, *, times: int | None = None, to: str | None = None
    ) -> None:
        self.behave(to, status=429, retry_after=retry_after, times=times)

    def slow(self, seconds: float, *, times: int | None = None, to: str | None = None) -> None:
        self.behave(to, delay=seconds, times=times)

    def clear_behaviours(self) -> None:
        with self.state.lock:
            self.state.behaviours.clear()

    def reset(self) -> None:
        """Forget requests, counts, references and behaviours (message ids keep counting)."""
        self.state.reset()

    # -- what arrived -------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def requests(self, endpoint: str) -> list[Received]:
        return [item for item in self.received if item.endpoint == endpoint]

    @property
    def inbox(self) -> list[Received]:
        return self.requests("inbox")

    def stats(self) -> dict[str, int]:
        return self.state.stats()

    # -- status callbacks ---------------------------------------------------------------

    def inbox_url(self, name: str = "hook") -> str:
        """A URL on this stand-in that records callbacks fired at it."""
        return f"{self.url}{INBOX_PREFIX}/{name}"

    def send_status(
        self,
        url: str,
        message_id: str | None = None,
        status: str = "delivered",
        *,
        style: str = "json",
        error_code: str | int | None = None,
        items: Iterable[Mapping[str, Any]] | None = None,
        secret: str | None = None,
        secret_in: str = "header",
        secret_name: str = "X-Meterline-Secret",
        id_field: str = "message_id",
        status_field: str = "status",
        error_field: str = "error_code",
        token: str | None = None,
        forge: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Fire a status callback at ``url``, as a provider would, and answer the response.

        ``style``: "json" (one object, or ``items`` as a list), "form", or "twilio" (form
        fields as Twilio sends them, signed with ``token``, default the stand-in's).
        ``forge``: a wrong secret, or a signature made with the wrong token.
        """
        headers: dict[str, str] = {}
        if style == "twilio":
            params = {
                "MessageSid": message_id or "",
                "SmsSid": message_id or "",
                "MessageStatus": status,
                "SmsStatus": status,
                "AccountSid": self.state.twilio_sid,
                "ApiVersion": "2010-04-01",
            }
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            params.update(extra or {})
            key = (token or self.state.twilio_token) + ("-forged" if forge else "")
            headers["X-Twilio-Signature"] = twilio_signature(key, url, params)
            headers["content-type"] = "application/x-www-form-urlencoded"
            content = urlencode(params).encode()
        else:
            if items is not None:
                data: Any = [dict(item) for item in items]
            else:
                data = {id_field: message_id, status_field: status}
                if error_code is not None:
                    data[error_field] = error_code
                data.update(extra or {})
            if style == "json":
                headers["content-type"] = "application/json"
                content = json.dumps(data).encode()
            elif style == "form":
                headers["content-type"] = "application/x-www-form-urlencoded"
                content = urlencode(data).encode()
            else:
                raise ValueError(f"unknown callback style {style!r}")
            if secret is not None:
                presented = "forged-" + secret if forge else secret
                if secret_in == "header":
                    headers[secret_name] = presented
                else:
                    separator = "&" if "?" in url else "?"
                    url = f"{url}{separator}{urlencode({secret_name: presented})}"
        with httpx.Client(timeout=10) as client:
            return client.post(url, content=content, headers=headers)


class GatewayStandin(_Controls):
    """The stand-in served by uvicorn in a background thread of this process."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.state = StandinState(**options)
        self.app = StandinApp(self.state)
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def twilio_sid(self) -> str:
        return self.state.twilio_sid

    @property
    def twilio_token(self) -> str:
        return self.state.twilio_token

    @property
    def sms_url(self) -> str:
        return f"{self.url}/sms"

    def start(self) -> GatewayStandin:
        sock = _bind(self.host, self._port)
        port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        self._server = uvicorn.Server(_uvicorn_config(self.app, self.host, port))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="gateway-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway stand-in did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> GatewayStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StandinProcess:
    """The stand-in as a child process (``python -m tests.support.gateway_standin``).

    For benchmarks: the server then has a core of its own. Counts come over HTTP.
    """

    def __init__(self, *, port: int = 0, args: Iterable[str] = ()) -> None:
        self._port = port
        self._args = list(args)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> StandinProcess:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "tests.support.gateway_standin", "--port", str(self._port)),
                *self._args,
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"gateway stand-in did not start: {line!r}")
        self.url = line.removeprefix("listening on ").strip()
        return self

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_standin/stats").json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_standin/reset").raise_for_status()

    def behave(self, to: str | None = None, **spec: Any) -> None:
        httpx.post(f"{self.url}/_standin/behave", json={"to": to, **spec}).raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
        self.process = None

    def __enter__(self) -> StandinProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: StandinApp, host: str, port: int, log_level: str = "warning") -> Any:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=1,
        backlog=2048,
    )


async def bench_httpx(url: str, sends: int, concurrency: int, clients: int = 1) -> float:
    """Post ``sends`` generic JSON sends to ``url`` from ``concurrency`` tasks; answers req/s.

    The tasks share ``clients`` httpx.AsyncClients (keep-alive, pool as large as the tasks
    that share it), as a dispatcher would share one.
    """
    per_client = max(1, concurrency // clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    pool = [httpx.AsyncClient(limits=limits, timeout=60) for _ in range(clients)]
    numbers = iter(range(sends))

    async def worker(http: httpx.AsyncClient) -> None:
        for n in numbers:
            body = {"to": f"+8801{n:09d}", "text": "Your balance is 84.50", "reference": f"b-{n}"}
            response = await http.post(f"{url}/sms", json=body)
            response.raise_for_status()

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(pool[k % clients]) for k in range(concurrency)))
    finally:
        for http in pool:
            await http.aclose()
    return sends / (time.perf_counter() - started)


def bench(sends: int, concurrency: int, clients: int) -> None:
    """Start the stand-in as its own process and measure what an httpx loop gets from it."""
    with StandinProcess() as standin:
        rate = asyncio.run(bench_httpx(standin.url, sends, concurrency, clients))
        stats = standin.stats()
    print(
        f"{sends} JSON sends, {concurrency} concurrent over {clients} AsyncClient(s): "
        f"{rate:,.0f} requests/s; stand-in counted {json.dumps(stats)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMS provider stand-in (tests, benchmarks)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--twilio-sid", default=TWILIO_SID)
    parser.add_argument("--twilio-token", default=TWILIO_TOKEN)
    parser.add_argument("--sms-token", default=None, help="require this bearer token on /sms")
    parser.add_argument("--to-field", default="to")
    parser.add_argument("--reference-field", default="reference")
    parser.add_argument(
        "--keep", type=int, default=10_000, help="requests kept for inspection (counts are exact)"
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--bench",
        type=int,
        metavar="SENDS",
        help="instead of serving: start a stand-in process and time an httpx loop against it",
    )
    parser.add_argument("--concurrency", type=int, default=200, help="with --bench")
    parser.add_argument("--clients", type=int, default=1, help="with --bench")
    args = parser.parse_args(argv)
    if args.bench:
        bench(args.bench, args.concurrency, args.clients)
        return
    state = StandinState(
        twilio_sid=args.twilio_sid,
        twilio_token=args.twilio_token,
        sms_token=args.sms_token,
        to_field=args.to_field,
        reference_field=args.reference_field,
        keep=args.keep,
    )
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(StandinApp(state), args.host, port, args.log_level))
    print(f"listening on http://{args.host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


__all__ = [
    "TWILIO_SID",
    "TWILIO_TOKEN",
    "Behaviour",
    "GatewayStandin",
    "Received",
    "StandinApp",
    "StandinProcess",
    "StandinState",
    "bench_httpx",
    "main",
    "twilio_signature",
]

if __name__ == "__main__":
    main()
