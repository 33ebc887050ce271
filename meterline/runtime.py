"""Wiring the database for a process: one engine and one session factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from meterline.config import Settings, get_settings
from meterline.store.db import make_engine, make_session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    # For reads alone (authentication, listings): on SQLite they skip the write queue.
    read_sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.read_sessions = make_session_factory(self.engine, read_only=True)

    def reader(self) -> Session:
        return self.read_sessions()

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, database_url: str | None = None) -> Runtime:
    settings = settings or get_settings()
    engine = make_engine(
        database_url or settings.resolved_database_url(),
        sqlite_cache_mb=settings.sqlite_cache_mb,
        sqlite_mmap_mb=settings.sqlite_mmap_mb,
    )
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))
