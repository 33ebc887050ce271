"""The hot path of event ingest at the driver level: meter states in, states and usage out.

At tens of thousands of events a second SQLAlchemy's per-row parameter processing costs
more than the database work, so these statements are plain SQL per dialect, executed
with the driver's executemany, with values converted once here: on SQLite times are
the text SQLAlchemy itself writes for `UTCDateTime` ("YYYY-MM-DD HH:MM:SS.ffffff", UTC),
decimals are REAL (read back at the column's scale) and booleans 0/1; on PostgreSQL the
driver adapts aware datetimes, Decimals and booleans itself. A batch's serials travel
as one parameter (a JSON array on SQLite, an array on PostgreSQL), not one per serial.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.orm import Session

__all__ = [
    "STATE_COLUMNS",
    "STREAM_COLUMNS",
    "StateRow",
    "ensure_and_load",
    "save_states",
    "upsert_usage",
]

# The rules' columns of meter_states, in this order in every statement here.
STATE_COLUMNS = (
    "balance_minor",
    "balance_at",
    "last_recharge_minor",
    "low_alerted_minor",
    "zero_open",
    "reading_value",
    "reading_unit",
    "reading_at",
    "demand_kw",
    "demand_at",
    "over_count",
    "overload_open",
    "tamper",
    "power_state",
    "power_at",
    "relay_state",
    "relay_at",
    "last_seen",
)
# Which columns each event type's stream owns (last_seen is everyone's).
STREAM_COLUMNS: dict[str, tuple[str, ...]] = {
    "balance": (
        "balance_minor",
        "balance_at",
        "last_recharge_minor",
        "low_alerted_minor",
        "zero_open",
    ),
    "reading": ("reading_value", "reading_unit", "reading_at"),
    "demand": ("demand_kw", "demand_at", "over_count", "overload_open"),
    "tamper": ("tamper",),
    "power": ("power_state", "power_at"),
    "relay": ("relay_state", "relay_at"),
}
# PostgreSQL array types for the one-statement writes (unnest of one array per column).
PG_TYPES = {
    "meter_id": "bigint",
    "balance_minor": "bigint",
    "last_recharge_minor": "bigint",
    "low_alerted_minor": "bigint",
    "zero_open": "boolean",
    "reading_value": "numeric",
    "reading_unit": "text",
    "demand_kw": "numeric",
    "over_count": "integer",
    "overload_open": "boolean",
    "tamper": "text",
    "power_state": "text",
    "relay_state": "text",
    "updated_at": "timestamptz",
    "period": "text",
    "start": "date",
    "tenant_id": "integer",
    "reading_min": "numeric",
    "reading_max": "numeric",
    "unit": "text",
    "max_demand_kw": "numeric",
    "recharges": "integer",
    "recharged_minor": "bigint",
}
# Not read back by ensure_and_load (see there): the values of streams, not their times.
NOT_READ = frozenset({"reading_value", "reading_unit", "demand_kw", "power_state", "relay_state"})
TIMES = frozenset(c for c in STATE_COLUMNS if c.endswith("_at") or c == "last_seen")
DECIMALS = frozenset({"reading_value", "demand_kw"})
BOOLS = frozenset({"zero_open", "overload_open"})

# (meter id, serial, kind, account id, account number, consumer id, sanctioned kW,
#  account's low-balance threshold, state values in STATE_COLUMNS order)
StateRow = tuple[
    int, str, str, int | None, str | None, int | None, Decimal | None, int | None, tuple[Any, ...]
]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # The text SQLAlchemy writes for a UTCDateTime on SQLite: the aware isoformat less its
    # "+00:00" (a replace(tzinfo=None) first costs twice the formatting).
    return value.isoformat(" ", "microseconds")[:-6]


def _read_sqlite_time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:  # parsing the offset is several times cheaper than a replace(tzinfo=UTC)
        return datetime.fromisoformat(value + "+00:00")
    except (TypeError, ValueError):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _read_tamper(value: Any) -> dict[str, tuple[bool, datetime]]:
    """The tamper column ({code: [active, ISO time]}) as the rules hold it."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    return {code: (bool(v[0]), datetime.fromisoformat(v[1])) for code, v in value.items()}


# SQLite: the batch's meters (serials as one JSON array) with their accounts and, where
# one exists, their state (s.meter_id NULL where none does). The value-only columns come
# back as NULL (see NOT_READ); no ORDER BY, a sort of the batch for nothing (the caller
# keys by serial).
_SQLITE_STATE_SQL = (
    "SELECT m.id, m.serial, m.kind, m.account_id, a.number, a.consumer_id,"
    " a.sanctioned_load_kw, a.low_balance_minor, s.meter_id, "
    + ", ".join("NULL" if c in NOT_READ else f"s.{c}" for c in STATE_COLUMNS)
    + " FROM meters m LEFT JOIN meter_states s ON s.meter_id = m.id"
    " LEFT JOIN accounts a ON a.id = m.account_id"
    " WHERE m.tenant_id = ? AND m.serial IN (SELECT value FROM json_each(?))"
)


