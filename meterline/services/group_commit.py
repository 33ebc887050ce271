"""Group commit for posted transactions: many API calls, one database transaction.

At a hundred posts a second, a transaction per post spends most of its time on what
every transaction repeats (begin, commit, the tenant, templates, pricing, the credit
row) and, on SQLite, queueing for the one writer. Here each request thread queues its
post; whichever thread finds no group being written takes every post queued so far and
writes them in one transaction, while the next posts queue behind it. Nobody waits for a
timer: under light load a group is one post, under heavy load it grows by itself.

Each post has its own savepoint (services/transactions.py), so a refused or failing post
does not touch the others. If the group's transaction itself fails (a lost connection,
a deadlock), each of its posts is retried alone, so one bad post cannot fail the rest.
A post is answered only after its transaction committed: an answer is never lost to a
crash, and a post whose answer was lost is safe to retry (the reference).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from sqlalchemy.orm import Session, sessionmaker

from meterline.domain.enums import LedgerKind
from meterline.services.errors import NotFound, ServiceError
from meterline.services.transactions import (
    TransactionRequest,
    TransactionResult,
    record_transactions,
    to_minor,
)
from meterline.store.models import Tenant

log = structlog.get_logger("meterline.group_commit")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Post:
    """A transaction as the API receives it: the amount still in major units (text), read
    in the tenant's currency when its group is written."""

    account_number: str
    kind: LedgerKind
    amount: str | int | Decimal
    reference: str
    occurred_at: datetime | None = None
    note: str | None = None


@dataclass(eq=False)
class _Job:
    tenant_id: int
    post: Post
    done: bool = False
    outcome: TransactionResult | BaseException | None = field(default=None, repr=False)


class GroupCommitter:
    """Writes posted transactions a group per database transaction (see module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_group: int = 64,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.max_group = max_group
        self.clock = clock
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()  # held by the thread writing a group

    def post(self, tenant_id: int, post: Post) -> TransactionResult:
        """Record `post` for the tenant; returns once it is committed (or raises why not)."""
        job = _Job(tenant_id, post)
        with self._queue_lock:
            self._queue.append(job)
        while not job.done:
            with self._writer:
                if job.done:
                    break
                with self._queue_lock:
                    group = self._queue[: self.max_group]
                    del self._queue[: self.max_group]
                try:
                    self._write(group)
                finally:
                    for taken in group:  # whatever happened, nobody waits forever
                        if not taken.done:
                            taken.outcome = RuntimeError("the group commit was interrupted")
                            taken.done = True
        assert job.outcome is not None
        if isinstance(job.outcome, BaseException):
            raise job.outcome
        return job.outcome

    def _write(self, group: list[_Job]) -> None:
        if not group:
            return
        try:
            outcomes = self._transaction(group)
        except Exception as exc:
            if len(group) == 1:
                outcomes = [exc]
            else:
                # The group's transaction failed as a whole: each post alone, so only a
                # post that fails by itself gets an error.
                log.warning(
                    "group commit failed; retrying its posts one by one",
                    posts=len(group),
                    error=repr(exc),
                )
                for job in group:
                    self._write([job])
                return
        for job, outcome in zip(group, outcomes, strict=True):
            job.outcome = outcome
            job.done = True

    def _transaction(self, group: list[_Job]) -> list[TransactionResult | BaseException]:
        now = self.clock()
        outcomes: list[TransactionResult | BaseException | None] = [None] * len(group)
        by_tenant: dict[int, list[int]] = defaultdict(list)
        for i, job in enumerate(group):
            by_tenant[job.tenant_id].append(i)
        with self.sessions() as session, session.begin():
            for tenant_id, indexes in by_tenant.items():
                tenant = session.get(Tenant, tenant_id)
                requests: list[TransactionRequest] = []
                placed: list[int] = []
                for i in indexes:
                    p = group[i].post
                    if tenant is None:
                        outcomes[i] = NotFound(f"no tenant {tenant_id}")
                        continue
                    try:
                        amount = to_minor(p.amount, tenant.currency)
                    except ServiceError as exc:
                        outcomes[i] = exc
                        continue
                    requests.append(
                        TransactionRequest(
                            p.account_number, p.kind, amount, p.reference, p.occurred_at, p.note
                        )
                    )
                    placed.append(i)
                if tenant is None or not requests:
                    continue
                recorded = record_transactions(session, tenant, requests, now=now)
                for i, result in zip(placed, recorded, strict=True):
                    outcomes[i] = result
        answered: list[TransactionResult | BaseException] = []
        for found in outcomes:
            assert found is not None
            answered.append(found)
        return answered
