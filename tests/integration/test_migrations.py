"""The Alembic migrations go up and down on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from typer.testing import CliRunner

from meterline.cli import app
from meterline.store.db import make_engine
from meterline.store.migrate import alembic_config, current_revision
from meterline.store.models import Base


def test_head_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert current_revision(engine) == head
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # The trigram search indexes exist on PostgreSQL only, by design (no model for them).
        diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name.endswith("_trgm"))]
        assert diff == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        result = CliRunner().invoke(
            app, ["db", "upgrade"], env={"METERLINE_DATABASE_URL": database_url}
        )
        assert result.exit_code == 0, result.output
        assert "accounts" in inspect(engine).get_table_names()
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert current_revision(engine) == head
    finally:
        engine.dispose()
