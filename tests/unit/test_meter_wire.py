"""The msgspec fast path for an event's JSON text (`meter_wire.fast_event`) agrees with
the general checks (`parse_event` on the decoded object): whatever it accepts is the same
event, and anything unusual or bad it leaves to the general path, which words the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.meter_events import (
    EventRejected,
    MeterEvent,
    parse_batch,
    parse_event,
)
from meterline.domain.meter_wire import fast_event

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
DECODE = json.JSONDecoder(parse_float=Decimal).decode

TEXTS = st.one_of(
    st.sampled_from(["SN-1", "hes", "e-17", "", " ", " SN-1", "SN-1 ", "\u0905\u0906", "x" * 64]),
    st.text(max_size=70),
    st.just("y" * 101),
)
TIMES = st.sampled_from(
    [
        "2026-11-29T17:00:00+05:30",
        "2026-11-29T11:00:00Z",
        "2026-11-29T11:00:00.123456+00:00",
        "2026-11-29 11:00:00+00:00",
        " 2026-11-29T11:00:00Z ",
        "2026-11-29T11:00:00",  # no offset
        "2026-11-29T13:00:00Z",  # in the future
        "2026-11-29T12:04:59Z",  # just within the skew
        "yesterday",
        "",
    ]
)
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["0.358", "1.50", " 2 ", "1_000", "NaN", "-0", "1e3", "", "abc", True, None]),
)
ANY_VALUE = st.one_of(TEXTS, NUMBERS, st.booleans(), st.none(), st.lists(st.integers(), max_size=2))


@st.composite
def wire_objects(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["balance", "reading", "demand", "tamper", "power", "relay"])
        | st.sampled_from([" balance", "gas", ""])
    )
    obj: dict[str, Any] = {"type": kind, "meter": draw(TEXTS), "at": draw(TIMES)}
    for name in ("source", "id"):
        if draw(st.booleans()):
            obj[name] = draw(TEXTS | st.none() | st.integers(0, 99))
    optional = {
        "balance": NUMBERS,
        "value": NUMBERS,
        "unit": st.sampled_from(["kWh", "m3", "Gcal", "kwh", " kWh", "", None]),
        "kw": NUMBERS,
        "interval_s": st.one_of(st.integers(-5, 5000), NUMBERS),
        "code": TEXTS,
        "text": TEXTS | st.none(),
        "active": st.one_of(st.booleans(), st.sampled_from(["false", "yes", "", None, 0])),
        "state": st.sampled_from(["on", "off", "connected", "disconnected", "ON", " on", ""]),
        "extra": ANY_VALUE,
    }
    for name, values in optional.items():
        if draw(st.integers(0, 4)):  # most fields present most of the time
            obj[name] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        del obj[draw(st.sampled_from(["meter", "at", "type"]))]
    return obj


CLEAN_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "balance": st.integers(-(10**12), 10**12),
    "value": st.decimals(min_value=0, max_value=10**9, places=3).map(str)
    | st.integers(0, 10**9)
    | st.floats(0, 1e9),
    "kw": st.decimals(min_value=0, max_value=10**4, places=3).map(str) | st.floats(0, 1e4),
}
CLEAN_TYPE_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "balance": {"balance": CLEAN_FIELDS["balance"]},
    "reading": {"value": CLEAN_FIELDS["value"], "unit": st.sampled_from(["kWh", "m3", "Gcal"])},
    "demand": {"kw": CLEAN_FIELDS["kw"], "interval_s": st.integers(1, 3600)},
    "tamper": {
        "code": st.text(min_size=1, max_size=40),
        "text": st.text(min_size=1, max_size=300),
        "active": st.booleans(),
    },
    "power": {"state": st.sampled_from(["on", "off"])},
    "relay": {"state": st.sampled_from(["connected", "disconnected"])},
}


@st.composite
def clean_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event, now and then with one field replaced by anything."""
    kind = draw(st.sampled_from(sorted(CLEAN_TYPE_FIELDS)))
    obj: dict[str, Any] = {
        "type": kind,
        "meter": draw(st.text(min_size=1, max_size=64)),
        "at": draw(TIMES),
        "source": draw(st.none() | st.text(min_size=1, max_size=100)),
        "id": draw(st.none() | st.text(min_size=1, max_size=100)),
    }
    for name, values in CLEAN_TYPE_FIELDS[kind].items():
        if draw(st.integers(0, 5)):  # the optional ones are sometimes left out
            obj[name] = draw(values)
    if draw(st.booleans()):
        obj[draw(st.sampled_from(sorted({*obj, "kw", "value", "text"})))] = draw(ANY_VALUE)
    return obj


