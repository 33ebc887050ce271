"""Dues reminder runs (scenario 1): who owes, what sending will cost, and sending once.

A run selects open bills: by default the defaulters' (dues above zero past the due date),
narrowed by a saved filter (area subtree, amount range, days overdue). The preview gives
the count, the channel mix it expects and the SMS cost; sending queues one
``dues_reminder`` per bill through `notify_many` (the channel is notify's business) with
the bill's payment link, keyed ``rem:run<id>:bill<id>``, and records which message and
link belong to which bill (``reminder_items``) for the report.

A schedule (steps in days from the due date, e.g. -7, 0, 3) is run by
`run_schedule` (``meterline reminders run``, from cron): each open bill gets the latest
step it has reached, keyed ``rem:step<days>:bill<id>:due<date>``, so running it again, or
every hour, sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, false, or_, select
from sqlalchemy.orm import Session

from meterline.domain import payment_links as links
from meterline.domain.enums import BillStatus, ContactKind, Medium, Reachability
from meterline.services import payments as pay
from meterline.services.errors import ServiceError
from meterline.services.notify import (
    Notification,
    notify_many,
)
from meterline.services.route_preview import preview_mix
from meterline.store.models import (
    Account,
    Area,
    Bill,
    ContactPoint,
    Message,
    ReminderItem,
    ReminderRun,
    ReminderSchedule,
    Tenant,
)

KIND = "dues_reminder"
MAX_STEP_DAYS = 366
KEY_CHUNK = 5000


@dataclass(frozen=True)
class ReminderFilter:
    """Which defaulters a run reminds; None means no limit."""

    area_id: int | None = None
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    min_days_overdue: int | None = None

    def __post_init__(self) -> None:
        for name in ("min_amount_minor", "max_amount_minor", "min_days_overdue"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ServiceError(f"{name} must not be negative")
        lo, hi = self.min_amount_minor, self.max_amount_minor
        if lo is not None and hi is not None and lo > hi:
            raise ServiceError("min_amount_minor is above max_amount_minor")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReminderFilter:
        data = data or {}
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ServiceError(f"unknown filter field(s): {', '.join(unknown)}")
        return cls(**data)


def _area_subtree(session: Session, tenant_id: int, area_id: int) -> ColumnElement[bool]:
    path = session.scalar(select(Area.path).where(Area.id == area_id, Area.tenant_id == tenant_id))
    if path is None:
        return false()  # another tenant's area, or gone: nothing matches
    subtree = select(Area.id).where(
        Area.tenant_id == tenant_id,
        or_(Area.path == path, Area.path.startswith(path + " / ", autoescape=True)),
    )
    return Account.area_id.in_(subtree)


@dataclass(frozen=True)
class Target:
    bill_id: int
    account_id: int
    consumer_id: int
    account_number: str
    amount_minor: int
    due_date: date


def _targets(session: Session, stmt: Select[Any]) -> list[Target]:
    return [Target(*row) for row in session.execute(stmt)]


def _target_columns() -> Any:
    return select(
        Bill.id,
        Bill.account_id,
        Account.consumer_id,
        Account.number,
        Bill.amount_minor,
        Bill.due_date,
    ).join(Account, Account.id == Bill.account_id)


def select_defaulters(
    session: Session, tenant_id: int, f: ReminderFilter, *, today: date
) -> list[Target]:
    """The open bills past their due date of accounts that owe (`today` in the tenant's
    time zone), narrowed by `f`, by account number."""
    conds: list[ColumnElement[bool]] = [
        Bill.tenant_id == tenant_id,
        Bill.status == BillStatus.open,
        Bill.amount_minor > 0,
        Bill.due_date < today,
        Account.tenant_id == tenant_id,
        Account.dues_minor > 0,
    ]
    if f.min_days_overdue:
        conds.append(Bill.due_date <= today - timedelta(days=f.min_days_overdue))
    if f.area_id is not None:
        conds.append(_area_subtree(session, tenant_id, f.area_id))
    if f.min_amount_minor is not None:
        conds.append(Account.dues_minor >= f.min_amount_minor)
    if f.max_amount_minor is not None:
        conds.append(Account.dues_minor <= f.max_amount_minor)
    return _targets(session, _target_columns().where(*conds).order_by(Account.number, Bill.id))


# --- preview -------------------------------------------------------------------------------


@dataclass
class Preview:
    count: int = 0
    amount_minor: int = 0  # what the selected bills ask for
    # The channel each reminder is expected to take: "whatsapp" (known on WhatsApp),
    # "whatsapp_unknown" (tried on WhatsApp first, may fall back to SMS), "sms", "inapp"
    # (no phone on file).
    channel_mix: dict[str, int] = field(default_factory=dict)
    sms_segments: int = 0
    sms_cost_minor: int = 0  # for those expected on SMS
    sms_cost_if_all_fall_back_minor: int = 0  # if every unknown WhatsApp number falls back
    refused: list[dict[str, Any]] = field(default_factory=list)
    currency: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reachability(session: Session, consumer_ids: set[int]) -> dict[int, tuple[str, Reachability]]:
    """Each consumer's first phone (primary first) and its WhatsApp reachability."""
    found: dict[int, tuple[str, Reachability]] = {}
    rows = session.execute(
        select(ContactPoint.consumer_id, ContactPoint.value, ContactPoint.whatsapp)
        .where(ContactPoint.consumer_id.in_(consumer_ids), ContactPoint.kind == ContactKind.phone)
        .order_by(ContactPoint.consumer_id, ContactPoint.is_primary.desc(), ContactPoint.id)
    )
    for consumer_id, value, whatsapp in rows:
        found.setdefault(consumer_id, (value, whatsapp))
    return found


