"""The WhatsApp Cloud API adapter over real HTTP, against the WhatsApp stand-in.

Sends: free text inside the customer-service window, the kind's template outside it (the
exact JSON Meta receives), and every error code's outcome. Webhooks: posted by the
stand-in, signed as Meta signs them, received over HTTP by the gateway stand-in's inbox and
handed to ``parse_callback`` / ``parse_inbound`` exactly as they arrived.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from meterline.channels.base import (
    BadCallback,
    CallbackRequest,
    ChannelConfigError,
    DeliveryStatus,
    ForgedCallback,
    InboundMessage,
    OutboundMessage,
    Outcome,
    SendResult,
    StatusUpdate,
)
from meterline.channels.registry import build_channel
from meterline.channels.whatsapp_cloud import WhatsAppCloudChannel, hub_signature
from tests.support.gateway_standin import GatewayStandin
from tests.support.ports import free_port
from tests.support.whatsapp_standin import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    Template,
    WhatsAppStandin,
    envelope,
    status_item,
)

pytestmark = pytest.mark.anyio

TO = "+919812345678"
WA_TO = "919812345678"
NOW = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
VERIFY = "verify-me-please"
DUES_DATA = {
    "account": "ALG-1001",
    "amount": 125050,
    "due_date": "2026-03-15",
    "pay_url": "https://pay.example/p/Xy7Qk2",
}
TEMPLATES = [
    Template("dues_reminder_v2", "en_US", body_params=3, url_button=True),
    Template("dues_reminder_v2", "hi", body_params=3, url_button=True),
    Template("low_balance_alert", "en", body_params=2),
    Template("zero_balance_alert", "en_US", body_params=1, status="PAUSED"),
    Template("tamper_alert", "en_US", body_params=1, status="DISABLED"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def standin() -> Iterator[WhatsAppStandin]:
    with WhatsAppStandin(templates=TEMPLATES) as wa:
        yield wa


@pytest.fixture
def wa(standin: WhatsAppStandin) -> WhatsAppStandin:
    standin.reset()
    return standin


@pytest.fixture(scope="module")
def hooks() -> Iterator[GatewayStandin]:
    """Where webhooks land over HTTP (the gateway stand-in's recording inbox)."""
    with GatewayStandin() as gw:
        yield gw


def config(wa: WhatsAppStandin, **overrides: Any) -> dict[str, Any]:
    return {
        "graph_url": wa.graph_url,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "country": "IN",
        "currency": "INR",
        "timezone": "Asia/Kolkata",
        "languages": {"en": "en_US"},
        "templates": {
            "dues_reminder": {
                "name": "dues_reminder_v2",
                "body": ["account", "amount", "due_date"],
                "url_button": {"variable": "pay_url", "strip_prefix": "https://pay.example/p/"},
            },
            "low_balance": {
                "name": "low_balance_alert",
                "languages": {"en": "en"},
                "body": ["account", "balance"],
            },
            "zero_balance": {"name": "zero_balance_alert", "body": ["account"]},
            "tamper": {"name": "tamper_alert", "body": ["meter"]},
        },
    } | overrides


def channel(wa: WhatsAppStandin, http: httpx.AsyncClient | None = None, **overrides: Any):  # type: ignore[no-untyped-def]
    built = build_channel("whatsapp_cloud", config(wa, **overrides), http)
    assert isinstance(built, WhatsAppCloudChannel)
    built.clock = lambda: NOW
    return built


def message(
    kind: str = "dues_reminder",
    *,
    data: dict[str, Any] | None = None,
    last_inbound: datetime | None = None,
    language: str = "en",
    to: str = TO,
    body: str = "Dues of ₹1,250.50 on ALG-1001 by 15 Mar 2026. Pay: https://pay.example/p/Xy7Qk2",
) -> OutboundMessage:
    details = {"wa_last_inbound_at": last_inbound.isoformat()} if last_inbound else {}
    return OutboundMessage(
        message_id=7,
        reference="ml-1-7",
        to=to,
        body=body,
        kind=kind,
        language=language,
        extra={"data": DUES_DATA if data is None else data, "details": details},
    )


async def send(wa: WhatsAppStandin, msg: OutboundMessage, **overrides: Any) -> SendResult:
    async with httpx.AsyncClient() as http:
        return await channel(wa, http, **overrides).send(msg)


# -- text or template ----------------------------------------------------------------------


async def test_inside_the_window_the_rendered_text_goes_as_free_text(wa: WhatsAppStandin) -> None:
    result = await send(wa, message(last_inbound=NOW - timedelta(hours=3)))
    assert result.outcome is Outcome.accepted
    assert result.provider_message_id and result.provider_message_id.startswith("wamid.")
    [request] = wa.received
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_TO,
        "type": "text",
        "text": {
            "preview_url": False,
            "body": "Dues of ₹1,250.50 on ALG-1001 by 15 Mar 2026. Pay: https://pay.example/p/Xy7Qk2",
        },
    }


