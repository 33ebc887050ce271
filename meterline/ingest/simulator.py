"""A fleet of prepaid smart meters, reporting the way real ones do.

Pure: the caller passes the time of each round and a seeded `random.Random`; nothing
here reads a clock, the network or the database. The sender (`sim_send.py`) paces the
rounds and ships the events; the demo and the benchmarks reuse the same generator.

Each meter reports in turn (round robin over the fleet). One report is what a head-end
forwards for a prepaid meter: the demand over the last interval and the balance, a
register reading every few reports, and now and then something else:

- demand follows a daily load curve in the meter's local time (a morning and an evening
  peak, a night trough), scaled by the meter's sanctioned load and a per-meter appetite;
- the balance falls with the energy consumed at the tariff; `consumption_scale` speeds
  consumption up so a demo shows crossings within minutes (times stay real: the events
  service refuses times in the future and ignores stale ones);
- a low balance is recharged with some probability per report (a consumer topping up),
  an exhausted one disconnects the relay, a recharge reconnects it;
- a few meters go through an overload episode: demand above the sanctioned load for a
  few consecutive reports, then back to normal;
- rarely a tamper code appears and is restored a few reports later; rarely the supply
  goes off and comes back;
- a share of the meters is silent: they report in the first round, then never again.

Events follow the wire format of `POST /api/v1/events` (see docs/events.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from meterline.domain.demo_fleet import fleet_serial, opening_balance_minor, sanctioned_load

# Fraction of the daily peak drawn at each local hour (0..23): a household feeder.
LOAD_CURVE: tuple[float, ...] = (
    0.30, 0.26, 0.24, 0.23, 0.24, 0.30, 0.45, 0.62, 0.66, 0.55, 0.48, 0.46,
    0.47, 0.48, 0.47, 0.46, 0.50, 0.62, 0.82, 0.98, 1.00, 0.92, 0.70, 0.45,
)  # fmt: skip

TAMPER_CODES: tuple[tuple[str, str], ...] = (
    ("cover_open", "Terminal cover opened"),
    ("magnet", "Magnetic interference detected"),
    ("neutral_missing", "Neutral missing"),
    ("reverse_current", "Reverse current"),
)

RECHARGE_AMOUNTS_MAJOR: tuple[int, ...] = (100, 200, 300, 500, 500, 1000, 2000)


@dataclass(frozen=True, slots=True)
class SimMeter:
    """What the simulator needs to know about one meter of the fleet."""

    serial: str
    sanctioned_kw: Decimal
    tenant: str = ""
    initial_balance_minor: int = 50_000


@dataclass(frozen=True)
class SimSettings:
    interval_s: int = 900  # the demand interval a report covers
    tariff_minor_per_kwh: int = 700  # 7.00 INR per kWh
    consumption_scale: float = 1.0  # >1 drains balances faster (demo)
    low_balance_minor: int = 100_00  # below this a consumer may top up
    recharge_probability: float = 0.15  # per report while the balance is low
    emergency_credit_minor: int = 50_00  # relay opens below minus this
    overload_probability: float = 0.002  # per report: an overload episode starts
    overload_reports: tuple[int, int] = (2, 5)  # its length in reports
    tamper_probability: float = 0.0005  # per report: a tamper code appears
    tamper_reports: tuple[int, int] = (2, 6)  # reports until it is restored
    outage_probability: float = 0.0005  # per report: supply off until the next report
    reading_every: int = 4  # a register reading every N reports
    silent_share: float = 0.02  # meters that stop after the first round
    utc_offset_minutes: int = 330  # the meters' clocks: IST by default
    source: str = "simulator"


@dataclass(slots=True)
class _State:
    meter: SimMeter
    balance_minor: int
    register_wh: int
    appetite: float  # this household's share of its sanctioned load at peak
    silent: bool
    last_at: datetime | None = None
    reports: int = 0
    overload_left: int = 0
    tamper: tuple[str, str] | None = None
    tamper_left: int = 0
    power_off: bool = False
    disconnected: bool = False


@dataclass
class FleetSimulator:
    """Round-robin reports over the fleet; `take(now, n)` hands out exactly n events."""

    meters: Sequence[SimMeter]
    rng: random.Random
    settings: SimSettings = field(default_factory=SimSettings)

    def __post_init__(self) -> None:
        if not self.meters:
            raise ValueError("the simulator needs at least one meter")
        s, rng = self.settings, self.rng
        self._tz = timezone(timedelta(minutes=s.utc_offset_minutes))
        self._states = [
            _State(
                meter=m,
                balance_minor=m.initial_balance_minor,
                register_wh=rng.randrange(1_000_000, 30_000_000),
                appetite=rng.uniform(0.25, 0.8),
                silent=rng.random() < s.silent_share,
            )
            for m in self.meters
        ]
        self._next = 0
        self._pending: list[dict[str, Any]] = []
        self._seq = 0
        self.counts: dict[str, int] = {}

    @property
    def silent_serials(self) -> list[str]:
        return [st.meter.serial for st in self._states if st.silent]

    def take(self, now: datetime, n: int) -> list[dict[str, Any]]:
        """The next `n` events, stamped around `now` (tz-aware)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        out = self._pending[:n]
        del self._pending[:n]
        idle = 0
        while len(out) < n:
            st = self._states[self._next]
            self._next = (self._next + 1) % len(self._states)
            if st.silent and st.reports > 0:
                idle += 1
                if idle >= len(self._states):
                    break  # every meter is silent: nothing more to say
                continue
            idle = 0
            events = self._report(st, now)
            room = n - len(out)
            out.extend(events[:room])
            self._pending.extend(events[room:])
        for e in out:
            self.counts[e["type"]] = self.counts.get(e["type"], 0) + 1
        return out

    def _event(self, st: _State, kind: str, at: datetime, **body: Any) -> dict[str, Any]:
        self._seq += 1
        return {
            "type": kind,
            "meter": st.meter.serial,
            "at": at.astimezone(self._tz).isoformat(timespec="seconds"),
            "source": self.settings.source,
            "id": f"{st.meter.serial}-{st.reports}-{kind}-{self._seq}",
            **body,
        }

    def _report(self, st: _State, now: datetime) -> list[dict[str, Any]]:
        s, rng = self.settings, self.rng
        at = now
        elapsed_s = s.interval_s if st.last_at is None else (at - st.last_at).total_seconds()
        st.last_at = at
        st.reports += 1
        events: list[dict[str, Any]] = []

        if st.power_off:
            st.power_off = False
            events.append(self._event(st, "power", at, state="on"))
        elif rng.random() < s.outage_probability:
            st.power_off = True
            return [self._event(st, "power", at, state="off")]

        kw = self._demand_kw(st, at)
        events.append(self._event(st, "demand", at, kw=f"{kw:.3f}", interval_s=s.interval_s))

        # Energy since the last report; nothing flows while the relay is open.
        kwh = 0.0 if st.disconnected else kw * max(elapsed_s, 0.0) / 3600 * s.consumption_scale
        st.register_wh += round(kwh * 1000)
        st.balance_minor -= round(kwh * s.tariff_minor_per_kwh)

        if st.balance_minor < s.low_balance_minor and rng.random() < s.recharge_probability:
            st.balance_minor += rng.choice(RECHARGE_AMOUNTS_MAJOR) * 100
        events.append(self._event(st, "balance", at, balance=st.balance_minor))

        if not st.disconnected and st.balance_minor < -s.emergency_credit_minor:
            st.disconnected = True
            events.append(self._event(st, "relay", at, state="disconnected"))
        elif st.disconnected and st.balance_minor > 0:
            st.disconnected = False
            events.append(self._event(st, "relay", at, state="connected"))

        if st.reports % s.reading_every == 1 or s.reading_every == 1:
            value = Decimal(st.register_wh) / 1000
            events.append(self._event(st, "reading", at, value=f"{value:.3f}", unit="kWh"))

        if st.tamper is not None:
            st.tamper_left -= 1
            if st.tamper_left <= 0:
                code, text = st.tamper
                st.tamper = None
                events.append(self._event(st, "tamper", at, code=code, text=text, active=False))
        elif rng.random() < s.tamper_probability:
            st.tamper = rng.choice(TAMPER_CODES)
            st.tamper_left = rng.randint(*s.tamper_reports)
            code, text = st.tamper
            events.append(self._event(st, "tamper", at, code=code, text=text, active=True))
        return events

    def _demand_kw(self, st: _State, at: datetime) -> float:
        s, rng = self.settings, self.rng
        sanctioned = float(st.meter.sanctioned_kw)
        if st.disconnected:
            return 0.0
        if st.overload_left > 0:
            st.overload_left -= 1
            return sanctioned * rng.uniform(1.1, 1.6)
        if rng.random() < s.overload_probability:
            st.overload_left = rng.randint(*s.overload_reports) - 1
            return sanctioned * rng.uniform(1.1, 1.6)
        hour = at.astimezone(self._tz).hour
        kw = sanctioned * st.appetite * LOAD_CURVE[hour] * rng.uniform(0.8, 1.2)
        return min(kw, sanctioned * 0.98)


def demo_meters(count: int, prefix: str = "SIM", tenant: str = "") -> list[SimMeter]:
    """The meters `services.fleet.create_fleet` stores, as the simulator sees them."""
    return [
        SimMeter(
            serial=fleet_serial(prefix, i),
            sanctioned_kw=sanctioned_load(i),
            tenant=tenant,
            initial_balance_minor=opening_balance_minor(i),
        )
        for i in range(count)
    ]


def as_ndjson(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for e in events
    )
