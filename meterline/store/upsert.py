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


def insert_ignoring_conflicts(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(model).on_conflict_do_nothing()
    session.execute(stmt, list(rows))
