"""The live alerts view in a real browser: an alert that arrives while the page is open
appears at the top without a reload; its meter's page follows the link. Debian's
Chromium through Playwright against the app served by uvicorn; screenshots go to
artifacts/screenshots/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from meterline.domain.enums import Role
from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.services.security import create_operator
from meterline.store.models import Tenant
from meterline.web.app import create_app
from tests.support.browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, serving
from tests.support.meter_fleet import make_fleet

PASSWORD = "correct horse battery"
pytestmark = BROWSER_MARKS


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def _ingest(runtime: Runtime, events: list[dict]) -> None:
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    worker = threading.Thread(
        target=ingest_events, args=(runtime, "jaipur", events), kwargs={"source": "test"}
    )
    worker.start()
    worker.join(timeout=30)


@pytest.fixture
def base_url(runtime: Runtime) -> Iterator[str]:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        t = s.get(Tenant, fleet.tenant_id)
        assert t is not None
        create_operator(s, t, "meera", PASSWORD, Role.viewer, "en")
    _ingest(runtime, [{"type": "balance", "meter": "SN-1", "at": _at(5), "balance": 30_00}])
    with serving(create_app(runtime)) as url:
        yield url


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_new_alert_appears_without_reloading(base_url: str, runtime: Runtime) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base_url}/console/alerts")
            page.get_by_label("Username").fill("meera")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile(r"/console/alerts$"))
            rows = page.locator("#alerts tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Low balance")
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads

            _ingest(
                runtime,
                [
                    {
                        "type": "tamper",
                        "meter": "SN-2",
                        "at": _at(1),
                        "code": "magnet",
                        "text": "Magnet detected",
                        "active": True,
                    }
                ],
            )
            expect(rows).to_have_count(2)
            expect(rows.first).to_contain_text("Magnet detected")
            expect(rows.first).to_contain_text("Tamper alert")
            expect(page.locator("#live-status")).to_have_text("New alerts: 1")
            assert page.evaluate("window.__sameDocument") is True
            page.screenshot(path=str(SHOTS / "console-alerts-live.png"), full_page=True)

            rows.first.get_by_role("link", name="SN-2").click()
            expect(page).to_have_url(re.compile(r"/console/meters/SN-2$"))
            expect(page.get_by_role("heading", name="Meter SN-2")).to_be_visible()
            expect(page.locator("table.kv")).to_contain_text("magnet")
            page.screenshot(path=str(SHOTS / "console-meter.png"), full_page=True)
        finally:
            browser.close()
