"""`meterline demo`'s live meters: the simulator fed gently into the events service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from meterline.demo import DEMO_FLEET_PREFIX, LiveMeters, prepare_demo, prepare_fleet
from meterline.store.db import make_engine, make_session_factory
from meterline.store.models import Message, Meter, MeterAlert, MeterState


def test_live_meters_report_and_alerts_appear(tmp_path: Path) -> None:
    info = prepare_demo(tmp_path / "demo", 50)
    fleet = prepare_fleet(info.database_url, 120)
    assert fleet.created == 120
    engine = make_engine(info.database_url)
    sessions = make_session_factory(engine)
    clock = [datetime.now(UTC) - timedelta(minutes=30)]
    live = LiveMeters(sessions, 120, rate=20, clock=lambda: clock[0])
    try:
        for _ in range(90):  # 90 "seconds" of the demo, the clock moved by hand
            report = live.tick()
            assert report.rejected == 0 and report.unknown_meters == 0, report.errors
            clock[0] += timedelta(seconds=20)
        assert live.totals.accepted == 90 * 20
        with sessions() as s:
            meters = s.scalar(
                select(func.count()).where(Meter.serial.startswith(DEMO_FLEET_PREFIX))
            )
            assert meters == 120
            assert s.scalar(select(func.count()).select_from(MeterState)) >= 100
            kinds = set(s.scalars(select(MeterAlert.kind)))
            # Opening balances below 100 INR alert at once; drained ones follow.
            assert "low_balance" in kinds
            alerts = s.scalar(select(func.count()).select_from(MeterAlert))
            assert alerts and alerts > 5, kinds
            queued = s.scalar(select(func.count()).select_from(Message))
            assert queued and queued > 25  # the 25 dues reminders, and alert messages
    finally:
        engine.dispose()
