"""Dispatch workers: claim due messages, hand them to their providers, record the results.

One round: for each channel account with due messages, take tokens from its rate
limit, claim that many messages (most urgent first), send them concurrently, and record
every result in one transaction together with the credit it settles. Transient errors
come back later with exponential backoff and jitter; permanent ones fail at once and
give their held credit back; bad credentials pause the account (its messages wait) and
say why. Time and randomness are injected so tests control them.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import httpx
import structlog
from httpx_aiohttp import AiohttpTransport
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from meterline.channels.base import Channel, ChannelConfigError, OutboundMessage, SendResult
from meterline.channels.base import Outcome as SendOutcome
from meterline.config import Settings
from meterline.domain.enums import CreditState, Medium, MessageStatus
from meterline.domain.notification_kinds import kind_spec
from meterline.domain.quiet_hours import Window, earliest_send
from meterline.domain.retry import RetryPolicy
from meterline.domain.routing import route_steps
from meterline.services import credit, fallback, message_parts
from meterline.services.channel_accounts import channel_for
from meterline.services.pushed_status import PushedStatus
from meterline.store import outbox
from meterline.store.contact_details import contact_details
from meterline.store.models import ChannelAccount, Message, Tenant

log = structlog.get_logger("meterline.dispatch")
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed: per request the dispatcher's event loop
    schedules callbacks, timers and socket reads, which uvloop does in C."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class DispatchSettings:
    batch: int = 500
    concurrency: int = 256
    claim_seconds: float = 60.0
    idle_seconds: float = 0.1  # how long an idle worker sleeps between looks
    gather_seconds: float = 0.05  # after a small round, how long to let messages gather
    paused_retry_seconds: float = 60.0  # messages of a paused account wait this long
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    public_url: str = "http://127.0.0.1:8000"


def dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        batch=settings.dispatch_batch,
        concurrency=settings.dispatch_concurrency,
        claim_seconds=settings.dispatch_claim_seconds,
        retry=RetryPolicy(max_attempts=settings.dispatch_max_attempts),
        public_url=settings.public_url,
    )


@dataclass
class _TenantRules:
    timezone: str
    quiet: Window
    promo_quiet: Window


@dataclass
class RoundReport:
    claimed: int = 0
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    paused: int = 0
    lost_claims: int = 0  # results not written because another worker took over
    fell_back: int = 0  # moved on to the next step of their route


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        settings: DispatchSettings | None = None,
        worker: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings or DispatchSettings()
        self.worker = worker or worker_name()
        self.clock = clock
        self.rng = rng or random.Random()
        # Adapters by account, with the settings they were built from. Not keyed on
        # updated_at: taking rate tokens bumps it every round, and an SMPP adapter holds a
        # bind and per-message state that must outlive a round.
        self._channels: dict[int, tuple[tuple[str, Any], Channel]] = {}
        self._stale: dict[int, Channel] = {}  # replaced adapters still to drain and close
        # Receipts from adapters' own connections; held a while when their message is not
        # recorded yet.
        self.pushed = PushedStatus(self.sessions, self.clock, self.settings.claim_seconds * 2)
        self._tenants: dict[int, _TenantRules] = {}
        self._http: httpx.AsyncClient | None = None
        self._aio: aiohttp.ClientSession | None = None

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: threading.Event | asyncio.Event) -> None:
        """Dispatch until `stop` is set; sleeps briefly whenever there is nothing due."""
        log.info("dispatcher started", worker=self.worker)
        try:
            while not stop.is_set():
                try:
                    report = await self.run_once()
                except Exception:
                    log.exception("dispatch round failed; trying again shortly")
                    report = RoundReport()
                    await asyncio.sleep(1.0)
                if report.claimed == 0:
                    await asyncio.sleep(self.settings.idle_seconds)
                elif report.claimed < self.settings.batch // 10:
                    # A trickle: wait a moment so the next round carries more than one or
                    # two messages (each round is two write transactions).
                    await asyncio.sleep(self.settings.gather_seconds)
        finally:
            await self.aclose()
            log.info("dispatcher stopped", worker=self.worker)

    async def aclose(self) -> None:
        try:  # receipts already received are applied, not dropped with the adapter
            await self._apply_drained_status_updates()
        except Exception:
            log.exception("applying the last status reports failed")
        channels = [channel for _, channel in self._channels.values()]
        channels += self._stale.values()
        self._channels.clear()
        self._stale.clear()  # they hold this event loop's connections (an SMPP bind)
        for channel in channels:
            try:
                await channel.aclose()
            except Exception:
                log.exception("closing a channel adapter failed")
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._aio is not None:
            await self._aio.close()
            self._aio = None

    def _session(self) -> aiohttp.ClientSession:
        """One connection pool for every adapter: httpx ones through httpx-aiohttp, and
        the lean ones (Channel.aio) directly."""
        if self._aio is None:
            limit = self.settings.concurrency
            self._aio = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps its own; providers set none
            )
        return self._aio

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            transport = AiohttpTransport(client=self._session())
            self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0))
        return self._http

    async def run_once(self) -> RoundReport:
        """One round over every channel account with due messages."""
        report = RoundReport()
        now = self.clock()
        self._tenants.clear()  # quiet hours may have changed since the last round
        await self._apply_drained_status_updates()
        self._sweep_timeouts(now, report)
        with self.sessions() as session:
            account_ids = outbox.due_accounts(session, now)
        for account_id in account_ids:
            await self._round_for_account(account_id, report)
        return report

    async def _round_for_account(self, account_id: int, report: RoundReport) -> None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            account = outbox.lock_account(session, account_id)
            if account is None or account.disabled_reason:
                return
            wanted = outbox.take_tokens(session, account, now, self.settings.batch)
            claimed = outbox.claim(
                session,
                channel_account_id=account_id,
                worker=self.worker,
                now=now,
                limit=wanted,
                claim_seconds=self.settings.claim_seconds,
            )
            outbox.give_back_tokens(account, wanted - len(claimed))
            channel = self._channel(account)
            medium = Medium(account.medium)
            details = contact_details(session, medium, claimed) if claimed else {}
        if not claimed:
            return
        report.claimed += len(claimed)
        if isinstance(channel, ChannelConfigError):
            await self._pause(account_id, claimed, str(channel), report)
            return
        results = await self._send_all(channel, account_id, claimed, details)
        config_error = next((r for r in results if isinstance(r, ChannelConfigError)), None)
        self._record(claimed, results, report, medium)
        if config_error is not None:
            self._disable(account_id, str(config_error))

    def _channel(self, account: ChannelAccount) -> Channel | ChannelConfigError:
        cached = self._channels.get(account.id)
        settings = (account.type_name, account.config)
        if cached and cached[0] == settings:
            return cached[1]
        if cached:  # settings changed: the old adapter is closed at the next round's start
            self._stale[account.id] = cached[1]
        try:
            channel = channel_for(account, self._client(), self._session())
        except ChannelConfigError as exc:
            return exc
        self._channels[account.id] = (settings, channel)
        return channel

    async def _send_all(
        self,
        channel: Channel,
        account_id: int,
        claimed: list[outbox.Claimed],
        details: dict[int, dict[str, Any]] | None = None,
    ) -> list[SendResult | ChannelConfigError]:
        """Send every claimed message, in requests of the channel's batch size, with at
        most `concurrency` requests in flight; one result per message, in order."""
        limit = asyncio.Semaphore(self.settings.concurrency)
        callback = f"{self.settings.public_url.rstrip('/')}/api/v1/callbacks/{account_id}"
        size = max(1, channel.max_batch)

        def outbound(msg: outbox.Claimed) -> OutboundMessage:
            return OutboundMessage(
                message_id=msg.id,
                reference=f"ml-{msg.tenant_id}-{msg.id}",
                to=msg.to_address,
                body=msg.body,
                kind=msg.kind,
                language=msg.language,
                segments=msg.segments,
                encoding=msg.encoding,
                callback_url=callback,
                extra={"data": msg.data or {}, "details": (details or {}).get(msg.id, {})},
            )

        async def one(group: list[outbox.Claimed]) -> list[SendResult | ChannelConfigError]:
            async with limit:
                try:
                    if size == 1:
                        return [await channel.send(outbound(group[0]))]
                    return list(await channel.send_batch([outbound(m) for m in group]))
                except ChannelConfigError as exc:
                    return [exc] * len(group)
                except Exception as exc:  # an adapter bug must not lose the messages
                    log.exception("channel adapter raised", message_ids=[m.id for m in group])
                    failed = SendResult(
                        SendOutcome.retry, error_code="adapter_error", error_text=repr(exc)
                    )
                    return [failed] * len(group)

        groups = [claimed[i : i + size] for i in range(0, len(claimed), size)]
        answers = await asyncio.gather(*(one(g) for g in groups))
        return [result for answer in answers for result in answer]

    # --- recording ----------------------------------------------------------------

    def _rules(self, session: Session, tenant_id: int) -> _TenantRules:
        rules = self._tenants.get(tenant_id)
        if rules is None:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            rules = _TenantRules(
                tenant.timezone,
                Window.parse(tenant.quiet_start, tenant.quiet_end),
                Window.parse(tenant.promo_quiet_start, tenant.promo_quiet_end),
            )
            self._tenants[tenant_id] = rules
        return rules

    def _retry_at(
        self, session: Session, msg: outbox.Claimed, now: datetime, retry_after: float | None
    ) -> datetime:
        wait = self.settings.retry.delay(msg.attempts, self.rng, retry_after)
        at = now + timedelta(seconds=wait)
        rules = self._rules(session, msg.tenant_id)
        return earliest_send(
            at,
            rules.timezone,
            urgent=kind_spec(msg.kind).urgent,
            promotional=msg.promotional,
            quiet=rules.quiet,
            promo_quiet=rules.promo_quiet,
        )

    def _outcome(
        self,
        session: Session,
        msg: outbox.Claimed,
        result: SendResult | ChannelConfigError,
        now: datetime,
        report: RoundReport,
    ) -> outbox.Outcome:
        held = msg.credit_state == CreditState.held
        if isinstance(result, ChannelConfigError):
            report.paused += 1
            return outbox.Outcome(
                msg,
                MessageStatus.queued,
                due_at=now + timedelta(seconds=self.settings.paused_retry_seconds),
                error_code="channel_config",
                error_text=str(result),
                event="paused",
                attempts_delta=-1,
            )
        o = result.outcome
        steps = route_steps(msg.route)
        has_next = msg.route_step + 1 < len(steps)
        if o in (SendOutcome.accepted, SendOutcome.delivered):
            delivered = o is SendOutcome.delivered
            report.delivered += delivered
            report.sent += not delivered
            after = steps[msg.route_step].fallback_after_seconds if has_next else None
            return outbox.Outcome(
                msg,
                MessageStatus.delivered if delivered else MessageStatus.sent,
                provider_message_id=result.provider_message_id,
                credit_state=CreditState.debited if held else None,
                fallback_at=now + timedelta(seconds=after) if after and not delivered else None,
            )
        if o is SendOutcome.retry and not self.settings.retry.gives_up_after(msg.attempts):
            report.retried += 1
            return outbox.Outcome(
                msg,
                MessageStatus.queued,
                due_at=self._retry_at(session, msg, now, result.retry_after),
                error_code=result.error_code,
                error_text=result.error_text,
            )
        text = result.error_text or ""
        if o is SendOutcome.retry:
            text = f"gave up after {msg.attempts} attempts: {text}"
        if has_next:
            # fallback, give up or out of retries on a step with a next one: move on
            # (services.fallback, in _record's transaction; it settles the credit).
            report.fell_back += 1
            return outbox.Outcome(
                msg,
                MessageStatus.queued,
                error_code=result.error_code,
                error_text=text,
                fall_back=True,
            )
        # give_up, fallback with no next step, or out of retries: it fails.
        report.failed += 1
        return outbox.Outcome(
            msg,
            MessageStatus.failed,
            error_code=result.error_code,
            error_text=text,
            credit_state=CreditState.refunded if held else None,
        )

    def _record(
        self,
        claimed: list[outbox.Claimed],
        results: list[SendResult | ChannelConfigError],
        report: RoundReport,
        medium: Medium | None = None,
    ) -> None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            outcomes = [
                self._outcome(session, msg, res, now, report)
                for msg, res in zip(claimed, results, strict=True)
            ]
            mine = outbox.record(session, worker=self.worker, now=now, outcomes=outcomes)
            message_parts.record(
                session,
                (
                    message_parts.SentParts(m.tenant_id, m.id, m.channel_account_id, r.part_ids)
                    for m, r in zip(claimed, results, strict=True)
                    if isinstance(r, SendResult) and r.part_ids and m.id in mine
                ),
                now,
            )
            report.lost_claims += len(outcomes) - len(mine)
            if medium is not None:
                self._route_after(session, outcomes, results, mine, medium, now)
            settle: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
            for o in outcomes:
                if o.message.id not in mine or o.credit_state is None:
                    continue
                t = settle[o.message.tenant_id]
                if o.credit_state == CreditState.debited:
                    t[0] += o.message.cost_minor
                    t[1] += 1
                elif o.credit_state == CreditState.refunded:
                    t[2] += o.message.cost_minor
                    t[3] += 1
            for tenant_id, (debit, n_debit, release, n_release) in settle.items():
                credit.settle(
                    session,
                    tenant_id,
                    debit_minor=debit,
                    debit_messages=n_debit,
                    release_minor=release,
                    release_messages=n_release,
                )

    def _route_after(
        self,
        session: Session,
        outcomes: list[outbox.Outcome],
        results: list[SendResult | ChannelConfigError],
        mine: set[int],
        medium: Medium,
        now: datetime,
    ) -> None:
        """Reachability learnt from the results, and fallbacks to the next step."""
        composers: fallback.Composers | None = None
        for o, result in zip(outcomes, results, strict=True):
            msg = o.message
            if msg.id not in mine or isinstance(result, ChannelConfigError):
                continue
            routed = result.unreachable or o.fall_back
            if result.outcome is SendOutcome.delivered and medium is Medium.whatsapp:
                fallback.remember_reachable(session, msg.tenant_id, medium, msg.to_address)
            if not routed:
                continue
            row = session.scalars(
                select(Message)
                .where(Message.id == msg.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            if result.unreachable:
                fallback.note_unreachable(session, row, medium, msg.to_address, now)
            if o.fall_back:
                composers = composers or fallback.Composers(session)
                fallback.move_on(
                    session,
                    row,
                    now=now,
                    code=result.error_code,
                    text=o.error_text,
                    trigger="send",
                    worker=self.worker,
                    composers=composers,
                )

    def _sweep_timeouts(self, now: datetime, report: RoundReport) -> None:
        """Accepted steps with no delivery status within their route's time move on."""
        with self.sessions() as session, session.begin():
            stmt = (
                select(Message)
                .where(
                    Message.fallback_at.is_not(None),
                    Message.fallback_at <= now,
                    Message.status == MessageStatus.sent,
                )
                .order_by(Message.fallback_at)
                .limit(self.settings.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            overdue = list(session.scalars(stmt))
            composers = fallback.Composers(session)
            for row in overdue:
                step = route_steps(row.route)[row.route_step]
                waited = step.fallback_after_seconds
                fallback.move_on(
                    session,
                    row,
                    now=now,
                    code="no_status",
                    text=f"no delivery status within {waited} s of being accepted",
                    trigger="timeout",
                    worker=self.worker,
                    composers=composers,
                )
                report.fell_back += 1

    async def _pause(
        self, account_id: int, claimed: list[outbox.Claimed], reason: str, report: RoundReport
    ) -> None:
        self._record(claimed, [ChannelConfigError(reason)] * len(claimed), report)
        self._disable(account_id, reason)

    async def _apply_drained_status_updates(self) -> None:
        """Status reports the cached adapters received on their own connections (SMPP
        delivery receipts), applied like HTTP callbacks (services.pushed_status)."""
        stale, self._stale = list(self._stale.items()), {}
        current = [(account_id, channel) for account_id, (_, channel) in self._channels.items()]
        for account_id, channel in stale + current:
            self.pushed.add(account_id, await channel.drain_status_updates())
            if (account_id, channel) in stale:
                await channel.aclose()
        self.pushed.apply()

    def _disable(self, account_id: int, reason: str) -> None:
        log.error("channel account paused", channel_account_id=account_id, reason=reason)
        with self.sessions() as session, session.begin():
            session.execute(
                update(ChannelAccount)
                .where(ChannelAccount.id == account_id)
                .values(disabled_reason=reason[:500])
            )
        self._channels.pop(account_id, None)


class DispatcherThread:
    """The in-process dispatcher (`meterline serve`, the demo, SQLite): its own thread and
    event loop, stopped cleanly with the server."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        run_loop(self.dispatcher.run(self._stop))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


def drain(dispatcher: Dispatcher, *, timeout: float = 30.0) -> RoundReport:
    """Run rounds until nothing is due (tests and one-shot CLI use)."""
    total = RoundReport()

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                r = await dispatcher.run_once()
                for name in vars(total):
                    setattr(total, name, getattr(total, name) + getattr(r, name))
                if r.claimed == 0:
                    return
        finally:
            await dispatcher.aclose()

    run_loop(loop())
    return total
