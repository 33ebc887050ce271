"""The fast path for one event's JSON text: msgspec decodes and checks it in C.

The structs below accept only the clean form of each field (text already trimmed and
within its limit, numbers of the right JSON type, a known unit or state). A text that
does not fit them exactly is not an error here: `fast_event` answers None and the caller
parses it with the general checks (`meter_events.parse_event`), which accept the looser
forms and word the reasons. So the fast path never decides what is rejected, and for
what it accepts it builds the same `MeterEvent` the general path would (a property test
holds the two together: tests/unit/test_meter_wire.py).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

import msgspec

from meterline.domain.meter_events import (
    DEFAULT_INTERVAL_S,
    MAX_SERIAL,
    MAX_TEXT,
    EventRejected,
    EventType,
    MeterEvent,
    parse_time,
)

__all__ = ["fast_event"]

Serial = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SERIAL)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]


class _Wire(msgspec.Struct, tag_field="type", kw_only=True):
    # Unknown fields (another type's, CSV extras) are ignored, as the general path does.
    kind: ClassVar[EventType]
    meter: Serial
    at: str  # parsed (and memoised per batch) by the caller, as the general path does
    source: Label | None = None
    id: Label | None = None


class _Balance(_Wire, tag="balance"):
    kind = EventType.balance
    balance: int


class _Reading(_Wire, tag="reading"):
    kind = EventType.reading
    value: Decimal
    unit: Literal["kWh", "m3", "Gcal"]


class _Demand(_Wire, tag="demand"):
    kind = EventType.demand
    kw: Decimal
    interval_s: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_INTERVAL_S


class _Tamper(_Wire, tag="tamper"):
    kind = EventType.tamper
    code: Code
    text: Text | None = None
    active: bool = True


class _Power(_Wire, tag="power"):
    kind = EventType.power
    state: Literal["off", "on"]


class _Relay(_Wire, tag="relay"):
    kind = EventType.relay
    state: Literal["disconnected", "connected"]


_decode = msgspec.json.Decoder(_Balance | _Reading | _Demand | _Tamper | _Power | _Relay).decode
_FAILED = (msgspec.DecodeError, msgspec.ValidationError)


def fast_event(
    text: bytes | str, times: dict[str, datetime], latest: datetime
) -> MeterEvent | None:
    """The event of one JSON text when every field is in its clean form, else None (the
    general path then answers, with its reason if the event is bad).

    `times`: the batch's memo of time texts (shared with the general path); `latest`: the
    newest acceptable time (now + the tenant's allowed clock skew).
    """
    try:
        wire = _decode(text)
    except _FAILED:
        return None
    # Inline checks, not a helper: a call per field is a good part of the cost here.
    meter, source, event_id = wire.meter, wire.source, wire.id
    if (
        meter != meter.strip()
        or (source is not None and source != source.strip())
        or (event_id is not None and event_id != event_id.strip())
    ):
        return None
    at = times.get(wire.at)
    if at is None:
        try:
            at = times[wire.at] = parse_time(wire.at)
        except EventRejected:
            return None
    if at > latest:
        return None  # the general path words the reason
    kind = wire.kind
    if kind is EventType.demand:
        kw: Decimal = wire.kw
        if not kw.is_finite() or kw < 0:
            return None
        return MeterEvent(kind, meter, at, source, event_id, kw=kw, interval_s=wire.interval_s)
    if kind is EventType.balance:
        return MeterEvent(kind, meter, at, source, event_id, balance=wire.balance)
    if kind is EventType.reading:
        value: Decimal = wire.value
        if not value.is_finite() or value < 0:
            return None
        return MeterEvent(kind, meter, at, source, event_id, value=value, unit=wire.unit)
    if kind is EventType.tamper:
        code: str = wire.code
        note: str | None = wire.text
        if code != code.strip() or (note is not None and note != note.strip()):
            return None
        return MeterEvent(
            kind,
            meter,
            at,
            source,
            event_id,
            code=code,
            text=note,
            active=wire.active,
        )
    return MeterEvent(kind, meter, at, source, event_id, state=wire.state)