def _sample_url(public_url: str) -> str:
    return pay.link_url(public_url, "x" * links.CODE_LENGTH)  # a real link's length


def _data(t: Target, url: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account": t.account_number,
        "amount": t.amount_minor,
        "due_date": t.due_date,
    }
    if url:
        data["pay_url"] = url
    return data


def preview(
    session: Session, tenant: Tenant, targets: list[Target], *, now: datetime, public_url: str
) -> Preview:
    """What sending to `targets` would do: count, expected channels, SMS cost.

    The mix is the tenant's route for dues reminders as notify would plan it today
    (services.route_preview): each body rendered and segmented as notify would, the
    WhatsApp-first messages split into numbers known on WhatsApp and unchecked ones."""
    out = Preview(currency=tenant.currency)
    if not targets:
        return out
    url = _sample_url(public_url)
    mix = preview_mix(
        session,
        tenant,
        (
            Notification(
                KIND,
                _data(t, url),
                f"preview:{t.bill_id}",
                consumer_id=t.consumer_id,
                bill_id=t.bill_id,
            )
            for t in targets
        ),
        now=now,
    )
    out.count = mix.count
    out.amount_minor = sum(t.amount_minor for t in targets)
    channels = dict(mix.by_medium)
    on_whatsapp = channels.pop(str(Medium.whatsapp), 0)
    if on_whatsapp:
        phones = _reachability(session, {t.consumer_id for t in targets})
        known = sum(1 for phone in phones.values() if phone[1] is Reachability.yes)
        channels["whatsapp"] = min(known, on_whatsapp)
        channels["whatsapp_unknown"] = on_whatsapp - channels["whatsapp"]
    out.channel_mix = {k: v for k, v in sorted(channels.items()) if v}
    out.sms_segments = mix.segments
    out.sms_cost_minor = mix.cost_minor
    out.sms_cost_if_all_fall_back_minor = mix.max_cost_minor
    out.refused = [
        {"bill_id": int(r["key"].split(":")[1]), "reason": r["reason"]} for r in mix.refused
    ]
    return out


# --- sending -------------------------------------------------------------------------------


def _send(
    session: Session,
    tenant: Tenant,
    run: ReminderRun,
    targets: list[Target],
    keys: list[str],
    *,
    now: datetime,
    key: bytes,
    public_url: str,
) -> None:
    """Queue the reminders of `targets` (one link each) and record the run's items."""
    link_ids: dict[int, int] = {}
    notifications = []
    for t, idem in zip(targets, keys, strict=True):
        link = pay.create_link(session, tenant, t.bill_id, now=now, key=key)
        link_ids[t.bill_id] = link.id
        notifications.append(
            Notification(
                KIND,
                _data(t, pay.link_url(public_url, link.code)),
                idem,
                consumer_id=t.consumer_id,
                account_id=t.account_id,
                bill_id=t.bill_id,
            )
        )
    result = notify_many(session, tenant, notifications, now=now, note=f"reminder run {run.id}")
    run.selected = len(targets)
    run.queued, run.duplicates = result.queued, result.duplicates
    run.refused, run.cost_minor = len(result.refused), result.cost_minor
    run.details = {**(run.details or {}), "refused": result.refused[:100]}
    new: list[Any] = []
    for i in range(0, len(keys), KEY_CHUNK):  # bounded IN lists (SQLite's variable limit)
        new += session.execute(
            select(Message.id, Message.bill_id).where(
                Message.tenant_id == tenant.id,
                Message.idempotency_key.in_(keys[i : i + KEY_CHUNK]),
                Message.batch_id == result.batch_id,
            )
        ).all()
    session.add_all(
        ReminderItem(
            tenant_id=tenant.id,
            run_id=run.id,
            bill_id=bill_id,
            message_id=message_id,
            link_id=link_ids.get(bill_id),
            created_at=now,
        )
        for message_id, bill_id in new
        if bill_id is not None
    )
    session.flush()


