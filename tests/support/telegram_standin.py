"""A real HTTP server standing in for Telegram's Bot API (``sendMessage`` only).

It speaks the Bot API's wire format: ``POST /bot<token>/sendMessage`` with a JSON body,
answered ``{"ok": true, "result": <Message>}`` or ``{"ok": false, "error_code": N,
"description": "..."}`` (a 429 adds ``"parameters": {"retry_after": N}``), as recorded from
api.telegram.org. A path whose token is not the bot's is answered 401 ``Unauthorized``;
a path that is no token at all 404 ``Not Found``, as Telegram does.

Each chat id can be told how to answer: ``ok`` (default), ``blocked``, ``deactivated``,
``kicked``, ``not_found``, ``migrated``, ``too_long``, ``rate_limited`` (with
``retry_after``), ``server_error``, or ``slow`` (answers ok after ``delay`` seconds).
Every request that reached a chat is kept in ``received`` with the time it arrived.

    with TelegramStandin() as tg:
        tg.chat("555", "blocked")
        ...  # TelegramConfig(bot_token=tg.token, base_url=tg.url)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.threaded_server import ThreadedServer

TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
BOT_ID = 7123456789

# Error answers as Telegram sends them.
ERRORS: dict[str, tuple[int, str]] = {
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "deactivated": (403, "Forbidden: user is deactivated"),
    "kicked": (403, "Forbidden: bot was kicked from the group chat"),
    "not_found": (400, "Bad Request: chat not found"),
    "too_long": (400, "Bad Request: message is too long"),
    "server_error": (500, "Internal Server Error"),
}


@dataclass
class Received:
    token: str
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival


@dataclass
class ChatBehaviour:
    mode: str = "ok"
    retry_after: int = 1
    delay: float = 0.0


@dataclass
class _State:
    token: str
    chats: dict[str, ChatBehaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _error(code: int, description: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": code, "description": description, **extra}, status_code=code
    )


class TelegramStandin:
    def __init__(self, token: str = TOKEN) -> None:
        self.state = _State(token)
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])
        self.server = ThreadedServer(self.app, name="telegram-standin")

    # -- controls ------------------------------------------------------------------------

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def chat(self, chat_id: str, mode: str, *, retry_after: int = 1, delay: float = 0.0) -> None:
        self.state.chats[str(chat_id)] = ChatBehaviour(mode, retry_after, delay)

    def reset(self) -> None:
        with self.state.lock:
            self.state.chats.clear()
            self.state.received.clear()

    def texts_to(self, chat_id: str) -> list[str]:
        return [r.body["text"] for r in self.received if str(r.body.get("chat_id")) == chat_id]

    def __enter__(self) -> TelegramStandin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    # -- the Bot API ---------------------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        match = re.fullmatch(r"bot([^/]*)/(\w+)", request.path_params["path"])
        if match is None or not re.fullmatch(r"\d+:[\w-]+", match.group(1)):
            return _error(404, "Not Found")
        token, method = match.groups()
        if token != self.state.token:
            return _error(401, "Unauthorized")
        if method != "sendMessage":
            return _error(404, "Not Found: method not found")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "Bad Request: invalid JSON")
        if not isinstance(body, dict) or "chat_id" not in body:
            return _error(400, "Bad Request: chat_id is empty")
        if not body.get("text"):
            return _error(400, "Bad Request: message text is empty")
        chat = str(body["chat_id"])
        behaviour = self.state.chats.get(chat, ChatBehaviour())
        with self.state.lock:
            self.state.received.append(Received(token, body, time.monotonic()))
        if behaviour.mode == "rate_limited":
            return _error(
                429,
                f"Too Many Requests: retry after {behaviour.retry_after}",
                parameters={"retry_after": behaviour.retry_after},
            )
        if behaviour.mode == "migrated":
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                parameters={"migrate_to_chat_id": -1001234567890},
            )
        if behaviour.mode in ERRORS:
            return _error(*ERRORS[behaviour.mode])
        if behaviour.mode == "slow":
            await asyncio.sleep(behaviour.delay)
        message_id = next(self.state.ids)
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "from": {
                        "id": BOT_ID,
                        "is_bot": True,
                        "first_name": "Meterline",
                        "username": "meterline_test_bot",
                    },
                    "chat": {"id": body["chat_id"], "first_name": "Asha", "type": "private"},
                    "date": int(time.time()),
                    "text": body["text"],
                },
            }
        )
