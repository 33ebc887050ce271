"""Episode rows written for a whole batch: subjects seen once are closed and opened in
two statements; a subject opened and closed (or closed and reopened) within one batch is
written alert by alert, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.models import Meter, MeterAlert
from tests.support.meter_fleet import add_meter, make_fleet

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata: outside quiet hours


def _at(minutes: int) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat()


def _episodes(runtime: Runtime) -> dict[tuple[str, str], list[tuple[bool, bool, bool]]]:
    """(serial, subject) -> [(closed, has open message, has close message)] by opening."""
    out: dict[tuple[str, str], list[tuple[bool, bool, bool]]] = {}
    with runtime.sessions() as s:
        rows = s.execute(
            select(Meter.serial, MeterAlert)
            .join(Meter, Meter.id == MeterAlert.meter_id)
            .order_by(MeterAlert.opened_at)
        ).all()
    for serial, a in rows:
        out.setdefault((serial, a.subject), []).append(
            (a.closed_at is not None, a.message_id is not None, a.close_message_id is not None)
        )
    return out


def test_episodes_opened_and_closed_within_one_batch(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        add_meter(
            s, fleet.tenant_id, serial="E-2", account="AE-2", name="Asha", language="en",
            phone="+919812300002",
        )  # fmt: skip
    batch = [
        # SN-1: tamper opens, is restored, opens again: three alerts on one subject
        {"type": "tamper", "meter": "SN-1", "at": _at(30), "code": "magnet"},
        {"type": "tamper", "meter": "SN-1", "at": _at(20), "code": "magnet", "active": False},
        {"type": "tamper", "meter": "SN-1", "at": _at(10), "code": "magnet"},
        # E-2: one opening only
        {"type": "tamper", "meter": "E-2", "at": _at(10), "code": "cover_open"},
    ]
    report = ingest_events(runtime, "jaipur", batch, source="test", now=NOW)
    assert (report.alerts, report.messages) == (4, 4)
    assert _episodes(runtime) == {
        ("SN-1", "tamper:magnet"): [(True, True, True), (False, True, False)],
        ("E-2", "tamper:cover_open"): [(False, True, False)],
    }
    # The next batch: each subject once (two statements), closing both open episodes.
    again = [
        {"type": "tamper", "meter": "SN-1", "at": _at(5), "code": "magnet", "active": False},
        {"type": "tamper", "meter": "E-2", "at": _at(5), "code": "cover_open", "active": False},
    ]
    assert ingest_events(runtime, "jaipur", again, source="test", now=NOW).alerts == 2
    assert _episodes(runtime) == {
        ("SN-1", "tamper:magnet"): [(True, True, True), (True, True, True)],
        ("E-2", "tamper:cover_open"): [(True, True, True)],
    }
    # Redelivering both batches changes nothing.
    for events in (batch, again):
        assert ingest_events(runtime, "jaipur", events, source="test", now=NOW).alerts == 0
    assert len(_episodes(runtime)[("SN-1", "tamper:magnet")]) == 2
