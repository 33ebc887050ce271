"""Master-data import through the service, on SQLite and PostgreSQL, with real files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from meterline.services.importer import ImportFailed, import_master, load_report
from meterline.services.tenants import create_tenant
from meterline.store.models import Account, Area, Consumer, ContactPoint, ImportRun, Meter
from tests.support.sheets import HINDI_HEADER, write_csv, write_xlsx
from tests.support.snapshot import count, master_snapshot

TITLE = [["उत्तर प्रदेश पावर कॉर्पोरेशन — अलीगढ़"], ["बकायेदार सूची, नवम्बर 2026"], []]
ROWS = [
    HINDI_HEADER,
    ["AL-1001", "राम कुमार", 9876543210.0, "1,23,456.50", "15/10/2026", "Feeder A"],
    ["AL-1002", "Sita Devi", "+91 98765-43211", "0", "15.12.2026", "Feeder A"],
    ["AL-1003", "মোহাম্মদ করিম", "०९८७६५ ४३२१२", "₹ 2,500", date(2026, 9, 1), "Feeder B"],
    ["AL-1004", "Иван Петров", "12345", "500", "01/10/2026", "Feeder B"],
]


def _import(sessions, path: Path, **kw):  # type: ignore[no-untyped-def]
    return import_master(sessions, "aligarh", path, **kw)


def test_hindi_sheet_with_title_rows(sessions, tenant, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "master.xlsx", ROWS, title_rows=TITLE)
    report = _import(sessions, path)
    assert (report.inserted, report.updated, report.unchanged, report.rejected) == (3, 0, 0, 1)
    assert report.header_row == 4
    assert report.columns["खाता संख्या"] == "account"
    [err] = report.errors
    assert err["row"] == 8 and err["column"] == "मोबाइल नंबर" and err["value"] == "12345"
    assert "mobile" in err["reason"] or "valid" in err["reason"]
    with sessions() as s:
        acc = s.scalar(select(Account).where(Account.number == "AL-1001"))
        assert acc is not None
        assert acc.dues_minor == 12345650 and acc.due_date == date(2026, 10, 15)
        phones = s.scalars(
            select(ContactPoint.value).where(ContactPoint.consumer_id == acc.consumer_id)
        )
        assert list(phones) == ["+919876543210"]
        acc3 = s.scalar(select(Account).where(Account.number == "AL-1003"))
        assert acc3 is not None and acc3.dues_minor == 250000 and acc3.due_date == date(2026, 9, 1)
        feeders = s.scalars(select(Area.path).where(Area.tenant_id == tenant.id)).all()
        assert sorted(feeders) == ["Feeder A", "Feeder B"]
        run = s.scalar(select(ImportRun))
        assert run is not None and run.status.value == "done" and run.rejected == 1


def test_reimport_changes_nothing_and_a_changed_row_updates_only_itself(
    sessions, tenant, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "master.xlsx", ROWS, title_rows=TITLE)
    _import(sessions, path)
    before = master_snapshot(sessions, tenant.id)
    with sessions() as s:
        stamps = dict(s.execute(select(Account.number, Account.updated_at)).all())
    again = _import(sessions, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert master_snapshot(sessions, tenant.id) == before

    changed = [list(r) for r in ROWS]
    changed[2][3] = "750.25"  # AL-1002's dues
    path2 = write_xlsx(tmp_path / "master2.xlsx", changed, title_rows=TITLE)
    third = _import(sessions, path2)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 2)
    after = master_snapshot(sessions, tenant.id)
    assert after["AL-1002"][9] == 75025
    assert {k: v for k, v in after.items() if k != "AL-1002"} == {
        k: v for k, v in before.items() if k != "AL-1002"
    }
    with sessions() as s:
        stamps2 = dict(s.execute(select(Account.number, Account.updated_at)).all())
    assert stamps2["AL-1001"] == stamps["AL-1001"]
    assert stamps2["AL-1002"] > stamps["AL-1002"]


def test_a_column_missing_from_the_file_is_left_alone(sessions, tenant, tmp_path: Path) -> None:
    _import(sessions, write_xlsx(tmp_path / "a.xlsx", ROWS))
    only_phones = [["Account No", "Mobile"], ["AL-1001", "9876500000"]]
    report = _import(sessions, write_csv(tmp_path / "b.csv", only_phones))
    assert report.updated == 1
    snap = master_snapshot(sessions, tenant.id)
    assert snap["AL-1001"][2] == [("+919876500000", True)]
    assert snap["AL-1001"][9] == 12345650  # dues untouched
    assert snap["AL-1001"][0] == "राम कुमार"


def test_totals_blank_repeated_header_and_duplicates(sessions, tenant, tmp_path: Path) -> None:
    rows = [
        ["Account No", "Name", "Mobile", "Dues"],
        ["A1", "One", "9876543210", "100"],
        [None, None, None, None],
        ["Account No", "Name", "Mobile", "Dues"],
        ["A2", "Two", "9876543211", "200"],
        ["A1", "One again", "9876543212", "300"],
        ["Total", None, None, "600"],
    ]
    report = _import(sessions, write_xlsx(tmp_path / "m.xlsx", rows))
    assert report.inserted == 2
    assert 3 not in {e["row"] for e in report.errors + report.skipped_rows}  # the blank row
    reasons = {e["row"]: e["reason"] for e in report.skipped_rows}
    assert reasons == {4: "repeated header row", 7: "totals row"}
    [dup] = report.errors
    assert dup["row"] == 6 and "first on row 2" in dup["reason"]
    assert count(sessions, Consumer, tenant.id) == 2


def test_blank_csv_lines_are_counted_not_imported(sessions, tenant, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Account No,Mobile\nA1,9876543210\n,\n , \nA2,9876543211\n")
    report = _import(sessions, path)
    assert (report.inserted, report.blank_rows, report.rejected) == (2, 2, 0)


def test_every_problem_of_a_row_is_named(sessions, tenant, tmp_path: Path) -> None:
    rows = [
        ["Account No", "Mobile", "Dues", "Due Date"],
        ["B1", "abc", "12x", "31/02/2026"],
        ["", "9876543210", "1", ""],
    ]
    report = _import(sessions, write_csv(tmp_path / "m.csv", rows))
    cols = sorted((e["row"], e["column"]) for e in report.errors)
    assert cols == [(2, "Due Date"), (2, "Dues"), (2, "Mobile"), (3, "Account No")]
    assert report.rejected == 2 and report.inserted == 0


@pytest.mark.parametrize(
    ("encoding", "delimiter"), [("cp1251", ";"), ("utf-8-sig", ","), ("utf-16", "\t")]
)
def test_russian_csv_encodings(
    sessions, runtime, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    with sessions() as s, s.begin():
        create_tenant(
            s,
            slug="mosvoda",
            name="Мосводоканал",
            country="RU",
            currency="RUB",
            timezone="Europe/Moscow",
        )
    rows = [
        ["Реестр лицевых счетов"],
        ["Лицевой счёт", "ФИО", "Телефон", "Задолженность", "Квартира", "Услуга"],
        ["4401", "Петров Иван Сергеевич", "8 (916) 123-45-67", "1 234,56", "12", "ХВС"],
        ["4402", "Сидорова Анна", "+7 916 765 43 21", "0,00", "14", "отопление"],
    ]
    path = write_csv(tmp_path / "ru.csv", rows, encoding=encoding, delimiter=delimiter)
    report = import_master(sessions, "mosvoda", path)
    assert report.inserted == 2, report.errors
    with sessions() as s:
        acc = s.scalar(select(Account).where(Account.number == "4401"))
        assert acc is not None and acc.dues_minor == 123456 and acc.apartment == "12"
        assert acc.service.value == "water"
        con = s.get(Consumer, acc.consumer_id)
        assert con is not None and con.name == "Петров Иван Сергеевич"
        phone = s.scalar(select(ContactPoint.value).where(ContactPoint.consumer_id == con.id))
        assert phone == "+79161234567"


def test_bengali_cooperative_sheet(sessions, runtime, tmp_path: Path) -> None:
    with sessions() as s, s.begin():
        create_tenant(
            s, slug="samity", name="Samity", country="BD", currency="BDT",
            timezone="Asia/Dhaka", kind="cooperative",  # type: ignore[arg-type]
        )  # fmt: skip
    rows = [
        ["সদস্য নম্বর", "নাম", "মোবাইল", "ব্যালেন্স", "গ্রাম"],
        ["M-01", "রহিম উদ্দিন", "০১৭১২৩৪৫৬৭৮", "৳ ১২,৫০০", "Char Kukri"],
        ["M-02", "ফাতেমা বেগম", "8801812345678", "500.50", "Char Kukri"],
    ]
    report = import_master(sessions, "samity", write_xlsx(tmp_path / "bd.xlsx", rows))
    assert report.inserted == 2, report.errors
    with sessions() as s:
        acc = s.scalar(select(Account).where(Account.number == "M-01"))
        assert acc is not None and acc.balance_minor == 1250000 and acc.service.value == "savings"
        phones = set(s.scalars(select(ContactPoint.value)))
        assert phones == {"+8801712345678", "+8801812345678"}


def test_explicit_mapping(sessions, tenant, tmp_path: Path) -> None:
    rows = [["Cons ID", "Cell", "Whatever"], ["X1", "9876543210", "z"]]
    with pytest.raises(ImportFailed, match="no recognisable account column"):
        _import(sessions, write_csv(tmp_path / "a.csv", rows))
    report = _import(
        sessions, write_csv(tmp_path / "b.csv", rows), mapping={"account": "Cons ID", "mobile": "B"}
    )
    assert report.inserted == 1 and report.columns == {"Cons ID": "account", "Cell": "mobile"}


def test_dry_run_stores_nothing_but_its_report(sessions, tenant, tmp_path: Path) -> None:
    report = _import(sessions, write_xlsx(tmp_path / "m.xlsx", ROWS), dry_run=True)
    assert report.inserted == 3 and report.rejected == 1
    assert count(sessions, Account, tenant.id) == 0
    assert count(sessions, Area, tenant.id) == 0
    with sessions() as s:
        stored = load_report(s, tenant.id, report.import_id or 0)
    assert stored is not None and stored.dry_run
    assert (stored.inserted, stored.rejected, stored.errors) == (3, 1, report.errors)


BAD_FILES = {
    "random.xlsx": b"\x00\x01\x02garbage" * 100,
    "picture.csv": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
    "empty.csv": b"",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_change_nothing(sessions, tenant, tmp_path: Path, name: str) -> None:
    _import(sessions, write_xlsx(tmp_path / "good.xlsx", ROWS))
    before = master_snapshot(sessions, tenant.id)
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    with pytest.raises(ImportFailed) as info:
        _import(sessions, path)
    assert name in info.value.message or "empty" in info.value.message
    assert master_snapshot(sessions, tenant.id) == before
    with sessions() as s:
        failed = s.scalars(select(ImportRun).where(ImportRun.filename == name)).one()
        assert failed.status.value == "failed" and failed.message


def test_oversized_file_is_refused_before_reading(sessions, tenant, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "big.csv",
        [["Account No", "Mobile"]] + [[f"A{i}", "9876543210"] for i in range(500)],
    )
    with pytest.raises(ImportFailed, match="METERLINE_IMPORT_MAX_BYTES"):
        _import(sessions, path, max_bytes=1000)
    assert count(sessions, Account, tenant.id) == 0


def test_formula_without_value_and_merged_cells(sessions, tenant, tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Account No", "Name", "Mobile", "Dues"])
    ws.append(["F1", "Formula", "9876543210", "=10*20"])
    ws.append(["F2", "Merged", "9876543211", "100"])
    ws.append(["F3", None, "9876543212", "100"])
    ws.append(["F4", "Fine", "9876543213", "100"])
    ws.merge_cells("B3:B4")
    wb.save(tmp_path / "f.xlsx")
    report = _import(sessions, tmp_path / "f.xlsx")
    by_row = {e["row"]: e for e in report.errors}
    assert "formula" in by_row[2]["reason"] and by_row[2]["column"] == "Dues"
    assert "merged" in by_row[3]["reason"] and "B3:B4" in by_row[3]["reason"]
    assert 4 in by_row
    assert report.inserted == 1


def test_meter_serial_belongs_to_one_account(sessions, tenant, tmp_path: Path) -> None:
    rows = [["Account No", "Meter No"], ["S1", "MTR-1"], ["S2", "MTR-2"], ["S3", "MTR-1"]]
    report = _import(sessions, write_csv(tmp_path / "m.csv", rows))
    assert report.inserted == 2 and report.errors[0]["row"] == 4
    later = _import(
        sessions, write_csv(tmp_path / "n.csv", [["Account No", "Meter No"], ["S9", "MTR-2"]])
    )
    assert later.inserted == 0 and "already belongs to account S2" in later.errors[0]["reason"]
    with sessions() as s:
        assert len(s.scalars(select(Meter)).all()) == 2


def test_tenants_do_not_share_accounts(sessions, tenant, tmp_path: Path) -> None:
    with sessions() as s, s.begin():
        other = create_tenant(
            s, slug="other", name="Other", country="IN", currency="INR", timezone="Asia/Kolkata"
        )
        other_id = other.id
    path = write_xlsx(tmp_path / "m.xlsx", ROWS)
    import_master(sessions, "other", path)
    report = _import(sessions, path)
    assert report.inserted == 3  # same account numbers, another tenant: new rows
    assert count(sessions, Account, other_id) == 3
    assert count(sessions, Account, tenant.id) == 3


def test_reading_in_a_second_process_gives_the_same_result(
    sessions, tenant, runtime, tmp_path: Path
) -> None:
    from meterline.ingest.sample_sheet import write_csv as write_sample

    path = write_sample(tmp_path / "sample.csv", 3000, bad_rows=True, totals=True, title=True)
    with sessions() as s, s.begin():
        twin = create_tenant(
            s, slug="twin", name="Twin", country="IN", currency="INR", timezone="Asia/Kolkata"
        )
        twin_id = twin.id
    inline = import_master(sessions, "aligarh", path, parallel=False, batch_size=500)
    forked = import_master(sessions, "twin", path, parallel=True, batch_size=500)
    keys = (
        "inserted",
        "rejected",
        "skipped",
        "blank_rows",
        "errors",
        "skipped_rows",
        "columns",
        "header_row",
    )
    assert {k: getattr(inline, k) for k in keys} == {k: getattr(forked, k) for k in keys}
    assert inline.inserted > 2900 and inline.rejected > 0
    assert master_snapshot(sessions, tenant.id) == master_snapshot(sessions, twin_id)


def test_a_refused_file_is_refused_from_the_second_process_too(
    sessions, tenant, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "notes.csv", [["just", "words"], ["no", "accounts"]])
    with pytest.raises(ImportFailed, match="no recognisable account column"):
        _import(sessions, path, parallel=True)
    (tmp_path / "junk.xlsx").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ImportFailed, match=r"junk\.xlsx"):
        _import(sessions, tmp_path / "junk.xlsx", parallel=True)
    assert count(sessions, Account, tenant.id) == 0


def test_a_batch_refused_midway_is_rolled_back_whole_and_applied_again(
    sessions, tenant, tmp_path: Path
) -> None:
    """The first batches go in by the all-new shortcut. A later batch's meter serial is
    stored already, under another account: its consumers and accounts are written by
    then, the meters' insert is refused, and the whole batch is rolled back and applied
    again by the lookups, which reject that one row and store the rest once."""
    header = ["Account No", "Consumer Name", "Mobile No", "Dues", "Due Date", "Feeder", "Meter No"]
    rows = [
        [f"AL-{i:05d}", f"Name {i}", f"98765{i:05d}", str(i % 7 * 100), "15/10/2026",
         f"Feeder {i % 3}", f"M-{i:05d}"]
        for i in range(3000)
    ]  # fmt: skip
    other = [["AL-OTHER", "Other", "9876599999", "0", "15/10/2026", "Feeder 0", "M-01650"]]
    _import(sessions, write_csv(tmp_path / "other.csv", [header, *other]))
    report = _import(sessions, write_csv(tmp_path / "whole.csv", [header, *rows]), batch_size=500)
    assert (report.inserted, report.unchanged, report.rejected) == (2999, 0, 1)
    [err] = report.errors
    assert (err["column"], err["value"]) == ("Meter No", "M-01650")
    tid = tenant.id
    assert count(sessions, Account, tid) == count(sessions, Consumer, tid) == 3000
    assert count(sessions, Meter, tid) == 3000  # 2,999 new and AL-OTHER's
    assert count(sessions, ContactPoint, tid) == 3000
