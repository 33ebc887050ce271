"""Shared fixtures: a migrated database per test, on SQLite always and PostgreSQL when asked.

Set METERLINE_TEST_PG_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) to run every
`db`-using test on PostgreSQL too; each test gets a private schema there, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterline.config import Settings
from meterline.runtime import Runtime
from meterline.store.db import make_engine, make_session_factory, normalise_url
from meterline.store.migrate import upgrade_engine

PG_URL = os.environ.get("METERLINE_TEST_PG_URL")
MQTT_URL = os.environ.get("METERLINE_TEST_MQTT_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


def _pg_schema_url(schema: str) -> str:
    assert PG_URL
    url = make_url(normalise_url(PG_URL))
    # public stays visible for extensions (pg_trgm's operator classes live there).
    return url.update_query_dict({"options": f"-csearch_path={schema},public"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty, migrated database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(url)
        upgrade_engine(engine)
        engine.dispose()
        yield url
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL or ""), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _pg_schema_url(schema)
    engine = make_engine(url)
    upgrade_engine(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    settings = Settings(database_url=database_url, secret_key="test-secret-key")  # type: ignore[arg-type]
    engine = make_engine(database_url)
    rt = Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))
    yield rt
    rt.close()


@pytest.fixture
def sessions(runtime: Runtime):  # type: ignore[no-untyped-def]
    return runtime.sessions


@pytest.fixture
def tenant(runtime: Runtime):  # type: ignore[no-untyped-def]
    """An Indian electricity utility, the first scenario's tenant."""
    from meterline.services.tenants import create_tenant

    with runtime.sessions() as session, session.begin():
        t = create_tenant(
            session,
            slug="aligarh",
            name="Aligarh Electricity Office",
            country="IN",
            currency="INR",
            timezone="Asia/Kolkata",
        )
        session.expunge(t)
    return t
