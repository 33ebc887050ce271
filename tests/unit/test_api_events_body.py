"""POST /api/v1/events with a JSON array: each event object is handed to the service as
its own JSON text, everything else as before (same elements, same errors)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.web.api_events import _items

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


def _as_objects(items: list[Any]) -> list[Any]:
    return [json.loads(i, parse_float=Decimal) if isinstance(i, bytes) else i for i in items]


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, max_size=6), st.sampled_from(["", " ", "\n  "]))
def test_an_array_body_hands_over_the_same_elements(values: list[Any], pad: str) -> None:
    body = (pad + json.dumps(values, indent=1 if pad else None) + pad).encode()
    items = _items(body, "application/json")
    assert _as_objects(items) == json.loads(body, parse_float=Decimal)
    assert all(isinstance(json.loads(i), dict) for i in items if isinstance(i, bytes))


def test_other_bodies_answer_as_before() -> None:
    one = {"type": "power", "meter": "A", "at": "2026-01-01T00:00:00Z", "state": "on"}
    assert _items(json.dumps(one).encode(), "application/json") == [one]
    assert _items(b'[{"kw": 1.50}, 2.5, NaN]', "application/json")[:2] == [
        {"kw": Decimal("1.50")},
        Decimal("2.5"),
    ]
    with pytest.raises(HTTPException) as bad:
        _items(b"[{]", "application/json")
    assert bad.value.status_code == 400 and "the body is not JSON" in bad.value.detail
    with pytest.raises(HTTPException) as scalar:
        _items(b"5", "application/json")
    assert scalar.value.detail == "send a JSON array of event objects"
    with pytest.raises(HTTPException) as big:
        _items(json.dumps([{}] * 10_001).encode(), "application/json")
    assert big.value.status_code == 413