async def test_outside_the_window_the_kinds_template_goes_with_its_parameters(
    wa: WhatsAppStandin,
) -> None:
    result = await send(wa, message())
    assert result.outcome is Outcome.accepted
    assert wa.received[0].json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_TO,
        "type": "template",
        "template": {
            "name": "dues_reminder_v2",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "ALG-1001"},
                        {"type": "text", "text": "₹1,250.50"},
                        {"type": "text", "text": "15 Mar 2026"},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "Xy7Qk2"}],
                },
            ],
        },
    }


async def test_template_parameters_are_formatted_in_the_recipients_language(
    wa: WhatsAppStandin,
) -> None:
    result = await send(wa, message(language="hi"))
    assert result.outcome is Outcome.accepted
    template = wa.received[0].json()["template"]
    assert template["language"] == {"code": "hi"}
    assert template["components"][0]["parameters"][2] == {"type": "text", "text": "15 मार्च 2026"}


async def test_without_a_strip_prefix_the_buttons_parameter_is_the_links_last_segment(
    wa: WhatsAppStandin,
) -> None:
    templates = config(wa)["templates"]
    templates["dues_reminder"]["url_button"] = {"variable": "pay_url"}
    data = DUES_DATA | {"pay_url": "https://other.example/p/Zz9?utm=wa"}
    assert (await send(wa, message(data=data), templates=templates)).outcome is Outcome.accepted
    button = wa.received[0].json()["template"]["components"][1]
    assert button["parameters"] == [{"type": "text", "text": "Zz9"}]


@pytest.mark.parametrize(
    ("ago", "kind"),
    [
        (timedelta(minutes=5), "text"),
        (timedelta(hours=23), "text"),
        (timedelta(hours=23, minutes=50), "template"),  # inside 24 h but within the margin
        (timedelta(hours=25), "template"),
        (timedelta(hours=-1), "text"),  # a clock a little ahead of ours
    ],
)
async def test_the_window_is_24_hours_less_the_margin(
    wa: WhatsAppStandin, ago: timedelta, kind: str
) -> None:
    assert (await send(wa, message(last_inbound=NOW - ago))).outcome is Outcome.accepted
    assert wa.received[0].json()["type"] == kind


async def test_a_kind_without_a_template_outside_the_window_gives_up_naming_it(
    wa: WhatsAppStandin,
) -> None:
    result = await send(wa, message("otp", data={"code": "4711", "minutes": 5}, body="OTP 4711"))
    assert result.outcome is Outcome.give_up
    assert result.error_code == "no_template"
    assert "otp" in (result.error_text or "") and "templates.otp" in (result.error_text or "")
    assert wa.received == []  # nothing was sent


async def test_data_missing_a_template_variable_gives_up_naming_it(wa: WhatsAppStandin) -> None:
    data = {k: v for k, v in DUES_DATA.items() if k != "due_date"}
    result = await send(wa, message(data=data))
    assert result.outcome is Outcome.give_up and result.error_code == "template_data"
    assert "'due_date'" in (result.error_text or "")
    assert "dues_reminder_v2" in (result.error_text or "")
    assert wa.received == []


async def test_a_pay_link_outside_the_buttons_prefix_gives_up(wa: WhatsAppStandin) -> None:
    data = DUES_DATA | {"pay_url": "https://evil.example/p/Xy7Qk2"}
    result = await send(wa, message(data=data))
    assert result.outcome is Outcome.give_up
    assert "https://pay.example/p/" in (result.error_text or "")
    assert wa.received == []


