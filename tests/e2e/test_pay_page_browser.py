"""The pay page in a real browser with the sandbox gateway: a consumer opens the link from
their reminder (in Hindi), pays, the sandbox approves and the page says paid; another
consumer's payment is declined and nothing is recorded.

Drives Debian's Chromium through Playwright against the app served by uvicorn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from meterline.domain.enums import BillStatus
from meterline.runtime import Runtime
from meterline.services import payments as pay
from meterline.store.models import Bill, LedgerEntry, Message, Payment
from meterline.web.app import create_app
from tests.support.browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, serving
from tests.support.payments_setup import SANDBOX_SECRET, Utility, make_utility, tenant_of

pytestmark = BROWSER_MARKS


@pytest.fixture
def setup(runtime: Runtime) -> Iterator[tuple[str, Utility, dict[str, str]]]:
    with runtime.sessions() as s, s.begin():
        utility = make_utility(s)
        pay.add_gateway(
            s,
            utility.tenant_id,
            name="sandbox",
            type_name="sandbox",
            config={"webhook_secret": SANDBOX_SECRET},
        )
        key = pay.link_key(runtime.settings.secret_key.get_secret_value())
        tenant = tenant_of(s, utility)
        codes = {
            number: pay.create_link(
                s, tenant, utility.bills[number], now=datetime.now(UTC), key=key
            ).code
            for number in ("AL-001", "AL-002")
        }
    with serving(create_app(runtime)) as url:
        runtime.settings = runtime.settings.model_copy(update={"public_url": url})
        yield url, utility, codes


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pay_with_the_sandbox_approving_and_declining(setup, runtime: Runtime) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url, utility, codes = setup
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 420, "height": 860}).new_page()
            page.set_default_timeout(15_000)

            # Approve: the Hindi-speaking consumer's bill.
            page.goto(f"{base_url}/p/{codes['AL-001']}")
            expect(page.locator("h1")).to_have_text("अपने बिल का भुगतान करें")
            expect(page.locator('[data-field="amount"]')).to_have_text("₹1,250.50")
            expect(page.locator('[data-field="account"]')).to_have_text("AL-001")
            page.screenshot(path=SHOTS / "31-pay-page-hindi.png", full_page=True)
            page.locator("#pay").click()
            expect(page).to_have_url(re.compile(rf"/p/{codes['AL-001']}/sandbox"))
            page.locator("#approve").click()
            expect(page.locator('[data-result="paid"]')).to_be_visible()
            page.screenshot(path=SHOTS / "32-pay-approved.png", full_page=True)

            # Decline: in English; nothing is recorded and the bill stays unpaid.
            page.goto(f"{base_url}/p/{codes['AL-002']}?lang=en")
            expect(page.locator("h1")).to_have_text("Pay your bill")
            page.locator("#pay").click()
            page.locator("#decline").click()
            expect(page.locator('[data-result="declined"]')).to_be_visible()
            expect(page.locator("#pay")).to_be_visible()  # may try again
            page.screenshot(path=SHOTS / "33-pay-declined.png", full_page=True)
        finally:
            browser.close()

    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        paid = s.get(Bill, utility.bills["AL-001"])
        unpaid = s.get(Bill, utility.bills["AL-002"])
        assert paid is not None and paid.status is BillStatus.paid
        assert unpaid is not None and unpaid.status is BillStatus.open
        confirm = s.scalars(select(Message).where(Message.kind == "payment_received")).one()
        assert confirm.language == "hi"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_reminders_page_previews_sends_and_reports(setup, runtime: Runtime) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url, _utility, _codes = setup
    with runtime.sessions() as s, s.begin():
        from meterline.store.models import Tenant

        t = s.scalar(select(Tenant).where(Tenant.slug == "aligarh"))
        assert t is not None
        t.quiet_start = t.quiet_end = "00:00"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base_url}/console/reminders")
            page.get_by_label("Username").fill("asha")
            page.get_by_label("Password").fill("asha-password")
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile(r"/console/reminders$"))
            page.get_by_label("Dues from (INR)").fill("500")
            page.get_by_role("button", name="Preview").click()
            expect(page.locator('[data-field="count"]')).to_have_text("3")
            expect(page.locator('[data-channel="sms"]')).to_have_text("3")
            page.screenshot(path=SHOTS / "34-reminders-preview.png", full_page=True)
            page.locator("#send-run").click()
            expect(page.locator("tr[data-run]")).to_have_count(1)
            page.screenshot(path=SHOTS / "35-reminders-sent.png", full_page=True)
        finally:
            browser.close()
    with runtime.sessions() as s:
        n = s.scalar(select(func.count()).where(Message.kind == "dues_reminder"))
    assert n == 3
