"""The operator console in a real browser: log in, upload a Hindi sheet, read the report,
download the rejected rows, find defaulters, open a consumer, switch languages.

Drives Debian's Chromium through Playwright (never a downloaded browser) against the app
served by uvicorn on a free loopback port. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from meterline.domain.enums import Role
from meterline.runtime import Runtime
from meterline.services.security import create_operator
from meterline.services.tenants import get_tenant
from meterline.web.app import create_app
from tests.support.browser import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, serving
from tests.support.sheets import write_xlsx

PASSWORD = "correct horse battery"

pytestmark = BROWSER_MARKS


@pytest.fixture
def base_url(runtime: Runtime, tenant) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with runtime.sessions() as s, s.begin():
        create_operator(s, get_tenant(s, tenant.slug), "asha", PASSWORD, Role.operator, "en")
    with serving(create_app(runtime)) as url:
        yield url


def _sheet(path: Path) -> Path:
    """What an electricity office exports: a title row, Hindi headers, one bad phone."""
    header = ["खाता संख्या", "उपभोक्ता का नाम", "मोबाइल नंबर", "बकाया राशि", "देय तिथि", "फीडर"]
    rows = [
        header,
        ["ALG-1001", "रमेश कुमार", "98765 43210", 123456.5, date(2024, 1, 15), "Feeder 11"],
        ["ALG-1002", "सीता देवी", "9812345678", 0, None, "Feeder 11"],
        ["ALG-1003", "मोहम्मद इरफ़ान", "12345", 850, date(2024, 2, 1), "Feeder 12"],
        ["ALG-1004", "गीता शर्मा", "+91 99887 76655", 2300.75, date(2099, 1, 1), "Feeder 12"],
    ]
    return write_xlsx(path, rows, title_rows=[["अलीगढ़ विद्युत वितरण खंड — बकाया सूची"]])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_operator_journey(base_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    sheet = _sheet(tmp_path / "बकाया-सूची.xlsx")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)

            # Logging in, after a wrong password.
            page.goto(f"{base_url}/console/consumers")
            expect(page).to_have_url(re.compile(r"/console/login\?next="))
            page.get_by_label("Username").fill("asha")
            page.get_by_label("Password").fill("wrong password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
            page.screenshot(path=SHOTS / "01-login-error.png")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile(r"/console/consumers$"))

            # Uploading the sheet; the report shows the rejected row.
            page.get_by_role("link", name="Imports").click()
            page.get_by_label(re.compile("^File")).set_input_files(sheet)
            page.get_by_role("button", name="Upload and import").click()
            expect(page).to_have_url(re.compile(r"/console/imports/\d+$"))
            expect(page.get_by_role("heading", level=1)).to_contain_text("बकाया-सूची.xlsx")
            rejected = page.locator("table.issues tbody tr")
            expect(rejected).to_have_count(1)
            expect(rejected.first).to_contain_text("मोबाइल नंबर")
            expect(rejected.first).to_contain_text("12345")
            expect(rejected.first.locator("td").first).to_have_text("5")
            expect(page.locator(".tile").first).to_contain_text("3")  # three new accounts
            page.screenshot(path=SHOTS / "02-import-report.png", full_page=True)

            with page.expect_download() as info:
                page.get_by_role("link", name="Download rejected rows (CSV)").click()
            download = info.value
            assert download.suggested_filename.endswith("-rejected.csv")
            lines = Path(download.path()).read_text("utf-8-sig").splitlines()
            assert lines[0].startswith("row,column,reason,खाता संख्या")
            assert lines[1].startswith("5,मोबाइल नंबर,") and "ALG-1003" in lines[1]

            # Finding the defaulters and opening one.
            page.get_by_role("link", name="Consumers").click()
            expect(page.get_by_role("status")).to_contain_text("3 accounts match")
            page.get_by_label("Defaulters only").check()
            page.get_by_role("button", name="Search").click()
            expect(page).to_have_url(re.compile(r"defaulters=1"))
            expect(page.get_by_role("status")).to_contain_text("1 account matches")
            page.screenshot(path=SHOTS / "03-defaulters.png", full_page=True)
            page.get_by_role("link", name="रमेश कुमार").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("रमेश कुमार")
            account = page.locator("article.account")
            expect(account).to_contain_text("₹1,23,456.50")
            expect(account).to_contain_text("Overdue")
            expect(page.locator("body")).to_contain_text("+91 98765 43210")
            page.screenshot(path=SHOTS / "04-consumer-en.png", full_page=True)

            # Switching languages keeps the page and translates it.
            consumer_url = page.url
            page.get_by_role("button", name="বাংলা").click()
            expect(page).to_have_url(consumer_url)
            expect(page.locator("html")).to_have_attribute("lang", "bn")
            expect(account).to_contain_text("বকেয়া")
            expect(account).to_contain_text("মেয়াদোত্তীর্ণ")
            expect(page.get_by_role("link", name="গ্রাহক").first).to_be_visible()
            page.screenshot(path=SHOTS / "05-consumer-bn.png", full_page=True)
            page.get_by_role("button", name="Русский").click()
            expect(page.locator("html")).to_have_attribute("lang", "ru")
            expect(account).to_contain_text("Задолженность")
            expect(account).to_contain_text("Просрочено")
            page.screenshot(path=SHOTS / "06-consumer-ru.png", full_page=True)

            # The choice sticks across pages; Hindi on a phone-sized screen.
            page.get_by_role("button", name="हिन्दी").click()
            page.set_viewport_size({"width": 390, "height": 844})
            page.get_by_role("link", name="उपभोक्ता").first.click()
            expect(page.get_by_role("heading", level=1)).to_have_text("उपभोक्ता")
            expect(page.get_by_role("status")).to_contain_text("3 खाते मिले")
            page.screenshot(path=SHOTS / "07-consumers-hi-mobile.png", full_page=True)

            page.get_by_role("button", name="लॉग आउट").click()
            expect(page).to_have_url(re.compile(r"/console/login$"))
        finally:
            browser.close()