async def test_a_re_engagement_refusal_of_free_text_resends_the_template_at_once(
    wa: WhatsAppStandin,
) -> None:
    wa.behave(TO, 131047, times=1)
    result = await send(wa, message(last_inbound=NOW - timedelta(hours=2)))
    assert result.outcome is Outcome.accepted
    assert [r.json()["type"] for r in wa.received] == ["text", "template"]


async def test_a_re_engagement_refusal_without_a_template_gives_up(wa: WhatsAppStandin) -> None:
    wa.behave(TO, 131047)
    result = await send(
        wa, message("custom", data={"text": "hi"}, last_inbound=NOW - timedelta(hours=2))
    )
    assert result.outcome is Outcome.give_up and result.error_code == "131047"
    assert "window" in (result.error_text or "")


# -- errors --------------------------------------------------------------------------------


async def test_not_on_whatsapp_in_the_answer_falls_back_and_marks_unreachable(
    wa: WhatsAppStandin,
) -> None:
    wa.behave(TO, 131026)
    result = await send(wa, message())
    assert result.outcome is Outcome.fallback
    assert result.unreachable is True
    assert result.error_code == "131026"
    assert "Message undeliverable" in (result.error_text or "")


@pytest.mark.parametrize(
    ("code", "status", "outcome", "retry_after"),
    [
        (130429, 400, Outcome.retry, 5.0),
        (131056, 400, Outcome.retry, 10.0),
        (80007, 400, Outcome.retry, 60.0),
        (4, 429, Outcome.retry, 60.0),
        (131000, 500, Outcome.retry, None),
        (131051, 400, Outcome.give_up, None),
        (100, 400, Outcome.give_up, None),
        (131049, 400, Outcome.fallback, None),
    ],
)
async def test_error_codes_go_through_the_table(
    wa: WhatsAppStandin, code: int, status: int, outcome: Outcome, retry_after: float | None
) -> None:
    wa.behave(TO, code, http_status=status)
    result = await send(wa, message())
    assert result.outcome is outcome
    assert result.error_code == str(code)
    assert result.retry_after == retry_after
    assert result.unreachable is False


async def test_an_expired_token_pauses_the_account_without_echoing_it(
    wa: WhatsAppStandin,
) -> None:
    wa.token_expired = True
    with pytest.raises(ChannelConfigError) as info:
        await send(wa, message())
    assert "access token" in str(info.value) and "190" in str(info.value)
    assert ACCESS_TOKEN not in str(info.value)


async def test_a_wrong_token_pauses_the_account(wa: WhatsAppStandin) -> None:
    with pytest.raises(ChannelConfigError, match="190"):
        await send(wa, message(), access_token="EAAwrong-token")


@pytest.mark.parametrize(("code", "says"), [(10, "permission"), (200, "permission")])
async def test_permission_errors_pause_the_account(
    wa: WhatsAppStandin, code: int, says: str
) -> None:
    wa.behave(TO, code, http_status=403)
    with pytest.raises(ChannelConfigError, match=says):
        await send(wa, message())


async def test_a_wrong_phone_number_id_pauses_the_account(wa: WhatsAppStandin) -> None:
    with pytest.raises(ChannelConfigError, match="phone_number_id"):
        await send(wa, message(), phone_number_id="999")


@pytest.mark.parametrize(
    ("kind", "data", "overrides", "code", "says"),
    [
        (
            "zero_balance",
            {"account": "A-1", "at": "2026-03-10T06:00:00+00:00"},
            {},
            "132015",
            "paused",
        ),
        (
            "tamper",
            {"account": "A-1", "meter": "M-9", "at": "2026-03-10T06:00:00+00:00"},
            {},
            "132016",
            "disabled",
        ),
        ("dues_reminder", DUES_DATA, {"languages": {"en": "en_GB"}}, "132001", "does not exist"),
    ],
)
async def test_template_refusals_give_up_naming_the_template(
    wa: WhatsAppStandin,
    kind: str,
    data: dict[str, Any],
    overrides: dict[str, Any],
    code: str,
    says: str,
) -> None:
    result = await send(wa, message(kind, data=data), **overrides)
    assert result.outcome is Outcome.give_up
    assert result.error_code == code
    text = result.error_text or ""
    assert says in text and wa.received[0].json()["template"]["name"] in text


