"""A round's results in one statement each: the rows travel as one JSON document.

An ``executemany`` of 500 updates costs SQLAlchemy and the driver a parameter set per row
(14 values, 6 of them timestamps converted one by one): a fifth of a message's CPU in the
dispatcher. Here the per-row values (no timestamps) are one ``json.dumps`` and the shared
ones (the time, the worker) are bound once; ``json_each`` (SQLite) or
``jsonb_to_recordset`` (PostgreSQL) turns the document back into rows. The update answers
the ids it wrote (``RETURNING``), so the claim check costs no second query.

Only for results whose timestamps are all "now" or empty (sent, delivered, failed, moved
on to the next route step); the others (retries, pauses, fallback timers) carry their own
times and go through :func:`meterline.store.outbox.record`'s ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from meterline.store.types import UTCDateTime

# Row: [id, status, provider_message_id, error_code, error_text, credit_state,
#       attempts_delta, sent, delivered, failed]
_SQLITE_UPDATE = """
UPDATE messages SET
  status = json_extract(j.value, '$[1]'),
  due_at = NULL,
  provider_message_id = json_extract(j.value, '$[2]'),
  error_code = json_extract(j.value, '$[3]'),
  error_text = json_extract(j.value, '$[4]'),
  credit_state = json_extract(j.value, '$[5]'),
  attempts = attempts + json_extract(j.value, '$[6]'),
  sent_at = CASE WHEN json_extract(j.value, '$[7]') THEN :now END,
  delivered_at = CASE WHEN json_extract(j.value, '$[8]') THEN :now END,
  failed_at = CASE WHEN json_extract(j.value, '$[9]') THEN :now END,
  fallback_at = NULL,
  updated_at = :now
FROM json_each(:doc) AS j
WHERE messages.id = json_extract(j.value, '$[0]')
  AND messages.claimed_by = :worker AND messages.status = 'sending'
RETURNING messages.id
"""

_PG_UPDATE = """
UPDATE messages SET
  status = j.status,
  due_at = NULL,
  provider_message_id = j.pid,
  error_code = j.code,
  error_text = j.etext,
  credit_state = j.credit,
  attempts = messages.attempts + j.delta,
  sent_at = CASE WHEN j.sent THEN CAST(:now AS timestamptz) END,
  delivered_at = CASE WHEN j.delivered THEN CAST(:now AS timestamptz) END,
  failed_at = CASE WHEN j.failed THEN CAST(:now AS timestamptz) END,
  fallback_at = NULL,
  updated_at = :now
FROM jsonb_to_recordset(CAST(:doc AS jsonb)) AS j(
  id bigint, status text, pid text, code text, etext text, credit text, delta int,
  sent boolean, delivered boolean, failed boolean)
WHERE messages.id = j.id AND messages.claimed_by = :worker AND messages.status = 'sending'
RETURNING messages.id
"""
_PG_UPDATE_KEYS = (
    "id", "status", "pid", "code", "etext", "credit", "delta", "sent", "delivered", "failed"
)  # fmt: skip

# Row: [tenant_id, message_id, event, status, attempt, channel_account_id,
#       provider_message_id, error_code, error_text]
_SQLITE_EVENTS = """
INSERT INTO message_events (tenant_id, message_id, at, event, status, attempt,
  channel_account_id, provider_message_id, error_code, error_text, worker)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), :now,
  json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),
  json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'),
  json_extract(value, '$[8]'), :worker
FROM json_each(:doc)
"""

_PG_EVENTS = """
INSERT INTO message_events (tenant_id, message_id, at, event, status, attempt,
  channel_account_id, provider_message_id, error_code, error_text, worker)
SELECT j.tenant_id, j.message_id, :now, j.event, j.status, j.attempt,
  j.channel_account_id, j.pid, j.code, j.etext, :worker
FROM jsonb_to_recordset(CAST(:doc AS jsonb)) AS j(
  tenant_id bigint, message_id bigint, event text, status text, attempt int,
  channel_account_id bigint, pid text, code text, etext text)
"""
_PG_EVENT_KEYS = (
    "tenant_id", "message_id", "event", "status", "attempt", "channel_account_id",
    "pid", "code", "etext",
)  # fmt: skip


def _statement(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


_STATEMENTS = {
    "sqlite": (_statement(_SQLITE_UPDATE), _statement(_SQLITE_EVENTS)),
    "postgresql": (_statement(_PG_UPDATE), _statement(_PG_EVENTS)),
}


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name in _STATEMENTS


def _document(session: Session, rows: Sequence[Sequence[Any]], keys: Sequence[str]) -> str:
    if session.get_bind().dialect.name == "postgresql":  # recordset: objects by name
        return json.dumps([dict(zip(keys, row, strict=True)) for row in rows])
    return json.dumps(rows)


def update(
    session: Session, *, worker: str, now: datetime, rows: Sequence[Sequence[Any]]
) -> set[int]:
    """Write the rows still claimed by `worker`; answers the ids written."""
    if not rows:
        return set()
    stmt = _STATEMENTS[session.get_bind().dialect.name][0]
    doc = _document(session, rows, _PG_UPDATE_KEYS)
    return set(session.scalars(stmt, {"doc": doc, "now": now, "worker": worker}))


def insert_events(
    session: Session, *, worker: str, now: datetime, rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    stmt = _STATEMENTS[session.get_bind().dialect.name][1]
    doc = _document(session, rows, _PG_EVENT_KEYS)
    session.execute(stmt, {"doc": doc, "now": now, "worker": worker})
