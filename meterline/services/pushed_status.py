"""Status reports that adapters receive on their own connections (SMPP delivery receipts),
applied to their messages like HTTP callbacks.

A receipt can arrive before its message's provider ids are written: the dispatcher records
a batch only once every send in it has an answer, a message whose later parts were
throttled is recorded on its resend, and with several workers the SMSC may hand the
receipt to another worker's bind. So a report whose id is not known yet is held and tried
again each round for ``hold_seconds``; only then is it dropped, and counted in one log line
per round instead of one per report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from meterline.channels.base import StatusUpdate
from meterline.services import status_callbacks
from meterline.store.models import ChannelAccount

log = structlog.get_logger("meterline.dispatch")

MAX_HELD = 100_000  # a flood of foreign receipts must not grow without bound


@dataclass
class PushedStatus:
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    hold_seconds: float = 120.0
    applied: int = 0
    dropped: int = 0  # reports whose message never turned up
    _fresh: dict[int, list[StatusUpdate]] = field(default_factory=dict)
    _held: dict[int, list[tuple[datetime, StatusUpdate]]] = field(default_factory=dict)

    def add(self, channel_account_id: int, updates: list[StatusUpdate]) -> None:
        if updates:
            self._fresh.setdefault(channel_account_id, []).extend(updates)

    def apply(self) -> None:
        """Apply what arrived since the last call, and retry what was held."""
        now = self.clock()
        for account_id in set(self._fresh) | set(self._held):
            fresh = [(now, u) for u in self._fresh.pop(account_id, [])]
            batch = self._held.pop(account_id, []) + fresh
            with self.sessions() as session, session.begin():
                account = session.get(ChannelAccount, account_id)
                if account is None:
                    self.dropped += len(batch)
                    continue
                report = status_callbacks.apply_updates(
                    session, account, [u for _, u in batch], now, log_unknown=False
                )
            unknown = set(report.unknown)
            self.applied += len(batch) - len(report.unknown)
            keep = [(seen, u) for seen, u in batch if u.provider_message_id in unknown]
            expiry = now - timedelta(seconds=self.hold_seconds)
            held = [(seen, u) for seen, u in keep if seen > expiry]
            gone = len(keep) - len(held)
            if len(held) > MAX_HELD:
                gone += len(held) - MAX_HELD
                held = held[-MAX_HELD:]
            if held:
                self._held[account_id] = held
            if gone:
                self.dropped += gone
                log.warning(
                    "status reports for provider ids we never sent, dropped",
                    channel_account_id=account_id,
                    count=gone,
                    held=len(held),
                )

    @property
    def held(self) -> int:
        return sum(len(v) for v in self._held.values())
