"""Alert rules over a meter's events: once per episode, re-arm with hysteresis, overload
and tamper episodes, stale guard; out-of-order and duplicate events are harmless
(property-based with Hypothesis)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.meter_events import EventType, MeterEvent
from meterline.domain.meter_rules import (
    Alert,
    AlertSettings,
    MeterContext,
    MeterState,
    Verdict,
    apply_event,
    is_silent,
    low_levels,
    run,
)

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
CTX = MeterContext(sanctioned_kw=Decimal("5"))
RULES = AlertSettings(
    low_balance_minor=100_00, hysteresis_minor=10_00, stale_after=timedelta(days=30)
)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def balance(minute: int, amount: int) -> MeterEvent:
    return MeterEvent(EventType.balance, "SN-1", at(minute), balance=amount)


def demand(minute: int, kw: str) -> MeterEvent:
    return MeterEvent(EventType.demand, "SN-1", at(minute), kw=Decimal(kw))


def tamper(minute: int, code: str, active: bool = True) -> MeterEvent:
    return MeterEvent(EventType.tamper, "SN-1", at(minute), code=code, active=active)


def feed(
    events: list[MeterEvent],
    *,
    state: MeterState | None = None,
    ctx: MeterContext = CTX,
    rules: AlertSettings = RULES,
    now: datetime = NOW,
) -> tuple[MeterState, list[Alert]]:
    state = state or MeterState()
    alerts: list[Alert] = []
    for e in events:
        alerts.extend(apply_event(state, e, ctx, rules, now=now).alerts)
    return state, alerts


def messages(alerts: list[Alert]) -> list[tuple[str | None, Any]]:
    return [(a.kind, a.data.get("threshold")) for a in alerts if a.kind]


# --- low and zero balance ----------------------------------------------------------------


def test_low_balance_alerts_once_on_the_way_down_and_rearms_above_the_hysteresis() -> None:
    _, alerts = feed(
        [
            balance(0, 500_00),
            balance(1, 99_00),  # crosses 100: alert
            balance(2, 80_00),  # still low: nothing
            balance(3, 105_00),  # above 100 but below 110: not re-armed
            balance(4, 95_00),  # nothing
            balance(5, 120_00),  # above 110: re-armed (episode ends quietly)
            balance(6, 90_00),  # alert again
        ]
    )
    assert messages(alerts) == [("low_balance", 100_00), ("low_balance", 100_00)]
    assert [(a.subject, a.opening) for a in alerts] == [
        ("low_balance", True),
        ("low_balance", False),
        ("low_balance", True),
    ]


def test_levels_from_the_last_recharge_each_alert_once_and_a_jump_past_several_alerts_once() -> (
    None
):
    rules = AlertSettings(low_balance_minor=100_00, percent_levels=(30, 10), hysteresis_minor=1)
    state, alerts = feed(
        [
            balance(0, 0),
            balance(1, 2000_00),  # a recharge of 2000: levels 600 and 200 (and 100)
            balance(2, 500_00),  # below 600
            balance(3, 150_00),  # below 200
            balance(4, 50_00),  # below 100
        ],
        rules=rules,
    )
    assert low_levels(state, CTX, rules) == [600_00, 200_00, 100_00]
    assert messages(alerts) == [
        ("zero_balance", None),
        ("low_balance", 600_00),
        ("low_balance", 200_00),
        ("low_balance", 100_00),
    ]
    _, jump = feed([balance(0, 2000_00), balance(1, 1_00)], rules=rules, state=MeterState())
    assert messages(jump) == [("low_balance", 100_00)]


def test_the_accounts_threshold_overrides_the_tenants() -> None:
    ctx = MeterContext(sanctioned_kw=None, low_balance_minor=300_00)
    _, alerts = feed([balance(0, 1000_00), balance(1, 250_00)], ctx=ctx)
    assert messages(alerts) == [("low_balance", 300_00)]


def test_zero_balance_is_its_own_episode_closed_by_a_recharge() -> None:
    state, alerts = feed(
        [
            balance(0, 150_00),
            balance(1, 50_00),  # low
            balance(2, 0),  # zero
            balance(3, -20_00),  # still zero: nothing
            balance(4, 5_00),  # below the hysteresis: still the same episode
            balance(5, -1_00),
            balance(6, 500_00),  # recharged: both episodes end
            balance(7, 0),  # a new zero episode
        ]
    )
    assert messages(alerts) == [
        ("low_balance", 100_00),
        ("zero_balance", None),
        ("zero_balance", None),
    ]
    assert state.zero_open and state.last_recharge_minor == 501_00


def test_an_older_or_repeated_balance_changes_nothing() -> None:
    state, _ = feed([balance(10, 50_00)])
    older = apply_event(state, balance(5, 900_00), CTX, RULES, now=NOW)
    same = apply_event(state, balance(10, 50_00), CTX, RULES, now=NOW)
    assert (older.verdict, same.verdict) == (Verdict.older, Verdict.duplicate)
    assert (older.alerts, same.alerts, older.recharge) == ([], [], None)
    assert (state.balance_minor, state.balance_at) == (50_00, at(10))


def test_a_stale_event_moves_the_state_but_alerts_no_one() -> None:
    rules = AlertSettings(low_balance_minor=100_00, stale_after=timedelta(hours=1))
    state, alerts = feed([balance(0, 500_00), balance(1, 50_00)], rules=rules)
    assert [(a.kind, a.notify) for a in alerts] == [("low_balance", False)]
    _, later = feed([balance(2, 40_00)], state=state, rules=rules)
    assert later == []  # the episode is known: no late alert either


# --- overload and tamper ------------------------------------------------------------------


def test_overload_needs_n_intervals_alerts_once_and_says_when_it_is_back_to_normal() -> None:
    _, alerts = feed(
        [
            demand(0, "6"),  # one interval above 5 kW: not yet
            demand(15, "4"),  # back: the count restarts
            demand(30, "6"),
            demand(45, "7.5"),  # second in a row: alert
            demand(60, "8"),  # same episode
            demand(75, "5"),  # at the limit: back to normal
            demand(90, "4"),  # nothing more
        ]
    )
    assert [(a.kind, a.data["load_kw"]) for a in alerts] == [
        ("overload", Decimal("7.5")),
        ("overload_normal", Decimal("5")),
    ]


def test_no_sanctioned_load_means_no_overload() -> None:
    _, alerts = feed([demand(i, "50") for i in range(5)], ctx=MeterContext())
    assert alerts == []


def test_each_tamper_code_alerts_once_and_once_more_when_restored() -> None:
    state, alerts = feed(
        [
            tamper(0, "magnet"),
            tamper(1, "magnet"),
            tamper(2, "cover_open"),
            tamper(3, "magnet", active=False),
            tamper(4, "magnet", active=False),
            tamper(5, "magnet"),
        ]
    )
    assert [(a.kind, a.subject) for a in alerts] == [
        ("tamper", "tamper:magnet"),
        ("tamper", "tamper:cover_open"),
        ("tamper_restored", "tamper:magnet"),
        ("tamper", "tamper:magnet"),
    ]
    assert state.open_tampers == ["cover_open", "magnet"]


def test_silent_means_heard_before_and_not_for_longer_than_the_setting() -> None:
    rules = AlertSettings(silent_after=timedelta(hours=6))
    assert is_silent(NOW - timedelta(hours=7), now=NOW, settings=rules)
    assert not is_silent(NOW - timedelta(hours=5), now=NOW, settings=rules)
    assert not is_silent(None, now=NOW, settings=rules)


# --- properties ---------------------------------------------------------------------------

KINDS = st.sampled_from(["balance", "demand", "tamper", "power", "relay", "reading"])


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 40) -> list[MeterEvent]:
    """Events of one meter at distinct minutes, in time order."""
    minutes = sorted(draw(st.sets(st.integers(0, 2000), max_size=max_size)))
    out = []
    for minute in minutes:
        kind = draw(KINDS)
        when = at(minute)
        if kind == "balance":
            amount = draw(st.integers(-50_00, 400_00))
            out.append(MeterEvent(EventType.balance, "SN-1", when, balance=amount))
        elif kind == "demand":
            kw = Decimal(draw(st.integers(0, 100))) / 10
            out.append(MeterEvent(EventType.demand, "SN-1", when, kw=kw))
        elif kind == "tamper":
            code = draw(st.sampled_from(["magnet", "cover_open"]))
            active = draw(st.booleans())
            out.append(MeterEvent(EventType.tamper, "SN-1", when, code=code, active=active))
        elif kind == "reading":
            value = Decimal(minute)
            out.append(MeterEvent(EventType.reading, "SN-1", when, value=value, unit="kWh"))
        else:
            state = draw(st.sampled_from(["off", "on"] if kind == "power" else ["connected"]))
            out.append(MeterEvent(EventType(kind), "SN-1", when, state=state))
    return out


@settings(max_examples=300, deadline=None)
@given(event_lists())
def test_every_episode_opens_once_before_it_closes(events: list[MeterEvent]) -> None:
    _, alerts = feed(events)  # one threshold: each subject alternates open, close, open...
    for subject in {a.subject for a in alerts}:
        flags = [a.opening for a in alerts if a.subject == subject]
        assert flags[0] is True
        assert all(x != y for x, y in itertools.pairwise(flags)), (subject, flags)


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.integers(0, 2**32))
def test_duplicates_and_reordering_within_a_batch_change_nothing(
    events: list[MeterEvent], seed: int
) -> None:
    rng = random.Random(seed)
    noisy = events + [rng.choice(events) for _ in range(len(events) // 2)] if events else []
    rng.shuffle(noisy)
    expected_state, expected = run(MeterState(), events, CTX, RULES, now=NOW)
    state, outcomes = run(MeterState(), noisy, CTX, RULES, now=NOW)
    assert state == expected_state
    assert [a for o in outcomes for a in o.alerts] == [a for o in expected for a in o.alerts]


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.integers(0, 2**32))
def test_redelivering_any_events_later_alerts_no_one_and_changes_no_state(
    events: list[MeterEvent], seed: int
) -> None:
    state, _ = feed(events)
    before = state.copy()
    rng = random.Random(seed)
    again = [rng.choice(events) for _ in range(len(events))] if events else []
    _, alerts = feed(again, state=state)
    assert alerts == []
    assert state == before


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.integers(0, 2**32))
def test_in_any_arrival_order_each_stream_ends_at_its_newest_event(
    events: list[MeterEvent], seed: int
) -> None:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    state, _ = feed(shuffled)
    newest: dict[Any, MeterEvent] = {}
    for e in events:  # in time order: the last one per stream is its newest
        newest[(e.type, e.code)] = e
    for (kind, code), e in newest.items():
        if kind is EventType.balance:
            assert (state.balance_minor, state.balance_at) == (e.balance, e.at)
        elif kind is EventType.demand:
            assert (state.demand_kw, state.demand_at) == (e.kw, e.at)
        elif kind is EventType.reading:
            assert (state.reading_value, state.reading_at) == (e.value, e.at)
        elif kind is EventType.tamper:
            assert state.tamper[code] == (e.active, e.at)
        elif kind is EventType.power:
            assert (state.power_state, state.power_at) == (e.state, e.at)
        else:
            assert (state.relay_state, state.relay_at) == (e.state, e.at)
    assert state.last_seen == (max(e.at for e in events) if events else None)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000_00), st.lists(st.integers(0, 5000_00), max_size=40))
def test_a_falling_balance_alerts_each_level_at_most_once_and_only_deeper(
    recharge: int, drops: list[int]
) -> None:
    rules = AlertSettings(low_balance_minor=100_00, percent_levels=(30, 10), hysteresis_minor=5_00)
    amounts = [0, recharge]  # a recharge fixes the levels; from there it only falls
    for drop in drops:
        amounts.append(amounts[-1] - drop)
    state, alerts = feed([balance(i, b) for i, b in enumerate(amounts)], rules=rules)
    sent = [a.data["threshold"] for a in alerts if a.kind == "low_balance"]
    assert sent == sorted(set(sent), reverse=True)  # each once, ever deeper
    assert len(sent) <= len(low_levels(state, CTX, rules))
    assert len([a for a in alerts if a.kind == "zero_balance"]) <= 2  # the start, one more