EVENTS = st.one_of(clean_objects(), wire_objects())


def _general(text: str) -> MeterEvent | str:
    try:
        return parse_event(DECODE(text), now=NOW, max_skew=SKEW)
    except EventRejected as exc:
        return f"rejected: {exc}"


@settings(max_examples=600, deadline=None)
@given(EVENTS)
def test_the_fast_path_accepts_only_what_the_general_path_accepts_and_builds_the_same_event(
    obj: dict[str, Any],
) -> None:
    text = json.dumps(obj, default=str)
    fast = fast_event(text.encode(), {}, NOW + SKEW)
    general = _general(text)
    if fast is not None:
        assert fast == general, text
        # Same values down to their representation (Decimal exponents, time zones).
        assert repr(fast) == repr(general), text
        assert fast.at.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, min_size=1, max_size=12))
def test_a_batch_of_texts_parses_as_its_decoded_objects_do(objs: list[dict[str, Any]]) -> None:
    texts = [json.dumps(o, default=str).encode() for o in objs]
    as_texts = parse_batch(texts, now=NOW, max_skew=SKEW)
    as_objects = parse_batch([DECODE(t.decode()) for t in texts], now=NOW, max_skew=SKEW)
    assert [(n, repr(e)) for n, e in as_texts.events] == [
        (n, repr(e)) for n, e in as_objects.events
    ]
    assert as_texts.errors == as_objects.errors


def test_clean_events_of_every_type_take_the_fast_path() -> None:
    at = "2026-11-29T17:00:00+05:30"
    lines = [
        {"type": "balance", "meter": "SN-1", "at": at, "balance": -1250, "id": "e1"},
        {"type": "reading", "meter": "SN-1", "at": at, "value": "1234.567", "unit": "kWh"},
        {"type": "demand", "meter": "SN-1", "at": at, "kw": 4.2, "source": "hes"},
        {"type": "tamper", "meter": "SN-1", "at": at, "code": "magnet", "active": False},
        {"type": "power", "meter": "SN-1", "at": at, "state": "off"},
        {"type": "relay", "meter": "SN-1", "at": at, "state": "connected"},
    ]
    times: dict[str, datetime] = {}
    events = [fast_event(json.dumps(o).encode(), times, NOW + SKEW) for o in lines]
    assert all(e is not None for e in events)
    assert events == [parse_event(o, now=NOW) for o in json.loads(json.dumps(lines))]
    assert list(times) == [at]  # one time text, parsed once


def test_what_the_fast_path_leaves_gets_the_general_reason_and_its_line() -> None:
    at = "2026-11-29T17:00:00+05:30"
    lines = [
        json.dumps({"type": "demand", "meter": "SN-1", "at": at, "kw": "-1"}),
        json.dumps({"type": "reading", "meter": "SN-1", "at": at, "value": "1", "unit": "l"}),
        json.dumps({"type": "balance", "meter": "SN-1", "at": "2026-11-29T13:00:00Z"}),
        json.dumps({"type": "balance", "meter": " SN-1 ", "at": at, "balance": 5}),
        "{broken",
    ]
    batch = parse_batch(lines, now=NOW)
    assert [(e.line, e.reason) for e in batch.errors] == [
        (1, "kw: -1 is negative"),
        (2, "unit: 'l' is not one of kWh, m3, Gcal"),
        (3, "at: 2026-11-29T13:00:00+00:00 is in the future (now 2026-11-29T12:00:00+00:00)"),
        (5, "not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ]
    assert [(n, e.meter, e.balance) for n, e in batch.events] == [(4, "SN-1", 5)]
