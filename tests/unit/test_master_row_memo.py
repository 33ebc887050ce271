"""Remembered cell readings (`read_row(..., memo)`) give exactly the rows read without them."""

from __future__ import annotations

from datetime import date

from meterline.domain.enums import Billing, Service
from meterline.domain.headers import match_row
from meterline.domain.master_row import MEMO_LIMIT, MasterRecord, RowContext, RowProblem, read_row
from meterline.ingest.sample_sheet import HEADER, generate_rows

CTX = RowContext("IN", 2, Service.electricity, Billing.postpaid, "hi")


def _outcome(result: MasterRecord | list[RowProblem]) -> object:
    if isinstance(result, list):
        return [(p.column, p.value, p.reason) for p in result]
    return (result.account, sorted(result.given.items()), result.digest())


def test_generated_sheet_reads_the_same_with_and_without_memo() -> None:
    header = match_row(1, HEADER)
    assert header is not None
    memo: dict[str, dict[object, object]] = {}
    raw = list(generate_rows(3000, today=date(2025, 3, 15), bad_rows=True))
    # As a spreadsheet gives them (numbers, dates) and as a CSV does (all text).
    rows = raw + [[None if c is None else str(c) for c in r] for r in raw]
    for row in rows:
        assert _outcome(read_row(row, header, CTX, memo)) == _outcome(read_row(row, header, CTX))
    assert memo["service"] and memo["due_date"]  # the memo was really used


def test_bad_cell_is_reported_every_time_it_appears() -> None:
    header = match_row(1, ["Account No", "Service", "Feeder"])
    assert header is not None
    memo: dict[str, dict[object, object]] = {}
    for n in range(3):
        result = read_row([f"A-{n}", "plutonium", " Feeder  1 "], header, CTX, memo)
        assert isinstance(result, list)
        assert [(p.column, p.value) for p in result] == [("Service", "plutonium")]
    good = read_row(["A-9", "Water", " Feeder  1 "], header, CTX, memo)
    assert isinstance(good, MasterRecord)
    assert good.given["service"] is Service.water and good.given["area_path"] == ("Feeder 1",)


def test_memo_starts_afresh_past_its_limit() -> None:
    header = match_row(1, ["Account No", "Due Date"])
    assert header is not None
    memo: dict[str, dict[object, object]] = {}
    for n in range(MEMO_LIMIT + 10):
        day = date(2000, 1, 1).toordinal() + n
        text = date.fromordinal(day).strftime("%d/%m/%Y")
        result = read_row([f"A-{n}", text], header, CTX, memo)
        assert isinstance(result, MasterRecord) and result.given["due_date"] == date.fromordinal(
            day
        )
    assert len(memo["due_date"]) <= MEMO_LIMIT + 1
