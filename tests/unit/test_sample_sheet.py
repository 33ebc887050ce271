"""The generated master sheet: deterministic, valid where it should be, bad where asked."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import phonenumbers
import pytest

from meterline.domain import cells
from meterline.domain.enums import Billing, Service
from meterline.domain.headers import is_totals_row, match_row
from meterline.domain.master_row import MasterRecord, RowContext, read_row
from meterline.ingest.sample_sheet import (
    COL,
    HEADER,
    bad_row_count,
    generate_rows,
    indian_grouping,
    write_csv,
    write_xlsx,
)

TODAY = date(2025, 3, 15)
CTX = RowContext("IN", 2, Service.electricity, Billing.postpaid, "hi")


def _read(rows: list[list[object]]) -> tuple[list[MasterRecord], list[str]]:
    header = match_row(1, HEADER)
    assert header is not None
    records, reasons = [], []
    for row in rows:
        result = read_row(row, header, CTX)
        if isinstance(result, list):
            reasons.extend(p.reason for p in result)
        else:
            records.append(result)
    return records, reasons


def test_header_is_recognised_in_full() -> None:
    header = match_row(1, HEADER)
    assert header is not None
    assert "Sl No" not in [HEADER[i] for i in header.columns]
    assert len(header.columns) == len(HEADER) - 1


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = list(generate_rows(500, seed=7, bad_rows=True, totals=True, today=TODAY))
    b = list(generate_rows(500, seed=7, bad_rows=True, totals=True, today=TODAY))
    c = list(generate_rows(500, seed=8, bad_rows=True, totals=True, today=TODAY))
    assert a == b
    assert a != c


def test_good_rows_are_clean_unique_and_varied() -> None:
    rows = list(generate_rows(3000, seed=1, today=TODAY))
    assert len(rows) == 3000
    records, reasons = _read(rows)
    assert reasons == []
    assert len({r.account for r in records}) == 3000
    serials = [r.given["meter_serial"] for r in records if r.given["meter_serial"]]
    assert len(serials) == len(set(serials)) > 2500
    # Every phone cell shape occurs, and each number is a valid Indian mobile.
    cells_ = [r[COL["Mobile No"]] for r in rows]
    assert any(isinstance(c, int) for c in cells_)
    assert any(isinstance(c, str) and c.startswith("+91 ") for c in cells_)
    assert any(isinstance(c, str) and c.startswith("0") and "-" in c for c in cells_)
    assert any(isinstance(c, str) and "/" in c for c in cells_)
    assert any(isinstance(c, str) and any("০" <= ch <= "৯" for ch in c) for c in cells_)
    assert any(isinstance(c, str) and any("०" <= ch <= "९" for ch in c) for c in cells_)
    phones = [p for r in records for p in r.phones]
    assert len(phones) > 3000  # a few cells hold two numbers
    for p in phones:
        number = phonenumbers.parse(p)
        assert phonenumbers.is_valid_number(number) and number.country_code == 91
    # Money and dates: grouped text and numbers, zero dues, defaulters and not-yet-due.
    dues = [r[COL["Dues (Rs.)"]] for r in rows]
    assert any(isinstance(d, str) and "," in d for d in dues)
    assert any(isinstance(d, float) for d in dues)
    postpaid = [r for r in records if r.given["billing"] is Billing.postpaid]
    assert any(r.given["dues_minor"] == 0 for r in postpaid)
    assert any(r.given["due_date"] < TODAY and r.given["dues_minor"] > 0 for r in postpaid)
    assert any(r.given["due_date"] > TODAY for r in postpaid)
    assert any(r.given["billing"] is Billing.prepaid for r in records)
    # Names in four scripts, and a handful of each area level.
    langs = Counter(r.given["language"] for r in records)
    assert set(langs) == {"hi", "en", "bn", "ru"}
    paths = {r.area_path for r in records}
    assert 10 <= len(paths) <= 30
    assert all(len(p) == 4 for p in paths)


def test_bad_rows_are_rejected_each_for_its_reason() -> None:
    rows = list(generate_rows(2500, seed=3, bad_rows=True, totals=True, today=TODAY))
    assert bad_row_count(2500) == 8
    assert len(rows) == 2500 + 8 + 1
    assert is_totals_row(rows[-1]) and not any(is_totals_row(r) for r in rows[:-1])
    records, reasons = _read(rows[:-1])
    assert sum("account number is missing" in r for r in reasons) == 2
    assert sum("mobile" in r for r in reasons) == 2
    assert sum("is not an amount" in r for r in reasons) == 2
    assert len(reasons) == 6
    # The duplicates read fine on their own; the importer refuses them as repeats.
    accounts = Counter(r.account for r in records)
    assert sorted(accounts.values(), reverse=True)[:3] == [2, 2, 1]
    assert len(records) == 2500 + 2


def test_totals_row_adds_up_the_dues() -> None:
    rows = list(generate_rows(200, seed=5, totals=True, today=TODAY))
    total = sum(cells.parse_amount(r[COL["Dues (Rs.)"]]) or 0 for r in rows[:-1])
    assert cells.parse_amount(rows[-1][COL["Dues (Rs.)"]]) == total


@pytest.mark.parametrize(
    ("value", "text"),
    [("0", "0.00"), ("999.5", "999.50"), ("1234.5", "1,234.50"), ("123456.75", "1,23,456.75"),
     ("12345678", "1,23,45,678.00")],
)  # fmt: skip
def test_indian_grouping(value: str, text: str) -> None:
    from decimal import Decimal

    assert indian_grouping(Decimal(value)) == text


def test_csv_and_xlsx_files(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    csv_path = write_csv(tmp_path / "m.csv", 50, bad_rows=True, totals=True, today=TODAY)
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == HEADER and len(lines) == 1 + 50 + 4 + 1
    xlsx = write_xlsx(tmp_path / "m.xlsx", 50, bad_rows=True, totals=True, today=TODAY)
    ws = load_workbook(xlsx, read_only=True).worksheets[0]
    values = [list(r) for r in ws.iter_rows(values_only=True)]
    assert str(values[0][0]).startswith("Aligarh Electricity Office — consumer master, March 2025")
    assert list(values[2]) == HEADER
    assert len(values) == 3 + 50 + 4 + 1
