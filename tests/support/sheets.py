"""Building real spreadsheet files for tests: the shapes operators actually upload."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook

Row = Sequence[object]


def write_xlsx(path: Path, rows: Sequence[Row], *, title_rows: Sequence[Row] = ()) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Consumers"
    for r in [*title_rows, *rows]:
        ws.append(list(r))
    wb.save(path)
    return path


def write_csv(
    path: Path, rows: Sequence[Row], *, encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        for r in rows:
            w.writerow(["" if c is None else c for c in r])
    return path


HINDI_HEADER = ["खाता संख्या", "उपभोक्ता का नाम", "मोबाइल नंबर", "बकाया राशि", "देय तिथि", "फीडर"]
