"""Smart-meter events on the wire: parsing and checking, one event at a time (pure).

An event is a JSON object (see docs/events.md)::

    {"type": "balance", "meter": "SN-1", "at": "2026-11-29T10:00:00+05:30", "balance": 12345}

A batch is a JSON array, NDJSON (one object a line) or CSV rows with the same field names
(all values then arrive as strings, so every field also accepts its text form). A bad
event is an `EventRejected` with a reason naming the field; `parse_batch` numbers each
event and keeps going, so one broken line never costs the rest of its batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import msgspec

from meterline.domain.enums import Service

__all__ = [
    "DEFAULT_INTERVAL_S",
    "EventRejected",
    "EventType",
    "LineError",
    "MeterEvent",
    "ParsedBatch",
    "decode_items",
    "parse_batch",
    "parse_event",
    "parse_time",
    "unit_fits",
]

DEFAULT_INTERVAL_S = 900
MAX_SERIAL = 64
MAX_TEXT = 300


class EventType(StrEnum):
    balance = "balance"
    reading = "reading"
    demand = "demand"
    tamper = "tamper"
    power = "power"
    relay = "relay"


_TYPES = {t.value: t for t in EventType}  # a dict lookup: calling the enum is slow
UNITS: Mapping[str, frozenset[Service]] = {
    "kWh": frozenset({Service.electricity}),
    "m3": frozenset({Service.water, Service.gas}),
    "Gcal": frozenset({Service.heat}),
}
STATES = {
    EventType.power: ("off", "on"),
    EventType.relay: ("disconnected", "connected"),
}


_FITS = frozenset((unit, str(kind)) for unit, kinds in UNITS.items() for kind in kinds)


def unit_fits(unit: str, kind: Service | str) -> bool:
    """Whether a register unit belongs on a meter of this kind (kWh on electricity ...)."""
    return (unit, str(kind)) in _FITS


class EventRejected(ValueError):
    """This event cannot be used; the message says which field and why."""


class MeterEvent(msgspec.Struct, gc=False):
    """One checked event (treat it as immutable). Only the fields of its type are set;
    times are aware UTC.

    A msgspec struct rather than a dataclass: it builds faster, and ``gc=False`` keeps a
    batch's thousands of events out of the cyclic garbage collector (tracked, they made
    its full passes frequent: a sixth of ingest's CPU with the states); its fields are
    plain values, so it can never be part of a cycle.
    """

    type: EventType
    meter: str
    at: datetime
    source: str | None = None
    id: str | None = None
    balance: int | None = None  # minor units
    value: Decimal | None = None  # register reading
    unit: str | None = None
    kw: Decimal | None = None
    interval_s: int = DEFAULT_INTERVAL_S
    code: str | None = None
    text: str | None = None
    active: bool = True
    state: str | None = None

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two deliveries the same event: the producer's id when it gave one,
        else everything the event says."""
        if self.id is not None:
            return (self.meter, self.id)
        return (
            self.meter,
            self.type,
            self.at,
            self.balance,
            self.value,
            self.kw,
            self.code,
            self.active,
            self.state,
        )


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str
    meter: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "reason": self.reason}
        if self.meter is not None:
            out["meter"] = self.meter
        return out


