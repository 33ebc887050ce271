"""What a run of notifications would do before it is sent: the channel mix and its cost.

For a reminder run's "this will go to 1,204 consumers: 870 by WhatsApp, 334 by SMS,
₹83.50, up to ₹301.00 if every WhatsApp falls back to SMS". Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from meterline.domain import sms as sms_rules
from meterline.domain.enums import Medium
from meterline.domain.routing import route_steps
from meterline.domain.templates import MissingData, TemplateRefused
from meterline.services.notify import (
    BULK_CHUNK,
    BulkResult,
    Composer,
    Notification,
    NotifyRefused,
    _recipients_for,
)
from meterline.store.models import Tenant


@dataclass
class MixPreview:
    count: int = 0  # messages the run would queue
    by_medium: dict[str, int] = field(default_factory=dict)  # first medium tried -> count
    segments: int = 0  # SMS segments of the messages that start on SMS
    cost_minor: int = 0  # what notify_many would hold now (SMS first steps)
    # The most the run can cost: as if every message that starts elsewhere (WhatsApp,
    # push, Telegram) fell back to SMS.
    max_cost_minor: int = 0
    may_fall_back: int = 0  # messages with a later step to fall back to
    skipped_unreachable: int = 0  # messages that skip a medium known not to reach them
    refused: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "by_medium": dict(self.by_medium),
            "segments": self.segments,
            "cost_minor": self.cost_minor,
            "max_cost_minor": self.max_cost_minor,
            "may_fall_back": self.may_fall_back,
            "skipped_unreachable": self.skipped_unreachable,
            "refused": list(self.refused),
        }


def preview_mix(
    session: Session, tenant: Tenant, notifications: Iterable[Notification], *, now: datetime
) -> MixPreview:
    """The channel mix and cost `notify_many` would produce for `notifications` today
    (each recipient's route and known reachability), without writing anything."""
    composer = Composer(session, tenant)
    out = MixPreview()
    media: Counter[str] = Counter()
    chunk: list[Notification] = []
    sink = BulkResult(batch_id="preview")

    def flush() -> None:
        recipients = _recipients_for(session, composer, chunk, sink)
        for n in chunk:
            recipient = recipients.get(n.idempotency_key)
            if recipient is None:
                continue
            try:
                row = composer.row(
                    n, now=now, batch_id="preview", recipient=recipient, exact_parts=False
                )
            except NotifyRefused as exc:
                out.refused.append({"key": n.idempotency_key, "reason": exc.message})
                continue
            out.count += 1
            media[str(row["medium"])] += 1
            out.segments += row["segments"] if row["medium"] is Medium.sms else 0
            out.cost_minor += row["cost_minor"]
            route = row["route"]
            later = route_steps(route)[1:]
            if route and route.get("skipped"):
                out.skipped_unreachable += 1
            if later:
                out.may_fall_back += 1
            if row["medium"] is not Medium.sms and any(s.medium is Medium.sms for s in later):
                out.max_cost_minor += _sms_cost(composer, n, row, recipient.name)
        out.refused.extend(sink.refused)
        sink.refused.clear()
        chunk.clear()

    for n in notifications:
        chunk.append(n)
        if len(chunk) >= BULK_CHUNK:
            flush()
    if chunk:
        flush()
    out.by_medium = dict(media)
    out.max_cost_minor += out.cost_minor
    return out


def _sms_cost(composer: Composer, n: Notification, row: dict[str, Any], name: str | None) -> int:
    """The SMS cost of a message that starts on another medium, were it to fall back."""
    language = row["language"]
    sms_source = composer.templates.source(n.kind, Medium.sms, language)
    if sms_source == composer.templates.source(n.kind, row["medium"], language):
        body = row["body"]
    else:
        data = {"org_name": composer.tenant.name, **n.data}
        if name and "consumer_name" not in data:
            data["consumer_name"] = name
        try:
            body = composer.renderer.render(n.kind, sms_source, data, composer.context(language))
        except (MissingData, TemplateRefused):
            return 0
    _, segments = sms_rules.segment_count(body)
    return segments * composer.sms_price
