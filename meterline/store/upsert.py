"""INSERT ... ON CONFLICT DO NOTHING on both databases.

Used where a unique constraint is the source of truth (idempotency keys, one credit row
per tenant): the database, not a read-then-write race, decides what already exists, and
on PostgreSQL a conflict does not abort the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_or_nothing(session: Session, model: Any) -> Any:
    """The database's own INSERT ... ON CONFLICT DO NOTHING for `model` (add .returning())."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing()


def insert_ignoring_conflicts(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert_or_nothing(session, model), list(rows))