@dataclass
class ParsedBatch:
    events: list[tuple[int, MeterEvent]]  # (line, event)
    errors: list[LineError]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(
    obj: Mapping[str, Any], name: str, *, required: bool, limit: int = MAX_TEXT
) -> str | None:
    value = obj.get(name)
    if type(value) is str and 0 < len(value) <= limit and value == value.strip():
        return value  # the common case, without the checks below
    if value is None and not required:
        return None
    if _blank(value):
        if required:
            raise EventRejected(f"{name}: missing")
        return None
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise EventRejected(f"{name}: expected text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > limit:
        raise EventRejected(f"{name}: longer than {limit} characters")
    return value


def parse_time(value: Any) -> datetime:
    """An event time (ISO 8601 with an offset) as aware UTC; `EventRejected` if it is not."""
    if _blank(value):
        raise EventRejected("at: missing")
    if not isinstance(value, str):
        raise EventRejected(f"at: expected an ISO 8601 time, got {type(value).__name__}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EventRejected(f"at: {value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise EventRejected(f"at: {value!r} has no UTC offset (add Z or +05:30)")
    return at.astimezone(UTC)


def _decimal(obj: Mapping[str, Any], name: str) -> Decimal:
    value = obj.get(name)
    if isinstance(value, str):  # the common case; blanks and bad text get the checks below
        try:
            number = Decimal(value)
        except InvalidOperation:
            pass
        else:
            if number.is_finite():
                return number
    if _blank(value):
        raise EventRejected(f"{name}: missing")
    if isinstance(value, bool):
        raise EventRejected(f"{name}: expected a number, got a boolean")
    if isinstance(value, float):
        value = repr(value)  # a producer that decoded JSON itself: its shortest text
    try:  # Decimal ignores surrounding whitespace itself
        number = Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise EventRejected(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise EventRejected(f"{name}: {value!r} is not a finite number")
    return number


def _integer(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _decimal(obj, name)
    if number != number.to_integral_value():
        raise EventRejected(f"{name}: {value!r} is not a whole number (minor units)")
    return int(number)


def _bool(obj: Mapping[str, Any], name: str, default: bool) -> bool:
    value = obj.get(name)
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
        return False
    raise EventRejected(f"{name}: expected true or false, got {value!r}")


def parse_event(
    obj: Any,
    *,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=5),
    times: dict[str, datetime] | None = None,
) -> MeterEvent:
    """One wire object as a `MeterEvent`; `EventRejected` says what is wrong with it.

    A time more than `max_skew` ahead of `now` is refused (a meter clock gone wrong must
    not become tomorrow's balance). `times`: a memo of time texts already parsed (a
    batch's events share a few: one report of a meter is several events).
    """
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise EventRejected(f"expected a JSON object, got {type(obj).__name__}")
    # The common case (clean text fields) is checked inline: a call per field is a good
    # part of the per-event cost; anything unusual goes through `_text`.
    raw = obj.get("type")
    kind = _TYPES.get(raw) if type(raw) is str else None
    if kind is None:
        raw_type = _text(obj, "type", required=True)
        kind = _TYPES.get(raw_type)  # type: ignore[arg-type]
        if kind is None:
            raise EventRejected(
                f"type: {raw_type!r} is not one of {', '.join(t.value for t in EventType)}"
            )
    meter = obj.get("meter")
    if not (type(meter) is str and 0 < len(meter) <= MAX_SERIAL and meter == meter.strip()):
        meter = _text(obj, "meter", required=True, limit=MAX_SERIAL)
        assert meter is not None
    raw_at = obj.get("at")
    at = times.get(raw_at) if times is not None and type(raw_at) is str else None
    if at is None:
        at = parse_time(raw_at)
        if times is not None and type(raw_at) is str:
            times[raw_at] = at
    if at > now + max_skew:
        raise EventRejected(f"at: {at.isoformat()} is in the future (now {now.isoformat()})")
    source = obj.get("source")
    if not (type(source) is str and 0 < len(source) <= 100 and source == source.strip()):
        source = _text(obj, "source", required=False, limit=100)
    event_id = obj.get("id")
    if not (type(event_id) is str and 0 < len(event_id) <= 100 and event_id == event_id.strip()):
        event_id = _text(obj, "id", required=False, limit=100)
    if kind is EventType.balance:
        return MeterEvent(kind, meter, at, source, event_id, balance=_integer(obj, "balance"))
    if kind is EventType.reading:
        value = _decimal(obj, "value")
        if value < 0:
            raise EventRejected(f"value: {value} is negative (a register only counts up)")
        unit = _text(obj, "unit", required=True)
        if unit not in UNITS:
            raise EventRejected(f"unit: {unit!r} is not one of {', '.join(UNITS)}")
        return MeterEvent(kind, meter, at, source, event_id, value=value, unit=unit)
    if kind is EventType.demand:
        kw = _decimal(obj, "kw")
        if kw < 0:
            raise EventRejected(f"kw: {kw} is negative")
        interval = obj.get("interval_s")
        if type(interval) is not int:
            interval = DEFAULT_INTERVAL_S if _blank(interval) else _integer(obj, "interval_s")
        if interval <= 0:
            raise EventRejected(f"interval_s: {interval} must be positive")
        return MeterEvent(kind, meter, at, source, event_id, kw=kw, interval_s=interval)
    if kind is EventType.tamper:
        code = _text(obj, "code", required=True, limit=40)
        return MeterEvent(
            kind,
            meter,
            at,
            source,
            event_id,
            code=code,
            text=_text(obj, "text", required=False),
            active=_bool(obj, "active", True),
        )
    state = _text(obj, "state", required=True)
    allowed = STATES[kind]
    if state not in allowed:
        raise EventRejected(f"state: {state!r} is not one of {', '.join(allowed)}")
    return MeterEvent(kind, meter, at, source, event_id, state=state)


_DECODER = json.JSONDecoder(parse_float=Decimal)  # one decoder: json.loads builds one a call
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__


def _decode_one(item: bytes | str | Mapping[str, Any]) -> Sequence[Any]:
    """The objects one item stands for: itself (a mapping), its JSON object, the elements
    of its JSON array, nothing (a blank text) or an `EventRejected` (not JSON)."""
    kind = type(item)
    # Exact types first: an ABC check costs more than the rest of this function.
    if kind is not bytes and kind is not str and isinstance(item, Mapping):
        return (item,)
    try:
        text = item.decode("utf-8") if isinstance(item, bytes | bytearray) else item
    except UnicodeDecodeError:
        return (EventRejected("not UTF-8 text"),)
    assert isinstance(text, str)
    if not text.strip():
        return ()
    if text[:1] == "{" and text[-1:] == "}":
        # One object, nothing around it (an NDJSON line as producers write it): the
        # scanner alone, without decode()'s whitespace passes; anything else, and any
        # error (for its message), goes through decode().
        try:
            obj, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end == len(text):
            return (obj,)
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return (EventRejected(f"not JSON ({exc.msg} at column {exc.colno})"),)
    return obj if isinstance(obj, list) else (obj,)


def decode_items(items: Iterable[bytes | str | Mapping[str, Any]]) -> Iterator[tuple[int, Any]]:
    """(line, decoded object) for each event of a batch; a text that is not JSON comes out
    as an `EventRejected` in place of its object.

    Each item is one event: an object, or its JSON text (an NDJSON line, an MQTT payload).
    A text that holds a JSON array stands for its elements, numbered on from there. Blank
    texts are counted as lines (so NDJSON line numbers match the file) and skipped.
    """
    line = 0
    for item in items:
        line += 1
        objects = _decode_one(item)
        for n, obj in enumerate(objects):
            yield line + n, obj
        line += max(len(objects) - 1, 0)


def parse_batch(
    items: Iterable[bytes | str | Mapping[str, Any]],
    *,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=5),
) -> ParsedBatch:
    """Every event of a batch, parsed; the bad ones become `LineError`s with their line
    (numbered as `decode_items` does).

    A JSON text goes first through the msgspec fast path (`meter_wire.fast_event`); one
    that is not in the clean form it takes, bad ones included, through the general path
    here, which words the reason.
    """
    from meterline.domain.meter_wire import fast_event  # it imports this module

    events: list[tuple[int, MeterEvent]] = []
    errors: list[LineError] = []
    times: dict[str, datetime] = {}
    latest = now + max_skew

    line = 0
    for item in items:
        line += 1
        kind = type(item)
        if kind is bytes or kind is str:
            event = fast_event(item, times, latest)  # type: ignore[arg-type]
            if event is not None:
                events.append((line, event))
                continue
        objects = _decode_one(item)
        for n, obj in enumerate(objects, start=line):
            if isinstance(obj, EventRejected):
                errors.append(LineError(n, str(obj)))
                continue
            try:
                events.append((n, parse_event(obj, now=now, max_skew=max_skew, times=times)))
            except EventRejected as exc:
                meter = obj.get("meter") if isinstance(obj, Mapping) else None
                errors.append(LineError(n, str(exc), meter if isinstance(meter, str) else None))
        line += max(len(objects) - 1, 0)
    return ParsedBatch(events, errors)
