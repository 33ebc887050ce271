"""The fleet simulator: deterministic, paced by its caller, realistic enough to alert."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.ingest.mqtt import parse_payload
from meterline.ingest.simulator import FleetSimulator, SimSettings, as_ndjson, demo_meters

START = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)  # 18:00 in India: the evening peak


def run(sim: FleetSimulator, rounds: int, per_round: int, step_s: float = 60.0) -> list[dict]:
    out = []
    for k in range(rounds):
        out.extend(sim.take(START + timedelta(seconds=k * step_s), per_round))
    return out


def test_same_seed_same_events_and_exactly_n_per_take() -> None:
    a = FleetSimulator(demo_meters(50), random.Random(3))
    b = FleetSimulator(demo_meters(50), random.Random(3))
    for k in range(20):
        now = START + timedelta(minutes=k)
        ea, eb = a.take(now, 37), b.take(now, 37)
        assert ea == eb and len(ea) == 37


def test_events_follow_the_wire_format() -> None:
    sim = FleetSimulator(
        demo_meters(200),
        random.Random(1),
        SimSettings(tamper_probability=0.05, outage_probability=0.02, overload_probability=0.05),
    )
    events = run(sim, 50, 200)
    kinds = {e["type"] for e in events}
    assert {"balance", "demand", "reading", "tamper", "power"} <= kinds
    serials = {m.serial for m in demo_meters(200)}
    for e in events:
        assert e["meter"] in serials
        at = datetime.fromisoformat(e["at"])
        assert at.utcoffset() == timedelta(hours=5, minutes=30)
        assert START <= at <= START + timedelta(hours=1)
        assert e["id"] and e["source"] == "simulator"
        if e["type"] == "balance":
            assert isinstance(e["balance"], int)
        elif e["type"] == "demand":
            assert Decimal(e["kw"]) >= 0 and e["interval_s"] == 900
        elif e["type"] == "reading":
            assert e["unit"] == "kWh" and Decimal(e["value"]) > 0
        elif e["type"] == "tamper":
            assert e["code"] and e["text"] and isinstance(e["active"], bool)
        elif e["type"] == "power":
            assert e["state"] in ("off", "on")
        elif e["type"] == "relay":
            assert e["state"] in ("disconnected", "connected")
    assert len({e["id"] for e in events}) == len(events)
    # NDJSON round trip through the MQTT worker's payload reader
    items, problems = parse_payload(as_ndjson(events[:100]))
    assert items == events[:100] and problems == []


def test_balances_fall_with_consumption_recharges_and_relay() -> None:
    sim = FleetSimulator(
        demo_meters(20),
        random.Random(5),
        SimSettings(consumption_scale=400, silent_share=0, tamper_probability=0),
    )
    events = run(sim, 300, 40, step_s=30)
    by_meter: dict[str, list[int]] = {}
    for e in events:
        if e["type"] == "balance":
            by_meter.setdefault(e["meter"], []).append(e["balance"])
    falls = sum(1 for b in by_meter.values() for x, y in pairwise(b) if y < x)
    rises = sum(1 for b in by_meter.values() for x, y in pairwise(b) if y > x)
    assert falls > 10 * rises > 0  # mostly falling, sometimes a recharge
    assert any(min(b) < 100_00 for b in by_meter.values())  # someone runs low
    relays = [e for e in events if e["type"] == "relay"]
    assert any(r["state"] == "disconnected" for r in relays)


def test_overload_episodes_exceed_the_sanctioned_load_for_consecutive_reports() -> None:
    meters = demo_meters(30)
    load = {m.serial: m.sanctioned_kw for m in meters}
    sim = FleetSimulator(meters, random.Random(9), SimSettings(overload_probability=0.05))
    demand: dict[str, list[bool]] = {}
    for e in run(sim, 100, 60):
        if e["type"] == "demand":
            demand.setdefault(e["meter"], []).append(Decimal(e["kw"]) > load[e["meter"]])
    runs = [
        n
        for flags in demand.values()
        for n in (len(r) for r in "".join("x" if f else "." for f in flags).split(".") if r)
    ]
    assert runs and max(runs) >= 2


def test_silent_meters_report_once_then_never() -> None:
    sim = FleetSimulator(demo_meters(100), random.Random(2), SimSettings(silent_share=0.1))
    silent = set(sim.silent_serials)
    assert 3 <= len(silent) <= 25
    first = sim.take(START, 500)
    later = run(sim, 20, 300)
    assert silent & {e["meter"] for e in first}
    assert not silent & {e["meter"] for e in later}


def test_evening_draws_more_than_night() -> None:
    def mean_kw(hour_utc: int) -> float:
        sim = FleetSimulator(
            demo_meters(300), random.Random(4), SimSettings(overload_probability=0)
        )
        now = datetime(2026, 11, 29, hour_utc, tzinfo=UTC)
        kws = [float(e["kw"]) for e in sim.take(now, 900) if e["type"] == "demand"]
        return sum(kws) / len(kws)

    assert mean_kw(14) > 2 * mean_kw(21)  # 19:30 IST against 02:30 IST


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 300), min_size=1, max_size=15))
def test_take_gives_exactly_what_is_asked(meters: int, sizes: list[int]) -> None:
    sim = FleetSimulator(demo_meters(meters), random.Random(0), SimSettings(silent_share=0))
    for k, n in enumerate(sizes):
        assert len(sim.take(START + timedelta(seconds=k), n)) == n
