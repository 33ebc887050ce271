"""Smart-meter events over HTTP on SQLite and PostgreSQL: alerts become queued messages
once per episode in the consumer's language; out-of-order and duplicate deliveries are
harmless; bad input is refused line by line; state, usage, alerts and silent meters come
back through the API, scoped to the caller's tenant and role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterline.runtime import Runtime
from meterline.services.meter_views import set_alert_settings, set_opt_out
from meterline.store.models import Account, Message, MeterAlert
from meterline.web.app import create_app
from tests.support.meter_fleet import Fleet, make_fleet


@pytest.fixture
def fleet(runtime: Runtime) -> Fleet:
    with runtime.sessions() as s, s.begin():
        return make_fleet(s)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def minutes_ago(n: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=n)).isoformat()


def post(client: TestClient, key: str, events: list[Any]) -> Any:
    return client.post("/api/v1/events", json=events, headers={"X-API-Key": key})


def post_ndjson(client: TestClient, key: str, lines: list[str]) -> Any:
    return client.post(
        "/api/v1/events",
        content="\n".join(lines).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/x-ndjson"},
    )


def messages(runtime: Runtime) -> list[Message]:
    with runtime.sessions() as s:
        return list(s.scalars(select(Message).order_by(Message.id)))


def test_low_balance_alerts_once_in_the_consumers_language_and_rearms(
    client, runtime, fleet
) -> None:
    key = fleet.keys["operator"]
    first = [
        {"type": "balance", "meter": "SN-1", "at": minutes_ago(50), "balance": 500_00},
        {"type": "balance", "meter": "SN-1", "at": minutes_ago(40), "balance": 80_00},
        {"type": "balance", "meter": "SN-2", "at": minutes_ago(40), "balance": 60_00},
    ]
    resp = post(client, key, first)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["rejected"], body["alerts"], body["messages"]) == (3, 0, 2, 2)
    # The same batch again (a retried request): nothing new.
    again = post(client, key, first).json()
    assert (again["duplicates"], again["older"], again["messages"]) == (2, 1, 0)
    sent = messages(runtime)
    assert [(m.kind, m.language, m.to_address) for m in sent] == [
        ("low_balance", "hi", "+919812345678"),
        ("low_balance", "en", "+919812345679"),
    ]
    assert "₹80.00" in sent[0].body and "शेष" in sent[0].body and "₹100.00" in sent[0].body
    assert "balance ₹60.00 is below ₹100.00" in sent[1].body
    # Still low, then just above the threshold (not re-armed), then low again: quiet.
    post(
        client,
        key,
        [
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(30), "balance": 70_00},
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(20), "balance": 105_00},
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(15), "balance": 90_00},
        ],
    )
    assert len(messages(runtime)) == 2
    # A recharge re-arms; the next fall alerts again.
    post(
        client,
        key,
        [
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(10), "balance": 900_00},
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(5), "balance": 50_00},
        ],
    )
    assert [m.kind for m in messages(runtime)] == ["low_balance"] * 3
    meter = client.get("/api/v1/meters/SN-1", headers={"X-API-Key": fleet.keys["viewer"]}).json()
    assert meter["state"]["balance_minor"] == 50_00
    assert [a["kind"] for a in meter["open_alerts"]] == ["low_balance"]
    assert [a["open"] for a in meter["recent_alerts"]] == [True, False]
    usage = client.get(
        "/api/v1/meters/SN-1/usage?period=month", headers={"X-API-Key": fleet.keys["viewer"]}
    ).json()
    assert sum(r["recharges"] for r in usage["rows"]) == 2  # 90 -> 900 and 105 was a rise too
    assert sum(r["recharged_minor"] for r in usage["rows"]) == (105_00 - 70_00) + (900_00 - 90_00)


def test_an_older_balance_never_overwrites_a_newer_one(client, runtime, fleet) -> None:
    key = fleet.keys["operator"]
    post(
        client, key, [{"type": "balance", "meter": "SN-2", "at": minutes_ago(5), "balance": 50_00}]
    )
    late = post(
        client,
        key,
        [{"type": "balance", "meter": "SN-2", "at": minutes_ago(30), "balance": 900_00}],
    ).json()
    assert (late["accepted"], late["older"], late["alerts"]) == (1, 1, 0)
    state = client.get("/api/v1/meters/SN-2", headers={"X-API-Key": key}).json()["state"]
    assert state["balance_minor"] == 50_00


def test_zero_balance_is_urgent_and_carries_the_grace_text_and_ignores_opt_outs(
    client, runtime, fleet
) -> None:
    with runtime.sessions() as s, s.begin():
        set_alert_settings(
            s,
            fleet.tenant_id,
            grace_text={"hi": "आपातकालीन क्रेडिट ₹50 उपलब्ध है।", "en": "Emergency credit available."},
        )
        consumer_ids = [
            a.consumer_id
            for a in s.scalars(select(Account).where(Account.tenant_id == fleet.tenant_id))
        ]
        for cid in consumer_ids:
            set_opt_out(s, fleet.tenant_id, cid, "zero_balance", opted_out=True)
            set_opt_out(s, fleet.tenant_id, cid, "low_balance", opted_out=True)
    resp = post(
        client,
        fleet.keys["operator"],
        [
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(20), "balance": 300_00},
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(10), "balance": 50_00},
            {"type": "balance", "meter": "SN-1", "at": minutes_ago(5), "balance": -5_00},
        ],
    ).json()
    assert (resp["alerts"], resp["messages"]) == (2, 1)  # low (opted out), zero (mandatory)
    (msg,) = messages(runtime)
    assert msg.kind == "zero_balance" and msg.language == "hi"
    assert "आपातकालीन क्रेडिट" in msg.body
    assert msg.priority == 80
    with runtime.sessions() as s:
        notes = {a.kind: a.note for a in s.scalars(select(MeterAlert))}
    assert notes == {"low_balance": "consumer opted out of low_balance", "zero_balance": None}


def test_overload_once_per_episode_and_back_to_normal(client, runtime, fleet) -> None:
    key = fleet.keys["operator"]
    lines = [
        json.dumps({"type": "demand", "meter": "SN-2", "at": minutes_ago(m), "kw": kw})
        for m, kw in ((75, "6.2"), (60, "7.5"), (45, 8), (30, "4.1"))
    ]
    body = post_ndjson(client, key, lines).json()
    assert (body["accepted"], body["alerts"], body["messages"]) == (4, 2, 2)
    sent = messages(runtime)
    assert [m.kind for m in sent] == ["overload", "overload_normal"]
    assert "7.5 kW exceeds sanctioned 5 kW" in sent[0].body
    alerts = client.get("/api/v1/alerts?kind=overload", headers={"X-API-Key": key}).json()
    (episode,) = alerts["alerts"]
    assert episode["meter"] == "SN-2" and not episode["open"]
    assert episode["message_id"] == sent[0].id and episode["close_message_id"] == sent[1].id
    usage = client.get("/api/v1/meters/SN-2/usage", headers={"X-API-Key": key}).json()
    assert max(r["max_demand_kw"] for r in usage["rows"]) == "8"


def test_tamper_codes_once_each_plus_restored_and_stale_events_alert_no_one(
    client, runtime, fleet
) -> None:
    key = fleet.keys["operator"]
    events = [
        {"type": "tamper", "meter": "SN-1", "at": minutes_ago(9), "code": "magnet"},
        {"type": "tamper", "meter": "SN-1", "at": minutes_ago(8), "code": "magnet"},
        {"type": "tamper", "meter": "SN-1", "at": minutes_ago(7), "code": "cover_open",
         "text": "terminal cover opened"},
        {"type": "tamper", "meter": "SN-1", "at": minutes_ago(6), "code": "magnet",
         "active": False},
        {"type": "tamper", "meter": "SN-2", "at": minutes_ago(600), "code": "magnet"},
    ]  # fmt: skip
    body = post(client, key, events).json()
    assert (body["alerts"], body["messages"]) == (4, 3)
    assert [m.kind for m in messages(runtime)] == ["tamper", "tamper", "tamper_restored"]
    open_alerts = client.get("/api/v1/alerts?open=true", headers={"X-API-Key": key}).json()
    subjects = sorted((a["meter"], a["subject"], a["note"]) for a in open_alerts["alerts"])
    assert subjects == [
        ("SN-1", "tamper:cover_open", None),
        ("SN-2", "tamper:magnet", "stale event: nobody alerted"),
    ]
    meter = client.get("/api/v1/meters/SN-1", headers={"X-API-Key": key}).json()
    assert meter["state"]["tamper"] == ["cover_open"]
    assert [(e["type"], e["value"]) for e in meter["state"]["recent_events"]] == [
        ("tamper", "magnet restored"),
        ("tamper", "cover_open"),
    ]  # the newest of each stream


def test_bad_input_is_refused_line_by_line_and_the_rest_goes_through(
    client, runtime, fleet
) -> None:
    key = fleet.keys["operator"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    lines = [
        json.dumps({"type": "reading", "meter": "SN-1", "at": minutes_ago(5), "value": "10.5",
                    "unit": "kWh"}),
        '{"type": "demand", "meter": "SN-1", "at": "' + minutes_ago(5) + '", "kw": -3}',
        "{this is not json",
        json.dumps({"type": "power", "meter": "SN-1", "at": future, "state": "off"}),
        json.dumps({"type": "reading", "meter": "SN-1", "at": minutes_ago(4), "value": "3",
                    "unit": "m3"}),
        json.dumps({"type": "reading", "meter": "W-1", "at": minutes_ago(4), "value": "3",
                    "unit": "m3"}),
        json.dumps({"type": "power", "meter": "GHOST-9", "at": minutes_ago(4), "state": "off"}),
        json.dumps({"type": "power", "meter": "GHOST-9", "at": minutes_ago(3), "state": "on"}),
    ]  # fmt: skip
    body = post_ndjson(client, key, lines).json()
    assert (body["accepted"], body["rejected"], body["unknown_meters"]) == (2, 4, 2)
    assert body["unknown_serials"] == ["GHOST-9"]
    reasons = {e["line"]: e["reason"] for e in body["errors"]}
    assert reasons[2] == "kw: -3 is negative"
    assert reasons[3].startswith("not JSON")
    assert "is in the future" in reasons[4]
    assert reasons[5] == "unit: m3 does not fit electricity meter SN-1"
    unknown = client.get("/api/v1/meters/unknown", headers={"X-API-Key": key}).json()
    assert [(u["serial"], u["events"]) for u in unknown["serials"]] == [("GHOST-9", 2)]
    assert unknown["totals"]["rejected"] == 4 and unknown["totals"]["unknown_meters"] == 2
    # A broken body, a wrong type, too many events: clear answers, nothing stored.
    broken = client.post(
        "/api/v1/events",
        content=b"[{",
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and "not JSON" in broken.json()["detail"]
    xml = client.post(
        "/api/v1/events", content=b"<e/>", headers={"X-API-Key": key, "Content-Type": "text/xml"}
    )
    assert xml.status_code == 415
    many = [{"type": "power", "meter": "SN-1", "at": minutes_ago(1), "state": "on"}] * 10_001
    too_many = post(client, key, many)
    assert too_many.status_code == 413
    assert "at most 10000 a request" in too_many.json()["detail"]


def test_another_tenants_key_reaches_only_its_own_meters_and_roles_hold(
    client, runtime, fleet
) -> None:
    event = {"type": "balance", "meter": "SN-1", "at": minutes_ago(5), "balance": 10_00}
    body = post(client, fleet.keys["other"], [event]).json()
    assert body["accepted"] == 1  # Dhaka's own SN-1
    mine = client.get("/api/v1/meters/SN-1", headers={"X-API-Key": fleet.keys["viewer"]}).json()
    assert mine["state"] is None  # Jaipur's SN-1 heard nothing
    theirs = client.get("/api/v1/meters/SN-2", headers={"X-API-Key": fleet.keys["other"]})
    assert theirs.status_code == 404
    assert post(client, fleet.keys["viewer"], [event]).status_code == 403
    assert client.post("/api/v1/events", json=[event]).status_code == 401
    assert client.get("/api/v1/alerts?kind=weather", headers={"X-API-Key": fleet.keys["viewer"]}
                      ).status_code == 422  # fmt: skip


def test_silent_meters_are_listed_for_the_operator(client, runtime, fleet) -> None:
    with runtime.sessions() as s, s.begin():
        set_alert_settings(s, fleet.tenant_id, silent_after_s=3600, stale_after_s=86400 * 3)
    key = fleet.keys["operator"]
    post(
        client,
        key,
        [
            {"type": "power", "meter": "SN-1", "at": minutes_ago(180), "state": "on"},
            {"type": "power", "meter": "SN-2", "at": minutes_ago(10), "state": "on"},
        ],
    )
    silent = client.get("/api/v1/meters/silent", headers={"X-API-Key": key}).json()
    assert [(m["meter"], m["account"]) for m in silent["meters"]] == [("SN-1", "AC-1")]
    assert silent["meters"][0]["silent_for_s"] >= 3 * 3600 - 60
    assert messages(runtime) == []  # listed, not alarmed


def test_daily_usage_from_register_readings(client, runtime, fleet) -> None:
    key = fleet.keys["operator"]
    # Asia/Kolkata days: 2026-11-27 and 2026-11-28, readings out of order and repeated.
    readings = [
        ("2026-11-27T08:00:00+05:30", "100.0"),
        ("2026-11-27T20:00:00+05:30", "112.5"),
        ("2026-11-28T09:00:00+05:30", "118.0"),
        ("2026-11-27T12:00:00+05:30", "105.0"),
        ("2026-11-28T21:00:00+05:30", "121.25"),
        ("2026-11-27T20:00:00+05:30", "112.5"),
    ]
    events = [
        {"type": "reading", "meter": "SN-1", "at": t, "value": v, "unit": "kWh"}
        for t, v in readings
    ]
    body = post(client, key, events[:3]).json()
    assert body["accepted"] == 3
    post(client, key, events[3:])
    days = client.get("/api/v1/meters/SN-1/usage?period=day", headers={"X-API-Key": key}).json()
    assert [(r["start"], r["consumption"]) for r in days["rows"]] == [
        ("2026-11-27", "12.5"),
        ("2026-11-28", "8.75"),
    ]
    months = client.get("/api/v1/meters/SN-1/usage?period=month", headers={"X-API-Key": key})
    assert months.json()["rows"][0]["consumption"] == "21.25"
    state = client.get("/api/v1/meters/SN-1", headers={"X-API-Key": key}).json()["state"]
    assert state["reading"] == "121.25"
    assert state["recent_events"] == [
        {"at": "2026-11-28T15:30:00+00:00", "type": "reading", "value": "121.25 kWh"}
    ]
    bad = client.get("/api/v1/meters/SN-1/usage?period=week", headers={"X-API-Key": key})
    assert bad.status_code == 422


def test_opt_outs_and_settings_over_the_api(client, runtime, fleet) -> None:
    with runtime.sessions() as s:
        consumer_id = s.scalar(select(Account.consumer_id).where(Account.number == "AC-2"))
    op, admin = fleet.keys["operator"], fleet.keys["admin"]
    url = f"/api/v1/consumers/{consumer_id}/alert-preferences/overload"
    assert client.put(url, json={"opted_out": True}, headers={"X-API-Key": op}).status_code == 200
    weather = client.put(
        f"/api/v1/consumers/{consumer_id}/alert-preferences/weather",
        json={"opted_out": True},
        headers={"X-API-Key": op},
    )
    assert weather.status_code == 422 and "'weather' is not one of" in weather.json()["detail"]
    theirs = client.put(url, json={"opted_out": True}, headers={"X-API-Key": fleet.keys["other"]})
    assert theirs.status_code == 404
    denied = client.put("/api/v1/alert-settings", json={"overload_intervals": 1},
                        headers={"X-API-Key": op})  # fmt: skip
    assert denied.status_code == 403
    changed = client.put(
        "/api/v1/alert-settings", json={"overload_intervals": 1}, headers={"X-API-Key": admin}
    )
    assert changed.status_code == 200 and changed.json()["overload_intervals"] == 1
    bad = client.put("/api/v1/alert-settings", json={"percent_levels": "0"},
                     headers={"X-API-Key": admin})  # fmt: skip
    assert bad.status_code == 422
    body = post(
        client,
        op,
        [{"type": "demand", "meter": "SN-2", "at": minutes_ago(5), "kw": 9}],
    ).json()
    assert (body["alerts"], body["messages"]) == (1, 0)  # one interval suffices; opted out
    (alert,) = client.get("/api/v1/alerts", headers={"X-API-Key": op}).json()["alerts"]
    assert alert["note"] == "consumer opted out of overload"
