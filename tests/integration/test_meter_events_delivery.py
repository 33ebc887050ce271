"""Delivery timing of meter alerts: urgent kinds go at once, the "back to normal" and
"restored" messages wait out the tenant's quiet hours; each message names its episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.models import Message
from tests.support.meter_fleet import make_fleet

# 23:00 in Asia/Kolkata: inside the default quiet hours (21:00-08:00).
NIGHT = datetime(2026, 11, 29, 17, 30, tzinfo=UTC)


def test_at_night_urgent_alerts_go_at_once_and_the_all_clear_waits(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        make_fleet(s)

    def at(minutes: int) -> str:
        return (NIGHT - timedelta(minutes=minutes)).isoformat()

    report = ingest_events(
        runtime,
        "jaipur",
        [
            {"type": "tamper", "meter": "SN-1", "at": at(40), "code": "magnet"},
            {"type": "tamper", "meter": "SN-1", "at": at(30), "code": "magnet", "active": False},
            {"type": "demand", "meter": "SN-2", "at": at(45), "kw": 9},
            {"type": "demand", "meter": "SN-2", "at": at(30), "kw": 9},
            {"type": "demand", "meter": "SN-2", "at": at(15), "kw": 1},
            {"type": "balance", "meter": "SN-2", "at": at(5), "balance": 0},
        ],
        source="test",
        now=NIGHT,
    )
    assert (report.alerts, report.messages) == (6, 5)  # zero also marks low, silently
    with runtime.sessions() as s:
        rows = s.execute(select(Message.kind, Message.due_at, Message.idempotency_key)).all()
    due = {kind: when for kind, when, _ in rows}
    morning = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)  # 08:00 in Kolkata
    assert due["tamper"] == due["overload"] == due["zero_balance"] == NIGHT
    assert due["tamper_restored"] == due["overload_normal"] == morning
    keys = {kind: key for kind, _, key in rows}
    assert keys["tamper"].endswith(f"tamper:magnet:open:{at(40)}")
    assert keys["tamper_restored"].endswith(f"tamper:magnet:end:{at(30)}")