async def test_a_parameter_count_mismatch_names_the_template(wa: WhatsAppStandin) -> None:
    templates = config(wa)["templates"]
    templates["dues_reminder"]["body"] = ["account", "amount"]
    result = await send(wa, message(), templates=templates)
    assert result.outcome is Outcome.give_up and result.error_code == "132000"
    assert "'dues_reminder_v2' (en_US)" in (result.error_text or "")
    assert "number of parameters" in (result.error_text or "")


async def test_an_echoed_secret_is_redacted(wa: WhatsAppStandin) -> None:
    wa.behave(TO, 100, details=f"token {ACCESS_TOKEN} is not valid for field x")
    result = await send(wa, message())
    assert ACCESS_TOKEN not in (result.error_text or "")
    assert "**********" in (result.error_text or "")


async def test_a_slow_graph_api_is_retried(wa: WhatsAppStandin) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    port = listener.getsockname()[1]
    try:
        result = await send(
            wa, message(), graph_url=f"http://127.0.0.1:{port}/v21.0", timeout_s=0.3
        )
    finally:
        listener.close()
    assert result.outcome is Outcome.retry and result.error_code == "timeout"


async def test_a_refused_connection_is_retried(wa: WhatsAppStandin) -> None:
    port = free_port()
    result = await send(wa, message(), graph_url=f"http://127.0.0.1:{port}/v21.0")
    assert result.outcome is Outcome.retry and result.error_code == "connection"


# -- webhooks ------------------------------------------------------------------------------


def arrived(hooks: GatewayStandin) -> CallbackRequest:
    return hooks.inbox[-1].callback_request()


@pytest.fixture
def hook_url(hooks: GatewayStandin, wa: WhatsAppStandin) -> str:
    hooks.reset()
    wa.callback_url = hooks.inbox_url("wa")
    return wa.callback_url


