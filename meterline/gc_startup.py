"""Keep the cyclic garbage collector off the objects a long-running process starts with.

Modules, the web app's routes, SQLAlchemy's mappers and compiled statements are created
once and live as long as the process; every full collection would walk them again.
`gc.freeze()` moves them to a permanent generation that collections skip. Measured on the
event ingest (bench/events_profile.py, 100,000 events): 34,000 -> 40,000 events per
CPU-second on SQLite (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_startup_objects() -> None:
    """Exempt everything alive now from later collections. Call it when a process has
    finished starting up (objects made later are collected as usual). No collection
    first: it would cost each test's app start-up, and start-up leaves little garbage."""
    gc.freeze()


# A bulk job's own objects (a batch of records, their rows and tuples) are freed by
# reference counting; the collector only walks them. Collecting after every 700 new
# objects (Python's default) cost the importing process about 5% of its CPU. A batch of
# 20,000 rows holds about 240,000 containers: with collections every 20,000 the writer
# walked them 248 times over a million rows (1.3 of 43 CPU s); above a batch's worth it
# collects a few times a run (0.015 s).
BULK_GEN0_THRESHOLD = 500_000
_bulk_lock = threading.Lock()
_bulk_depth = 0
_saved_threshold: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections(gen0: int = BULK_GEN0_THRESHOLD) -> Iterator[None]:
    """Collect the youngest generation after `gen0` new objects instead of 700 while a
    bulk job runs; Python's thresholds come back when the last such job ends (they are
    the process's: concurrent jobs share one setting)."""
    global _bulk_depth, _saved_threshold
    with _bulk_lock:
        if _bulk_depth == 0:
            _saved_threshold = gc.get_threshold()
            gc.set_threshold(max(gen0, _saved_threshold[0]), *_saved_threshold[1:])
        _bulk_depth += 1
    try:
        yield
    finally:
        with _bulk_lock:
            _bulk_depth -= 1
            if _bulk_depth == 0 and _saved_threshold is not None:
                gc.set_threshold(*_saved_threshold)
