"""Reading a sheet leaves no reference cycles behind, so no chunk waits for the collector.

A rejected phone's exception once stayed in a local of the frame that raised it: the
exception, its traceback and the frames (with the chunk of verdicts being filled) kept
each other alive until a full collection, 3.5 dead objects per row of a big import.
"""

from __future__ import annotations

import gc
from pathlib import Path

from meterline.domain.enums import Billing, Service
from meterline.domain.master_row import RowContext
from meterline.ingest.master_sheet import SheetRequest, Verdicts, read_sheet

PHONES = [
    "9876543210",
    "12345",  # too short: rejected by the library's parse
    "+91 11 2345 6789",  # a landline
    "call me",  # letters
    "98765 43211 / 4567",  # a good and a bad one in one cell
]


def _cyclic_garbage(tmp_path: Path, rows: int) -> int:
    """Objects only the cyclic collector frees after reading `rows` rows (4 of 5 rejected)."""
    path = tmp_path / f"master-{rows}.csv"
    lines = ["Account No,Consumer Name,Mobile"]
    lines += [f"{1000 + i},Ann,{PHONES[i % len(PHONES)]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ctx = RowContext("IN", 2, Service.electricity, Billing.postpaid, "en")
    req = SheetRequest(path, path.name, 1 << 20, None, None, ctx)
    list(read_sheet(req))  # warm-up: first-use caches of the readers and phone metadata
    gc.collect()
    gc.disable()
    try:
        chunks = [v for v in read_sheet(req) if isinstance(v, Verdicts)]
        assert len({i.row for c in chunks for i in c.issues}) == rows * 4 // 5
        del chunks
        return gc.collect()
    finally:
        gc.enable()


def test_reading_rejected_phones_leaves_no_cycles(tmp_path: Path) -> None:
    # A file costs a few (the CSV dialect sniffer makes a class); rows must cost none.
    assert _cyclic_garbage(tmp_path, 50) == _cyclic_garbage(tmp_path, 5)
