"""Channel types by name, building channels from stored settings, and `env:` secrets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from meterline.channels.base import (
    REDACTED,
    Channel,
    ChannelConfig,
    ChannelConfigError,
    parse_retry_after,
    redact,
    resolve_env_reference,
    secrets_equal,
)
from meterline.channels.inapp import InAppChannel
from meterline.channels.registry import (
    CHANNEL_TYPES,
    UnknownChannelType,
    build_channel,
    channel_type,
)
from meterline.channels.sandbox import SandboxChannel
from meterline.channels.smpp import SmppChannel
from meterline.channels.sms_http import SmsHttpChannel
from meterline.channels.telegram import TelegramChannel
from meterline.channels.twilio import TwilioChannel
from meterline.channels.webpush import WebPushChannel
from meterline.channels.whatsapp_cloud import WhatsAppCloudChannel

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "s3cret-token-value"


def test_every_type_is_registered_under_its_own_name() -> None:
    assert {
        "sandbox": SandboxChannel,
        "inapp": InAppChannel,
        "sms_http": SmsHttpChannel,
        "twilio": TwilioChannel,
        "telegram": TelegramChannel,
        "webpush": WebPushChannel,
        "whatsapp_cloud": WhatsAppCloudChannel,
        "smpp": SmppChannel,
    } == CHANNEL_TYPES
    for name, cls in CHANNEL_TYPES.items():
        assert cls.type_name == name
        assert issubclass(cls.Config, ChannelConfig)
    assert InAppChannel.address_kind == "consumer"
    assert SandboxChannel.address_kind == "phone"
    assert TelegramChannel.address_kind == "telegram"
    assert WebPushChannel.address_kind == "webpush"


def test_an_unknown_type_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownChannelType) as caught:
        channel_type("whatsup")
    assert str(caught.value) == (
        "unknown channel type 'whatsup'; valid types: inapp, sandbox, smpp, sms_http, telegram,"
        " twilio, webpush, whatsapp_cloud"
    )
    assert isinstance(caught.value, ChannelConfigError)
    assert isinstance(caught.value, LookupError)
    with pytest.raises(UnknownChannelType):
        build_channel("whatsup", {}, None)


@pytest.mark.parametrize(
    ("type_name", "config"),
    [
        ("sandbox", {}),
        ("inapp", {}),
        ("sms_http", {"url": "https://gw.example/send"}),
        ("twilio", {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15005550006"}),
    ],
)
def test_building_each_type(type_name: str, config: dict[str, object]) -> None:
    channel = build_channel(type_name, config, None)
    assert isinstance(channel, CHANNEL_TYPES[type_name])
    assert isinstance(channel.config, CHANNEL_TYPES[type_name].Config)


def test_a_channel_without_an_http_client_says_so() -> None:
    channel = build_channel("sms_http", {"url": "https://gw.example/send"}, None)
    with pytest.raises(RuntimeError, match=r"needs an httpx\.AsyncClient"):
        channel.require_http()


def test_invalid_settings_name_every_field_and_quote_no_value() -> None:
    with pytest.raises(ChannelConfigError) as caught:
        build_channel(
            "twilio",
            {"account_sid": TOKEN, "auth_token": TOKEN, "api_key": TOKEN, "from_number": 5},
            None,
        )
    text = str(caught.value)
    assert text.startswith("twilio channel settings are invalid: ")
    assert "account_sid: String should match pattern" in text
    assert "api_key: Extra inputs are not permitted" in text
    assert "from_number: Input should be a valid string" in text
    assert TOKEN not in text
    assert caught.value.__cause__ is None  # pydantic's error (with inputs) is not chained


def test_pydantic_errors_themselves_hide_inputs() -> None:
    with pytest.raises(ValidationError) as caught:
        TwilioChannel.Config.model_validate({"account_sid": TOKEN, "auth_token": TOKEN})
    assert TOKEN not in str(caught.value)


# -- env: secrets --------------------------------------------------------------------------


class Sample(ChannelConfig):
    token: SecretStr
    maybe: SecretStr | None = None
    many: dict[str, SecretStr] = {}  # noqa: RUF012 (pydantic copies defaults)
    plain: str = "x"


def test_env_secrets_are_resolved_at_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_TOKEN", "from-env-1")
    monkeypatch.setenv("ML_OTHER", "from-env-2")
    config = Sample.model_validate(
        {
            "token": "env:ML_TOKEN",
            "maybe": SecretStr("env:ML_OTHER"),
            "many": {"a": "env:ML_TOKEN", "b": "literal"},
            "plain": "env:ML_TOKEN",  # not a secret field: kept as written
        }
    )
    assert config.token.get_secret_value() == "from-env-1"
    assert config.maybe is not None and config.maybe.get_secret_value() == "from-env-2"
    assert {k: v.get_secret_value() for k, v in config.many.items()} == {
        "a": "from-env-1",
        "b": "literal",
    }
    assert config.plain == "env:ML_TOKEN"
    assert sorted(config.secret_values()) == ["from-env-1", "from-env-1", "from-env-2", "literal"]
    for text in (repr(config), str(config), config.model_dump_json()):
        assert "from-env" not in text


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("env:ML_MISSING", "environment variable ML_MISSING is not set"),
        ("env:ML_EMPTY", "environment variable ML_EMPTY is empty"),
        ("env:", "env: without a variable name"),
    ],
)
def test_a_missing_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.delenv("ML_MISSING", raising=False)
    monkeypatch.setenv("ML_EMPTY", "")
    with pytest.raises(ValidationError, match=says) as caught:
        Sample.model_validate({"token": value})
    assert caught.value.errors()[0]["loc"] == ("token",)
    with pytest.raises(ChannelConfigError, match=f"auth_token: Value error, {says}"):
        build_channel(
            "twilio",
            {"account_sid": SID, "auth_token": value, "from_number": "+15005550006"},
            None,
        )


def test_resolve_env_reference_takes_an_environment() -> None:
    assert resolve_env_reference("env:A", {"A": "1"}) == "1"
    assert resolve_env_reference("plain", {}) == "plain"


# -- helpers -------------------------------------------------------------------------------


def test_secrets_equal() -> None:
    assert secrets_equal("abc", SecretStr("abc"))
    assert secrets_equal(b"abc", "abc")
    assert not secrets_equal("abd", SecretStr("abc"))
    assert not secrets_equal(None, SecretStr("abc"))
    assert not secrets_equal("", SecretStr(""))  # nothing configured never matches
    assert not secrets_equal("abc", None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        (None, None),
        ("-3", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


@given(st.text(), st.text(min_size=1).filter(lambda s: "*" not in s), st.text())
def test_redact_removes_every_occurrence(before: str, secret: str, after: str) -> None:
    text = redact(before + secret + after + secret, [secret])
    assert secret not in text
    assert REDACTED in text


def test_base_channel_defaults() -> None:
    class Bare(Channel):
        type_name = "bare"
        Config = ChannelConfig

    assert Bare.outcome_of("x").value == "give_up"
    assert "Bare" in repr(Bare(ChannelConfig()))
