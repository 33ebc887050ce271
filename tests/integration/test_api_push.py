"""Push subscription endpoints over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from meterline.channels.webpush.keys import VapidKeys, b64url, generate_vapid_keys
from meterline.domain.enums import Billing, ContactKind, Role, Service
from meterline.runtime import Runtime
from meterline.services.channel_accounts import add_channel_account
from meterline.services.security import create_api_key
from meterline.services.tenants import create_tenant
from meterline.store.models import Account, Consumer, ContactPoint, Tenant
from meterline.web.app import create_app
from tests.support.push_standin import PushStandin
from tests.support.threaded_server import ThreadedServer

PATH = "/api/v1/push/subscriptions"


@pytest.fixture(scope="module")
def push() -> Iterator[PushStandin]:
    with PushStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def vapid() -> VapidKeys:
    return generate_vapid_keys()


@pytest.fixture
def world(runtime: Runtime, tenant: Tenant, vapid: VapidKeys) -> dict[str, Any]:
    with runtime.sessions() as s, s.begin():
        asha = Consumer(tenant_id=tenant.id, name="Asha Verma", preferred_language="en")
        s.add(asha)
        s.flush()
        s.add(
            Account(
                tenant_id=tenant.id,
                consumer_id=asha.id,
                number="1001",
                service=Service.electricity,
                billing=Billing.postpaid,
            )
        )
        add_channel_account(
            s,
            tenant.id,
            name="push",
            type_name="webpush",
            config={
                "vapid_private_key": vapid.private_key,
                "vapid_public_key": vapid.public_key,
                "vapid_subject": "mailto:ops@aligarh.example",
            },
        )
        t = s.get(Tenant, tenant.id)
        assert t is not None
        _, key = create_api_key(s, t, "app", Role.operator)
        _, viewer = create_api_key(s, t, "reader", Role.viewer)
        other = create_tenant(
            s, slug="other", name="Other", country="BD", currency="BDT", timezone="Asia/Dhaka"
        )
        _, other_key = create_api_key(s, other, "x", Role.operator)
        return {"consumer": asha.id, "key": key, "viewer": viewer, "other": other_key}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[str]:
    runtime.settings.push_allow_local_endpoints = True  # the stand-in is on 127.0.0.1
    with ThreadedServer(create_app(runtime), name="meterline-api") as server:
        yield server.url


def call(method: str, url: str, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, headers={"authorization": f"Bearer {key}"}, **kwargs)


def webpush_contacts(runtime: Runtime) -> list[ContactPoint]:
    with runtime.sessions() as s:
        rows = list(s.scalars(select(ContactPoint).where(ContactPoint.kind == ContactKind.webpush)))
        s.expunge_all()
        return rows


def test_the_vapid_public_key_is_the_tenants(
    api: str, world: dict[str, Any], vapid: VapidKeys
) -> None:
    answer = call("GET", f"{api}/api/v1/push/vapid-public-key", world["viewer"])
    assert answer.status_code == 200
    assert answer.json() == {"public_key": vapid.public_key}
    missing = call("GET", f"{api}/api/v1/push/vapid-public-key", world["other"])
    assert missing.status_code == 404
    assert "no webpush channel account" in missing.json()["detail"]
    assert httpx.get(f"{api}/api/v1/push/vapid-public-key").status_code == 401


def test_save_resave_and_remove_a_subscription(
    api: str, runtime: Runtime, world: dict[str, Any], push: PushStandin, vapid: VapidKeys
) -> None:
    sub = push.subscribe(vapid.public_key)
    body = {"account_number": "1001", "subscription": sub | {"expirationTime": None}}
    first = call("POST", f"{api}{PATH}", world["key"], json=body | {"language": "hi"})
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    assert first.json()["consumer_id"] == world["consumer"]
    [saved] = webpush_contacts(runtime)
    assert saved.value == sub["endpoint"]
    assert saved.details == {"keys": sub["keys"]}
    with runtime.sessions() as s:
        consumer = s.get(Consumer, world["consumer"])
        assert consumer is not None and consumer.preferred_language == "hi"

    # The browser refreshed its keys: the same endpoint is updated, not added.
    renewed = push.subscribe(vapid.public_key)
    again = {
        "consumer_id": world["consumer"],
        "subscription": {**renewed, "endpoint": sub["endpoint"]},
    }
    second = call("POST", f"{api}{PATH}", world["key"], json=again)
    assert second.status_code == 200
    assert second.json() == first.json() | {"created": False}
    [kept] = webpush_contacts(runtime)
    assert kept.id == saved.id
    assert kept.details == {"keys": renewed["keys"]}

    gone = call("DELETE", f"{api}{PATH}", world["key"], json={"endpoint": sub["endpoint"]})
    assert gone.status_code == 200
    assert gone.json() == {"removed": 1}
    assert webpush_contacts(runtime) == []
    twice = call("DELETE", f"{api}{PATH}", world["key"], params={"endpoint": sub["endpoint"]})
    assert twice.json() == {"removed": 0}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"endpoint": "not a url"}, "endpoint must be an https:// URL"),
        ({"endpoint": "ftp://push.example/x"}, "endpoint must be an https:// URL"),
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "must be an https:// URL"),
        ({"keys": None}, "keys is missing"),
        ({"keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh is missing"),
        ({"keys": {"p256dh": "not base64!", "auth": "x"}}, "keys.p256dh is not base64url"),
        (
            {"keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": "x"}},
            "not a point on the P-256",
        ),
        ({"keys": {"p256dh": b64url(b"\x02" * 33), "auth": "x"}}, "uncompressed P-256 point"),
    ],
)
def test_bad_subscriptions_are_refused_naming_the_problem(
    api: str,
    runtime: Runtime,
    world: dict[str, Any],
    push: PushStandin,
    vapid: VapidKeys,
    change: dict[str, Any],
    problem: str,
) -> None:
    sub = push.subscribe(vapid.public_key) | change
    answer = call(
        "POST",
        f"{api}{PATH}",
        world["key"],
        json={"consumer_id": world["consumer"], "subscription": sub},
    )
    assert answer.status_code == 422
    assert problem in answer.json()["detail"]
    assert webpush_contacts(runtime) == []


def test_an_auth_secret_must_be_16_bytes(
    api: str, world: dict[str, Any], push: PushStandin, vapid: VapidKeys
) -> None:
    sub = push.subscribe(vapid.public_key)
    sub["keys"]["auth"] = b64url(b"\x00" * 12)
    answer = call(
        "POST",
        f"{api}{PATH}",
        world["key"],
        json={"consumer_id": world["consumer"], "subscription": sub},
    )
    assert answer.status_code == 422
    assert (
        answer.json()["detail"] == "subscription: keys.auth must be a 16-byte secret, not 12 bytes"
    )


def test_who_and_which_tenant(
    api: str, runtime: Runtime, world: dict[str, Any], push: PushStandin, vapid: VapidKeys
) -> None:
    sub = push.subscribe(vapid.public_key)
    neither = call("POST", f"{api}{PATH}", world["key"], json={"subscription": sub})
    assert neither.status_code == 422
    assert "consumer_id or account_number" in neither.json()["detail"]
    # Another tenant's key sees neither our consumer nor our account number.
    for body in ({"consumer_id": world["consumer"]}, {"account_number": "1001"}):
        answer = call("POST", f"{api}{PATH}", world["other"], json=body | {"subscription": sub})
        assert answer.status_code == 404
    bad_language = call(
        "POST",
        f"{api}{PATH}",
        world["key"],
        json={"consumer_id": world["consumer"], "subscription": sub, "language": "fr"},
    )
    assert bad_language.status_code == 422
    assert "language 'fr' not supported" in bad_language.json()["detail"]
    viewer = call(
        "POST",
        f"{api}{PATH}",
        world["viewer"],
        json={"consumer_id": world["consumer"], "subscription": sub},
    )
    assert viewer.status_code == 403
    assert webpush_contacts(runtime) == []
    # Nor can it remove ours.
    call(
        "POST",
        f"{api}{PATH}",
        world["key"],
        json={"consumer_id": world["consumer"], "subscription": sub},
    )
    other = call("DELETE", f"{api}{PATH}", world["other"], json={"endpoint": sub["endpoint"]})
    assert other.json() == {"removed": 0}
    assert len(webpush_contacts(runtime)) == 1


def test_local_endpoints_are_refused_unless_the_setting_allows_them(
    runtime: Runtime, api: str, world: dict[str, Any], push: PushStandin, vapid: VapidKeys
) -> None:
    runtime.settings.push_allow_local_endpoints = False
    keys = push.subscribe(vapid.public_key)["keys"]
    for endpoint in (
        "https://127.0.0.1/push/x",
        "https://localhost/push/x",
        "https://10.0.0.7/push/x",
        "https://[::1]/push/x",
        "https://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:9/push/x",
    ):
        body = {
            "consumer_id": world["consumer"],
            "subscription": {"endpoint": endpoint, "keys": keys},
        }
        answer = call("POST", f"{api}{PATH}", world["key"], json=body)
        assert answer.status_code == 422, endpoint
        assert "local or private address" in answer.json()["detail"], endpoint
    public = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc:APA91b", "keys": keys}
    answer = call(
        "POST",
        f"{api}{PATH}",
        world["key"],
        json={"consumer_id": world["consumer"], "subscription": public},
    )
    assert answer.status_code == 201
    assert [c.value for c in webpush_contacts(runtime)] == [public["endpoint"]]
