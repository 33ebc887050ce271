"""What the reading process hands to the writing one: compact chunks, collision-safe digests."""

from __future__ import annotations

import pickle
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from meterline.domain.enums import Billing, Service
from meterline.domain.master_row import MasterRecord, digest_text
from meterline.ingest.master_sheet import Issue, Verdicts


def test_a_chunk_crosses_processes_unchanged() -> None:
    first = MasterRecord("A-1", {"name": "सुरेश", "phones": ["+919876543210"],
                                 "service": Service.water, "due_date": date(2025, 3, 1),
                                 "sanctioned_load_kw": Decimal("1.5"),
                                 "area_path": ("X", "Y")})  # fmt: skip
    second = MasterRecord("A-2", {"name": None, "billing": Billing.prepaid})  # another shape
    third = MasterRecord("A-3", {"name": "Ann", "phones": [], "service": Service.gas,
                                 "sanctioned_load_kw": None, "due_date": None,
                                 "area_path": ()})  # fmt: skip
    for rec in (first, second):
        rec.digest()
    chunk = Verdicts(
        [(5, first), (6, second), (9, third)], [Issue(7, "Mobile", "12", "too short")], 3
    )
    back = pickle.loads(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == chunk
    assert [list(r.given) for _, r in back.records] == [list(r.given) for _, r in chunk.records]
    assert back.records[0][1]._digest == first.digest()
    assert back.records[2][1]._digest is None  # not computed yet: computed when asked
    assert back.records[2][1].digest() == third.digest()


# Values built from the separators and tags themselves, to look for two records whose
# digest texts collide.
_TRICKY = st.text(alphabet=["a", "\x1e", "\x1f", "'", "[", "~", "#", "?", "@", "é"], max_size=4)
_VALUES = st.one_of(
    st.none(),
    _TRICKY,
    st.integers(-3, 3),
    st.lists(_TRICKY, max_size=3),
    st.lists(_TRICKY, max_size=3).map(tuple),
    st.sampled_from([Service.water, Billing.prepaid, Decimal("1.0"), Decimal("1")]),
    st.sampled_from([date(2025, 1, 2), datetime(2025, 1, 2)]),
)
_RECORDS = st.tuples(_TRICKY, st.dictionaries(st.sampled_from(["a", "b", "name"]), _VALUES))


def _typed(value: object) -> object:
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_typed(v) for v in value))
    return (type(value).__name__, value)


@given(_RECORDS, _RECORDS)
@example(("x", {"a": ["p", "q"]}), ("x", {"a": ["p\x1eq"]}))
@example(("x", {"a": []}), ("x", {"a": [""]}))
@example(("x", {"a": "1"}), ("x", {"a": 1}))
@example(("x", {"a": None}), ("x", {"a": "~"}))
def test_equal_digest_texts_mean_equal_records(
    one: tuple[str, dict[str, Any]], two: tuple[str, dict[str, Any]]
) -> None:
    if digest_text(*one) == digest_text(*two):  # then nothing differs, not even a type
        assert one[0] == two[0]
        assert {k: _typed(v) for k, v in one[1].items()} == {
            k: _typed(v) for k, v in two[1].items()
        }


def test_a_child_stuck_on_a_full_pipe_is_ended_not_waited_for() -> None:
    import subprocess
    import sys
    import time

    from meterline.ingest.master_sheet import _exit_code

    # A child blocked writing to a pipe nobody reads (as a reading process is when its
    # stream could not be read): waiting for it alone would hang the import for ever.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 10**7)"],
        stdout=subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        code = _exit_code(proc)
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
    assert code != 0 and time.monotonic() - started < 30
