"""In-file duplicates: the same account or meter twice is reported, look-alikes are not."""

from __future__ import annotations

from pathlib import Path

from meterline.domain.enums import Billing, Service
from meterline.domain.master_row import RowContext
from meterline.ingest.master_sheet import SheetRequest, Verdicts, read_sheet


def test_numbers_that_differ_only_in_leading_zeros_are_different_keys(tmp_path: Path) -> None:
    path = tmp_path / "master.csv"
    rows = [
        "Account No,Consumer Name,Meter No",
        "123,Ann,777",  # row 2
        "0123,Bob,0777",  # another account and another meter
        "123,Cyd,",  # row 4: account 123 again
        "124,Dee,777",  # row 5: meter 777 again
        "१२५,Eve,",  # Devanagari digits: read as they are written, not as 125
        "125,Fay,",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ctx = RowContext("IN", 2, Service.electricity, Billing.postpaid, "en")
    chunks = [
        v
        for v in read_sheet(SheetRequest(path, path.name, 1 << 20, None, None, ctx))
        if isinstance(v, Verdicts)
    ]
    issues = [(i.row, i.value, i.reason) for c in chunks for i in c.issues]
    assert issues == [
        (4, "123", "account 123 appears again in this file (first on row 2)"),
        (5, "777", "meter 777 is also on row 2 of this file"),
    ]
    assert [r.account for c in chunks for _, r in c.records] == ["123", "0123", "१२५", "125"]
