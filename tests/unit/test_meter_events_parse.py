"""Smart-meter events on the wire: each bad event is refused with a reason naming the
field and its line, and the rest of the batch goes through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.enums import Service
from meterline.domain.meter_events import (
    EventRejected,
    EventType,
    parse_batch,
    parse_event,
    unit_fits,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def ev(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"meter": "SN-1", "at": "2026-11-29T17:00:00+05:30"}
    base.update(fields)
    return base


def test_each_type_parses_with_its_fields_and_times_become_utc() -> None:
    e = parse_event(ev(type="balance", balance=-1250, id="e1", source="hes"), now=NOW)
    assert (e.type, e.balance, e.id, e.source) == (EventType.balance, -1250, "e1", "hes")
    assert e.at == datetime(2026, 11, 29, 11, 30, tzinfo=UTC)
    r = parse_event(ev(type="reading", value="1234.567", unit="kWh"), now=NOW)
    assert (r.value, r.unit) == (Decimal("1234.567"), "kWh")
    d = parse_event(ev(type="demand", kw=4.2), now=NOW)
    assert (d.kw, d.interval_s) == (Decimal("4.2"), 900)  # a float read as its text
    t = parse_event(ev(type="tamper", code="magnet", active="false"), now=NOW)
    assert (t.code, t.active) == ("magnet", False)
    assert parse_event(ev(type="power", state="off"), now=NOW).state == "off"
    assert parse_event(ev(type="relay", state="disconnected"), now=NOW).state == "disconnected"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "demand", "kw": -1}, "kw: -1 is negative"),
        ({"type": "demand", "kw": "lots"}, "kw: 'lots' is not a number"),
        ({"type": "balance", "balance": "12.5"}, "balance: '12.5' is not a whole number"),
        ({"type": "balance"}, "balance: missing"),
        ({"type": "reading", "value": "5", "unit": "litre"}, "unit: 'litre' is not one of"),
        ({"type": "reading", "value": "-5", "unit": "kWh"}, "value: -5 is negative"),
        ({"type": "tamper"}, "code: missing"),
        ({"type": "power", "state": "dim"}, "state: 'dim' is not one of off, on"),
        ({"type": "gossip"}, "type: 'gossip' is not one of balance"),
        ({"type": "balance", "balance": 1, "at": "yesterday"}, "at: 'yesterday' is not an ISO"),
        ({"type": "balance", "balance": 1, "at": "2026-11-29T10:00:00"}, "has no UTC offset"),
        ({"type": "balance", "balance": 1, "at": "2026-11-29T12:10:00Z"}, "is in the future"),
        ({"type": "balance", "balance": 1, "meter": ""}, "meter: missing"),
        ({"type": "balance", "balance": True}, "balance: expected a number, got a boolean"),
    ],
)
def test_bad_events_are_refused_with_a_reason_naming_the_field(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(EventRejected) as info:
        parse_event(ev(**fields), now=NOW)
    assert reason in str(info.value)


def test_a_small_clock_skew_is_allowed() -> None:
    at = (NOW + timedelta(minutes=4)).isoformat()
    assert parse_event(ev(type="power", state="on", at=at), now=NOW).at > NOW


def test_a_batch_keeps_going_past_broken_lines_and_numbers_them() -> None:
    lines = [
        json.dumps(ev(type="balance", balance=100)),
        "{not json",
        "",
        json.dumps(ev(type="demand", kw=-2)).encode(),
        b"\xff\xfe",
        json.dumps([ev(type="power", state="on"), ev(type="power", state="x")]),
        json.dumps(ev(type="relay", state="connected")),
        "42",
    ]
    batch = parse_batch(lines, now=NOW)
    assert [line for line, _ in batch.events] == [1, 6, 8]
    assert [(e.line, e.reason.split(" ")[0]) for e in batch.errors] == [
        (2, "not"),
        (4, "kw:"),
        (5, "not"),
        (7, "state:"),
        (9, "expected"),
    ]
    assert batch.errors[1].meter == "SN-1"
    assert "not JSON" in batch.errors[0].reason


def test_csv_rows_arrive_as_text_and_parse_alike() -> None:
    row = {"type": "demand", "meter": "SN-1", "at": "2026-11-29T10:00:00Z", "kw": "3.5"}
    row["interval_s"] = "1800"
    e = parse_event(row, now=NOW)
    assert (e.kw, e.interval_s) == (Decimal("3.5"), 1800)


def test_units_fit_their_meter_kinds() -> None:
    assert unit_fits("kWh", Service.electricity)
    assert unit_fits("m3", "water") and unit_fits("m3", "gas")
    assert unit_fits("Gcal", Service.heat)
    assert not unit_fits("kWh", Service.water)
    assert not unit_fits("m3", Service.electricity)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.binary(max_size=40),
            st.dictionaries(
                st.sampled_from(["type", "meter", "at", "balance", "kw", "value", "unit",
                                 "code", "state", "active", "interval_s", "id"]),
                st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                          st.text(max_size=30), st.lists(st.integers(), max_size=2)),
            ),
        ),
        max_size=20,
    )
)  # fmt: skip
def test_any_input_parses_or_is_refused_with_a_line_and_never_raises(items: list[object]) -> None:
    batch = parse_batch(items, now=NOW)  # type: ignore[arg-type]
    lines = [line for line, _ in batch.events] + [e.line for e in batch.errors]
    assert len(lines) == len(set(lines))  # each line counted once
    assert all(line >= 1 for line in lines)
    assert all(e.reason for e in batch.errors)