async def test_signed_statuses_become_updates(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    result = await send(wa, message())
    wamid = result.provider_message_id
    assert wamid
    responses = wa.flush_webhooks()
    assert [r.status_code for r in responses] == [200, 200, 200]
    ch = channel(wa)
    updates = [u for r in hooks.inbox for u in ch.parse_callback(r.callback_request())]
    assert [(u.provider_message_id, u.status) for u in updates] == [
        (wamid, DeliveryStatus.sent),
        (wamid, DeliveryStatus.delivered),
        (wamid, DeliveryStatus.read),
    ]
    assert all(u.at is not None and u.at.tzinfo is not None for u in updates)
    # A status webhook carries no customer message.
    assert ch.parse_inbound(hooks.inbox[0].callback_request()) == []


async def test_out_of_order_and_twice_is_parsed_as_it_came(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    await send(wa, message())
    wa.flush_webhooks(order="reversed", duplicate=True)
    ch = channel(wa)
    statuses = [u.status for r in hooks.inbox for u in ch.parse_callback(r.callback_request())]
    assert (
        statuses
        == [DeliveryStatus.read] * 2 + [DeliveryStatus.delivered] * 2 + [DeliveryStatus.sent] * 2
    )


async def test_not_on_whatsapp_later_is_a_failed_status_that_falls_back(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    wa.not_on_whatsapp.add(WA_TO)
    result = await send(wa, message())
    assert result.outcome is Outcome.accepted  # as the real Cloud API: accepted first
    wa.flush_webhooks()
    [update] = channel(wa).parse_callback(arrived(hooks))
    assert update.status is DeliveryStatus.failed
    assert update.provider_message_id == result.provider_message_id
    assert update.error_code == "131026"
    assert update.outcome is Outcome.fallback and update.unreachable is True
    assert (
        hooks.inbox[-1].json()["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0][
            "code"
        ]
        == 131026
    )


async def test_free_text_after_the_window_fails_later_and_gives_up(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    # Our details said the window was open; Meta's own record says not: failed by webhook.
    await send(wa, message(last_inbound=NOW - timedelta(hours=1)))
    wa.flush_webhooks()
    [update] = channel(wa).parse_callback(arrived(hooks))
    assert update.error_code == "131047"
    assert update.outcome is Outcome.give_up and update.unreachable is False


async def test_a_forged_tampered_or_unsigned_webhook_is_refused(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    payload = envelope({"statuses": [status_item("wamid.X", "delivered", WA_TO, 1773124200)]})
    ch = channel(wa)
    for kwargs in ({"signature": "forged"}, {"signature": None}, {"tamper": True}):
        wa.post(payload, **kwargs)
        with pytest.raises(ForgedCallback):
            ch.parse_callback(arrived(hooks))
        with pytest.raises(ForgedCallback):
            ch.parse_inbound(arrived(hooks))
    wa.post(payload)
    assert ch.parse_callback(arrived(hooks)) == [
        StatusUpdate(
            "wamid.X", DeliveryStatus.delivered, at=datetime.fromtimestamp(1773124200, UTC)
        )
    ]
    # Another app's secret does not verify it either.
    with pytest.raises(ForgedCallback):
        channel(wa, app_secret="another-secret").parse_callback(arrived(hooks))


async def test_a_customers_message_is_inbound(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    response = wa.post_inbound(TO, "Hello", at=1773124200)
    assert response.status_code == 200
    ch = channel(wa)
    request = arrived(hooks)
    assert ch.parse_callback(request) == []  # no statuses in it
    [inbound] = ch.parse_inbound(request)
    assert inbound == InboundMessage(
        sender=TO,
        provider_message_id=inbound.provider_message_id,
        at=datetime.fromtimestamp(1773124200, UTC),
        type="text",
        text="Hello",
    )


async def test_changes_for_another_number_are_left_alone(
    wa: WhatsAppStandin, hooks: GatewayStandin, hook_url: str
) -> None:
    other = envelope(
        {"statuses": [status_item("wamid.Y", "read", WA_TO, 1773124200)]}, phone_number_id="777"
    )
    wa.post(other)
    assert channel(wa).parse_callback(arrived(hooks)) == []


def test_a_signed_body_that_is_not_a_webhook_is_a_bad_callback(wa: WhatsAppStandin) -> None:
    ch = channel(wa)
    for body in (b"not json", b'{"object": "page"}'):
        request = CallbackRequest(
            "POST",
            "http://x/cb",
            {"x-hub-signature-256": hub_signature(APP_SECRET, body)},
            {},
            body,
        )
        with pytest.raises(BadCallback):
            ch.parse_callback(request)


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    # Computed with: printf '{"a":1}' | openssl dgst -sha256 -hmac secret
    assert hub_signature("secret", b'{"a":1}') == (
        "sha256=aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494"
    )


# -- the subscription handshake --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
            "1158201444",
        ),
        ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, None),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"}, None),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, None),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY}, None),
    ],
)
def test_the_hub_challenge_is_answered_only_for_our_verify_token(
    wa: WhatsAppStandin, query: dict[str, str], answer: str | None
) -> None:
    assert channel(wa).verify_subscription(query) == answer


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"templates": {"no_such_kind": {"name": "x"}}}, "unknown notification kind"),
        (
            {"templates": {"otp": {"name": "otp_code", "body": ["amount"]}}},
            "'amount' is not a variable of otp",
        ),
        ({"templates": {"otp": {"name": "Bad Name"}}}, "templates.otp.name"),
        ({"languages": {"de": "de"}}, "language 'de'"),
        ({"languages": {"en": "english"}}, "not a WhatsApp language code"),
        (
            {"country": None, "currency": None, "timezone": None},
            "set country, currency and timezone",
        ),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"phone_number_id": "+1555"}, "phone_number_id"),
        ({"graph_url": "ftp://graph"}, "graph_url"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_settings_are_named(wa: WhatsAppStandin, overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ChannelConfigError) as info:
        build_channel("whatsapp_cloud", config(wa, **overrides))
    assert says in str(info.value)
    assert ACCESS_TOKEN not in str(info.value)


def test_secrets_come_from_the_environment(
    wa: WhatsAppStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WA_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("WA_SECRET", APP_SECRET)
    monkeypatch.setenv("WA_VERIFY", VERIFY)
    ch = channel(
        wa, access_token="env:WA_TOKEN", app_secret="env:WA_SECRET", verify_token="env:WA_VERIFY"
    )
    assert ch.config.access_token.get_secret_value() == ACCESS_TOKEN
    assert ACCESS_TOKEN not in repr(ch)
    monkeypatch.delenv("WA_SECRET")
    with pytest.raises(ChannelConfigError, match="WA_SECRET"):
        channel(wa, app_secret="env:WA_SECRET")