def ensure_and_load(session: Session, tenant_id: int, serials: Sequence[str]) -> list[StateRow]:
    """The tenant's meters among `serials` with their accounts and states, each state row
    created if missing; on PostgreSQL the states are locked (in meter id order) until the
    transaction ends, so concurrent batches for one meter apply one after the other.

    Each state is a tuple in `STATE_COLUMNS` order (the order of `MeterState`'s fields),
    times aware UTC, ``tamper`` as {code: (active, time)}. The columns in `NOT_READ` are
    None: the rules compare only their stream's time, and ingest writes a stream's values
    only from the event that moved it, so reading them back would be wasted work.
    """
    conn = session.connection()
    pg = _is_pg(session)
    # The serials travel as one JSON text (see _json_rows).
    param = _ENCODE(list(serials)).decode() if pg else json.dumps(list(serials))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if pg:  # see _load_pg
            return _pg_rows(_load_pg(cursor, tenant_id, param))
        # A write transaction on SQLite begins IMMEDIATE (store.db), so nobody writes in
        # between: read first, then insert the missing states by meter id, and hand those
        # over as new (what reading them back would give, without the read).
        cursor.execute(_SQLITE_STATE_SQL, (tenant_id, param))
        fetched = cursor.fetchall()
        missing = sorted(row[0] for row in fetched if row[8] is None)
        if missing:
            cursor.executemany(_SQLITE_NEW_STATE, [(mid, tenant_id) for mid in missing])
        return _sqlite_rows(fetched)
    finally:
        cursor.close()


# SQLite: a new meter's state row, and the values that row reads back as (in STATE_COLUMNS
# order, before _sqlite_rows converts them).
_SQLITE_NEW_STATE = (
    "INSERT INTO meter_states (meter_id, tenant_id, zero_open, over_count, overload_open)"
    " VALUES (?, ?, 0, 0, 0)"
)
_NEW_STATE = tuple(False if c in BOOLS else 0 if c == "over_count" else None for c in STATE_COLUMNS)

_TIME_AT = tuple(i for i, c in enumerate(STATE_COLUMNS) if c in TIMES and c not in NOT_READ)
_BOOL_AT = tuple(i for i, c in enumerate(STATE_COLUMNS) if c in BOOLS)
_TAMPER_AT = STATE_COLUMNS.index("tamper")


def _sqlite_rows(fetched: Sequence[Any]) -> list[StateRow]:
    """The rows converted; a meter without a state row (its s.meter_id is NULL; the
    caller has just inserted one) gets the state of a new row."""
    times: dict[str, datetime] = {}  # the batch's states share many times
    loads: dict[float, Decimal] = {}  # and a fleet has few sanctioned loads
    out: list[StateRow] = []
    for row in fetched:
        state = list(_NEW_STATE if row[8] is None else row[9:])
        for i in _TIME_AT:
            text = state[i]
            if text is not None:
                at = times.get(text)
                if at is None:
                    at = times[text] = _read_sqlite_time(text)  # type: ignore[assignment]
                state[i] = at
        for i in _BOOL_AT:
            state[i] = bool(state[i])
        state[_TAMPER_AT] = _read_tamper(state[_TAMPER_AT])
        raw_kw = row[6]
        kw = None if raw_kw is None else loads.get(raw_kw)
        if kw is None and raw_kw is not None:
            kw = loads[raw_kw] = Decimal(f"{raw_kw:.3f}")  # REAL, read at the column's scale
        out.append((row[0], row[1], row[2], row[3], row[4], row[5], kw, row[7], tuple(state)))
    return out


def _pg_rows(fetched: Sequence[tuple[Any, Any]]) -> list[StateRow]:
    """(meter row, state row) pairs from `_load_pg` as the rules take them."""
    out: list[StateRow] = []
    for meter, row in fetched:
        state = list(row[1:])
        state[_TAMPER_AT] = _read_tamper(state[_TAMPER_AT])
        out.append((*meter[:8], tuple(state)))
    return out


