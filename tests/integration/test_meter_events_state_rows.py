"""Meter states through the store's driver-level statements: a batch that mixes meters
with a state and meters without one (SQLite reads first and inserts only then), every
stream's columns written back as the rules left them, and read back the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from meterline.domain.meter_rules import MeterState
from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.meter_state import STATE_COLUMNS, ensure_and_load
from meterline.store.models import Meter
from meterline.store.models import MeterState as StateRow
from tests.support.meter_fleet import Fleet, add_meter, make_fleet

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def _fleet_of_three(runtime: Runtime, prefix: str) -> Fleet:
    """A fleet with meters PREFIX-0..2 on accounts APREFIX-0..2, no phones."""
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        for i in range(3):
            add_meter(
                s,
                fleet.tenant_id,
                serial=f"{prefix}-{i}",
                account=f"A{prefix}-{i}",
                name=f"C {i}",
                language="en",
                phone=None,
            )
    return fleet


def _at(minutes: int) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat()


def test_state_columns_are_in_the_rules_field_order() -> None:
    # ensure_and_load hands each state over as a tuple for MeterState(*values).
    assert tuple(MeterState.__struct_fields__) == STATE_COLUMNS


def test_a_batch_of_known_and_new_meters_writes_every_stream(runtime: Runtime) -> None:
    fleet = _fleet_of_three(runtime, "S")
    first = [{"type": "balance", "meter": "S-0", "at": _at(30), "balance": 50_000}]
    assert ingest_events(runtime, "jaipur", first, source="test", now=NOW).accepted == 1
    batch = [
        {"type": "balance", "meter": "S-0", "at": _at(20), "balance": 40_000},
        {"type": "reading", "meter": "S-0", "at": _at(20), "value": "12.345", "unit": "kWh"},
        {"type": "demand", "meter": "S-1", "at": _at(20), "kw": "1.250"},
        {"type": "tamper", "meter": "S-1", "at": _at(19), "code": "magnet"},
        {"type": "power", "meter": "S-2", "at": _at(18), "state": "off"},
        {"type": "relay", "meter": "S-2", "at": _at(17), "state": "disconnected"},
    ]
    report = ingest_events(runtime, "jaipur", batch, source="test", now=NOW)
    assert (report.accepted, report.rejected) == (6, 0)
    with runtime.sessions() as s:
        rows = {
            serial: state
            for serial, state in s.execute(
                select(Meter.serial, StateRow).join(StateRow, StateRow.meter_id == Meter.id)
            )
        }
        loaded = {
            row[1]: MeterState(*row[8])
            for row in ensure_and_load(s, fleet.tenant_id, ["S-0", "S-1", "S-2"])
        }
    zero, one, two = rows["S-0"], rows["S-1"], rows["S-2"]
    assert (zero.balance_minor, zero.last_recharge_minor) == (40_000, None)
    assert (zero.reading_value, zero.reading_unit) == (Decimal("12.345"), "kWh")
    assert zero.last_seen == NOW - timedelta(minutes=20)
    assert (one.demand_kw, one.over_count, one.overload_open) == (Decimal("1.250"), 0, False)
    assert one.tamper == {"magnet": [True, (NOW - timedelta(minutes=19)).isoformat()]}
    assert (two.power_state, two.relay_state) == ("off", "disconnected")
    assert two.relay_at == NOW - timedelta(minutes=17)
    # Read back for the rules: times aware UTC, tamper as (active, time), values not read.
    assert loaded["S-1"].tamper == {"magnet": (True, NOW - timedelta(minutes=19))}
    assert loaded["S-0"].balance_at == NOW - timedelta(minutes=20)
    assert loaded["S-0"].balance_at.tzinfo is not None
    assert (loaded["S-0"].reading_value, loaded["S-2"].power_state) == (None, None)
    assert loaded["S-2"].power_at == NOW - timedelta(minutes=18)


def test_new_meters_get_the_state_their_stored_row_reads_back(runtime: Runtime) -> None:
    # A meter without a state row gets one; the state handed over for it (built, not read
    # back, on SQLite) is the one the stored row gives on the next load.
    fleet = _fleet_of_three(runtime, "N")
    ingest_events(
        runtime,
        "jaipur",
        [{"type": "balance", "meter": "N-0", "at": _at(30), "balance": 50_000}],
        source="test",
        now=NOW,
    )
    serials = ["N-0", "N-1", "N-2"]
    with runtime.sessions() as s, s.begin():
        first = {row[1]: row for row in ensure_and_load(s, fleet.tenant_id, serials)}
    with runtime.sessions() as s, s.begin():
        again = {row[1]: row for row in ensure_and_load(s, fleet.tenant_id, serials)}
        stored = s.scalar(select(func.count()).select_from(StateRow))
    assert stored == 3
    assert first == again
    tamper = STATE_COLUMNS.index("tamper")
    one, two = first["N-1"][8], first["N-2"][8]
    assert one[tamper] == {}
    assert one[tamper] is not two[tamper]  # one map each: the rules may change it in place
