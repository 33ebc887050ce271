"""SQLite connections get the page cache and memory map the settings name (`store.db`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from meterline.config import Settings
from meterline.runtime import open_runtime
from meterline.store.db import make_engine


def _pragmas(engine: object) -> tuple[int, int]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        cache = conn.execute(text("PRAGMA cache_size")).scalar_one()
        mmap = conn.execute(text("PRAGMA mmap_size")).scalar_one()
    return cache, mmap


def test_a_runtime_sizes_each_connection_by_its_settings(tmp_path: Path) -> None:
    settings = Settings(sqlite_cache_mb=64, sqlite_mmap_mb=16)
    rt = open_runtime(settings, database_url=f"sqlite:///{tmp_path / 'm.db'}")
    try:
        # A negative cache_size is in KiB.
        assert _pragmas(rt.engine) == (-64 * 1024, 16 * 1024 * 1024)
    finally:
        rt.close()


def test_the_engine_takes_sizes_of_its_own(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", sqlite_cache_mb=8, sqlite_mmap_mb=0)
    try:
        assert _pragmas(engine) == (-8 * 1024, 0)
    finally:
        engine.dispose()
