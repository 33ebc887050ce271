"""Alert rules over one meter's event stream (pure: no clock, no database).

A meter's `MeterState` holds, per stream (balance, reading, demand, each tamper code,
power, relay), the newest value and its time, and the open episodes. `apply_event`
folds one event into the state and answers what happened:

* an event no newer than its stream's latest is *older* (out of order) or a *duplicate*
  (same time): it changes no state and raises no alert, so an older balance never
  overwrites a newer one and a redelivered event alerts once;
* low balance: each level (the tenant's or the account's threshold, plus optional
  percentages of the last recharge) alerts once on the way down; a level re-arms only
  when the balance rises to level + hysteresis; several levels crossed at once alert once,
  for the lowest;
* zero or negative balance opens its own episode (closed by a recharge of at least the
  hysteresis);
* overload: demand above the sanctioned load for N consecutive intervals opens an
  episode (one alert); the first interval back within the load closes it ("back to
  normal");
* tamper: each code opens once while active; its "restored" event closes it;
* stale guard: an event older than `stale_after` still moves the state (so the episode
  is not alerted again later) but its alerts carry ``notify=False``.

Silent meters are a query over ``last_seen`` (see `is_silent`), not an alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import msgspec

from meterline.domain.meter_events import EventType, MeterEvent

__all__ = [
    "Alert",
    "AlertSettings",
    "MeterContext",
    "MeterState",
    "Outcome",
    "Recharge",
    "Verdict",
    "apply_event",
    "is_silent",
    "low_levels",
    "run",
]

# The alert kinds an episode row can have; the notification kinds add the "end" ones.
LOW_BALANCE = "low_balance"
ZERO_BALANCE = "zero_balance"
OVERLOAD = "overload"
OVERLOAD_NORMAL = "overload_normal"
TAMPER = "tamper"
TAMPER_RESTORED = "tamper_restored"
ALERT_KINDS = (LOW_BALANCE, ZERO_BALANCE, OVERLOAD, TAMPER)
NOTIFY_KINDS = (LOW_BALANCE, ZERO_BALANCE, OVERLOAD, OVERLOAD_NORMAL, TAMPER, TAMPER_RESTORED)
URGENT_KINDS = frozenset({ZERO_BALANCE, TAMPER})


@dataclass(frozen=True)
class AlertSettings:
    """A tenant's rule settings (docs/events.md lists them with their defaults)."""

    low_balance_minor: int = 100_00  # 100 in the currency's major unit
    percent_levels: tuple[int, ...] = ()  # e.g. (30, 10): % of the last recharge
    hysteresis_minor: int | None = None  # default: a tenth of the threshold
    overload_intervals: int = 2
    stale_after: timedelta = timedelta(hours=2)
    silent_after: timedelta = timedelta(hours=24)
    max_skew: timedelta = timedelta(minutes=5)
    # Emergency credit / grace information for zero-balance messages, per language.
    grace_text: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    mandatory: frozenset[str] = frozenset({ZERO_BALANCE, TAMPER})

    @property
    def hysteresis(self) -> int:
        if self.hysteresis_minor is not None:
            return self.hysteresis_minor
        return max(self.low_balance_minor // 10, 1)


@dataclass(frozen=True)
class MeterContext:
    """What the rules need to know about the meter's account."""

    sanctioned_kw: Decimal | None = None
    low_balance_minor: int | None = None  # the account's override of the tenant threshold


class MeterState(msgspec.Struct, gc=False):
    """The newest of each stream of one meter and its open episodes.

    A msgspec struct with ``gc=False``: ingest holds one per meter of a batch, and as
    tracked objects they made the cyclic collector's full passes frequent. It never
    refers back to anything that refers to it (its one container, ``tamper``, holds
    plain values), so it cannot be part of a cycle.
    """

    balance_minor: int | None = None
    balance_at: datetime | None = None
    last_recharge_minor: int | None = None
    low_alerted_minor: int | None = None  # lowest level alerted in the open episode
    zero_open: bool = False
    reading_value: Decimal | None = None
    reading_unit: str | None = None
    reading_at: datetime | None = None
    demand_kw: Decimal | None = None
    demand_at: datetime | None = None
    over_count: int = 0
    overload_open: bool = False
    # code -> (active, time of its newest event)
    tamper: dict[str, tuple[bool, datetime]] = msgspec.field(default_factory=dict)
    power_state: str | None = None
    power_at: datetime | None = None
    relay_state: str | None = None
    relay_at: datetime | None = None
    last_seen: datetime | None = None

    def copy(self) -> MeterState:
        return msgspec.structs.replace(self, tamper=dict(self.tamper))

    @property
    def open_tampers(self) -> list[str]:
        return sorted(code for code, (active, _) in self.tamper.items() if active)


@dataclass(frozen=True)
class Alert:
    """An episode opening or closing. ``kind`` is the notification kind (None: the episode
    ends without a message); ``subject`` names the episode ("low_balance", "tamper:magnet").
    """

    subject: str
    opening: bool
    kind: str | None
    at: datetime
    notify: bool
    data: Mapping[str, Any]

    @property
    def alert_kind(self) -> str:
        return self.subject.split(":", 1)[0]

    @property
    def episode_key(self) -> str:
        """Unique per meter and episode: the same event twice makes the same key."""
        return f"{self.subject}:{'open' if self.opening else 'end'}:{self.at.isoformat()}"


@dataclass(frozen=True)
class Recharge:
    at: datetime
    amount_minor: int


class Verdict(StrEnum):
    applied = "applied"
    duplicate = "duplicate"  # same stream, same time: already seen
    older = "older"  # out of order: a newer value of its stream is known


class Outcome(msgspec.Struct, gc=False):
    """What one event did (a struct: one is built per event, faster than a dataclass)."""

    verdict: Verdict
    alerts: list[Alert] = []  # msgspec gives each instance its own empty list
    recharge: Recharge | None = None


def low_levels(state: MeterState, ctx: MeterContext, settings: AlertSettings) -> list[int]:
    """The low-balance levels in force, highest first (minor units)."""
    base = (
        ctx.low_balance_minor if ctx.low_balance_minor is not None else settings.low_balance_minor
    )
    if not (settings.percent_levels and state.last_recharge_minor):
        return [base] if base > 0 else []  # the common case, without a set and a sort
    levels = {base} if base > 0 else set()
    for pct in settings.percent_levels:
        level = state.last_recharge_minor * pct // 100
        if level > 0:
            levels.add(level)
    return sorted(levels, reverse=True)


_APPLIED, _DUPLICATE, _OLDER = Verdict.applied, Verdict.duplicate, Verdict.older


def _verdict(last: datetime | None, at: datetime) -> Verdict:
    if last is None or at > last:
        return _APPLIED
    return _DUPLICATE if at == last else _OLDER


def apply_event(
    state: MeterState,
    event: MeterEvent,
    ctx: MeterContext,
    settings: AlertSettings,
    *,
    now: datetime,
) -> Outcome:
    """Fold `event` into `state` (in place) and say what it did."""
    at = event.at
    if state.last_seen is None or at > state.last_seen:
        state.last_seen = at
    kind = event.type
    if kind is EventType.balance:
        return _balance(state, event, ctx, settings, at >= now - settings.stale_after)
    if kind is EventType.demand:
        return _demand(state, event, ctx, settings, at >= now - settings.stale_after)
    if kind is EventType.tamper:
        return _tamper(state, event, at >= now - settings.stale_after)
    # The streams without rules: only the newest value is kept.
    if kind is EventType.reading:
        verdict = _verdict(state.reading_at, at)
        if verdict is _APPLIED:
            state.reading_value, state.reading_unit = event.value, event.unit
            state.reading_at = at
    elif kind is EventType.power:
        verdict = _verdict(state.power_at, at)
        if verdict is _APPLIED:
            state.power_state, state.power_at = event.state, at
    else:
        verdict = _verdict(state.relay_at, at)
        if verdict is _APPLIED:
            state.relay_state, state.relay_at = event.state, at
    return Outcome(verdict)


def _balance(
    state: MeterState, event: MeterEvent, ctx: MeterContext, settings: AlertSettings, notify: bool
) -> Outcome:
    verdict = _verdict(state.balance_at, event.at)
    if verdict is not _APPLIED:
        return Outcome(verdict)
    assert event.balance is not None
    b, at = event.balance, event.at
    recharge: Recharge | None = None
    alerts: list[Alert] = []
    prev = state.balance_minor
    if prev is not None and b > prev:
        recharge = Recharge(at, b - prev)
        state.last_recharge_minor = b - prev
    state.balance_minor, state.balance_at = b, at
    levels = low_levels(state, ctx, settings)
    if (
        b > 0
        and not state.zero_open
        and state.low_alerted_minor is None
        and (not levels or b >= levels[0])
    ):  # above every level, no episode open: the usual case, nothing to decide
        return Outcome(_APPLIED, [], recharge)
    hyst = settings.hysteresis
    data = {"balance": b}
    if b <= 0:
        if not state.zero_open:
            state.zero_open = True
            alerts.append(Alert(ZERO_BALANCE, True, ZERO_BALANCE, at, notify, data))
        if levels:
            # Every low level has been passed on the way to zero: none alerts later.
            floor = min(levels)
            if state.low_alerted_minor is None or floor < state.low_alerted_minor:
                if state.low_alerted_minor is None:
                    alerts.append(Alert(LOW_BALANCE, True, None, at, notify, data))
                state.low_alerted_minor = floor
        return Outcome(_APPLIED, alerts, recharge)
    if state.zero_open and b >= hyst:
        state.zero_open = False
        alerts.append(Alert(ZERO_BALANCE, False, None, at, notify, data))
    if state.low_alerted_minor is not None:
        floor = state.low_alerted_minor
        still_down = [level for level in levels if level >= floor and b < level + hyst]
        low = min(still_down) if still_down else None
        if low is None and not state.zero_open:
            alerts.append(Alert(LOW_BALANCE, False, None, at, notify, data))
            state.low_alerted_minor = None
        elif low is not None:
            state.low_alerted_minor = low
    below = [level for level in levels if b < level]
    if below and not state.zero_open:
        level = min(below)
        if state.low_alerted_minor is None or level < state.low_alerted_minor:
            state.low_alerted_minor = level
            alerts.append(
                Alert(LOW_BALANCE, True, LOW_BALANCE, at, notify, {**data, "threshold": level})
            )
    return Outcome(_APPLIED, alerts, recharge)


def _demand(
    state: MeterState, event: MeterEvent, ctx: MeterContext, settings: AlertSettings, notify: bool
) -> Outcome:
    verdict = _verdict(state.demand_at, event.at)
    if verdict is not _APPLIED:
        return Outcome(verdict)
    kw = event.kw
    assert kw is not None
    state.demand_kw, state.demand_at = kw, event.at
    limit = ctx.sanctioned_kw
    if limit is not None and kw > limit:
        state.over_count += 1
        if not state.overload_open and state.over_count >= max(settings.overload_intervals, 1):
            state.overload_open = True
            over: dict[str, Any] = {"load_kw": kw, "sanctioned_kw": limit}
            return Outcome(_APPLIED, [Alert(OVERLOAD, True, OVERLOAD, event.at, notify, over)])
        return Outcome(_APPLIED)
    state.over_count = 0
    if state.overload_open:
        state.overload_open = False
        normal: dict[str, Any] = {"load_kw": kw, "sanctioned_kw": limit}
        return Outcome(
            _APPLIED, [Alert(OVERLOAD, False, OVERLOAD_NORMAL, event.at, notify, normal)]
        )
    return Outcome(_APPLIED)


def _tamper(state: MeterState, event: MeterEvent, notify: bool) -> Outcome:
    assert event.code is not None
    known = state.tamper.get(event.code)
    verdict = _verdict(known[1] if known else None, event.at)
    if verdict is not _APPLIED:
        return Outcome(verdict)
    was_active = bool(known and known[0])
    state.tamper[event.code] = (event.active, event.at)
    subject = f"{TAMPER}:{event.code}"
    data = {"code": event.code, "text": event.text}
    if event.active and not was_active:
        return Outcome(_APPLIED, [Alert(subject, True, TAMPER, event.at, notify, data)])
    if not event.active and was_active:
        return Outcome(_APPLIED, [Alert(subject, False, TAMPER_RESTORED, event.at, notify, data)])
    return Outcome(_APPLIED)


def run(
    state: MeterState,
    events: Iterable[MeterEvent],
    ctx: MeterContext,
    settings: AlertSettings,
    *,
    now: datetime,
) -> tuple[MeterState, list[Outcome]]:
    """A copy of `state` with `events` applied in time order (ties: as given)."""
    state = state.copy()
    ordered = sorted(events, key=lambda e: e.at)
    return state, [apply_event(state, e, ctx, settings, now=now) for e in ordered]


def is_silent(last_seen: datetime | None, *, now: datetime, settings: AlertSettings) -> bool:
    """A meter not heard from for longer than `silent_after` (never heard: not silent,
    it has not started reporting)."""
    return last_seen is not None and last_seen < now - settings.silent_after
