"""Reading a master sheet into a stream of verdicts, one per row, ready to store.

Everything here is CPU work with no database: find the header, read each row, reject
or skip what must be, and catch an account or meter that appears twice in the file.
Because it needs nothing from the database it can run in a second process while the
first one writes (`parallel=True`), which is how a big import uses both cores.
"""

from __future__ import annotations

import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meterline.domain.headers import (
    HeaderMatch,
    column_letter,
    is_repeated_header,
    is_totals_row,
    match_row,
)
from meterline.domain.master_row import MasterRecord, RowContext, RowReader, cell_text
from meterline.gc_startup import fewer_collections
from meterline.ingest.readers import BadFile, SheetRow, Table, open_table

HEADER_SCAN_ROWS = 30
CHUNK_ROWS = 1000  # verdicts sent between processes at a time


class SheetRefused(Exception):
    """The file as a whole cannot be imported; `message` says why, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class SheetInfo:
    format: str
    sheet: str | None
    warnings: list[str]
    header_row: int
    columns: dict[str, str]  # header as written -> field


@dataclass
class Issue:
    row: int
    column: str | None
    value: str | None
    reason: str
    skipped: bool = False
    raw: list[str | None] | None = None


@dataclass
class Verdicts:
    """One chunk of the stream: records to store, issues to report, blank rows seen."""

    records: list[tuple[int, MasterRecord]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    blank_rows: int = 0

    def __len__(self) -> int:
        return len(self.records) + len(self.issues)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent between processes as plain tuples, the field names once per chunk: half
        # the bytes of pickled records, and the receiving process builds each record
        # with one call instead of unpickling an object, its __dict__ and its fields.
        shapes: dict[tuple[str, ...], int] = {}
        rows = [
            (row, rec.account, rec._digest, shapes.setdefault(tuple(rec.given), len(shapes)),
             *rec.given.values())
            for row, rec in self.records
        ]  # fmt: skip
        return _unpack_verdicts, (list(shapes), rows, self.issues, self.blank_rows)


def _unpack_verdicts(
    shapes: list[tuple[str, ...]], rows: list[tuple[Any, ...]], issues: list[Issue], blank: int
) -> Verdicts:
    records = [
        (row[0], MasterRecord(row[1], dict(zip(shapes[row[3]], row[4:], strict=True)), row[2]))
        for row in rows
    ]
    return Verdicts(records, issues, blank)


@dataclass(frozen=True)
class SheetRequest:
    path: Path
    name: str
    max_bytes: int
    sheet: str | None
    mapping: Mapping[str, str] | None
    ctx: RowContext


def _raw(row: SheetRow) -> list[str | None]:
    return [cell_text(c) for c in row.cells]


def _is_blank(row: SheetRow) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in row.cells)


def read_sheet(req: SheetRequest) -> Iterator[SheetInfo | Verdicts]:
    """First a SheetInfo, then chunks of Verdicts. Raises SheetRefused for a bad file."""
    try:
        table = open_table(
            req.path, max_bytes=req.max_bytes, sheet=req.sheet, original_name=req.name
        )
    except BadFile as exc:
        raise SheetRefused(exc.message) from None
    with table:
        yield from _read_table(table, req)


def _read_table(table: Table, req: SheetRequest) -> Iterator[SheetInfo | Verdicts]:
    ctx = replace(req.ctx, date1904=table.date1904)
    rows = table.rows()
    header, last, scanned = None, 0, []
    for row in rows:
        if _is_blank(row):
            continue
        header = match_row(row.number, row.cells, req.mapping)
        if header is not None:
            last = row.number
            break
        scanned.append(row)
        if len(scanned) >= HEADER_SCAN_ROWS:
            break
    if header is None:
        raise SheetRefused(_no_header_message(table, scanned, req.name))
    yield SheetInfo(
        format=table.format,
        sheet=table.sheet_name,
        warnings=list(table.warnings),
        header_row=header.row,
        columns={header.titles[c]: f for c, f in sorted(header.columns.items())},
    )
    judge = _RowJudge(header, ctx, _merged_data_cells(table))
    out = Verdicts()
    for row in rows:
        # Readers yield only rows with data; a gap in the numbering is blank rows.
        out.blank_rows += max(0, row.number - last - 1)
        last = row.number
        judge.judge(row, out)
        if len(out) >= CHUNK_ROWS:
            yield out
            out = Verdicts()
    if len(out) or out.blank_rows:
        yield out


class _RowJudge:
    """Decides each data row: a record, a rejection with reasons, or a skip."""

    def __init__(self, header: HeaderMatch, ctx: RowContext, merged: dict[int, list[str]]) -> None:
        self.header = header
        self.ctx = ctx
        self.merged = merged
        account_col = header.column_of("account")
        self.account_title = header.titles.get(account_col or 0, "account")
        serial_col = header.column_of("meter_serial")
        self.serial_title = header.titles.get(serial_col or 0, "meter_serial")
        # Key (see _seen_key) -> the row it was first seen on.
        self.seen_accounts: dict[str | int, int] = {}
        self.seen_serials: dict[str | int, int] = {}
        self.memo: dict[str, dict[Any, Any]] = {}  # see RowReader
        self.reader = RowReader(header, ctx, self.memo)

    def judge(self, row: SheetRow, out: Verdicts) -> None:
        if _is_blank(row):
            out.blank_rows += 1
            return
        if is_repeated_header(row.cells, self.header):
            out.issues.append(Issue(row.number, None, None, "repeated header row", True, _raw(row)))
            return
        if is_totals_row(row.cells):
            out.issues.append(Issue(row.number, None, None, "totals row", True, _raw(row)))
            return
        if row.number in self.merged:
            ranges = ", ".join(self.merged[row.number])
            reason = f"row is part of merged cells {ranges}; unmerge them and fill in every row"
            out.issues.append(Issue(row.number, None, None, reason, raw=_raw(row)))
            return
        result = self.reader.read(row.cells)
        if isinstance(result, list):
            raw = _raw(row)
            out.issues.extend(
                Issue(row.number, p.column, p.value, p.reason, raw=raw) for p in result
            )
            return
        problem = self._repeat(row.number, result)
        if problem is not None:
            out.issues.append(Issue(row.number, *problem, raw=_raw(row)))
            return
        result.digest()  # computed here, in the reading process, and carried along
        out.records.append((row.number, result))

    def _repeat(self, number: int, rec: MasterRecord) -> tuple[str, str, str] | None:
        account = _seen_key(rec.account)
        first = self.seen_accounts.get(account)
        if first is not None:
            reason = f"account {rec.account} appears again in this file (first on row {first})"
            return self.account_title, rec.account, reason
        serial = rec.given.get("meter_serial")
        if serial:
            serial_key = _seen_key(serial)
            other = self.seen_serials.get(serial_key)
            if other is not None:
                return (
                    self.serial_title,
                    serial,
                    f"meter {serial} is also on row {other} of this file",
                )
            self.seen_serials[serial_key] = number
        self.seen_accounts[account] = number
        return None


def _seen_key(key: str) -> str | int:
    """How a key is remembered for the in-file duplicate checks: a number without leading
    zeros as an int (half the memory of its text: a million accounts took 64 MB as text),
    anything else as it is. Both are exact: "0123" and "123" stay different keys."""
    if key.isascii() and key.isdigit() and key[0] != "0" and len(key) <= 18:
        return int(key)
    return key


def _merged_data_cells(table: Table) -> dict[int, list[str]]:
    """Row number -> merged ranges spanning rows (a title merged across columns is harmless)."""
    out: dict[int, list[str]] = {}
    for r1, c1, r2, c2 in table.merged:
        if r2 <= r1:
            continue
        label = f"{column_letter(c1)}{r1}:{column_letter(c2)}{r2}"
        for r in range(r1, r2 + 1):
            out.setdefault(r, []).append(label)
    return out


def _no_header_message(table: Table, scanned: list[SheetRow], filename: str) -> str:
    where = f"sheet {table.sheet_name!r} of {filename}" if table.sheet_name else filename
    if not scanned:
        return f"{where} has no rows with data"
    first = scanned[0]
    seen = ", ".join(repr(str(c)) for c in first.cells if c is not None and str(c).strip())[:300]
    return (
        f"no recognisable account column in the first {len(scanned)} non-blank rows of {where} "
        f"(row {first.number} reads: {seen}); name the column e.g. 'Account No', 'खाता संख्या', "
        "'হিসাব নম্বর' or 'Лицевой счёт', or map it explicitly (--map account=COLUMN)"
    )


# --- running the reader in a second process -----------------------------------------
# A plain child interpreter (`python -m meterline.ingest.master_sheet`) talking pickles
# over a pipe: no fork of a process that holds threads and DB connections, no re-import
# of the caller's __main__, and the pipe's buffer is the back-pressure. If the importing
# process dies, the child's next write fails and it exits.

_DONE = "done"
_EOF = object()  # the pipe closed before "done": the child died
PREFETCH_CHUNKS = 64
_FRAME_HEADER = 8  # bytes: the length of the pickled item that follows
_REFUSED = "refused"
_CRASHED = "crashed"


def _child_main() -> None:
    out = sys.stdout.buffer
    req = pickle.load(sys.stdin.buffer)

    def send(item: object) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(_FRAME_HEADER, "little"))
        out.write(data)
        out.flush()

    try:
        with fewer_collections():
            for item in read_sheet(req):
                send(item)
        send(_DONE)
    except SheetRefused as exc:
        send((_REFUSED, exc.message))
    except BrokenPipeError:
        raise SystemExit(1) from None
    except Exception as exc:
        send((_CRASHED, f"{type(exc).__name__}: {exc}"))


def read_sheet_in_subprocess(req: SheetRequest) -> Iterator[SheetInfo | Verdicts]:
    """`read_sheet` run by a child process; the same items, the same errors."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterline.ingest.master_sheet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    # A thread drains the pipe into a bounded queue, so the child keeps reading while this
    # process writes a batch (a bare 64 KB pipe made each wait for the other). The queue
    # holds each chunk as its pickled bytes, unpickled only when taken: chunks waiting
    # as objects were tens of thousands of objects for the garbage collector to go over.
    ahead: queue.Queue[bytes | object] = queue.Queue(maxsize=PREFETCH_CHUNKS)
    stream = proc.stdout

    def drain() -> None:
        try:
            while len(header := stream.read(_FRAME_HEADER)) == _FRAME_HEADER:
                size = int.from_bytes(header, "little")
                data = stream.read(size)
                if len(data) != size:
                    break
                ahead.put(data)
        except (OSError, ValueError):
            pass
        ahead.put(_EOF)  # the end of the stream; after "done" nobody takes it

    try:
        pickle.dump(req, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.close()
        threading.Thread(target=drain, name="sheet-prefetch", daemon=True).start()
        while True:
            frame = ahead.get()
            try:
                item = pickle.loads(frame) if isinstance(frame, bytes) else _EOF
            except (EOFError, pickle.UnpicklingError):
                item = _EOF
            if item is _EOF:
                raise RuntimeError(
                    f"the sheet-reading process ended early (exit code {_exit_code(proc)})"
                )
            if item == _DONE:
                return
            if isinstance(item, tuple):
                kind, message = item
                if kind == _REFUSED:
                    raise SheetRefused(message)
                raise RuntimeError(f"reading the sheet failed: {message}")
            assert isinstance(item, SheetInfo | Verdicts)
            yield item
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stream.close()


def _exit_code(proc: subprocess.Popen[bytes]) -> int:
    """The child's exit code; one still running (its stream broke, not the process) is
    killed first: waiting for it would wait forever on a pipe nobody reads any more."""
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


if __name__ == "__main__":
    # Run the imported module's copy, so pickled classes name meterline.ingest.master_sheet.
    from meterline.ingest import master_sheet

    master_sheet._child_main()