# PostgreSQL, in three steps that keep the plan to index lookups at any fleet size and
# write nothing for meters that have a state already (the common case):
# 1. the batch's meters with their accounts, and whether each has a state row (a scalar
#    subquery: always a primary-key probe, never a join the planner could turn into a
#    scan of meter_states), locking nothing;
_PG_METERS = (
    "SELECT m.id, m.serial, m.kind, m.account_id, a.number, a.consumer_id,"
    " a.sanctioned_load_kw, a.low_balance_minor,"
    " (SELECT true FROM meter_states s WHERE s.meter_id = m.id)"
    " FROM meters m LEFT JOIN accounts a ON a.id = m.account_id"
    " WHERE m.tenant_id = %s"
    " AND m.serial = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
    " ORDER BY m.id"
)
# 2. only if some have none: those created, in meter id order (a concurrent batch that
#    creates the same ones waits for this one, or this one for it: one order, no cycle);
_PG_NEW_STATES = (
    "INSERT INTO meter_states (meter_id, tenant_id, zero_open, over_count, overload_open)"
    " SELECT m.id, m.tenant_id, false, 0, false FROM meters m"
    " WHERE m.id = ANY(%s::int[]) ORDER BY m.id"  # a meter deleted meanwhile: none
    " ON CONFLICT DO NOTHING"
)
# 3. the states read and locked by primary key, in meter id order, until the transaction
#    ends. Locks are taken only here, after any insert, all in one order, so concurrent
#    batches never deadlock. (The value-only columns come back as NULL: see NOT_READ.)
_PG_STATES = (
    "SELECT meter_id, "
    + ", ".join("NULL" if c in NOT_READ else c for c in STATE_COLUMNS)
    + " FROM meter_states WHERE meter_id = ANY(%s::int[]) ORDER BY meter_id FOR UPDATE"
)


def _load_pg(cursor: Any, tenant_id: int, serials_json: str) -> list[tuple[Any, Any]]:
    """The batch's meters, each as (meter and account columns, state columns)."""
    cursor.execute(_PG_METERS, (tenant_id, serials_json))
    meters = cursor.fetchall()
    if not meters:
        return []
    missing = [row[0] for row in meters if row[8] is None]
    if missing:
        cursor.execute(_PG_NEW_STATES, (_int_array(missing),))
    cursor.execute(_PG_STATES, (_int_array(row[0] for row in meters),))
    states = cursor.fetchall()
    if len(states) != len(meters):  # a meter deleted meanwhile (its state went with it)
        by_id = {row[0]: row for row in states}
        meters = [row for row in meters if row[0] in by_id]
        states = [by_id[row[0]] for row in meters]
    return list(zip(meters, states, strict=True))  # both in meter id order


def _int_array(ids: Iterable[int]) -> str:
    """An int[] literal: one text parameter, parsed by the server in C."""
    return "{" + ",".join(map(str, ids)) + "}"


def _executemany(session: Session, sql: str, params: list[Any]) -> None:
    """The driver's executemany, in the session's transaction (SQLAlchemy's would check
    and copy every row first)."""
    if not params:
        return
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _tamper_text(tamper: dict[str, tuple[bool, datetime]]) -> str | None:
    """The tamper column's JSON ({code: [active, ISO time]}; NULL for none)."""
    if not tamper:
        return None
    return json.dumps({code: [active, at.isoformat()] for code, (active, at) in tamper.items()})


def save_states(
    session: Session,
    columns: Sequence[str],
    rows: Iterable[tuple[int, Sequence[Any]]],
    now: datetime,
) -> None:
    """Write `columns` of each (meter id, its values in the order of `columns`);
    ``tamper`` as the rules hold it ({code: (active, time)})."""
    if _is_pg(session):
        _save_states_pg(session, columns, rows, now)
        return
    sets = ", ".join(f"{c} = ?" for c in (*columns, "updated_at"))
    sql = f"UPDATE meter_states SET {sets} WHERE meter_id = ?"
    # SQLite: times as text (memoised: a batch's events share a handful), decimals as
    # REAL; booleans go as they are (sqlite3 binds them as 0/1).
    times_at = [i for i, name in enumerate(columns) if name in TIMES]
    others = [
        (i, _tamper_text if name == "tamper" else float)
        for i, name in enumerate(columns)
        if name == "tamper" or name in DECIMALS
    ]
    stamp = _sqlite_time(now)
    texts: dict[datetime, str | None] = {}
    params = []
    for meter_id, values in rows:
        out = [*values, stamp, meter_id]
        for i in times_at:
            at = out[i]
            if at is not None:
                text = texts.get(at)
                if text is None:
                    text = texts[at] = _sqlite_time(at)
                out[i] = text
        for i, fn in others:
            if out[i] is not None:
                out[i] = fn(out[i])
        params.append(out)
    _executemany(session, sql, params)


def _pg_type(column: str) -> str:
    return PG_TYPES.get(column) or ("timestamptz" if column in TIMES else "text")


