"""Payment link codes and signatures: any change to a signed field is caught, codes are
well-formed, and the gateways' webhook parsers check the signature over the raw body."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.channels.base import CallbackRequest
from meterline.domain import payment_links as links
from meterline.payments.base import BadWebhook, ForgedWebhook
from meterline.payments.razorpay import RazorpayConfig, RazorpayGateway
from meterline.payments.registry import GatewayConfigError, build_gateway
from meterline.payments.sandbox import SandboxGateway, SandboxGatewayConfig

KEY = links.derive_key("app-secret")
ids = st.integers(min_value=1, max_value=2**53)
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
fields = st.builds(
    links.LinkFields,
    tenant_id=ids,
    code=st.text(alphabet=links.ALPHABET, min_size=10, max_size=10),
    account_id=ids,
    bill_id=ids,
    amount_minor=st.integers(min_value=1, max_value=10**15),
    currency=st.sampled_from(["INR", "BDT", "RUB", "USD"]),
    expires_at=times,
)


@given(fields)
def test_a_signed_link_verifies(f: links.LinkFields) -> None:
    assert links.verify(KEY, f, links.sign(KEY, f))


@given(fields, st.sampled_from(["tenant_id", "account_id", "bill_id", "amount_minor"]), ids)
def test_any_changed_number_is_refused(f: links.LinkFields, name: str, value: int) -> None:
    signature = links.sign(KEY, f)
    changed = links.LinkFields(**{**f.__dict__, name: value})
    assert links.verify(KEY, changed, signature) == (getattr(f, name) == value)


@given(fields, st.integers(min_value=1, max_value=10**6))
def test_a_later_expiry_or_another_currency_is_refused(f: links.LinkFields, seconds: int) -> None:
    signature = links.sign(KEY, f)
    later = links.LinkFields(
        **{**f.__dict__, "expires_at": f.expires_at + timedelta(seconds=seconds)}
    )
    assert not links.verify(KEY, later, signature)
    other = "EUR" if f.currency != "EUR" else "INR"
    assert not links.verify(KEY, links.LinkFields(**{**f.__dict__, "currency": other}), signature)


@given(fields, st.text(min_size=1, max_size=40))
def test_another_secret_does_not_verify(f: links.LinkFields, secret: str) -> None:
    other = links.derive_key(secret)
    assert links.verify(other, f, links.sign(KEY, f)) == (other == KEY)


@given(st.integers(min_value=0, max_value=2**32))
def test_codes_use_the_readable_alphabet(seed: int) -> None:
    rng = random.Random(seed)
    code = links.new_code(rng.randbytes)
    assert links.is_code(code) and len(code) == links.CODE_LENGTH
    assert not set(code) & set("01ilo")


def test_codes_do_not_repeat_and_garbage_is_not_a_code() -> None:
    codes = {links.new_code(os.urandom) for _ in range(5000)}
    assert len(codes) == 5000
    for bad in ["", "../../etc", "ABCDEFGHJK", "2345678901", "23456789ab2"]:
        assert not links.is_code(bad)


def test_no_app_secret_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="METERLINE_SECRET_KEY"):
        links.derive_key("")


def _request(body: bytes, header: str, signature: str | None) -> CallbackRequest:
    headers = {header: signature} if signature is not None else {}
    return CallbackRequest("POST", "http://x/", headers, {}, body)


def test_razorpay_webhook_signature_is_over_the_raw_body() -> None:
    gateway = RazorpayGateway(
        RazorpayConfig(key_id="rzp_test_x", key_secret="s", webhook_secret="whsec")  # type: ignore[arg-type]
    )
    body = json.dumps(
        {
            "entity": "event",
            "event": "payment_link.paid",
            "payload": {
                "payment_link": {"entity": {"id": "plink_1", "reference_id": "2345678923"}},
                "payment": {
                    "entity": {
                        "id": "pay_1",
                        "amount": 5000,
                        "currency": "INR",
                        "status": "captured",
                    }
                },
            },
        }
    ).encode()
    good = hmac.new(b"whsec", body, hashlib.sha256).hexdigest()
    (event,) = gateway.parse_webhook(_request(body, "x-razorpay-signature", good))
    assert (event.provider_payment_id, event.amount_minor, event.reference) == (
        "pay_1",
        5000,
        "2345678923",
    )
    # Re-serialised JSON (same meaning, other bytes) no longer matches.
    same_meaning = json.dumps(json.loads(body), separators=(",", ":")).encode()
    with pytest.raises(ForgedWebhook):
        gateway.parse_webhook(_request(same_meaning, "x-razorpay-signature", good))
    with pytest.raises(ForgedWebhook):
        gateway.parse_webhook(_request(body, "x-razorpay-signature", None))
    other = json.loads(body)
    other["event"] = "payment_link.expired"
    raw = json.dumps(other).encode()
    sig = hmac.new(b"whsec", raw, hashlib.sha256).hexdigest()
    assert gateway.parse_webhook(_request(raw, "x-razorpay-signature", sig)) == []
    float_amount = body.replace(b'"amount": 5000', b'"amount": 50.0')
    sig = hmac.new(b"whsec", float_amount, hashlib.sha256).hexdigest()
    with pytest.raises(BadWebhook, match="amount"):
        gateway.parse_webhook(_request(float_amount, "x-razorpay-signature", sig))


def test_sandbox_results_are_signed_and_checked() -> None:
    gateway = SandboxGateway(SandboxGatewayConfig(webhook_secret="sbx"))  # type: ignore[arg-type]
    approved = gateway.signed_result("2345678923", 1250_50, "INR", approve=True)
    (event,) = gateway.parse_webhook(approved)
    assert (event.amount_minor, event.reference) == (1250_50, "2345678923")
    assert gateway.parse_webhook(gateway.signed_result("2345678923", 1, "INR", approve=False)) == []
    tampered = CallbackRequest(
        "POST", "x", approved.headers, {}, approved.body.replace(b"125050", b"100")
    )
    with pytest.raises(ForgedWebhook):
        gateway.parse_webhook(tampered)


def test_gateway_settings_are_checked_and_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(GatewayConfigError, match="unknown gateway type"):
        build_gateway("paypal", {})
    with pytest.raises(GatewayConfigError, match="key_secret"):
        build_gateway("razorpay", {"key_id": "k", "webhook_secret": "w"})
    with pytest.raises(GatewayConfigError, match="RZP_MISSING"):
        build_gateway(
            "razorpay", {"key_id": "k", "key_secret": "env:RZP_MISSING", "webhook_secret": "w"}
        )
    monkeypatch.setenv("RZP_SECRET_X", "from-env")
    gw = build_gateway(
        "razorpay", {"key_id": "k", "key_secret": "env:RZP_SECRET_X", "webhook_secret": "w"}
    )
    assert "from-env" not in repr(gw)
