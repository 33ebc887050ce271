"""Readers: real files, built in tmp_path the way operators' tools make them."""

from __future__ import annotations

import codecs
import datetime
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.style import Style, TableProperties
from odf.table import Table as OdsTable
from odf.table import TableCell, TableRow
from odf.text import P
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from meterline.ingest.readers import (
    BadFile,
    FormulaWithoutValue,
    SheetRow,
    Table,
    open_table,
)

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT_NS = "http://purl.oclc.org/ooxml/spreadsheetml/main"


def read_all(path: Path, **kwargs: Any) -> tuple[Table, list[SheetRow]]:
    with open_table(path, **kwargs) as table:
        return table, list(table.rows())


def bad_file_message(path: Path, **kwargs: Any) -> str:
    with pytest.raises(BadFile) as excinfo:
        _, _ = read_all(path, **kwargs)
    return excinfo.value.message


def by_number(rows: list[SheetRow]) -> dict[int, tuple[object, ...]]:
    return {row.number: row.cells for row in rows}


# --- builders ----------------------------------------------------------------------


def raw_xlsx(
    path: Path,
    worksheet: str,
    *,
    shared_strings: str | None = None,
    styles: str | None = None,
    workbook_pr: str = "",
    ns: str = MAIN_NS,
) -> Path:
    """A minimal xlsx whose sheet XML is written by hand, as report generators do."""
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    if ns == STRICT_NS:
        rel = "http://purl.oclc.org/ooxml/officeDocument/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    rels = [f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>']
    if shared_strings is not None:
        rels.append(f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sst.xml"/>')
    if styles is not None:
        rels.append(f'<Relationship Id="rId3" Type="{rel}/styles" Target="/xl/styles.xml"/>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
            f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{ns}" xmlns:r="{rel}">{workbook_pr}<sheets>'
            f'<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{pkg}">{"".join(rels)}</Relationships>',
        )
        z.writestr("xl/worksheets/sheet1.xml", worksheet)
        if shared_strings is not None:
            z.writestr("xl/sst.xml", shared_strings)
        if styles is not None:
            z.writestr("xl/styles.xml", styles)
    return path


def patch_zip(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    with zipfile.ZipFile(path) as z:
        parts = {info.filename: z.read(info) for info in z.infolist()}
    parts[member] = change(parts[member])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return path


def build_ole2(streams: dict[str, bytes], *, directory_last: bool = False) -> bytes:
    """A minimal valid OLE2 compound file (CFB v3, 512-byte sectors, no mini stream).

    Streams are padded to 4096 bytes so that they live in regular sectors. An
    encrypted xlsx is exactly such a container with an "EncryptedPackage" stream.
    """
    end, free, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    data = {n: v.ljust(max(4096, -(-len(v) // 512) * 512), b"\0") for n, v in streams.items()}
    n_data = sum(len(v) // 512 for v in data.values()) + 1  # + the directory sector
    n_fat = 1
    while n_fat + n_data > n_fat * 128:
        n_fat += 1
    fat = [fat_sector] * n_fat
    sectors: list[bytes] = []

    def place(blob: bytes) -> int:
        start, count = n_fat + len(sectors), len(blob) // 512
        fat.extend([*range(start + 1, start + count), end])
        sectors.extend(blob[i * 512 : (i + 1) * 512] for i in range(count))
        return start

    def entry(
        name: str, kind: int, child: int = free, right: int = free, start: int = end, size: int = 0
    ) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(raw), kind, 1, free, right, child)
            + b"\0" * 36
            + struct.pack("<IQ", start, size)
        )

    names = list(data)
    dir_index = -1 if directory_last else 0
    if not directory_last:
        sectors.append(b"")  # reserve; filled below
        fat.append(end)
    starts = {n: place(data[n]) for n in names}
    entries = [entry("Root Entry", 5, child=1)] + [
        entry(n, 2, right=i + 2 if i + 1 < len(names) else free, start=starts[n], size=len(data[n]))
        for i, n in enumerate(names)
    ]
    directory = b"".join(entries).ljust(512, b"\0")
    if directory_last:
        dir_sector = place(directory)
    else:
        dir_sector, sectors[dir_index] = n_fat, directory
    fat += [free] * (n_fat * 128 - len(fat))
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<9I", 0, n_fat, dir_sector, 0, 4096, end, 0, end, 0)
        + struct.pack("<109I", *range(n_fat), *[free] * (109 - n_fat))
    )
    return header + struct.pack(f"<{len(fat)}I", *fat) + b"".join(sectors)


def png_bytes() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


# --- xlsx --------------------------------------------------------------------------


@pytest.fixture
def consumers_xlsx(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    old = wb.active
    assert old is not None
    old.title = "Old"
    old["A1"] = "last year's list"
    old.sheet_state = "hidden"
    ws = wb.create_sheet("Consumers")
    wb.active = 1
    ws["A1"] = "Consumer master — March 2024"
    ws.merge_cells("A1:F1")
    ws["A2"] = "Circle: North"
    ws.append([])
    ws.append(["Account", "Name", "Mobile", "Due date", "Amount", "Double"])
    ws.append(["AC-1", "Ram", 9876543210, datetime.date(2024, 3, 15), 1234.5, "=E5*2"])
    ws.append(["AC-2", "Shyam", "+91 98765 43210", datetime.datetime(2024, 3, 16, 10, 30), 10])
    ws.append(["AC-3", None, 9123456789.0, None, -0.5])
    ws.merge_cells("B6:B7")  # one name for two connections
    ws.append([])
    ws.append([None, None, None, None, None, None, None, "far right"])
    path = tmp_path / "consumers.xlsx"
    wb.save(path)
    return path


def test_xlsx_as_operators_make_it(consumers_xlsx: Path) -> None:
    table, rows = read_all(consumers_xlsx)
    assert table.format == "xlsx"
    assert table.sheet_name == "Consumers"
    assert table.warnings == ["hidden sheet 'Old' was ignored"]
    assert table.merged == [(1, 0, 1, 5), (6, 1, 7, 1)]
    assert table.date1904 is False
    cells = by_number(rows)
    assert sorted(cells) == [1, 2, 4, 5, 6, 7, 9]  # blank rows skipped, numbers kept
    assert cells[1] == ("Consumer master — March 2024",)
    assert cells[4] == ("Account", "Name", "Mobile", "Due date", "Amount", "Double")
    assert cells[5] == (
        "AC-1",
        "Ram",
        9876543210,
        datetime.date(2024, 3, 15),
        1234.5,
        FormulaWithoutValue("E5*2"),
    )
    assert cells[6] == (
        "AC-2",
        "Shyam",
        "+91 98765 43210",
        datetime.datetime(2024, 3, 16, 10, 30),
        10,
    )
    assert cells[7] == ("AC-3", None, 9123456789, None, -0.5)
    assert cells[9] == (None,) * 7 + ("far right",)
    assert isinstance(cells[5][2], int)


def test_xlsx_sheet_chosen_by_name_even_if_hidden(consumers_xlsx: Path) -> None:
    table, rows = read_all(consumers_xlsx, sheet="Old")
    assert table.sheet_name == "Old"
    assert table.warnings == []
    assert rows == [SheetRow(1, ("last year's list",))]


def test_xlsx_unknown_sheet_lists_the_sheets(consumers_xlsx: Path) -> None:
    message = bad_file_message(consumers_xlsx, sheet="March")
    assert "no sheet named 'March'" in message
    assert "'Old', 'Consumers'" in message


def test_xlsx_every_sheet_hidden(consumers_xlsx: Path) -> None:
    patch_zip(
        consumers_xlsx,
        "xl/workbook.xml",
        lambda b: b.replace(b'state="visible"', b'state="hidden"'),
    )
    assert "no visible sheet" in bad_file_message(consumers_xlsx)


def test_xlsx_1904_dates(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.epoch = CALENDAR_MAC_1904
    ws = wb.active
    assert ws is not None
    ws.append(
        [datetime.date(2024, 3, 15), datetime.datetime(2024, 3, 15, 18), datetime.time(6, 30)]
    )
    wb.save(tmp_path / "mac.xlsx")
    table, rows = read_all(tmp_path / "mac.xlsx")
    assert table.date1904 is True
    assert rows[0].cells == (
        datetime.date(2024, 3, 15),
        datetime.datetime(2024, 3, 15, 18),
        datetime.time(6, 30),
    )


def test_xlsx_with_no_data_is_empty(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["C3"] = "   "
    wb.save(tmp_path / "blank.xlsx")
    assert bad_file_message(tmp_path / "blank.xlsx") == '"blank.xlsx" is empty'


SHARED = (
    f'<sst xmlns="{MAIN_NS}" count="4" uniqueCount="4">'
    "<si><t>Account</t></si>"
    "<si><r><t>Ram </t></r><r><rPr><b/></rPr><t>Kumar</t></r></si>"
    "<si><t>東京</t><rPh sb='0' eb='2'><t>トウキョウ</t></rPh></si>"
    "<si><t>line_x000D_two</t></si>"
    "</sst>"
)
STYLES = (
    f'<styleSheet xmlns="{MAIN_NS}"><numFmts count="1">'
    '<numFmt numFmtId="164" formatCode="[$-409]dd/mm/yyyy;@"/></numFmts>'
    '<cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/>'
    '<xf numFmtId="4"/></cellXfs></styleSheet>'
)


def test_xlsx_cell_types_as_excel_writes_them(tmp_path: Path) -> None:
    sheet = (
        f'<worksheet xmlns="{MAIN_NS}"><dimension ref="A1:F9"/><sheetData>'
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>3</v></c></row>'
        '<row r="2"><c r="A2"><f>1+1</f><v>2</v></c><c r="B2" t="str"><f>A1&amp;"x"</f>'
        '<v>Accountx</v></c><c r="C2" t="b"><v>1</v></c><c r="D2" t="e"><f>1/0</f>'
        '<v>#DIV/0!</v></c><c r="E2" t="str"><f>""</f><v></v></c></row>'
        '<row r="3"><c r="A3" s="1"><v>45366</v></c><c r="B3" s="2"><v>45366.5</v></c>'
        '<c r="C3" s="3"><v>1234.5</v></c><c r="D3" t="d"><v>2024-03-15T10:30:00</v></c>'
        '<c r="F3" t="inlineStr"><is><t>inline</t></is></c></row>'
        '<row r="5"><c r="A5"><f t="shared" ref="A5:A6" si="0">B5*2</f></c>'
        '<c r="B5"><v>-7</v></c><c r="C5"><v>1.5E-3</v></c><c r="D5"><v>9876543210</v></c></row>'
        '<row r="6"><c r="A6"><f t="shared" si="0"/></c></row>'
        "<row><c><v>1</v></c><c><v>2</v></c></row>"  # "r" is optional
        "</sheetData></worksheet>"
    )
    path = raw_xlsx(tmp_path / "types.xlsx", sheet, shared_strings=SHARED, styles=STYLES)
    table, rows = read_all(path)
    assert table.merged == []
    assert by_number(rows) == {
        1: ("Account", "Ram Kumar", "東京", "line\rtwo"),
        2: (2, "Accountx", True, "#DIV/0!"),
        3: (
            datetime.date(2024, 3, 15),
            datetime.date(2024, 3, 15),  # a date-only format shows no time
            1234.5,
            datetime.datetime(2024, 3, 15, 10, 30),
            None,
            "inline",
        ),
        5: (FormulaWithoutValue("B5*2"), -7, 0.0015, 9876543210),
        6: (FormulaWithoutValue(""),),  # follower of a shared formula
        7: (1, 2),
    }


@pytest.mark.parametrize("ns", [MAIN_NS, STRICT_NS])
def test_xlsx_prefixed_and_strict_namespaces(tmp_path: Path, ns: str) -> None:
    sheet = (
        f'<x:worksheet xmlns:x="{ns}"><x:sheetData><x:row r="2"><x:c r="B2" t="inlineStr">'
        '<x:is><x:t>hello</x:t></x:is></x:c><x:c r="C2"><x:v>42</x:v></x:c></x:row>'
        '</x:sheetData><x:mergeCells count="1"><x:mergeCell ref="B2:C3"/></x:mergeCells>'
        "</x:worksheet>"
    )
    path = raw_xlsx(
        tmp_path / "prefixed.xlsx", sheet, workbook_pr='<workbookPr date1904="true"/>', ns=ns
    )
    table, rows = read_all(path)
    assert rows == [SheetRow(2, (None, "hello", 42))]
    assert table.merged == [(2, 1, 3, 2)]
    assert table.date1904 is True


def test_xlsx_streams_many_rows(tmp_path: Path) -> None:
    n = 20_000
    body = "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>AC{i}</t></is></c>'
        f'<c r="B{i}"><v>{9_800_000_000 + i}</v></c><c r="C{i}"><v>{i}.25</v></c></row>'
        for i in range(1, n + 1)
    )
    sheet = f'<worksheet xmlns="{MAIN_NS}"><sheetData>{body}</sheetData></worksheet>'
    path = raw_xlsx(tmp_path / "big.xlsx", sheet)
    with open_table(path) as table:
        rows = table.rows()
        assert next(rows) == SheetRow(1, ("AC1", 9_800_000_001, 1.25))
        count, last = 1, None
        for row in rows:
            count, last = count + 1, row
    assert count == n
    assert last == SheetRow(n, (f"AC{n}", 9_800_000_000 + n, n + 0.25))


def test_rows_can_be_taken_once(consumers_xlsx: Path) -> None:
    with open_table(consumers_xlsx) as table:
        table.rows()
        with pytest.raises(RuntimeError):
            table.rows()


@pytest.mark.parametrize("suffix", ["xlsx", "csv"])
def test_close_mid_way_releases_the_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"many.{suffix}"
    if suffix == "csv":
        path.write_text("".join(f"AC{i},{i}\n" for i in range(1, 5000)), "utf-8")
    else:
        body = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, 5000))
        raw_xlsx(path, f'<worksheet xmlns="{MAIN_NS}"><sheetData>{body}</sheetData></worksheet>')
    table = open_table(path)
    rows = table.rows()
    assert next(rows).number == 1
    table.close()
    assert list(rows) == []
    table.close()  # twice is harmless


def test_xlsx_damaged_inside_the_sheet(tmp_path: Path) -> None:
    body = "".join(
        f'<row r="{i}"><c r="A{i}"><v>{i * 7919 % 100003}</v></c></row>' for i in range(1, 30_000)
    )
    sheet = f'<worksheet xmlns="{MAIN_NS}"><sheetData>{body}</sheetData></worksheet>'
    path = raw_xlsx(tmp_path / "damaged.xlsx", sheet)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + info.compress_size // 2, start + info.compress_size // 2 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    message = bad_file_message(path)
    assert message.startswith('"damaged.xlsx" could not be read as XLSX: ')


def test_truncated_xlsx(consumers_xlsx: Path) -> None:
    data = consumers_xlsx.read_bytes()
    consumers_xlsx.write_bytes(data[: len(data) // 2])
    message = bad_file_message(consumers_xlsx)
    assert message.startswith('"consumers.xlsx" could not be read as XLSX: ')
    assert "damaged or incomplete" in message


# --- xls and ods -------------------------------------------------------------------


def test_xls_from_xlwt(tmp_path: Path) -> None:
    wb = xlwt.Workbook()
    old = wb.add_sheet("Old")
    old.write(0, 0, "stale")
    old.visibility = 1  # hidden
    ws = wb.add_sheet("Data")
    ws.write_merge(0, 0, 0, 3, "Consumer master")
    for col, title in enumerate(["Account", "Mobile", "Due", "Amount", "Active"]):
        ws.write(2, col, title)
    ws.write(3, 0, "AC-1")
    ws.write(3, 1, 9876543210)
    ws.write(3, 2, datetime.date(2024, 3, 15), xlwt.easyxf(num_format_str="DD/MM/YYYY"))
    ws.write(3, 3, 1234.5)
    ws.write(3, 4, True)
    ws.write(5, 1, "+880 1712-345678")
    wb.save(str(tmp_path / "old.xls"))

    table, rows = read_all(tmp_path / "old.xls")
    assert (table.format, table.sheet_name) == ("xls", "Data")
    assert table.warnings == ["hidden sheet 'Old' was ignored"]
    assert table.merged == [(1, 0, 1, 3)]
    assert by_number(rows) == {
        1: ("Consumer master",),
        3: ("Account", "Mobile", "Due", "Amount", "Active"),
        4: ("AC-1", 9876543210, datetime.date(2024, 3, 15), 1234.5, True),
        6: (None, "+880 1712-345678"),
    }


def test_ods_from_odfpy(tmp_path: Path) -> None:
    doc = OpenDocumentSpreadsheet()
    hidden = Style(name="hidden", family="table")
    hidden.addElement(TableProperties(display=False))
    doc.automaticstyles.addElement(hidden)

    def sheet(name: str, rows: list[list[object]], style: Style | None = None) -> None:
        table = OdsTable(name=name, stylename=style) if style else OdsTable(name=name)
        for values in rows:
            tr = TableRow()
            for value in values:
                if value is None:
                    tr.addElement(TableCell())
                    continue
                if isinstance(value, str):
                    cell = TableCell(valuetype="string")
                elif isinstance(value, datetime.date):
                    cell = TableCell(valuetype="date", datevalue=value.isoformat())
                else:
                    cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)

    sheet("Old", [["stale"]], hidden)
    sheet(
        "Лицевые счета",
        [
            ["Лицевой счёт", "Телефон", "Дата"],
            [],
            ["1001", 89161234567, datetime.date(2024, 3, 15)],
            [None, "+7 916 123 45 67", None],
        ],
    )
    doc.save(str(tmp_path / "calc.ods"))

    table, rows = read_all(tmp_path / "calc.ods")
    assert (table.format, table.sheet_name) == ("ods", "Лицевые счета")
    assert table.warnings == ["hidden sheet 'Old' was ignored"]
    assert table.merged == []
    assert by_number(rows) == {
        1: ("Лицевой счёт", "Телефон", "Дата"),
        3: ("1001", 89161234567, datetime.date(2024, 3, 15)),
        4: (None, "+7 916 123 45 67"),
    }


# --- CSV ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "warning"),
    [
        ("Account,Mobile\nAC-1,9876543210\n", "utf-8", None),
        ("Account,Mobile\r\nAC-1,9876543210\r\n", "utf-8-sig", None),
        ("Account,Mobile\nAC-1,9876543210\n", "utf-16", "CSV decoded as UTF-16"),
        ("Account;Mobile\nAC-1;9876543210\n", "utf-16-be-bom", "CSV decoded as UTF-16"),
        ("Account\tMobile\nAC-1\t9876543210\n", "utf-8", None),
        ("Account;Mobile\nAC-1;9876543210\n", "utf-8", None),
        ('"Account";"Mobile"\n"AC-1";"9876543210"\n', "utf-8", None),
    ],
)
def test_csv_encodings_and_delimiters(
    tmp_path: Path, text: str, encoding: str, warning: str | None
) -> None:
    if encoding == "utf-16-be-bom":
        data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    table, rows = read_all(path)
    assert (table.format, table.sheet_name, table.merged) == ("csv", None, [])
    assert table.warnings == ([warning] if warning else [])
    assert rows == [SheetRow(1, ("Account", "Mobile")), SheetRow(2, ("AC-1", "9876543210"))]


def test_csv_russian_windows_1251(tmp_path: Path) -> None:
    path = tmp_path / "счета.csv"
    path.write_bytes("Лицевой счёт;Телефон;Сумма\n1001;8 916 123-45-67;1 234,56\n".encode("cp1251"))
    table, rows = read_all(path)
    assert table.warnings == ["CSV decoded as windows-1251"]
    assert rows == [
        SheetRow(1, ("Лицевой счёт", "Телефон", "Сумма")),
        SheetRow(2, ("1001", "8 916 123-45-67", "1 234,56")),
    ]


@pytest.mark.parametrize(
    "text", ["Name,City\nCafé,Zürich\n", "Café\n", "Name,City\nJosé,São Paulo\n"]
)
def test_csv_western_windows_1252(tmp_path: Path, text: str) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(text.encode("cp1252"))
    table, rows = read_all(path)
    assert table.warnings == ["CSV decoded as windows-1252"]
    assert [list(r.cells) for r in rows] == [line.split(",") for line in text.splitlines()]


def test_csv_non_utf8_byte_late_in_the_file(tmp_path: Path) -> None:
    lines = [f"AC-{i},98765{i:05d}" for i in range(10_000)] + ["AC-x,Café"]
    path = tmp_path / "late.csv"
    path.write_bytes("\n".join(lines).encode("cp1252"))
    table, rows = read_all(path)
    assert table.warnings == ["CSV decoded as windows-1252"]
    assert rows[-1] == SheetRow(10_001, ("AC-x", "Café"))


def test_csv_records_blank_lines_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        'Account,Address,Note\n"AC-1","12 Main Rd\nFlat 3",\n\n,,\nAC-2,,x,,\n', "utf-8"
    )
    _, rows = read_all(path)
    assert rows == [
        SheetRow(1, ("Account", "Address", "Note")),
        SheetRow(2, ("AC-1", "12 Main Rd\nFlat 3")),
        SheetRow(5, ("AC-2", None, "x")),
    ]


def test_csv_single_column(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("Mobile\n9876543210\n9123456789\n", "utf-8")
    _, rows = read_all(path)
    assert [r.cells for r in rows] == [("Mobile",), ("9876543210",), ("9123456789",)]


def test_content_decides_not_the_extension(tmp_path: Path, consumers_xlsx: Path) -> None:
    csv_named_xlsx = tmp_path / "export.xlsx"
    csv_named_xlsx.write_text("a,b\n1,2\n", "utf-8")
    assert read_all(csv_named_xlsx)[0].format == "csv"
    xlsx_named_csv = tmp_path / "export.csv"
    xlsx_named_csv.write_bytes(consumers_xlsx.read_bytes())
    assert read_all(xlsx_named_csv)[0].format == "xlsx"


# --- bad files ---------------------------------------------------------------------

NOT_A_SPREADSHEET = "is not a spreadsheet (expected .xlsx, .xls, .ods or .csv)"


@pytest.mark.parametrize(
    "data",
    [
        random.Random(7).randbytes(5000),
        random.Random(8).randbytes(16),
        png_bytes(),
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 5 >>\nstream\n\x00\x01\x02\x03\x04",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00",
    ],
    ids=["random", "random-small", "png", "pdf", "exe"],
)
def test_binary_junk_is_not_a_spreadsheet(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "consumers.xlsx"
    path.write_bytes(data)
    assert bad_file_message(path) == f'"consumers.xlsx" {NOT_A_SPREADSHEET}'


def test_html_saved_as_xls(tmp_path: Path) -> None:
    path = tmp_path / "report.xls"
    path.write_text("<html><body><table><tr><td>AC-1</td></tr></table></body></html>", "utf-8")
    message = bad_file_message(path)
    assert NOT_A_SPREADSHEET in message
    assert "save as .xlsx" in message


@pytest.mark.parametrize(
    "data", [b"", b"\n\n  \n", b";;;\r\n;;;\r\n", b",,\n , ,\n", codecs.BOM_UTF8]
)
def test_empty_files(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(data)
    assert bad_file_message(path) == '"empty.csv" is empty'


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    assert bad_file_message(path) == f'"photos.xlsx" {NOT_A_SPREADSHEET}'


def test_word_document_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "letter.docx"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="word/document.xml"/>'
            "</Relationships>",
        )
        z.writestr("word/document.xml", '<w:document xmlns:w="urn:w"/>')
    assert NOT_A_SPREADSHEET in bad_file_message(path)


def test_opendocument_text_is_not_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "letter.ods"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    assert NOT_A_SPREADSHEET in bad_file_message(path)


def test_xlsb_is_named(tmp_path: Path) -> None:
    path = tmp_path / "binary.xlsb"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.bin", b"\x83\x01\x00")
    assert ".xlsb" in bad_file_message(path)


@pytest.mark.parametrize("directory_last", [False, True], ids=["directory-first", "directory-late"])
def test_password_protected_xlsx(tmp_path: Path, directory_last: bool) -> None:
    package = random.Random(1).randbytes(100_000 if directory_last else 6_000)
    info = b"\x04\x00\x04\x00\x40\x00\x00\x00" + b"<encryption/>"  # agile encryption header
    path = tmp_path / "secret.xlsx"
    path.write_bytes(
        build_ole2(
            {"EncryptionInfo": info, "EncryptedPackage": package}, directory_last=directory_last
        )
    )
    if directory_last:
        assert "EncryptedPackage".encode("utf-16-le") not in path.read_bytes()[: 64 * 1024]
    assert bad_file_message(path) == (
        '"secret.xlsx" is password-protected; remove the password in Excel '
        "(File > Info > Protect Workbook) and upload again"
    )


def test_broken_xls(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(build_ole2({"Something": b"not a workbook"}))
    assert bad_file_message(path).startswith('"old.xls" could not be read as XLS: ')


def test_file_over_the_limit_is_refused_before_reading(
    tmp_path: Path, consumers_xlsx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    message = bad_file_message(consumers_xlsx, max_bytes=1000, original_name="March list.xlsx")
    assert message.startswith('"March list.xlsx" is ')
    assert f"{consumers_xlsx.stat().st_size:,} bytes" in message
    assert "1,000 bytes" in message
    assert "METERLINE_IMPORT_MAX_BYTES" in message


def test_limit_is_shown_in_mb(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" * (700 * 1024))  # 2.8 MB
    message = bad_file_message(path, max_bytes=2 * 1024 * 1024)
    assert message == (
        '"big.csv" is 2.7 MB, more than the import limit of 2 MB '
        "(setting METERLINE_IMPORT_MAX_BYTES)"
    )


def test_original_name_is_used_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "upload-7f3a.bin"
    path.write_bytes(b"")
    assert bad_file_message(path, original_name="consumers.csv") == '"consumers.csv" is empty'
