"""The Twilio adapter over real HTTP, against the gateway stand-in's Twilio endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

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
from meterline.channels.twilio import TwilioChannel, twilio_signature
from tests.support.gateway_standin import GatewayStandin
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

TO = "+919812345678"
FROM = "+15005550006"
SERVICE = "MG" + "a" * 32


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


def config(gw: GatewayStandin, **overrides: Any) -> dict[str, Any]:
    return {
        "account_sid": gw.twilio_sid,
        "auth_token": gw.twilio_token,
        "from_number": FROM,
        "base_url": gw.url,
    } | overrides


def twilio(
    gw: GatewayStandin, http: httpx.AsyncClient | None = None, **overrides: Any
) -> TwilioChannel:
    built = build_channel("twilio", config(gw, **overrides), http)
    assert isinstance(built, TwilioChannel)
    return built


def message(callback_url: str | None = None, to: str = TO) -> OutboundMessage:
    return OutboundMessage(
        message_id=5,
        reference="msg-5-xyz",
        to=to,
        body="Balance low: ₹84.50. Recharge: https://pay.example/r/5",
        kind="low_balance",
        language="en",
        callback_url=callback_url,
    )


async def send(
    gw: GatewayStandin, msg: OutboundMessage | None = None, **overrides: Any
) -> SendResult:
    async with httpx.AsyncClient() as http:
        return await twilio(gw, http, **overrides).send(msg or message())


# -- sending -------------------------------------------------------------------------------


async def test_a_send_is_accepted_with_twilios_sid(gw: GatewayStandin) -> None:
    result = await send(gw, message(callback_url="https://hub.example/twilio/status/3"))
    assert result.outcome is Outcome.accepted
    [got] = gw.received
    assert result.provider_message_id == got.message_id
    assert result.provider_message_id is not None and result.provider_message_id.startswith("SM")
    assert got.path == f"/2010-04-01/Accounts/{gw.twilio_sid}/Messages.json"
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    basic = base64.b64encode(f"{gw.twilio_sid}:{gw.twilio_token}".encode()).decode()
    assert got.headers["authorization"] == f"Basic {basic}"
    assert got.fields == {
        "To": TO,
        "Body": "Balance low: ₹84.50. Recharge: https://pay.example/r/5",
        "From": FROM,
        "StatusCallback": "https://hub.example/twilio/status/3",
    }


async def test_a_messaging_service_sends_without_from(gw: GatewayStandin) -> None:
    result = await send(gw, from_number=None, messaging_service_sid=SERVICE)
    assert result.outcome is Outcome.accepted
    assert gw.received[-1].fields == {
        "To": TO,
        "Body": message().body,
        "MessagingServiceSid": SERVICE,
    }


async def test_wrong_credentials_are_a_config_error_without_the_token(gw: GatewayStandin) -> None:
    wrong = "f" * 32
    with pytest.raises(ChannelConfigError) as caught:
        await send(gw, auth_token=wrong)
    assert str(caught.value) == "Twilio refused our credentials (HTTP 401, error 20003)"
    assert wrong not in repr(caught.value)
    with pytest.raises(ChannelConfigError):
        await send(gw, account_sid="AC" + "0" * 32)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (21211, Outcome.give_up),
        (21614, Outcome.fallback),
        (21610, Outcome.give_up),
        (21408, Outcome.give_up),
        (21612, Outcome.fallback),
        (30001, Outcome.retry),
        (30003, Outcome.fallback),
        (30005, Outcome.give_up),
        (30006, Outcome.fallback),
        (30007, Outcome.give_up),
        (30008, Outcome.retry),
        (21999, Outcome.give_up),  # unknown: never retried blindly
    ],
)
async def test_twilio_error_codes_go_through_the_table(
    gw: GatewayStandin, code: int, outcome: Outcome
) -> None:
    gw.behave(TO, status=400, code=code, text=f"error {code}")
    assert await send(gw) == SendResult(outcome, error_code=str(code), error_text=f"error {code}")


@pytest.mark.parametrize(("code", "says"), [(20003, "credentials"), (21606, "From number")])
async def test_account_level_codes_are_config_errors(
    gw: GatewayStandin, code: int, says: str
) -> None:
    gw.behave(status=400, code=code, text="nope")
    with pytest.raises(ChannelConfigError, match=says):
        await send(gw)


async def test_throttling_is_retried_after_retry_after(gw: GatewayStandin) -> None:
    gw.rate_limit(retry_after=3, times=1)
    limited = await send(gw)
    assert (limited.outcome, limited.error_code, limited.retry_after) == (Outcome.retry, "20429", 3)
    gw.behave(status=400, code=20429, times=1)
    assert (await send(gw)).outcome is Outcome.retry
    assert (await send(gw)).outcome is Outcome.accepted


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retried(gw: GatewayStandin, status: int) -> None:
    gw.fail_next(1, status=status)
    failed = await send(gw)
    assert failed.outcome is Outcome.retry
    assert (await send(gw)).outcome is Outcome.accepted


async def test_a_slow_twilio_is_retried(gw: GatewayStandin) -> None:
    gw.slow(1.0, times=1)
    result = await send(gw, timeout_s=0.2)
    assert (result.outcome, result.error_code) == (Outcome.retry, "timeout")
    assert result.error_text is not None and "0.2 s" in result.error_text


async def test_a_refused_connection_is_retried(gw: GatewayStandin) -> None:
    port = free_port()
    result = await send(gw, base_url=f"http://127.0.0.1:{port}")
    assert (result.outcome, result.error_code) == (Outcome.retry, "connection")


async def test_a_2xx_without_a_sid_gives_up(gw: GatewayStandin) -> None:
    gw.behave(status=201, body={"status": "queued"})
    result = await send(gw)
    assert (result.outcome, result.error_code) == (Outcome.give_up, "no_sid")


# -- the signature ---------------------------------------------------------------------------


def test_the_signature_matches_twilios_published_example() -> None:
    # https://www.twilio.com/docs/usage/webhooks/webhooks-security: auth token 12345.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "To": "+18005551212",
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+12349013030",
        "Caller": "+12349013030",
    }
    published = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature("12345", url, params.items()) == published
    # The same, spelled out by hand: URL, then each name and value in name order.
    data = (
        url
        + "CallSidCA1234567890ABCDE"
        + "Caller+12349013030"
        + "Digits1234"
        + "From+12349013030"
        + "To+18005551212"
    )
    by_hand = base64.b64encode(hmac.new(b"12345", data.encode(), hashlib.sha1).digest())
    assert by_hand.decode() == published


def test_the_adapter_checks_the_published_example_as_a_request() -> None:
    channel = build_channel(
        "twilio",
        {"account_sid": "AC" + "1" * 32, "auth_token": "12345", "from_number": FROM},
        None,
    )
    body = urlencode(
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+12349013030",
            "Digits": "1234",
            "From": "+12349013030",
            "To": "+18005551212",
            # A status callback's own fields would follow; the example has none.
        }
    ).encode()
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    headers = {"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}
    request = CallbackRequest("POST", url, headers, {"foo": "1", "bar": "2"}, body)
    with pytest.raises(BadCallback, match="no MessageSid"):  # authentic, but not a status
        channel.parse_callback(request)
    # The same request on an explicit default port is accepted too, as Twilio's libraries do.
    on_port = CallbackRequest("POST", url.replace(".com/", ".com:443/"), headers, {}, body)
    with pytest.raises(BadCallback):
        channel.parse_callback(on_port)
    tampered = CallbackRequest("POST", url, headers, {}, body.replace(b"1234", b"9999"))
    with pytest.raises(ForgedCallback):
        channel.parse_callback(tampered)
    other_query = CallbackRequest("POST", url.replace("bar=2", "bar=3"), headers, {}, body)
    with pytest.raises(ForgedCallback):
        channel.parse_callback(other_query)


# -- status callbacks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("sent", DeliveryStatus.sent),
        ("delivered", DeliveryStatus.delivered),
        ("read", DeliveryStatus.read),
    ],
)
def test_signed_callbacks_are_parsed(
    gw: GatewayStandin, status: str, expected: DeliveryStatus
) -> None:
    sid = "SM" + "b" * 32
    response = gw.send_status(gw.inbox_url("twilio?account=3"), sid, status, style="twilio")
    assert response.status_code == 200
    request = gw.inbox[-1].callback_request()
    assert request.url.endswith("/_standin/inbox/twilio?account=3")
    assert twilio(gw).parse_callback(request) == [StatusUpdate(sid, expected)]


@pytest.mark.parametrize("status", ["queued", "accepted", "scheduled", "sending"])
def test_interim_statuses_update_nothing(gw: GatewayStandin, status: str) -> None:
    gw.send_status(gw.inbox_url(), "SM1", status, style="twilio")
    assert twilio(gw).parse_callback(gw.inbox[-1].callback_request()) == []


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        ("undelivered", 30003, Outcome.fallback),
        ("undelivered", 30006, Outcome.fallback),
        ("failed", 30008, Outcome.retry),
        ("failed", 30007, Outcome.give_up),
        ("failed", None, Outcome.give_up),
    ],
)
def test_failures_carry_the_error_tables_outcome(
    gw: GatewayStandin, status: str, code: int | None, outcome: Outcome
) -> None:
    gw.send_status(gw.inbox_url(), "SM2", status, style="twilio", error_code=code)
    [update] = twilio(gw).parse_callback(gw.inbox[-1].callback_request())
    assert update == StatusUpdate(
        "SM2",
        DeliveryStatus.failed,
        error_code=None if code is None else str(code),
        error_text=f"Twilio reported {status!r}",
        outcome=outcome,
    )


def test_a_forged_signature_is_refused(gw: GatewayStandin) -> None:
    gw.send_status(gw.inbox_url(), "SM3", "delivered", style="twilio", forge=True)
    with pytest.raises(ForgedCallback):
        twilio(gw).parse_callback(gw.inbox[-1].callback_request())


def test_a_callback_for_another_token_or_without_a_signature_is_refused(
    gw: GatewayStandin,
) -> None:
    gw.send_status(gw.inbox_url(), "SM3", "delivered", style="twilio")
    request = gw.inbox[-1].callback_request()
    with pytest.raises(ForgedCallback):
        twilio(gw, auth_token="another-token").parse_callback(request)
    unsigned = CallbackRequest(request.method, request.url, {}, request.query, request.body)
    with pytest.raises(ForgedCallback):
        twilio(gw).parse_callback(unsigned)
    moved = CallbackRequest(
        request.method, request.url + "x", request.headers, request.query, request.body
    )
    with pytest.raises(ForgedCallback):
        twilio(gw).parse_callback(moved)


def test_an_unknown_status_is_a_bad_callback_naming_it(gw: GatewayStandin) -> None:
    gw.send_status(gw.inbox_url(), "SM4", "teleported", style="twilio")
    with pytest.raises(BadCallback, match="unknown status 'teleported' in field 'MessageStatus'"):
        twilio(gw).parse_callback(gw.inbox[-1].callback_request())


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"account_sid": "AC123"}, "account_sid: String should match pattern"),
        ({"from_number": None}, "set from_number or messaging_service_sid"),
        ({"base_url": "api.twilio.com"}, "base_url: Value error, must be an http"),
        ({"auth_token": None}, "auth_token: Input should be a valid string"),
    ],
)
def test_bad_settings_are_named(gw: GatewayStandin, overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ChannelConfigError, match=says) as caught:
        build_channel("twilio", config(gw, **overrides), None)
    assert gw.twilio_token not in str(caught.value)


def test_the_token_can_come_from_the_environment(
    gw: GatewayStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", gw.twilio_token)
    channel = twilio(gw, auth_token="env:TWILIO_AUTH_TOKEN")
    assert channel.config.auth_token.get_secret_value() == gw.twilio_token
    assert gw.twilio_token not in repr(channel)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    with pytest.raises(
        ChannelConfigError, match="environment variable TWILIO_AUTH_TOKEN is not set"
    ):
        twilio(gw, auth_token="env:TWILIO_AUTH_TOKEN")
