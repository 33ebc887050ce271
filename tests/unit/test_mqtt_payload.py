"""The MQTT worker's payload reader for the events service (`payload_events`) hands over
an event object as its JSON text, and otherwise answers exactly as before: the same
events in the same places, the same problems."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.ingest.mqtt import parse_payload, payload_events, takes_event_texts


def reference(payload: bytes) -> tuple[list[Any], list[str]]:
    """The reader as it was before texts were handed over (json for everything)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"payload is not UTF-8 ({exc.reason} at byte {exc.start})"]
    if not text.strip():
        return [], ["payload is empty"]
    try:
        body = json.loads(text)
    except ValueError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            return [], [f"payload is not JSON: {exc}"]
        items: list[Any] = []
        problems: list[str] = []
        for no, line in enumerate(lines, 1):
            try:
                items.append(json.loads(line))
            except ValueError as line_exc:
                problems.append(f"NDJSON line {no} is not JSON: {line_exc}")
        return items, problems
    if isinstance(body, list):
        return body, []
    if isinstance(body, dict):
        return [body], []
    return [], [f"payload is JSON but not an event object or a list ({type(body).__name__})"]


EVENT = st.fixed_dictionaries(
    {"type": st.just("balance"), "meter": st.text(max_size=8), "balance": st.integers()}
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
LINES = st.one_of(
    EVENT.map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.sampled_from(["{", '{"a":}', "", "  ", "{} {}", '{"a": NaN}', '["{\\"a\\":1}"]', "x"]),
    st.text(max_size=10),
)
PAYLOADS = st.one_of(
    st.lists(LINES, max_size=6).map(lambda lines: "\n".join(lines).encode()),
    st.lists(EVENT | JSON_VALUES, max_size=4).map(lambda v: json.dumps(v).encode()),
    EVENT.map(lambda e: f"  {json.dumps(e)}\n".encode()),
    st.binary(max_size=12),
)


@settings(max_examples=500, deadline=None)
@given(PAYLOADS)
def test_the_readers_agree_with_the_reader_before(payload: bytes) -> None:
    items, problems = payload_events(payload)
    expected_items, expected_problems = reference(payload)
    assert problems == expected_problems
    assert [json.loads(i) if isinstance(i, bytes) else i for i in items] == expected_items
    for item in items:  # a text only for one JSON object
        assert not isinstance(item, bytes) or isinstance(json.loads(item), dict)
    assert parse_payload(payload) == (expected_items, expected_problems)


def test_only_a_marked_handler_is_handed_texts() -> None:
    ndjson = b'{"type":"power","meter":"A","at":"2026-01-01T00:00:00Z","state":"on"}\n' * 2
    assert payload_events(ndjson)[0] == [ndjson.split(b"\n")[0]] * 2
    assert parse_payload(ndjson)[0][0] == json.loads(ndjson.split(b"\n")[0])

    def handler(tenant: str, items: list[Any]) -> Any:
        return None

    assert not hasattr(handler, "event_texts")
    assert takes_event_texts(handler) is handler and handler.event_texts is True  # type: ignore[attr-defined]
