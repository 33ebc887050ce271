"""Scenario 1, from the office's sheet to a paid bill, over real HTTP: a Hindi master sheet
is imported, a dues reminder run previews and sends each defaulter their amount, due date
and payment link, the dispatcher delivers them, one consumer opens the link and pays at
the Razorpay stand-in, the signed webhook arrives three times at once, and the bill is paid
once, confirmed once, and counted in the run's report.

(Here every reminder goes by SMS; the WhatsApp/SMS mix, fallback and the schedule are in
test_scenario1_dues_reminders.py.)
"""

from __future__ import annotations

import random
import re
import threading
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from meterline.domain.enums import BillStatus, MessageStatus
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services import payments as pay
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.importer import import_master
from meterline.services.security import create_api_key
from meterline.services.tenants import get_tenant
from meterline.store.models import Account, Bill, LedgerEntry, Message
from meterline.web.app import create_app
from tests.support.browser import serving
from tests.support.razorpay_standin import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, razorpay_standin
from tests.support.sheets import HINDI_HEADER, write_xlsx

ROWS = [
    HINDI_HEADER,
    ["AL-1001", "राम कुमार", 9876543210.0, "1,234.50", "15/10/2026", "Feeder A"],
    ["AL-1002", "Sita Devi", "+91 98765-43211", "0", "15.12.2026", "Feeder A"],
    ["AL-1003", "মোহাম্মদ করিম", "०९८७६५ ४३२१२", "₹ 2,500", date(2026, 9, 1), "Feeder B"],
    ["AL-1004", "Иван Петров", "98765 43213", "500", "01/10/2026", "Feeder B"],
]


def _deliver(runtime: Runtime) -> None:
    worker = threading.Thread(
        target=drain,
        args=(Dispatcher(runtime.sessions, settings=DispatchSettings(), rng=random.Random(4)),),
    )
    worker.start()
    worker.join(timeout=60)


def test_from_the_sheet_to_a_paid_bill(
    runtime: Runtime, tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RZP_KEY_SECRET", KEY_SECRET)
    monkeypatch.setenv("RZP_WEBHOOK_SECRET", WEBHOOK_SECRET)
    report = import_master(runtime.sessions, "aligarh", write_xlsx(tmp_path / "m.xlsx", ROWS))
    assert report.inserted == 4, report.errors
    with razorpay_standin() as rzp, serving(create_app(runtime)) as site:
        runtime.settings = runtime.settings.model_copy(update={"public_url": site})
        with runtime.sessions() as s, s.begin():
            t = get_tenant(s, "aligarh")
            t.quiet_start = t.quiet_end = "00:00"
            add_channel_account(s, t.id, name="sms", type_name="sandbox", config={})
            credit.set_pricing(s, t.id, sms_price_minor=25)
            credit.top_up(s, t.id, 100_00, by="test")
            gateway_id = pay.add_gateway(
                s,
                t.id,
                name="razorpay",
                type_name="razorpay",
                config={
                    "key_id": KEY_ID,
                    "key_secret": "env:RZP_KEY_SECRET",
                    "webhook_secret": "env:RZP_WEBHOOK_SECRET",
                    "base_url": rzp.url,
                },
            ).id
            _, key = create_api_key(s, t, "office", "operator")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=site, timeout=30) as http:
            preview = http.post("/api/v1/reminders/preview", json={}, headers=headers).json()
            # AL-1002 owes nothing: three defaulters, all by SMS.
            assert preview["count"] == 3 and preview["channel_mix"] == {"sms": 3}
            run = http.post("/api/v1/reminders/runs", json={}, headers=headers).json()
            assert run["queued"] == 3
            _deliver(runtime)
            with runtime.sessions() as s:
                sms = s.scalars(select(Message).where(Message.kind == "dues_reminder")).all()
                assert {m.status for m in sms} == {MessageStatus.delivered}
                ram = next(m for m in sms if m.to_address == "+919876543210")
                assert "₹1,234.50" in ram.body and ram.cost_minor == 25 * ram.segments
            url = re.search(r"https?://\S+/p/\w+", ram.body)
            assert url is not None
            path = url.group(0).removeprefix(site)
            assert "राम कुमार" in http.get(path).text
            go = http.post(f"{path}/pay", follow_redirects=False)
            assert go.status_code == 303
            (plink_id,) = rzp.links
            _, answers = rzp.pay(plink_id, f"{site}/api/v1/payments/webhooks/{gateway_id}", times=3)
            assert sorted(a.json()["recorded"] for a in answers) == [0, 0, 1]
            _deliver(runtime)
            with runtime.sessions() as s:
                account = s.scalar(select(Account).where(Account.number == "AL-1001"))
                assert account is not None and account.dues_minor == 0
                bill = s.scalar(select(Bill).where(Bill.account_id == account.id))
                assert bill is not None and bill.status is BillStatus.paid
                assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
                (confirm,) = s.scalars(
                    select(Message).where(Message.kind == "payment_received")
                ).all()
                assert confirm.status is MessageStatus.delivered
                assert confirm.to_address == "+919876543210"
            (row,) = http.get("/api/v1/reminders/report", headers=headers).json()["rows"]
            assert (row["sent"], row["delivered"], row["clicked"], row["paid"]) == (3, 3, 1, 1)
            assert row["paid_amount_minor"] == 1234_50
