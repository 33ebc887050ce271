"""The console's messaging pages in a real browser: compose a Bengali SMS and watch the live
estimate (encoding, segments, "too long"), send it, follow it to delivery, and look at the
message log, the sandbox phones and the SMS credit, in English and Bengali.

Drives Debian's Chromium through Playwright (never a downloaded browser) against the app
served by uvicorn on a free loopback port. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from meterline.domain.enums import Medium, Role
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.message_templates import save_template
from meterline.services.notify import Notification, notify
from meterline.services.security import create_operator
from meterline.services.tenants import get_tenant
from meterline.web.app import create_app
from tests.support.browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, serving

PASSWORD = "correct horse battery"
GREETING = "শুভ নববর্ষ"  # short: one UCS-2 part with the organisation's name
NOTICE = ", আগামীকাল সকাল ১০টা থেকে দুপুর ১২টা পর্যন্ত বিদ্যুৎ থাকবে না।"  # makes it two

pytestmark = BROWSER_MARKS


def _deliver(runtime: Runtime) -> None:
    """What the dispatch workers do: hand the due messages to the sandbox. In a thread of
    its own: Playwright's sync API keeps an event loop running in this one."""
    dispatcher = Dispatcher(runtime.sessions, settings=DispatchSettings(claim_seconds=30))
    worker = threading.Thread(target=drain, args=(dispatcher,))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()