def _json_rows(columns: Sequence[str], types: Sequence[str], *, nested: bool) -> str:
    """SQL for the rows of a JSON array parameter as typed columns: psycopg dumps a
    Python list as an array parameter in Python, value by value (most of the client's
    CPU for a batch), where msgspec encodes the whole batch as one JSON text in C.
    jsonb, not json: the server parses it once, where each `->` on a json value parses
    its text again (several times the cost per row for the columns of a state).
    `nested`: each row is [meter id, [values]] rather than flat."""
    picks = []
    for i, (name, kind) in enumerate(zip(columns, types, strict=True)):
        path = ("r->>0" if i == 0 else f"r->1->>{i - 1}") if nested else f"r->>{i}"
        picks.append(f"({path})::{kind} AS {name}")
    return f"SELECT {', '.join(picks)} FROM jsonb_array_elements(%s::jsonb) AS r"


def _save_states_pg(
    session: Session,
    columns: Sequence[str],
    rows: Iterable[tuple[int, Sequence[Any]]],
    now: datetime,
) -> None:
    """One UPDATE ... FROM (the batch's rows as one JSON parameter): PostgreSQL's
    executemany would still be one statement per row."""
    ordered = sorted(rows, key=_first)  # one order: concurrent batches never deadlock
    if not ordered:
        return
    if "tamper" in columns:
        at = columns.index("tamper")
        ordered = [
            (meter_id, [*values[:at], _tamper_text(values[at]), *values[at + 1 :]])
            for meter_id, values in ordered
        ]
    names = ["meter_id", *columns]
    types = ["json" if c == "tamper" else _pg_type(c) for c in names]
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    sql = (
        f"UPDATE meter_states AS s SET {sets}, updated_at = %s"
        f" FROM ({_json_rows(names, types, nested=True)}) AS v WHERE s.meter_id = v.meter_id"
    )
    session.connection().exec_driver_sql(sql, (now, _ENCODE(ordered).decode()))


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


_ENCODE = msgspec.json.Encoder().encode  # Decimals as their text, times as RFC 3339


USAGE_COLUMNS = (
    "meter_id",
    "period",
    "start",
    "tenant_id",
    "reading_min",
    "reading_max",
    "unit",
    "max_demand_kw",
    "recharges",
    "recharged_minor",
)


def upsert_usage(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Fold each row (values in `USAGE_COLUMNS` order) into meter_usage: register low and
    high water marks, highest demand, recharges added."""
    if not rows:
        return
    pg = _is_pg(session)
    mark = "%s" if pg else "?"
    low, high = ("LEAST", "GREATEST") if pg else ("MIN", "MAX")

    def lower(c: str) -> str:
        return f"{low}(COALESCE(u.{c}, excluded.{c}), COALESCE(excluded.{c}, u.{c}))"

    def higher(c: str) -> str:
        return f"{high}(COALESCE(u.{c}, excluded.{c}), COALESCE(excluded.{c}, u.{c}))"

    if pg:  # one statement: INSERT ... SELECT from the rows as one JSON parameter
        values = " " + _json_rows(USAGE_COLUMNS, [_pg_type(c) for c in USAGE_COLUMNS], nested=False)
    else:
        values = f" VALUES ({', '.join([mark] * len(USAGE_COLUMNS))})"
    sql = (
        f"INSERT INTO meter_usage AS u ({', '.join(USAGE_COLUMNS)}){values}"
        " ON CONFLICT (meter_id, period, start) DO UPDATE SET"
        f" reading_min = {lower('reading_min')},"
        f" reading_max = {higher('reading_max')},"
        " unit = COALESCE(excluded.unit, u.unit),"
        f" max_demand_kw = {higher('max_demand_kw')},"
        " recharges = u.recharges + excluded.recharges,"
        " recharged_minor = u.recharged_minor + excluded.recharged_minor"
    )
    ordered = sorted(rows, key=_usage_key)  # one order: concurrent batches never deadlock
    if pg:
        session.connection().exec_driver_sql(sql, (_ENCODE(ordered).decode(),))
        return
    days: dict[Any, str] = {}  # a batch has a day or two
    params = []
    for meter_id, period, start, tenant_id, low_v, high_v, unit, kw, count, minor in ordered:
        day = days.get(start)
        if day is None:
            day = days[start] = start.isoformat() if isinstance(start, date) else start
        params.append(
            (
                meter_id,
                period,
                day,
                tenant_id,
                None if low_v is None else float(low_v),
                None if high_v is None else float(high_v),
                unit,
                None if kw is None else float(kw),
                count,
                minor,
            )
        )
    _executemany(session, sql, params)


def _usage_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:3]
