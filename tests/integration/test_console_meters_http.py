"""The console's smart-meter pages over HTTP: live alerts (page and its rows endpoint),
a meter's page, silent meters; roles, tenant scoping and four languages; SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from meterline.domain.enums import Role
from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.services.security import create_operator
from meterline.web.app import create_app
from tests.support.meter_fleet import make_fleet

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROW_ID = re.compile(r'data-id="(\d+)"')


def login(client: TestClient, username: str) -> TestClient:
    found = CSRF.search(client.get("/console/login").text)
    assert found
    data = {"csrf": found.group(1), "username": username, "password": PASSWORD}
    assert client.post("/console/login", data=data, follow_redirects=False).status_code == 303
    return client


def at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def setup(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        from meterline.store.models import Tenant

        for name, tid, lang in (
            ("viewer", fleet.tenant_id, "hi"),
            ("other", fleet.other_tenant_id, "en"),
        ):
            create_operator(s, s.get(Tenant, tid), name, PASSWORD, Role.viewer, language=lang)  # type: ignore[arg-type]
    ingest_events(
        runtime,
        "jaipur",
        [
            {"type": "balance", "meter": "SN-1", "at": at(50), "balance": 500_00},
            {"type": "balance", "meter": "SN-1", "at": at(40), "balance": 40_00},
            {"type": "demand", "meter": "SN-1", "at": at(40), "kw": "1.250"},
            {"type": "reading", "meter": "SN-1", "at": at(40), "value": "1234.5", "unit": "kWh"},
            {"type": "relay", "meter": "SN-1", "at": at(40), "state": "connected"},
        ],
        source="test",
    )


def test_alerts_page_rows_endpoint_meter_page_and_silent_list(runtime: Runtime) -> None:
    setup(runtime)
    client = login(TestClient(create_app(runtime)), "viewer")
    page = client.get("/console/alerts")
    assert page.status_code == 200
    html = page.text
    assert "मीटर अलर्ट" in html  # Hindi: the viewer's language
    assert "कम शेष राशि" in html  # the low balance alert, labelled in Hindi
    assert "/console/meters/SN-1" in html and "AC-1" in html
    assert "₹40.00" in html.replace("\xa0", "")
    assert '<script src="/console/static/alerts.js" defer></script>' in html
    first = [int(i) for i in ROW_ID.findall(html)]
    assert len(first) == 1
    table = re.search(r'data-rows-url="([^"]+)" data-last-id="(\d+)"', html)
    assert table and int(table.group(2)) == first[0]

    # Nothing new yet; then a tamper arrives and the rows endpoint hands exactly it over.
    rows_url = table.group(1).replace("&amp;", "&")
    nothing = client.get(f"{rows_url}after_id={first[0]}").json()
    assert nothing == {"last_id": first[0], "count": 0, "html": ""}
    ingest_events(
        runtime,
        "jaipur",
        [
            {
                "type": "tamper",
                "meter": "SN-2",
                "at": at(1),
                "code": "magnet",
                "text": "Magnet detected",
                "active": True,
            }
        ],
        source="test",
    )
    fresh = client.get(f"{rows_url}after_id={first[0]}").json()
    assert fresh["count"] == 1 and fresh["last_id"] > first[0]
    assert "Magnet detected" in fresh["html"] and "/console/meters/SN-2" in fresh["html"]
    assert "छेड़छाड़ की चेतावनी" in fresh["html"]
    # Filters apply to the live rows too.
    only_low = client.get(f"/console/alerts/rows?kind=low_balance&after_id={first[0]}").json()
    assert only_low["count"] == 0

    meter = client.get("/console/meters/SN-1")
    assert meter.status_code == 200
    text = meter.text.replace("\xa0", "")
    assert "मीटर SN-1" in text and "1.25 kW" in text and "1234.5 kWh" in text
    assert "₹40.00" in text and "जुड़ा हुआ" in text  # relay connected, in Hindi
    assert client.get("/console/meters/NOPE").status_code == 404
    found = client.get("/console/meters?serial=SN-2", follow_redirects=False)
    assert found.headers["location"] == "/console/meters/SN-2"

    silent = client.get("/console/meters/silent")
    assert silent.status_code == 200 and "SN-1" not in silent.text


def test_silent_meters_and_tenant_scoping(runtime: Runtime) -> None:
    setup(runtime)
    # SN-2 last reported three days ago: silent (default limit 24 h).
    ingest_events(
        runtime,
        "jaipur",
        [{"type": "power", "meter": "SN-2", "at": at(3 * 24 * 60), "state": "on"}],
        source="test",
    )
    client = login(TestClient(create_app(runtime)), "viewer")
    silent = client.get("/console/meters/silent").text
    assert "/console/meters/SN-2" in silent and "AC-2" in silent and "SN-1" not in silent
    # The other tenant's operator sees none of it, and no meter page of this tenant's.
    other = login(TestClient(create_app(runtime)), "other")
    assert "SN-1" not in other.get("/console/alerts").text
    assert other.get("/console/alerts/rows?after_id=0").json()["count"] == 0
    # The other tenant has an SN-1 of its own (account B-1), and no SN-2.
    assert other.get("/console/meters/SN-2").status_code == 404
    theirs = other.get("/console/meters/SN-1").text
    assert "B-1" in theirs and "AC-1" not in theirs
    assert "SN-2" not in other.get("/console/meters/silent").text
    # Logged out: the login page, not data.
    anon = TestClient(create_app(runtime))
    assert anon.get("/console/alerts", follow_redirects=False).status_code == 303
    assert anon.get("/console/alerts/rows", follow_redirects=False).status_code == 303


def test_pages_render_in_every_language(runtime: Runtime) -> None:
    setup(runtime)
    client = login(TestClient(create_app(runtime)), "viewer")
    expected = {
        "en": "Meter alerts",
        "hi": "मीटर अलर्ट",
        "bn": "মিটার সতর্কতা",
        "ru": "Тревоги счётчиков",
    }
    for lang, title in expected.items():
        token = CSRF.search(client.get("/console/alerts").text)
        assert token
        client.post(
            "/console/language",
            data={"csrf": token.group(1), "lang": lang, "next": "/console/alerts"},
        )
        for path in ("/console/alerts", "/console/meters/SN-1", "/console/meters/silent"):
            r = client.get(path)
            assert r.status_code == 200, (lang, path)
            assert title in r.text, (lang, path)
