"""Crash safety: `meterline worker` is SIGKILLed at random points while it sends 10,000
messages, started again each time, and every message ends sent exactly once at the
provider stand-in, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from meterline.domain.enums import MessageStatus
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.notify import Notification, notify_many
from meterline.store.models import Message, Tenant
from tests.support.gateway_standin import GatewayStandin

MESSAGES = 10_000
KILLS = 4


def _worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "METERLINE_DATABASE_URL": database_url,
        # A killed worker's claims are taken over after a second, not a minute.
        "METERLINE_DISPATCH_CLAIM_SECONDS": "1",
        "METERLINE_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sent(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.status == MessageStatus.sent)
            )
            or 0
        )


def test_sigkilled_workers_lose_nothing_and_send_nothing_twice(
    runtime: Runtime, tenant: Tenant, database_url: str
) -> None:
    rng = random.Random(20261122)
    with GatewayStandin() as gw:
        with runtime.sessions() as s, s.begin():
            add_channel_account(
                s,
                tenant.id,
                name="gw",
                type_name="sms_http",
                config={"url": gw.sms_url, "body_format": "json"},
                rate_per_second=1_000_000,
            )
            credit.set_pricing(s, tenant.id, sms_price_minor=1)
            credit.top_up(s, tenant.id, MESSAGES * 5, by="test")
            t = s.get(Tenant, tenant.id)
            assert t is not None
            now = datetime.now(UTC)
            result = notify_many(
                s,
                t,
                (
                    Notification(
                        kind="otp",
                        data={"code": f"{i:06d}", "minutes": 5},
                        idempotency_key=f"k{i}",
                        phone=f"98{i:08d}",
                    )
                    for i in range(MESSAGES)
                ),
                now=now,
            )
        assert result.queued == MESSAGES and not result.refused

        # Kill at random points of the run: once progress passes a random mark, after a
        # random extra moment (so kills land mid-batch, between send and record).
        marks = sorted(rng.uniform(0.05, 0.85) for _ in range(KILLS))
        for mark in marks:
            proc = _worker(database_url)
            deadline = time.monotonic() + 60
            while _sent(runtime) < mark * MESSAGES and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        mid_run = _sent(runtime)
        proc = _worker(database_url)
        try:
            deadline = time.monotonic() + 120
            while _sent(runtime) < MESSAGES and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(10)

        stats = gw.stats()
        references = [r.json()["reference"] for r in gw.requests("sms")]

    assert 0 < mid_run < MESSAGES, "the kills should land mid-run"
    assert _sent(runtime) == MESSAGES
    # Exactly once at the provider: every reference accepted once; a message resent after
    # a kill (its result never recorded) was recognised by its reference, not sent again.
    assert stats["sent"] == MESSAGES
    assert len(set(references)) == MESSAGES
    with runtime.sessions() as s:
        ids = dict(s.execute(select(Message.id, Message.provider_message_id)).all())
        cost = s.scalar(select(func.sum(Message.cost_minor)))
        credit_now = credit.totals(s, tenant.id)
    assert all(ids.values())
    assert (credit_now.balance_minor, credit_now.held_minor) == (MESSAGES * 5 - cost, 0)