@pytest.fixture
def base_url(runtime: Runtime, tenant) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with runtime.sessions() as s, s.begin():
        t = get_tenant(s, tenant.slug)
        t.quiet_start = t.quiet_end = "00:00"  # no quiet hours: a send goes out at once
        create_operator(s, t, "meera", PASSWORD, Role.admin, "en")
        add_channel_account(
            s, t.id, name="demo-phones", type_name="sandbox", config={"reject": ["+919822222222"]}
        )
        credit.set_pricing(s, t.id, sms_price_minor=25, max_sms_parts=10)
        for language in t.language_list:  # the office signs its messages
            save_template(
                s, t.id, kind="custom", medium=Medium.sms, language=language,
                body="{{ org_name }}: {{ text }}", by="meera",
            )  # fmt: skip
        credit.top_up(s, t.id, 50_000, by="meera", note="opening balance")
        for key, phone, text in [
            ("seed-1", "9812345678", "Power cut tomorrow 10:00-12:00 in Feeder 11."),
            ("seed-2", "9822222222", "Your bill of Rs 3,456 is due on 15 March."),
        ]:
            notify(
                s,
                t,
                Notification("custom", {"text": text}, idempotency_key=key, phone=phone),
                now=datetime.now(UTC),
            )
    _deliver(runtime)
    with serving(create_app(runtime)) as url:
        yield url


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_compose_a_bengali_sms_and_follow_it(base_url: str, runtime: Runtime) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)

            page.goto(f"{base_url}/console/compose")
            expect(page).to_have_url(re.compile(r"/console/login\?next="))
            page.get_by_label("Username").fill("meera")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile(r"/console/compose$"))

            # The estimate follows the typing: GSM-7 while empty, UCS-2 with Bengali.
            encoding, segments = page.locator("#est-encoding"), page.locator("#est-segments")
            send = page.get_by_role("button", name="Send", exact=True)
            expect(encoding).to_have_text("GSM-7")
            page.get_by_label("Phone number").fill("98765 43210")
            text = page.get_by_label("Message", exact=True)
            text.press_sequentially(GREETING, delay=20)
            expect(encoding).to_have_text("UCS-2")
            expect(segments).to_have_text("1")
            expect(page.locator("#preview")).to_have_text(f"Aligarh Electricity Office: {GREETING}")
            text.press_sequentially(NOTICE, delay=5)
            expect(segments).to_have_text("2")
            expect(page.locator("#est-cost")).to_have_text("₹0.50")
            expect(send).to_be_enabled()
            page.screenshot(path=SHOTS / "11-compose-bengali.png", full_page=True)

            # Too long for ten parts: said in red, and the button is off until it fits.
            text.fill(GREETING + NOTICE * 12)
            too_long = page.locator("#est-too-long")
            expect(too_long).to_be_visible()
            expect(too_long).to_contain_text("at most 10 are allowed")
            expect(send).to_be_disabled()
            page.screenshot(path=SHOTS / "12-compose-too-long.png", full_page=True)
            text.fill(GREETING + NOTICE)
            expect(too_long).to_be_hidden()
            expect(send).to_be_enabled()

            # A refusal comes back in the form with the text and the server's estimate.
            page.get_by_label("Phone number").fill("12345")
            send.click()
            expect(page.get_by_role("alert")).to_contain_text("12345 is not a valid phone number.")
            expect(text).to_have_value(GREETING + NOTICE)
            expect(encoding).to_have_text("UCS-2")
            expect(segments).to_have_text("2")
            page.screenshot(path=SHOTS / "13-compose-refused.png", full_page=True)

            # Sending lands on the message's page; the sandbox delivers it.
            page.get_by_label("Phone number").fill("98765 43210")
            send.click()
            expect(page).to_have_url(re.compile(r"/console/messages/\d+$"))
            expect(page.locator(".sms-body")).to_have_text(
                f"Aligarh Electricity Office: {GREETING}{NOTICE}"
            )
            expect(page.locator("h1 .msg-status")).to_have_text("Queued")
            _deliver(runtime)
            page.reload()
            expect(page.locator("h1 .msg-status")).to_have_text("Delivered")
            expect(page.locator("table.events")).to_contain_text("Send attempt")
            expect(page.locator("dl.facts")).to_contain_text("UCS-2")
            expect(page.locator("dl.facts")).to_contain_text("Debited")
            page.screenshot(path=SHOTS / "14-message.png", full_page=True)

            # The log: newest first, counts per status, filters.
            page.get_by_role("link", name="Messages", exact=True).click()
            rows = page.locator("table.messages tbody tr")
            expect(rows).to_have_count(3)
            expect(rows.first).to_contain_text("+91 98765 43210")
            expect(rows.first.locator(".msg-status")).to_have_text("Delivered")
            page.screenshot(path=SHOTS / "15-messages.png", full_page=True)
            page.get_by_label("Status", exact=True).select_option("failed")
            page.get_by_role("button", name="Filter").click()
            expect(page).to_have_url(re.compile(r"status=failed"))
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("+91 98222 22222")
            rows.first.get_by_role("link").click()
            expect(page.locator("h1 .msg-status")).to_have_text("Failed")
            expect(page.locator("table.events")).to_contain_text("sandbox: number is on the reject")
            page.screenshot(path=SHOTS / "16-message-failed.png", full_page=True)

            # What the pretend phones received.
            page.get_by_role("link", name="Sandbox phones").click()
            phones = page.locator("li.phone-msg")
            expect(phones).to_have_count(3)
            expect(phones.first).to_contain_text(GREETING)
            page.screenshot(path=SHOTS / "17-sandbox.png", full_page=True)

            # Credit: the sends are in the ledger; an administrator tops up.
            page.get_by_role("link", name="SMS credit").click()
            expect(page.locator("table.ledger")).to_contain_text("opening balance")
            page.get_by_label("Amount (INR)").fill("1,000")
            page.get_by_label("Note (receipt or payment reference)").fill("NEFT 4411")
            page.get_by_role("button", name="Add credit").click()
            expect(page.get_by_role("status")).to_have_text("The credit was topped up.")
            expect(page.locator("table.ledger tbody tr").first).to_contain_text("NEFT 4411")
            page.screenshot(path=SHOTS / "18-credit.png", full_page=True)

            # In Bengali, and compose on a phone-sized screen.
            page.get_by_role("link", name="Messages", exact=True).click()
            page.get_by_role("button", name="বাংলা").click()
            expect(page.locator("html")).to_have_attribute("lang", "bn")
            expect(page.get_by_role("heading", level=1)).to_have_text("বার্তা")
            expect(rows.first.locator(".msg-status")).to_have_text("পৌঁছেছে")
            page.screenshot(path=SHOTS / "19-messages-bn.png", full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.get_by_role("link", name="বার্তা পাঠান").click()
            page.get_by_label("বার্তা", exact=True).press_sequentially(GREETING, delay=20)
            expect(encoding).to_have_text("UCS-2")
            page.screenshot(path=SHOTS / "20-compose-bn-mobile.png", full_page=True)
        finally:
            browser.close()