def send_run(
    session: Session,
    tenant: Tenant,
    f: ReminderFilter,
    *,
    now: datetime,
    today: date,
    key: bytes,
    public_url: str,
    created_by: str | None = None,
    limit: int | None = None,
) -> ReminderRun:
    """An operator's run: the defaulters matching `f` (the first `limit` of them, by
    account number, when given), reminded now (in the caller's transaction;
    InsufficientCredit rolls the whole run back)."""
    targets = select_defaulters(session, tenant.id, f, today=today)[:limit]
    run = ReminderRun(
        tenant_id=tenant.id,
        source="manual",
        filter=f.as_dict(),
        created_by=created_by,
        created_at=now,
    )
    session.add(run)
    session.flush()
    keys = [f"rem:run{run.id}:bill{t.bill_id}" for t in targets]
    _send(session, tenant, run, targets, keys, now=now, key=key, public_url=public_url)
    return run


# --- schedules -----------------------------------------------------------------------------


def parse_steps(text: str | Iterable[int]) -> list[int]:
    """ "-7,0,3" or [-7, 0, 3] -> sorted distinct days from the due date."""
    items = (
        [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    )
    steps: set[int] = set()
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            raise ServiceError(f"schedule step {item!r} is not a whole number of days") from None
        if abs(value) > MAX_STEP_DAYS:
            raise ServiceError(f"schedule step {value}: at most {MAX_STEP_DAYS} days either side")
        steps.add(value)
    if not steps:
        raise ServiceError("a schedule needs at least one step (e.g. -7,0,3)")
    return sorted(steps)


def set_schedule(session: Session, tenant_id: int, steps: list[int], *, now: datetime) -> list[int]:
    steps = parse_steps(steps)
    row = session.get(ReminderSchedule, tenant_id)
    if row is None:
        session.add(ReminderSchedule(tenant_id=tenant_id, steps=steps, updated_at=now))
    else:
        row.steps, row.updated_at = steps, now
    session.flush()
    return steps


def get_schedule(session: Session, tenant_id: int) -> list[int]:
    row = session.get(ReminderSchedule, tenant_id)
    return list(row.steps) if row else []


def run_schedule(
    session: Session, tenant: Tenant, *, now: datetime, today: date, key: bytes, public_url: str
) -> list[ReminderRun]:
    """Each open bill gets the latest schedule step it has reached, once (idempotent: run
    it from cron as often as you like). A run row is kept only for steps that sent."""
    steps = get_schedule(session, tenant.id)
    runs = []
    for i, step in enumerate(steps):
        # Bills whose due date + step has come, and whose next step has not.
        conds: list[ColumnElement[bool]] = [
            Bill.tenant_id == tenant.id,
            Bill.status == BillStatus.open,
            Bill.amount_minor > 0,
            Bill.due_date.is_not(None),
            Bill.due_date <= today - timedelta(days=step),
            Account.dues_minor > 0,
        ]
        if i + 1 < len(steps):
            conds.append(Bill.due_date > today - timedelta(days=steps[i + 1]))
        targets = _targets(session, _target_columns().where(*conds).order_by(Account.number))
        if not targets:
            continue
        keys = [f"rem:step{step}:bill{t.bill_id}:due{t.due_date.isoformat()}" for t in targets]
        already: set[str] = set()
        for i in range(0, len(keys), KEY_CHUNK):
            already.update(
                session.scalars(
                    select(Message.idempotency_key).where(
                        Message.tenant_id == tenant.id,
                        Message.idempotency_key.in_(keys[i : i + KEY_CHUNK]),
                    )
                )
            )
        fresh = [(t, k) for t, k in zip(targets, keys, strict=True) if k not in already]
        if not fresh:
            continue
        run = ReminderRun(tenant_id=tenant.id, source="schedule", step_days=step, created_at=now)
        session.add(run)
        session.flush()
        _send(
            session,
            tenant,
            run,
            [t for t, _ in fresh],
            [k for _, k in fresh],
            now=now,
            key=key,
            public_url=public_url,
        )
        runs.append(run)
    return runs


def run_view(run: ReminderRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "source": run.source,
        "step_days": run.step_days,
        "filter": run.filter,
        "selected": run.selected,
        "queued": run.queued,
        "duplicates": run.duplicates,
        "refused": run.refused,
        "cost_minor": run.cost_minor,
        "created_by": run.created_by,
        "created_at": run.created_at.isoformat(),
    }
