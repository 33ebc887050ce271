"""The operator console over HTTP: login, roles, CSRF, tenant scoping, filters, languages."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from meterline.domain.enums import (
    AreaLevel,
    Billing,
    BillStatus,
    ContactKind,
    LedgerKind,
    Reachability,
    Role,
    Service,
)
from meterline.runtime import Runtime
from meterline.services.security import create_operator
from meterline.services.tenants import create_tenant, get_tenant
from meterline.store.models import Account, Area, Bill, Consumer, ContactPoint, LedgerEntry, Meter
from meterline.web.app import create_app
from meterline.web.console import LoginThrottle
from tests.support.sheets import HINDI_HEADER, write_csv, write_xlsx

PASSWORD = "correct horse battery"
# 20:00 UTC on 1 March is 01:30 on 2 March in India: "today" must be the tenant's.
NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# --- helpers -------------------------------------------------------------------------------


def add_operator(
    runtime: Runtime, slug: str, username: str, role: Role, language: str = "en"
) -> None:
    with runtime.sessions() as s, s.begin():
        create_operator(s, get_tenant(s, slug), username, PASSWORD, role, language)


def csrf_of(client: TestClient, path: str = "/console/login") -> str:
    page = client.get(path)
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, **extra: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client)
    data = {"csrf": token, "username": username, "password": password, **extra}
    return client.post("/console/login", data=data, follow_redirects=False)


def plain(html: str) -> str:
    """CLDR puts no-break spaces in dates and amounts; compare with ordinary ones."""
    return html.replace("\u202f", " ").replace("\xa0", " ")


def session_data(client: TestClient) -> dict[str, object]:
    cookie = client.cookies.get("session")
    assert cookie
    raw = TimestampSigner("test-secret-key").unsign(cookie)
    return json.loads(base64.b64decode(raw))  # type: ignore[no-any-return]


def new_client(runtime: Runtime) -> TestClient:
    app = create_app(runtime)
    app.state.console_clock = lambda: NOW
    return TestClient(app)


@dataclass
class Seeded:
    ramesh: int  # consumer ids
    ivan: int
    sita: int
    other_tenant_consumer: int
    feeder11: int  # area ids
    division1: int
    division10: int
    other_tenant_area: int


def _area(s, tid: int, parent: Area | None, level: AreaLevel, name: str) -> Area:  # type: ignore[no-untyped-def]
    path = f"{parent.path} / {name}" if parent else name
    area = Area(tenant_id=tid, parent_id=parent.id if parent else None, level=level, name=name)
    area.path = path
    s.add(area)
    s.flush()
    return area


def _consumer(  # type: ignore[no-untyped-def]
    s, tid: int, name: str, number: str, phone: str | None, **account: object
) -> Consumer:
    c = Consumer(tenant_id=tid, name=name, preferred_language="hi")
    s.add(c)
    s.flush()
    if phone:
        s.add(
            ContactPoint(
                tenant_id=tid,
                consumer_id=c.id,
                kind=ContactKind.phone,
                value=phone,
                is_primary=True,
                whatsapp=Reachability.yes,
            )
        )
    values = {"service": Service.electricity, "billing": Billing.postpaid, **account}
    s.add(Account(tenant_id=tid, consumer_id=c.id, number=number, **values))
    s.flush()
    return c


@pytest.fixture
def seeded(runtime: Runtime, tenant) -> Seeded:  # type: ignore[no-untyped-def]
    with runtime.sessions() as s, s.begin():
        other = create_tenant(
            s, slug="dhaka-coop", name="Dhaka Cooperative", country="BD", currency="BDT",
            timezone="Asia/Dhaka",
        )  # fmt: skip
        tid = tenant.id
        circle = _area(s, tid, None, AreaLevel.circle, "Aligarh Circle")
        div1 = _area(s, tid, circle, AreaLevel.division, "Division 1")
        f11 = _area(s, tid, div1, AreaLevel.feeder, "Feeder 11")
        div2 = _area(s, tid, circle, AreaLevel.division, "Division 2")
        f21 = _area(s, tid, div2, AreaLevel.feeder, "Feeder 21")
        div10 = _area(s, tid, circle, AreaLevel.division, "Division 10")
        ramesh = _consumer(
            s, tid, "Ramesh Kumar", "ALG-0001", "+919876543210",
            area_id=f11.id, dues_minor=12345650, due_date=date(2026, 3, 1),
            address="12 Civil Lines", sanctioned_load_kw=Decimal("2.500"),
        )  # fmt: skip
        ivan = _consumer(
            s, tid, "Иван Петров", "ALG-0002", "+919812345678",
            area_id=f21.id, service=Service.water, billing=Billing.prepaid, balance_minor=50000,
        )  # fmt: skip
        sita = _consumer(
            s, tid, "सीता देवी", "ALG-0003", None,
            area_id=div10.id, billing=Billing.prepaid, dues_minor=500, due_date=date(2026, 4, 1),
        )  # fmt: skip
        for i in range(120):
            _consumer(s, tid, f"Bulk {i:03d}", f"BULK-{i:03d}", None)
        acc = s.query(Account).filter_by(tenant_id=tid, number="ALG-0001").one()
        s.add(Meter(tenant_id=tid, account_id=acc.id, serial="MTR-7781", kind=Service.electricity))
        s.add(
            Bill(
                tenant_id=tid, account_id=acc.id, period="2026-02", amount_minor=345600,
                due_date=date(2026, 3, 1), status=BillStatus.open,
            )
        )  # fmt: skip
        s.add(
            LedgerEntry(
                tenant_id=tid, account_id=acc.id, kind=LedgerKind.payment, amount_minor=100000,
                balance_after_minor=0, external_ref="UPI-REF-42", note="counter",
                occurred_at=datetime(2026, 2, 10, 6, 0, tzinfo=UTC),
            )
        )  # fmt: skip
        # The other tenant has a same-named consumer with the same account number and area.
        o_area = _area(s, other.id, None, AreaLevel.district, "Aligarh Circle")
        o = _consumer(
            s, other.id, "Ramesh Kumar", "ALG-0001", "+8801712345678",
            area_id=o_area.id, dues_minor=999, due_date=date(2020, 1, 1),
        )  # fmt: skip
        seeded = Seeded(ramesh.id, ivan.id, sita.id, o.id, f11.id, div1.id, div10.id, o_area.id)
    add_operator(runtime, "aligarh", "op", Role.operator)
    add_operator(runtime, "aligarh", "view", Role.viewer)
    add_operator(runtime, "aligarh", "ru-admin", Role.admin, language="ru")
    add_operator(runtime, "dhaka-coop", "dhaka-op", Role.operator, language="bn")
    return seeded


@pytest.fixture
def client(runtime: Runtime, seeded: Seeded) -> TestClient:
    return new_client(runtime)


@pytest.fixture
def op(client: TestClient) -> TestClient:
    assert login(client, "op").status_code == 303
    return client


# --- login, logout, session ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console", "/console/consumers?q=x", "/console/imports", "/console/consumers/1"]
)
def test_pages_redirect_to_login(client: TestClient, path: str) -> None:
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/console/login?next=%2Fconsole")


def test_login_then_dashboard_then_logout(client: TestClient) -> None:
    resp = login(client, "op", next="/console/consumers?defaulters=1")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/consumers?defaulters=1"
    assert set(session_data(client)) <= {"operator_id", "lang", "csrf"}
    page = client.get("/console")
    assert page.status_code == 200
    assert "Aligarh Electricity Office" in page.text
    # 123 consumers, 123 accounts, one defaulter (due 1 March, today 2 March in India).
    tiles = re.findall(r'class="tile-value">([^<]+)<', page.text)
    assert tiles == ["123", "123", "1"]
    assert page.headers["cache-control"] == "no-store"
    out = client.post("/console/logout", data={"csrf": csrf_of(client, "/console")})
    assert out.status_code == 200 and "/console/login" in str(out.url)
    assert client.get("/console", follow_redirects=False).status_code == 303
    again = client.post("/console/logout", data={}, follow_redirects=False)
    assert again.headers["location"] == "/console/login"  # already out: no error page


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    wrong = login(client, "op", "not the password")
    unknown = login(client, "nobody", "not the password")
    for resp in (wrong, unknown):
        assert resp.status_code == 401
        assert "Wrong username or password." in resp.text
    assert "operator_id" not in session_data(client)


def test_failed_logins_are_rate_limited_per_user_and_ip(client: TestClient) -> None:
    clock = [1000.0]
    client.app.state.login_throttle = LoginThrottle(clock=lambda: clock[0])  # type: ignore[attr-defined]
    for _ in range(5):
        assert login(client, "op", "bad password").status_code == 401
    limited = login(client, "op")  # even the right password waits
    assert limited.status_code == 429
    assert "Too many failed attempts. Try again in 5 minutes." in limited.text
    assert int(limited.headers["retry-after"]) == 300
    assert login(client, "view").status_code == 303  # another user is not locked out
    client.cookies.clear()
    clock[0] += 301
    assert login(client, "op").status_code == 303


def test_open_redirects_are_refused(client: TestClient) -> None:
    resp = login(client, "op", next="https://evil.example/console")
    assert resp.headers["location"] == "/console"
    resp = client.post(
        "/console/language",
        data={"csrf": csrf_of(client, "/console"), "lang": "hi", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert resp.headers["location"] == "/console"


# --- CSRF and roles ------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused(client: TestClient, tmp_path: Path) -> None:
    csrf_of(client)
    resp = client.post("/console/login", data={"username": "op", "password": PASSWORD})
    assert resp.status_code == 403 and "This form has expired" in resp.text
    assert login(client, "op").status_code == 303
    sheet = write_csv(tmp_path / "m.csv", [["Account No", "Name"], ["N1", "A"]])
    with sheet.open("rb") as f:
        resp = client.post(
            "/console/imports", data={"csrf": "forged"}, files={"file": ("m.csv", f)}
        )
    assert resp.status_code == 403
    assert client.post("/console/logout", data={}).status_code == 403
    assert client.post("/console/logout", data={"csrf": "подделка"}).status_code == 403
    assert client.get("/console").status_code == 200  # still logged in


def test_viewer_sees_imports_but_cannot_upload(client: TestClient, tmp_path: Path) -> None:
    assert login(client, "view").status_code == 303
    page = client.get("/console/imports")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' not in page.text
    sheet = write_csv(tmp_path / "m.csv", [["Account No", "Name"], ["N1", "A"]])
    with sheet.open("rb") as f:
        resp = client.post(
            "/console/imports",
            data={"csrf": csrf_of(client, "/console")},
            files={"file": ("m.csv", f)},
        )
    assert resp.status_code == 403
    assert "You do not have permission to do this." in resp.text
    assert "No imports yet." in client.get("/console/imports").text


# --- imports -------------------------------------------------------------------------------

SHEET = [
    HINDI_HEADER,
    ["N-1", "राम प्रसाद", "98765 00001", "1,250.50", "15/02/2026", "F1"],
    ["N-2", "श्याम", "12345", "10", "", "F1"],
]


def _upload(client: TestClient, path: Path, **form: str):  # type: ignore[no-untyped-def]
    data = {"csrf": csrf_of(client, "/console/imports"), **form}
    with path.open("rb") as f:
        return client.post(
            "/console/imports", data=data, files={"file": (path.name, f)}, follow_redirects=False
        )


def test_upload_report_and_rejected_csv(op: TestClient, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "master.xlsx", SHEET, title_rows=[["Aligarh EUDC — dues list"]])
    resp = _upload(op, path)
    assert resp.status_code == 303, resp.text
    report_url = resp.headers["location"]
    import_id = int(report_url.rsplit("/", 1)[1])
    page = op.get(report_url)
    assert page.status_code == 200
    text = page.text
    assert "master.xlsx" in text and "xlsx" in text
    assert "मोबाइल नंबर" in text and "<code>mobile</code>" in text  # mapping as recognised
    # Title row 1, header row 2: the bad phone is on row 4 of the sheet.
    assert re.search(r'<td class="num">4</td>\s*<td>मोबाइल नंबर</td>', text)
    assert f"/console/imports/{import_id}/rejected.csv" in text
    csv_console = op.get(f"/console/imports/{import_id}/rejected.csv")
    csv_api = op.get(f"/api/v1/imports/{import_id}/rejected.csv")
    assert csv_console.status_code == 200 and csv_console.content == csv_api.content
    assert csv_console.headers["content-type"].startswith("text/csv")
    listing = op.get("/console/imports").text
    assert f'href="/console/imports/{import_id}"' in listing and ">op<" in listing
    found = op.get("/console/consumers", params={"q": "98765 00001"}).text
    assert "N-1" in found and "₹1,250.50" in found


def test_dry_run_shows_the_report_without_saving(op: TestClient, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "check.xlsx", SHEET)
    resp = _upload(op, path, dry_run="true")
    assert resp.status_code == 200
    assert "Dry run: nothing was saved." in resp.text
    assert "12345" in resp.text  # the bad phone, shown now because it is not stored
    assert numbers(op.get("/console/consumers", params={"q": "N-1"}).text) == []


def test_refused_file_and_bad_mapping_show_their_message(op: TestClient, tmp_path: Path) -> None:
    junk = write_csv(tmp_path / "junk.csv", [["hello", "world"], ["1", "2"]])
    resp = _upload(op, junk)
    assert resp.status_code == 422
    assert "The file was not imported." in resp.text
    assert "no recognisable account column" in resp.text
    resp = _upload(op, junk, mapping="colour=hello")
    assert resp.status_code == 422 and "unknown field(s) in mapping: colour" in resp.text
    resp = _upload(op, junk, mapping="account=hello\nname=world")
    assert resp.status_code == 303


def test_imports_of_another_tenant_are_not_found(
    runtime: Runtime, op: TestClient, tmp_path: Path
) -> None:
    resp = _upload(op, write_xlsx(tmp_path / "m.xlsx", SHEET))
    import_id = resp.headers["location"].rsplit("/", 1)[1]
    other = new_client(runtime)
    assert login(other, "dhaka-op").status_code == 303
    assert other.get(f"/console/imports/{import_id}").status_code == 404
    assert other.get(f"/console/imports/{import_id}/rejected.csv").status_code == 404
    assert "m.xlsx" not in other.get("/console/imports").text


# --- consumers -----------------------------------------------------------------------------


def numbers(html: str) -> list[str]:
    return re.findall(r'<td class="nowrap"><a href="/console/consumers/\d+">([^<]+)</a>', html)


def test_consumer_search_and_filters(op: TestClient, seeded: Seeded) -> None:
    def find(**params: object) -> list[str]:
        resp = op.get("/console/consumers", params=params)
        assert resp.status_code == 200
        return numbers(resp.text)

    assert find(q="ramesh") == ["ALG-0001"]  # one, not the other tenant's Ramesh
    assert find(q="иван") == ["ALG-0002"]  # Cyrillic, lower-case typed
    assert find(q="सीता") == ["ALG-0003"]
    assert find(q="alg-0002") == ["ALG-0002"]
    assert find(q="98765 43210") == ["ALG-0001"]  # as a person types it
    assert find(q="+91 98123-45678") == ["ALG-0002"]
    assert find(q="০৯৮৭৬৫৪৩২১০") == ["ALG-0001"]  # Bengali digits, trunk 0
    assert find(q="4321") == []  # too short to be a phone fragment, not an account
    assert find(q="54321") == ["ALG-0001"]  # a fragment of a number
    assert find(q="1712345678") == []  # the other tenant's phone
    assert find(area=seeded.division1) == ["ALG-0001"]  # subtree, not "Division 10"
    assert find(area=seeded.division10) == ["ALG-0003"]
    assert find(area=seeded.other_tenant_area) == []
    assert find(service="water") == ["ALG-0002"]
    assert find(billing="prepaid") == ["ALG-0002", "ALG-0003"]
    assert find(defaulters=1) == ["ALG-0001"]
    assert find(defaulters=1, billing="prepaid") == []
    assert find(q="Bulk 00", service="bogus")[:2] == ["BULK-000", "BULK-001"]


def test_consumer_list_pages_and_counts(op: TestClient, seeded: Seeded) -> None:
    first = op.get("/console/consumers").text
    assert "123 accounts match" in first and "showing 1–50" in first
    assert len(numbers(first)) == 50
    assert "Page 1 of 3" in first and "page=2" in first
    last = op.get("/console/consumers", params={"page": 3, "q": "bulk"}).text
    assert "120 accounts match" in last and len(numbers(last)) == 20
    assert "q=bulk" in last and "page=2" in last  # links keep the filters
    beyond = op.get("/console/consumers", params={"page": 99}).text
    assert numbers(beyond) == [] and "Back to the first page" in beyond
    one = op.get("/console/consumers", params={"defaulters": 1}).text
    assert "1 account matches" in one and 'class="overdue"' in one


def test_consumer_page(op: TestClient, seeded: Seeded) -> None:
    page = op.get(f"/console/consumers/{seeded.ramesh}")
    assert page.status_code == 200
    text = plain(page.text)
    for expected in (
        "Ramesh Kumar",
        "ALG-0001",
        "+91 98765 43210",
        "On WhatsApp",
        "Aligarh Circle / Division 1 / Feeder 11",
        "12 Civil Lines",
        "2.5 kW",
        "₹1,23,456.50",  # Indian grouping, exact paisa
        "Overdue",
        "MTR-7781",
        "2026-02",
        "₹3,456.00",
        "UPI-REF-42",
        "10 Feb 2026, 11:30:00 AM",  # 06:00 UTC in India
        "हिन्दी",  # preferred language
    ):
        assert expected in text, expected


def test_another_tenants_consumer_is_not_found(
    runtime: Runtime, op: TestClient, seeded: Seeded
) -> None:
    assert op.get(f"/console/consumers/{seeded.other_tenant_consumer}").status_code == 404
    assert op.get("/console/consumers/999999").status_code == 404
    other = new_client(runtime)
    assert login(other, "dhaka-op").status_code == 303
    assert other.get(f"/console/consumers/{seeded.ramesh}").status_code == 404
    listing = other.get("/console/consumers").text
    assert numbers(listing) == ["ALG-0001"] and "9.99৳" in listing


# --- languages -----------------------------------------------------------------------------


def test_language_switch_and_default(runtime: Runtime, op: TestClient, seeded: Seeded) -> None:
    token = csrf_of(op, "/console")
    resp = op.post(
        "/console/language",
        data={"csrf": token, "lang": "bn", "next": "/console/consumers?defaulters=1"},
        follow_redirects=False,
    )
    assert resp.headers["location"] == "/console/consumers?defaulters=1"
    page = op.get("/console/consumers?defaulters=1").text
    assert '<html lang="bn">' in page and "শুধু বকেয়াদার" in page and "গ্রাহক" in page
    op.post("/console/language", data={"csrf": token, "lang": "xx", "next": "/console"})
    assert '<html lang="bn">' in op.get("/console").text  # unknown language ignored
    op.post("/console/language", data={"csrf": token, "lang": "hi", "next": "/console"})
    detail = plain(op.get(f"/console/consumers/{seeded.ramesh}").text)
    assert "बकाया राशि" in detail and "₹1,23,456.50" in detail and "10 फ़र॰ 2026" in detail

    ru = new_client(runtime)
    assert login(ru, "ru-admin").status_code == 303
    page = ru.get("/console").text
    assert '<html lang="ru">' in page and "Должники" in page and "Абоненты" in page
    missing = ru.get("/console/consumers/999999")
    assert missing.status_code == 404 and "Такого абонента нет." in missing.text


def test_login_page_follows_the_browser_language(client: TestClient) -> None:
    client.headers["Accept-Language"] = "ru-RU,ru;q=0.9,en;q=0.5"
    page = client.get("/console/login")
    assert "Вход в кабинет оператора" in page.text
    resp = login(client, "op", "wrong password")
    assert "Неверное имя пользователя или пароль." in resp.text
