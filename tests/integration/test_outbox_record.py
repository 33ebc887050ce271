"""outbox.record writes every kind of outcome the same whichever statement carries it:
the one-statement JSON path (sent, delivered, failed) or the executemany (own times)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from meterline.domain.enums import CreditState, MessageStatus
from meterline.runtime import Runtime
from meterline.store import outbox
from meterline.store.models import Message, MessageEvent, Tenant
from tests.integration.test_messaging_engine import NOON_IST, custom, queue, setup_sms


def test_a_mixed_round_is_written_field_by_field_with_one_event_each(
    runtime: Runtime, tenant: Tenant
) -> None:
    setup_sms(runtime, tenant, {}, type_name="sandbox")
    ids = [queue(runtime, tenant, custom(f"r{i}", phone=f"98765432{i:02d}")) for i in range(5)]
    later = NOON_IST + timedelta(seconds=5)
    with runtime.sessions() as s, s.begin():
        claimed = outbox.claim(
            s, channel_account_id=1, worker="w", now=NOON_IST, limit=10, claim_seconds=30
        )
    by_id = {c.id: c for c in claimed}
    retry_at = later + timedelta(minutes=2)
    outcomes = [
        outbox.Outcome(
            by_id[ids[0]], MessageStatus.sent, provider_message_id="p-0",
            credit_state=CreditState.debited,
        ),
        outbox.Outcome(by_id[ids[1]], MessageStatus.delivered, provider_message_id="p-1"),
        outbox.Outcome(
            by_id[ids[2]], MessageStatus.failed, error_code="dnd", error_text="x" * 1500,
            credit_state=CreditState.refunded,
        ),
        outbox.Outcome(
            by_id[ids[3]], MessageStatus.queued, due_at=retry_at, error_code="http_503",
            error_text="busy",
        ),
        outbox.Outcome(
            by_id[ids[4]], MessageStatus.queued, due_at=retry_at, error_code="channel_config",
            event="paused", attempts_delta=-1,
        ),
    ]  # fmt: skip
    with runtime.sessions() as s, s.begin():
        assert outbox.record(s, worker="w", now=later, outcomes=outcomes) == set(ids)
        # A second write is refused: none of these claims is held any more.
        assert outbox.record(s, worker="w", now=later, outcomes=outcomes) == set()
    with runtime.sessions() as s:
        rows = {m.id: m for m in s.scalars(select(Message).where(Message.id.in_(ids)))}
        events = list(s.scalars(select(MessageEvent).where(MessageEvent.message_id.in_(ids))))
    sent, delivered, failed, retry, paused = (rows[i] for i in ids)
    assert (sent.status, sent.provider_message_id, sent.credit_state) == (
        MessageStatus.sent, "p-0", CreditState.debited,
    )  # fmt: skip
    assert (sent.sent_at, sent.delivered_at, sent.failed_at, sent.due_at) == (
        later, None, None, None,
    )  # fmt: skip
    assert sent.updated_at == later and sent.attempts == 1 and sent.error_code is None
    assert (delivered.status, delivered.sent_at, delivered.delivered_at) == (
        MessageStatus.delivered, later, later,
    )  # fmt: skip
    assert delivered.credit_state == CreditState.held  # unchanged when the outcome says none
    assert (failed.status, failed.failed_at, failed.sent_at) == (MessageStatus.failed, later, None)
    assert failed.error_code == "dnd" and failed.error_text == "x" * 1000
    assert failed.credit_state == CreditState.refunded
    assert (retry.status, retry.due_at, retry.attempts) == (MessageStatus.queued, retry_at, 1)
    assert (paused.attempts, paused.error_code) == (0, "channel_config")
    assert sorted((e.message_id, e.event, e.status) for e in events if e.worker == "w") == [
        (ids[0], "attempt", "sent"),
        (ids[1], "attempt", "delivered"),
        (ids[2], "attempt", "failed"),
        (ids[3], "attempt", "queued"),
        (ids[4], "paused", "queued"),
    ]
    written = [e for e in events if e.worker == "w"]
    assert all(e.at == later and e.attempt == 1 and e.channel_account_id == 1 for e in written)
    assert {e.provider_message_id for e in written} == {"p-0", "p-1", None}
    assert next(e for e in written if e.message_id == ids[2]).error_text == "x" * 1000
