"""Reading smart-meter state back: a meter's page, alerts, silent meters, usage, counters.

Each function takes the tenant id and never looks outside it. The API, the CLI and the
console (live alerts view, meter page, silent meters) share them. Settings and
consumers' opt-outs are written here too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from meterline.domain.meter_rules import ALERT_KINDS, NOTIFY_KINDS
from meterline.services.errors import NotFound, ServiceError
from meterline.services.meter_events import alert_settings
from meterline.store import models as m
from meterline.store.upsert import insert_or_nothing

__all__ = [
    "ingest_totals",
    "list_alerts",
    "meter_view",
    "set_alert_settings",
    "set_opt_out",
    "silent_meters",
    "unknown_serials",
    "usage",
]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _num(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _alert_dict(alert: m.MeterAlert, serial: str, account: str | None) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "subject": alert.subject,
        "meter": serial,
        "account": account,
        "opened_at": _iso(alert.opened_at),
        "closed_at": _iso(alert.closed_at),
        "open": alert.closed_at is None,
        "details": alert.details or {},
        "message_id": alert.message_id,
        "close_message_id": alert.close_message_id,
        "note": alert.note,
    }


def list_alerts(
    session: Session,
    tenant_id: int,
    *,
    kind: str | None = None,
    open_only: bool = False,
    serial: str | None = None,
    since: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alert episodes, newest first. `after_id` gives only those newer than an id the
    caller already shows (a live view polls with it); `kind` is one of `ALERT_KINDS`."""
    if kind is not None and kind not in ALERT_KINDS:
        raise ServiceError(f"kind: {kind!r} is not one of {', '.join(ALERT_KINDS)}")
    query = (
        select(m.MeterAlert, m.Meter.serial, m.Account.number)
        .join(m.Meter, m.Meter.id == m.MeterAlert.meter_id)
        .outerjoin(m.Account, m.Account.id == m.MeterAlert.account_id)
        .where(m.MeterAlert.tenant_id == tenant_id)
        .order_by(m.MeterAlert.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if kind is not None:
        query = query.where(m.MeterAlert.kind == kind)
    if open_only:
        query = query.where(m.MeterAlert.closed_at.is_(None))
    if serial is not None:
        query = query.where(m.Meter.serial == serial)
    if since is not None:
        query = query.where(m.MeterAlert.opened_at >= since)
    if after_id is not None:
        query = query.where(m.MeterAlert.id > after_id)
    return [_alert_dict(a, s, n) for a, s, n in session.execute(query)]


def meter_view(
    session: Session, tenant_id: int, serial: str, *, recent: int = 20
) -> dict[str, Any]:
    """A meter's state, its open alerts and its recent alerts (`NotFound` if unknown)."""
    row = session.execute(
        select(m.Meter, m.Account, m.MeterState)
        .outerjoin(m.Account, m.Account.id == m.Meter.account_id)
        .outerjoin(m.MeterState, m.MeterState.meter_id == m.Meter.id)
        .where(m.Meter.tenant_id == tenant_id, m.Meter.serial == serial)
    ).first()
    if row is None:
        raise NotFound(f"no meter {serial!r}")
    meter, account, state = row
    alerts = list_alerts(session, tenant_id, serial=serial, limit=max(recent, 1) + 50)
    return {
        "serial": meter.serial,
        "kind": str(meter.kind),
        "account": account.number if account else None,
        "sanctioned_load_kw": _num(account.sanctioned_load_kw) if account else None,
        "state": _state_dict(state),
        "open_alerts": [a for a in alerts if a["open"]],
        "recent_alerts": alerts[:recent],
    }


def _state_dict(state: m.MeterState | None) -> dict[str, Any] | None:
    if state is None or state.last_seen is None:
        return None
    return {
        "balance_minor": state.balance_minor,
        "balance_at": _iso(state.balance_at),
        "last_recharge_minor": state.last_recharge_minor,
        "reading": _num(state.reading_value),
        "reading_unit": state.reading_unit,
        "reading_at": _iso(state.reading_at),
        "demand_kw": _num(state.demand_kw),
        "demand_at": _iso(state.demand_at),
        "overload": state.overload_open,
        "zero_balance": state.zero_open,
        "low_balance_level_minor": state.low_alerted_minor,
        "tamper": sorted(code for code, (active, _) in (state.tamper or {}).items() if active),
        "power": state.power_state,
        "power_at": _iso(state.power_at),
        "relay": state.relay_state,
        "relay_at": _iso(state.relay_at),
        "last_seen": _iso(state.last_seen),
        "recent_events": _latest_events(state),
    }


def _latest_events(state: m.MeterState) -> list[dict[str, Any]]:
    """The newest event of each stream, newest first: what the state was made of (the
    events themselves are not stored, so ingest costs no log that grows by the billion)."""
    out: list[dict[str, Any]] = []
    if state.balance_at is not None:
        out.append({"at": state.balance_at, "type": "balance", "value": state.balance_minor})
    if state.reading_at is not None:
        reading = f"{_num(state.reading_value)} {state.reading_unit}"
        out.append({"at": state.reading_at, "type": "reading", "value": reading})
    if state.demand_at is not None:
        out.append({"at": state.demand_at, "type": "demand", "value": _num(state.demand_kw)})
    for code, (active, at) in (state.tamper or {}).items():
        value = code if active else f"{code} restored"
        out.append({"at": datetime.fromisoformat(at), "type": "tamper", "value": value})
    if state.power_at is not None:
        out.append({"at": state.power_at, "type": "power", "value": state.power_state})
    if state.relay_at is not None:
        out.append({"at": state.relay_at, "type": "relay", "value": state.relay_state})
    out.sort(key=lambda e: e["at"], reverse=True)
    return [{**e, "at": e["at"].isoformat()} for e in out]


def silent_meters(
    session: Session,
    tenant_id: int,
    *,
    now: datetime,
    silent_after: timedelta | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Meters that reported before but not within `silent_after` (the tenant's setting
    by default), longest silent first: for the operator, never alarmed to consumers."""
    if silent_after is None:
        tenant = session.get(m.Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}")
        silent_after = alert_settings(session, tenant).silent_after
    cutoff = now - silent_after
    state = m.MeterState
    # Found through the index on the UTC day last seen (ingest leaves last_seen itself
    # unindexed, see MeterState), last_seen rechecked; ordered by day first, so that
    # PostgreSQL can sort each day's meters as the index hands them over (incremental
    # sort) and stop at the limit. The order is last_seen's.
    rows = session.execute(
        select(m.Meter.serial, m.Account.number, state.last_seen)
        .join(m.Meter, m.Meter.id == state.meter_id)
        .outerjoin(m.Account, m.Account.id == m.Meter.account_id)
        .where(
            state.tenant_id == tenant_id,
            state.seen_day <= cutoff.astimezone(UTC).date(),
            state.last_seen < cutoff,
        )
        .order_by(state.seen_day, state.last_seen)
        .limit(max(1, min(limit, 10_000)))
    )
    return [
        {
            "meter": serial,
            "account": number,
            "last_seen": _iso(seen),
            "silent_for_s": int((now - seen).total_seconds()) if seen else None,
        }
        for serial, number, seen in rows
    ]


def usage(
    session: Session, tenant_id: int, serial: str, period: str, *, limit: int = 400
) -> dict[str, Any]:
    """Consumption per day or month, oldest first: the register's rise over the period
    (from the end of the previous reported period, else within it), maximum demand,
    recharges. Ingest keeps day rows; months are folded from them here."""
    if period not in ("day", "month"):
        raise ServiceError(f"period: {period!r} is not day or month")
    meter_id = session.scalar(
        select(m.Meter.id).where(m.Meter.tenant_id == tenant_id, m.Meter.serial == serial)
    )
    if meter_id is None:
        raise NotFound(f"no meter {serial!r}")
    limit = max(1, min(limit, 5000))
    days = list(
        session.execute(
            select(
                m.MeterUsage.start,
                m.MeterUsage.reading_min,
                m.MeterUsage.reading_max,
                m.MeterUsage.unit,
                m.MeterUsage.max_demand_kw,
                m.MeterUsage.recharges,
                m.MeterUsage.recharged_minor,
            )
            .where(m.MeterUsage.meter_id == meter_id, m.MeterUsage.period == "day")
            .order_by(m.MeterUsage.start.desc())
            .limit((limit + 1) * (31 if period == "month" else 1))
        )
    )
    days.reverse()
    buckets: dict[date, list[Any]] = {}
    for start, low, high, unit, kw, recharges, recharged in days:
        key = start.replace(day=1) if period == "month" else start
        b = buckets.get(key)
        if b is None:
            buckets[key] = [low, high, unit, kw, recharges, recharged]
            continue
        b[0] = low if b[0] is None else (b[0] if low is None else min(b[0], low))
        b[1] = high if b[1] is None else (b[1] if high is None else max(b[1], high))
        b[2] = unit or b[2]
        b[3] = kw if b[3] is None else (b[3] if kw is None else max(b[3], kw))
        b[4] += recharges
        b[5] += recharged
    items = sorted(buckets.items())
    out: list[dict[str, Any]] = []
    previous_max: Decimal | None = None
    for i, (start, (low, high, unit, kw, recharges, recharged)) in enumerate(items):
        consumed: Decimal | None = None
        if high is not None:
            base = previous_max if previous_max is not None else low
            consumed = high - base if base is not None else None
            previous_max = high
        if i < len(items) - limit:
            continue  # fetched only as the base of the next period
        out.append(
            {
                "start": start.isoformat(),
                "consumption": _num(consumed),
                "unit": unit,
                "reading_min": _num(low),
                "reading_max": _num(high),
                "max_demand_kw": _num(kw),
                "recharges": recharges,
                "recharged_minor": recharged,
            }
        )
    return {"meter": serial, "period": period, "rows": out}


def unknown_serials(session: Session, tenant_id: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """Serials the tenant's producers sent events for but that match no meter."""
    rows = session.scalars(
        select(m.MeterUnknownSerial)
        .where(m.MeterUnknownSerial.tenant_id == tenant_id)
        .order_by(m.MeterUnknownSerial.last_seen.desc())
        .limit(max(1, min(limit, 10_000)))
    )
    return [
        {
            "serial": r.serial,
            "events": r.events,
            "first_seen": _iso(r.first_seen),
            "last_seen": _iso(r.last_seen),
            "last_source": r.last_source,
        }
        for r in rows
    ]


def ingest_totals(session: Session, tenant_id: int, *, since: date | None = None) -> dict[str, int]:
    """Counts over the tenant's ingested batches: accepted, duplicates, rejected, unknown."""
    b = m.MeterEventBatch
    query = select(
        func.count(),
        func.coalesce(func.sum(b.accepted), 0),
        func.coalesce(func.sum(b.duplicates), 0),
        func.coalesce(func.sum(b.rejected), 0),
        func.coalesce(func.sum(b.unknown), 0),
        func.coalesce(func.sum(b.alerts), 0),
    ).where(b.tenant_id == tenant_id)
    batches, accepted, duplicates, rejected, unknown, alerts = session.execute(query).one()
    return {
        "batches": int(batches),
        "accepted": int(accepted),
        "duplicates": int(duplicates),
        "rejected": int(rejected),
        "unknown_meters": int(unknown),
        "alerts": int(alerts),
    }


def set_opt_out(
    session: Session, tenant_id: int, consumer_id: int, kind: str, *, opted_out: bool
) -> None:
    """A consumer's choice for one alert kind (mandatory kinds are sent regardless)."""
    if kind not in NOTIFY_KINDS:
        raise ServiceError(f"kind: {kind!r} is not one of {', '.join(NOTIFY_KINDS)}")
    owner = session.scalar(select(m.Consumer.tenant_id).where(m.Consumer.id == consumer_id))
    if owner != tenant_id:
        raise NotFound(f"no consumer {consumer_id}")
    if opted_out:
        session.execute(
            insert_or_nothing(session, m.AlertOptOut).values(
                consumer_id=consumer_id, kind=kind, tenant_id=tenant_id
            )
        )
    else:
        session.execute(
            delete(m.AlertOptOut).where(
                m.AlertOptOut.consumer_id == consumer_id, m.AlertOptOut.kind == kind
            )
        )


SETTING_FIELDS = (
    "low_balance_minor",
    "percent_levels",
    "hysteresis_minor",
    "overload_intervals",
    "stale_after_s",
    "silent_after_s",
    "max_skew_s",
    "grace_text",
    "mandatory_kinds",
)


def set_alert_settings(session: Session, tenant_id: int, **changes: Any) -> m.MeterAlertSettings:
    """Change some of the tenant's rule settings (see docs/events.md for each)."""
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise ServiceError(f"unknown setting {', '.join(unknown)}")
    row = session.get(m.MeterAlertSettings, tenant_id)
    if row is None:
        row = m.MeterAlertSettings(
            tenant_id=tenant_id,
            percent_levels="",
            overload_intervals=2,
            stale_after_s=7200,
            silent_after_s=86400,
            max_skew_s=300,
            mandatory_kinds="zero_balance,tamper",
        )
        session.add(row)
    for name, value in changes.items():
        if name == "percent_levels":
            value = _percent_levels(value)
        elif name == "mandatory_kinds":
            kinds = [k.strip() for k in (value or "").split(",") if k.strip()]
            bad = [k for k in kinds if k not in NOTIFY_KINDS]
            if bad:
                raise ServiceError(f"mandatory_kinds: {', '.join(bad)} is not an alert kind")
            value = ",".join(kinds)
        elif name in ("overload_intervals", "stale_after_s", "silent_after_s", "max_skew_s"):
            if not isinstance(value, int) or value < (1 if name == "overload_intervals" else 0):
                raise ServiceError(f"{name}: {value!r} must be a non-negative whole number")
        elif name in ("low_balance_minor", "hysteresis_minor") and (
            value is not None and (not isinstance(value, int) or value < 0)
        ):
            raise ServiceError(f"{name}: {value!r} must be a non-negative amount in minor units")
        setattr(row, name, value)
    session.flush()
    return row


def _percent_levels(value: Any) -> str:
    parts = [p.strip() for p in str(value or "").split(",") if p.strip()]
    out = []
    for part in parts:
        if not part.isdigit() or not 0 < int(part) < 100:
            raise ServiceError(f"percent_levels: {part!r} is not a percentage between 1 and 99")
        out.append(str(int(part)))
    return ",".join(out)
