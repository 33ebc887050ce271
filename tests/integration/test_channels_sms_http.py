"""The generic HTTP SMS gateway adapter over real HTTP, against the gateway stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest

from meterline.channels.base import (
    BadCallback,
    CallbackRequest,
    ChannelConfigError,
    DeliveryStatus,
    ForgedCallback,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
)
from meterline.channels.registry import build_channel
from meterline.channels.sms_http import SmsHttpChannel
from tests.support.gateway_standin import GatewayStandin
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

TOKEN = "tok-9f8e7d6c5b4a"
SECRET = "cb-secret-123456"
TO = "+8801711000001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def standin() -> Iterator[GatewayStandin]:
    with GatewayStandin() as gw:
        yield gw


@pytest.fixture
def gw(standin: GatewayStandin) -> GatewayStandin:
    standin.reset()
    return standin


def message(
    reference: str = "msg-1-abc", to: str = TO, callback_url: str | None = None
) -> OutboundMessage:
    return OutboundMessage(
        message_id=1,
        reference=reference,
        to=to,
        body="আপনার বকেয়া ৳1,250",
        kind="dues_reminder",
        language="bn",
        callback_url=callback_url,
    )


# Every test runs twice: through httpx (how other callers build the adapter) and through
# an aiohttp session handed over as Channel.aio (the dispatcher's lean path).
_CLIENT = {"kind": "httpx"}


@pytest.fixture(autouse=True, params=["httpx", "aiohttp"])
def client_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    _CLIENT["kind"] = request.param
    yield request.param
    _CLIENT["kind"] = "httpx"


@asynccontextmanager
async def client() -> AsyncIterator[httpx.AsyncClient | aiohttp.ClientSession]:
    if _CLIENT["kind"] == "aiohttp":
        async with aiohttp.ClientSession() as session:
            yield session
    else:
        async with httpx.AsyncClient() as http:
            yield http


def channel(
    http: httpx.AsyncClient | aiohttp.ClientSession | None, **config: Any
) -> SmsHttpChannel:
    if isinstance(http, aiohttp.ClientSession):
        built = build_channel("sms_http", config, None, http)
    else:
        built = build_channel("sms_http", config, http)
    assert isinstance(built, SmsHttpChannel)
    return built


async def send(config: dict[str, Any], msg: OutboundMessage | None = None) -> SendResult:
    async with client() as http:
        return await channel(http, **config).send(msg or message())


# -- sending -------------------------------------------------------------------------------


async def test_json_send_is_accepted_with_the_gateways_id(gw: GatewayStandin) -> None:
    result = await send(
        {
            "url": gw.sms_url,
            "sender": "DESCO",
            "extra_fields": {"route": "transactional"},
            "secret_fields": {"api_key": "body-key-77"},
        }
    )
    assert result.outcome is Outcome.accepted
    [got] = gw.received
    assert result.provider_message_id == got.message_id
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {
        "route": "transactional",
        "api_key": "body-key-77",
        "from": "DESCO",
        "to": TO,
        "text": "আপনার বকেয়া ৳1,250",
        "reference": "msg-1-abc",
    }


async def test_form_send_uses_the_configured_field_names_and_token(gw: GatewayStandin) -> None:
    config = {
        "url": gw.sms_url,
        "body_format": "form",
        "to_field": "msisdn",
        "text_field": "message",
        "sender_field": "sender_id",
        "sender": "8809612345678",
        "reference_field": "client_ref",
        "callback_field": "dlr_url",
        "callback_secret": SECRET,
        "auth_header": "X-Api-Key",
        "auth_token": TOKEN,
        "auth_scheme": "",
    }
    result = await send(config, message(callback_url="https://hub.example/cb/7"))
    assert result.outcome is Outcome.accepted
    [got] = gw.received
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.headers["x-api-key"] == TOKEN
    assert got.fields == {
        "sender_id": "8809612345678",
        "msisdn": TO,
        "message": "আপনার বকেয়া ৳1,250",
        "client_ref": "msg-1-abc",
        "dlr_url": "https://hub.example/cb/7",  # secret in a header: the URL stays as given
    }


async def test_a_key_header_and_basic_auth_are_both_sent() -> None:
    with GatewayStandin(
        sms_token=TOKEN,
        sms_auth_header="X-Api-Key",
        sms_auth_scheme="",
        sms_basic=("desco", "pw-1"),
    ) as gw:
        config = {
            "url": gw.sms_url,
            "auth_header": "X-Api-Key",
            "auth_token": TOKEN,
            "auth_scheme": "",
            "basic_user": "desco",
            "basic_password": "pw-1",
        }
        assert (await send(config)).outcome is Outcome.accepted
        [got] = gw.received
        assert got.headers["x-api-key"] == TOKEN
        assert got.headers["authorization"] == "Basic ZGVzY286cHctMQ=="  # desco:pw-1
        with pytest.raises(ChannelConfigError):
            await send(config | {"basic_password": "pw-2"})


async def test_token_header_is_checked_by_the_gateway() -> None:
    with GatewayStandin(sms_token=TOKEN) as gw:
        good = await send({"url": gw.sms_url, "auth_header": "Authorization", "auth_token": TOKEN})
        assert good.outcome is Outcome.accepted
        assert gw.received[-1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_refused_credentials_are_a_config_error_that_never_shows_the_token() -> None:
    wrong = "wrong-token-0xDEADBEEF"
    with GatewayStandin(sms_token=TOKEN) as gw:
        with pytest.raises(ChannelConfigError) as caught:
            await send({"url": gw.sms_url, "auth_header": "Authorization", "auth_token": wrong})
        assert str(caught.value) == "gateway refused our credentials (HTTP 401)"
        assert wrong not in repr(caught.value)
        assert gw.stats()["errors"] == 1


async def test_403_is_a_config_error_too(gw: GatewayStandin) -> None:
    gw.behave(status=403, code="forbidden", text=f"key {TOKEN} is disabled")
    with pytest.raises(ChannelConfigError, match=r"HTTP 403") as caught:
        await send({"url": gw.sms_url, "auth_header": "X-Key", "auth_token": TOKEN})
    assert TOKEN not in str(caught.value)


async def test_the_gateway_dedupes_on_our_reference(gw: GatewayStandin) -> None:
    async with client() as http:
        sms = channel(http, url=gw.sms_url)
        first = await sms.send(message("msg-42"))
        again = await sms.send(message("msg-42"))
        other = await sms.send(message("msg-43"))
    assert first.outcome is again.outcome is Outcome.accepted
    assert first.provider_message_id == again.provider_message_id
    assert other.provider_message_id != first.provider_message_id
    assert gw.stats() | {} == {
        "requests": 3,
        "sent": 2,
        "duplicates": 1,
        "errors": 0,
        "sms": 2,
        "twilio": 0,
        "inbox": 0,
    }
    assert [r.duplicate for r in gw.received] == [False, True, False]


async def test_a_late_answer_is_retried_and_the_resend_is_a_duplicate(gw: GatewayStandin) -> None:
    gw.slow(1.0, times=1)  # the gateway takes the message, then answers too late
    async with client() as http:
        sms = channel(http, url=gw.sms_url, timeout_s=0.2)
        late = await sms.send(message("msg-7"))
        resend = await sms.send(message("msg-7"))
    assert late.outcome is Outcome.retry
    assert late.error_code == "timeout"
    assert late.error_text is not None and "did not answer within 0.2 s" in late.error_text
    assert resend.outcome is Outcome.accepted
    stats = gw.stats()
    assert (stats["sent"], stats["duplicates"]) == (1, 1)


async def test_429_is_retried_after_the_gateways_retry_after(gw: GatewayStandin) -> None:
    gw.rate_limit(retry_after=7, times=1)
    limited = await send({"url": gw.sms_url})
    assert limited == SendResult(
        Outcome.retry, error_code="throttled", error_text="stand-in answers HTTP 429", retry_after=7
    )
    assert (await send({"url": gw.sms_url})).outcome is Outcome.accepted


async def test_429_without_retry_after_and_without_a_body_code(gw: GatewayStandin) -> None:
    gw.behave(status=429, body="slow down", times=1)
    result = await send({"url": gw.sms_url})
    assert (result.outcome, result.error_code, result.retry_after) == (
        Outcome.retry,
        "http_429",
        None,
    )


async def test_5xx_is_retried_until_the_gateway_recovers(gw: GatewayStandin) -> None:
    gw.fail_next(2)
    async with client() as http:
        sms = channel(http, url=gw.sms_url)
        results = [await sms.send(message()) for _ in range(3)]
    assert [r.outcome for r in results] == [Outcome.retry, Outcome.retry, Outcome.accepted]
    assert results[0].error_code == "internal_error"
    gw.behave(status=503, retry_after=30, times=1)
    unavailable = await send({"url": gw.sms_url})
    assert (unavailable.outcome, unavailable.retry_after) == (Outcome.retry, 30)


async def test_a_refused_connection_is_retried() -> None:
    result = await send({"url": f"http://127.0.0.1:{free_port()}/sms"})
    assert result.outcome is Outcome.retry
    assert result.error_code == "connection"
    text = result.error_text or ""
    assert "ConnectError" in text or "ClientConnectorError" in text, text


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("invalid_number", Outcome.give_up),
        ("absent_subscriber", Outcome.fallback),
        ("throttled", Outcome.retry),
        ("E042", Outcome.retry),  # the account's override
        ("dnd", Outcome.fallback),  # an override of a default
        ("E999", Outcome.give_up),  # unknown: never retried blindly
    ],
)
async def test_4xx_codes_go_through_the_error_table(
    gw: GatewayStandin, code: str, outcome: Outcome
) -> None:
    gw.behave(TO, status=400, code=code, text="no can do")
    result = await send({"url": gw.sms_url, "errors": {"E042": "retry", "dnd": "fallback"}})
    assert result == SendResult(outcome, error_code=code, error_text="no can do")


async def test_a_4xx_without_a_code_gives_up_naming_the_status(gw: GatewayStandin) -> None:
    gw.behave(status=404, body={"detail": "no such route"})
    result = await send({"url": gw.sms_url})
    assert result.outcome is Outcome.give_up
    assert result.error_code == "http_404"
    assert result.error_text is not None and "no such route" in result.error_text
    # ... and an account can say what such a status means.
    remapped = await send({"url": gw.sms_url, "errors": {"http_404": "fallback"}})
    assert remapped.outcome is Outcome.fallback


async def test_per_destination_behaviour_leaves_other_numbers_alone(gw: GatewayStandin) -> None:
    gw.behave("+8801711999999", status=400, code="invalid_number")
    assert (await send({"url": gw.sms_url})).outcome is Outcome.accepted
    bad = await send({"url": gw.sms_url}, message(to="+8801711999999"))
    assert bad.outcome is Outcome.give_up


async def test_a_2xx_without_an_id_gives_up_saying_where_it_looked(gw: GatewayStandin) -> None:
    gw.behave(status=200, body={"ok": True})
    result = await send({"url": gw.sms_url})
    assert result.outcome is Outcome.give_up
    assert result.error_code == "no_message_id"
    assert result.error_text is not None
    assert "without a message id at 'message_id'" in result.error_text
    gw.behave(status=200, body={"status": "error", "error": {"code": "invalid_number"}})
    coded = await send({"url": gw.sms_url})
    assert (coded.outcome, coded.error_code) == (Outcome.give_up, "invalid_number")


async def test_the_id_is_read_at_a_dotted_path(gw: GatewayStandin) -> None:
    gw.behave(status=200, body={"data": {"messages": [{"id": 991, "to": TO}]}})
    result = await send({"url": gw.sms_url, "id_path": "data.messages.0.id"})
    assert (result.outcome, result.provider_message_id) == (Outcome.accepted, "991")


async def test_a_gateway_echoing_a_secret_has_it_scrubbed(gw: GatewayStandin) -> None:
    gw.behave(status=400, code="invalid_key", text=f"unknown api_key {TOKEN}")
    result = await send(
        {"url": gw.sms_url, "secret_fields": {"api_key": TOKEN}, "errors": {"invalid_key": "retry"}}
    )
    assert result.outcome is Outcome.retry
    assert result.error_text == "unknown api_key **********"


async def test_a_query_secret_rides_in_the_callback_url_we_hand_over(gw: GatewayStandin) -> None:
    config = {
        "url": gw.sms_url,
        "callback_field": "callback",
        "callback_secret": SECRET,
        "callback_secret_in": "query",
        "callback_secret_name": "key",
    }
    async with client() as http:
        sms = channel(http, **config)
        sent = await sms.send(message(callback_url=gw.inbox_url("dlr") + "?account=7"))
    assert sent.outcome is Outcome.accepted
    callback_url = gw.received[-1].fields["callback"]
    assert callback_url == gw.inbox_url("dlr") + f"?account=7&key={SECRET}"
    # The gateway calls back exactly that URL; the secret in it authenticates the call.
    assert sent.provider_message_id is not None
    gw.send_status(callback_url, sent.provider_message_id, "DELIVRD")
    [update] = sms.parse_callback(gw.inbox[-1].callback_request())
    assert update == StatusUpdate(sent.provider_message_id, DeliveryStatus.delivered)


# -- status callbacks ------------------------------------------------------------------------


def callback_channel(**config: Any) -> SmsHttpChannel:
    return channel(None, url="https://gw.example/send", callback_secret=SECRET, **config)


def test_a_json_callback_with_the_secret_header_is_parsed(gw: GatewayStandin) -> None:
    response = gw.send_status(gw.inbox_url(), "gw-17", "delivered", secret=SECRET)
    assert response.status_code == 200
    request = gw.inbox[-1].callback_request()
    assert request.headers["x-meterline-secret"] == SECRET
    assert callback_channel().parse_callback(request) == [
        StatusUpdate("gw-17", DeliveryStatus.delivered)
    ]


def test_a_json_list_callback_carries_many_updates(gw: GatewayStandin) -> None:
    gw.send_status(
        gw.inbox_url(),
        secret=SECRET,
        items=[
            {"message_id": "gw-1", "status": "sent"},
            {"message_id": "gw-2", "status": "DELIVRD"},
            {"message_id": "gw-3", "status": "queued"},  # interim: no update
            {"message_id": 4, "status": "UNDELIV", "error_code": "absent_subscriber"},
            {"message_id": "gw-5", "status": "read"},
            {"message_id": "gw-6", "status": "EXPIRED", "error_code": "E042"},
        ],
    )
    updates = callback_channel(errors={"E042": "retry"}).parse_callback(
        gw.inbox[-1].callback_request()
    )
    assert updates == [
        StatusUpdate("gw-1", DeliveryStatus.sent),
        StatusUpdate("gw-2", DeliveryStatus.delivered),
        StatusUpdate(
            "4",
            DeliveryStatus.failed,
            error_code="absent_subscriber",
            error_text="gateway reported 'UNDELIV'",
            outcome=Outcome.fallback,
        ),
        StatusUpdate("gw-5", DeliveryStatus.read),
        StatusUpdate(
            "gw-6",
            DeliveryStatus.failed,
            error_code="E042",
            error_text="gateway reported 'EXPIRED'",
            outcome=Outcome.retry,
        ),
    ]


def test_a_form_callback_with_custom_fields_and_a_query_secret(gw: GatewayStandin) -> None:
    gw.send_status(
        gw.inbox_url(),
        "gw-9",
        "REJECTD",
        style="form",
        error_code="invalid_number",
        secret=SECRET,
        secret_in="query",
        secret_name="key",
        id_field="msgid",
        status_field="dlr_status",
        error_field="err",
    )
    sms = callback_channel(
        callback_format="form",
        callback_secret_in="query",
        callback_secret_name="key",
        callback_id_field="msgid",
        callback_status_field="dlr_status",
        callback_error_field="err",
    )
    [update] = sms.parse_callback(gw.inbox[-1].callback_request())
    assert (update.provider_message_id, update.status, update.error_code, update.outcome) == (
        "gw-9",
        DeliveryStatus.failed,
        "invalid_number",
        Outcome.give_up,
    )


def test_a_query_string_callback(gw: GatewayStandin) -> None:
    httpx.get(gw.inbox_url(), params={"id": "gw-3", "stat": "OK", "secret": SECRET})
    sms = callback_channel(
        callback_format="query",
        callback_secret_in="query",
        callback_secret_name="secret",
        callback_id_field="id",
        callback_status_field="stat",
        status_map={"ok": "delivered"},
    )
    assert sms.parse_callback(gw.inbox[-1].callback_request()) == [
        StatusUpdate("gw-3", DeliveryStatus.delivered)
    ]


@pytest.mark.parametrize("secret_in", ["header", "query"])
def test_a_forged_or_missing_secret_is_refused(gw: GatewayStandin, secret_in: str) -> None:
    sms = callback_channel(callback_secret_in=secret_in)
    gw.send_status(
        gw.inbox_url(), "gw-1", "delivered", secret=SECRET, secret_in=secret_in, forge=True
    )
    with pytest.raises(ForgedCallback) as caught:
        sms.parse_callback(gw.inbox[-1].callback_request())
    assert SECRET not in str(caught.value)
    gw.send_status(gw.inbox_url(), "gw-1", "delivered")
    with pytest.raises(ForgedCallback):
        sms.parse_callback(gw.inbox[-1].callback_request())


def test_an_account_without_a_callback_secret_takes_no_callbacks() -> None:
    sms = channel(None, url="https://gw.example/send")
    request = CallbackRequest("POST", "https://hub/cb", {}, {}, b'{"message_id":"1"}')
    with pytest.raises(ForgedCallback, match="no callback_secret"):
        sms.parse_callback(request)


def test_an_unknown_status_is_a_bad_callback_naming_value_and_field() -> None:
    request = CallbackRequest(
        "POST",
        "https://hub/cb",
        {"x-meterline-secret": SECRET},
        {},
        b'[{"message_id": "a", "status": "sent"}, {"message_id": "b", "status": "WOBBLY"}]',
    )
    with pytest.raises(BadCallback) as caught:
        callback_channel().parse_callback(request)
    assert str(caught.value) == (
        "item 1: unknown status 'WOBBLY' in field 'status' (map it in status_map)"
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"status": "sent"}', "no message id in field 'message_id'"),
        (b'{"message_id": "x"}', "no status in field 'status'"),
        (b'{"message_id": ', "not valid JSON"),
        (b'"delivered"', "JSON object or a list"),
        (b'[{"message_id": "x", "status": "sent"}, 3]', "item 1 is not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_callbacks_say_what_is_wrong(body: bytes, says: str) -> None:
    request = CallbackRequest("POST", "https://hub/cb", {"x-meterline-secret": SECRET}, {}, body)
    with pytest.raises(BadCallback, match=says):
        callback_channel().parse_callback(request)


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"url": "ftp://gw.example/send"}, "url: Value error, must be an http"),
        ({"url": "https://gw/x", "auth_token": TOKEN}, "auth_header and auth_token go together"),
        ({"url": "https://gw/x", "basic_user": "u"}, "basic_user and basic_password"),
        ({"url": "https://gw/x", "callback_field": "cb"}, "callback_field needs callback_secret"),
        ({"url": "https://gw/x", "extra_fields": {"to": "x"}}, "used twice: to"),
        (
            {
                "url": "https://gw/x",
                **{"auth_header": "authorization", "auth_token": TOKEN},
                **{"basic_user": "u", "basic_password": "p"},
            },
            "HTTP basic auth uses the Authorization header",
        ),
        ({"url": "https://gw/x", "errors": {"E1": "panic"}}, "errors.E1: Input should be"),
        ({"url": "https://gw/x", "body_format": "xml"}, "body_format: Input should be"),
        ({"url": "https://gw/x", "timeout_s": 0}, "timeout_s: Input should be greater than 0"),
    ],
)
def test_bad_settings_are_named(config: dict[str, Any], says: str) -> None:
    with pytest.raises(ChannelConfigError, match=says) as caught:
        build_channel("sms_http", config, None)
    assert TOKEN not in str(caught.value)


def test_secrets_never_show_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", TOKEN)
    sms = channel(
        None,
        url="https://gw.example/send",
        auth_header="X-Api-Key",
        auth_token="env:GW_TOKEN",
        basic_user="u",
        basic_password="basic-pw-1",
        secret_fields={"api_key": "body-key-2"},
        callback_secret=SECRET,
    )
    assert sms.config.auth_token is not None
    assert sms.config.auth_token.get_secret_value() == TOKEN
    for text in (repr(sms), repr(sms.config), str(sms.config), sms.config.model_dump_json()):
        for secret in (TOKEN, "basic-pw-1", "body-key-2", SECRET):
            assert secret not in text


async def test_a_moved_gateway_is_reported_not_followed(gw: GatewayStandin) -> None:
    from aiohttp import web

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location=gw.sms_url)

    app = web.Application()
    app.router.add_post("/sms", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        result = await send({"url": f"http://{host}:{port}/sms"})
    finally:
        await runner.cleanup()
    assert (result.outcome, result.error_code) == (Outcome.give_up, "http_301")
    assert result.error_text is not None and f"(to {gw.sms_url}:" in result.error_text
    assert gw.stats()["sent"] == 0
