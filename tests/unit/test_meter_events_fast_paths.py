"""The parser's fast paths (inline field checks, the batch's memo of time texts) answer
exactly as the general checks do, for clean and for unusual input."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from meterline.domain.meter_events import parse_batch

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def _parse(*events: object) -> tuple[list[object], list[tuple[int, str]]]:
    batch = parse_batch(events, now=NOW)  # type: ignore[arg-type]
    return [e for _, e in batch.events], [(e.line, e.reason) for e in batch.errors]


def test_unusual_field_values_get_the_general_checks() -> None:
    at = "2026-11-29T15:00:00+05:30"
    events, errors = _parse(
        {"type": ["balance"], "meter": "SN-1", "at": at, "balance": 1},
        {"type": " balance ", "meter": " SN-1 ", "at": at, "balance": 1, "source": " he "},
        {"type": "demand", "meter": "SN-1", "at": at, "kw": " 1.50 ", "interval_s": "300"},
        {"type": "demand", "meter": "SN-1", "at": at, "kw": "1", "interval_s": 0},
        {"type": "demand", "meter": "SN-1", "at": at, "kw": "1", "id": 17},
        {"type": "demand", "meter": "x" * 65, "at": at, "kw": "1"},
    )
    assert errors == [
        (1, "type: expected text, got list"),
        (4, "interval_s: 0 must be positive"),
        (6, "meter: longer than 64 characters"),
    ]
    balance, demand, with_id = events
    assert (balance.type, balance.meter, balance.source) == ("balance", "SN-1", "he")
    assert (demand.kw, demand.interval_s) == (Decimal("1.50"), 300)
    assert with_id.id == "17" and with_id.interval_s == 900


def test_a_time_text_shared_by_several_events_is_checked_for_each() -> None:
    future = "2026-11-29T16:00:00+05:30"  # 30 minutes ahead of NOW
    fine = "2026-11-29T15:00:00+05:30"
    events, errors = _parse(
        {"type": "balance", "meter": "SN-1", "at": fine, "balance": 1},
        {"type": "balance", "meter": "SN-1", "at": future, "balance": 1},
        {"type": "reading", "meter": "SN-1", "at": fine, "value": "1", "unit": "kWh"},
        {"type": "reading", "meter": "SN-1", "at": future, "value": "1", "unit": "kWh"},
        {"type": "power", "meter": "SN-1", "at": "2026-11-29T15:00:00", "state": "on"},
    )
    assert [line for line, _ in errors] == [2, 4, 5]
    assert "in the future" in errors[0][1] and "in the future" in errors[1][1]
    assert "has no UTC offset" in errors[2][1]
    assert [e.at for e in events] == [datetime(2026, 11, 29, 9, 30, tzinfo=UTC)] * 2


def test_ndjson_lines_decode_as_before_including_the_broken_ones() -> None:
    from meterline.domain.meter_events import decode_items

    lines = [
        b'{"a":1}',
        b'{"a":1}{}',  # two objects on one line
        b'{"kw": 1.5 }',
        b"  ",
        b"{",
        b"[{}, {}]",  # an array: its elements, numbered on
        b'{"a":}',
        '{"t":"\u0905"}'.encode(),
        b"\xff{}",
    ]
    out = [(line, str(o) if isinstance(o, Exception) else o) for line, o in decode_items(lines)]
    assert out == [
        (1, {"a": 1}),
        (2, "not JSON (Extra data at column 8)"),
        (3, {"kw": Decimal("1.5")}),
        (5, "not JSON (Expecting property name enclosed in double quotes at column 2)"),
        (6, {}),
        (7, {}),
        (8, "not JSON (Expecting value at column 6)"),
        (9, {"t": "\u0905"}),
        (10, "not UTF-8 text"),
    ]
