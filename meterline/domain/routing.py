"""Routes and fallback plans: which media a notification tries, in which order.

A *route* is an ordered list of media per tenant and notification kind (``dues_reminder``:
WhatsApp, then SMS). A *plan* is that route applied to one recipient: the (medium,
channel account, address) steps that can really be tried, after skipping the media the
recipient has no address on, is known to be unreachable on (not on WhatsApp, a Telegram
chat that blocked the bot), or the tenant has no channel account for. A plan with no step
at all still leaves the message as the consumer's in-app copy (the message row is the
inbox entry, whatever carries it).

A message moves through its plan one step at a time; within a step its status only moves
forward (`domain.message_status`), and the one way back to ``queued`` is moving on to the
next step (`on_report` decides what a provider's report does). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meterline.domain.enums import Medium, MessageStatus, Reachability
from meterline.domain.message_status import RANK, moves_forward
from meterline.domain.notification_kinds import kind_spec

# A step without an explicit timeout: WhatsApp has delivery receipts, so silence means the
# message is stuck (a phone off for days, an account gone quiet); SMS is the last resort
# and Web Push / Telegram report no delivery at all, so waiting for one would always fall
# back and send twice.
DEFAULT_FALLBACK_AFTER: Mapping[Medium, int | None] = {
    Medium.whatsapp: 15 * 60,
    Medium.sms: None,
    Medium.telegram: None,
    Medium.webpush: None,
    Medium.inapp: None,
}
MAX_FALLBACK_AFTER = 7 * 24 * 3600
ROUTABLE = (Medium.whatsapp, Medium.sms, Medium.telegram, Medium.webpush, Medium.inapp)


class RouteRefused(ValueError):
    """A route that cannot be used (names the kind and what is wrong)."""


@dataclass(frozen=True)
class RouteStep:
    medium: Medium
    # Seconds without a delivery status after the provider accepted the message before
    # moving on to the next step; None = wait for a status however long it takes.
    fallback_after_seconds: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"medium": str(self.medium), "fallback_after_seconds": self.fallback_after_seconds}


Route = tuple[RouteStep, ...]


def _route(*media: Medium) -> Route:
    return tuple(RouteStep(m, DEFAULT_FALLBACK_AFTER[m]) for m in media)


ALERT_ROUTE = _route(Medium.webpush, Medium.sms)
DEFAULT_ROUTES: Mapping[str, Route] = {
    "dues_reminder": _route(Medium.whatsapp, Medium.sms),
    "low_balance": ALERT_ROUTE,
    "zero_balance": ALERT_ROUTE,
    "overload": ALERT_ROUTE,
    "tamper": ALERT_ROUTE,
    "otp": _route(Medium.sms),
}
OTHER_ROUTE = _route(Medium.sms)


def default_route(kind: str) -> Route:
    return DEFAULT_ROUTES.get(kind, OTHER_ROUTE)


def parse_route(kind: str, steps: Sequence[Any]) -> Route:
    """A route from configuration: each step a medium name or
    ``{"medium": ..., "fallback_after_seconds": ...}``. Refuses (naming the kind and the
    step) an unknown kind or medium, a medium listed twice, an in-app step that is not
    last (the inbox copy is delivered at once, so nothing after it would run), or a
    timeout out of range. A step given by name gets its medium's default timeout."""
    try:
        kind_spec(kind)
    except ValueError as exc:
        raise RouteRefused(str(exc)) from None
    if not steps:
        raise RouteRefused(f"route for {kind}: give at least one medium")
    out: list[RouteStep] = []
    for i, raw in enumerate(steps, start=1):
        after: Any
        if isinstance(raw, str | Medium):
            name, after = str(raw), _DEFAULT
        elif isinstance(raw, Mapping) and "medium" in raw:
            name = str(raw["medium"])
            after = raw.get("fallback_after_seconds", _DEFAULT)
            stray = sorted(set(raw) - {"medium", "fallback_after_seconds"})
            if stray:
                raise RouteRefused(f"route for {kind}, step {i}: unknown field {stray[0]!r}")
        else:
            raise RouteRefused(f"route for {kind}, step {i}: give a medium name, not {raw!r}")
        try:
            medium = Medium(name.strip().lower())
        except ValueError:
            valid = ", ".join(str(m) for m in ROUTABLE)
            raise RouteRefused(
                f"route for {kind}, step {i}: unknown medium {name!r} (valid: {valid})"
            ) from None
        if any(s.medium is medium for s in out):
            raise RouteRefused(f"route for {kind}: {medium} is listed twice")
        if after is _DEFAULT:
            after = DEFAULT_FALLBACK_AFTER[medium]
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, int):
                raise RouteRefused(
                    f"route for {kind}, step {i} ({medium}): fallback_after_seconds must be"
                    f" a whole number of seconds or null, not {after!r}"
                )
            if after == 0:
                after = None  # 0 = off
            elif not 0 < after <= MAX_FALLBACK_AFTER:
                raise RouteRefused(
                    f"route for {kind}, step {i} ({medium}): fallback_after_seconds must be"
                    f" between 1 and {MAX_FALLBACK_AFTER} (or 0 / null for off), not {after}"
                )
        out.append(RouteStep(medium, after))
    inapp = [i for i, s in enumerate(out) if s.medium is Medium.inapp]
    if inapp and inapp[0] != len(out) - 1:
        raise RouteRefused(
            f"route for {kind}: inapp must be the last step (the inbox copy is delivered at"
            " once, so nothing after it would run)"
        )
    return tuple(out)


_DEFAULT: Any = object()


# --- a recipient's addresses ---------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """Where one medium reaches a recipient; ``unreachable`` = known not to work there."""

    value: str
    contact_id: int | None = None
    unreachable: bool = False
    why: str | None = None  # why it is unreachable, for the message's history


@dataclass(frozen=True)
class ContactInfo:
    """What planning needs of one contact point (a plain copy of the row)."""

    id: int | None
    kind: str  # ContactKind value
    value: str
    whatsapp: Reachability = Reachability.unknown
    details: Mapping[str, Any] | None = None
    is_primary: bool = False


def addresses(contacts: Iterable[ContactInfo]) -> dict[Medium, Address]:
    """Each medium's address for a recipient from their contact points: the primary (else
    the first) phone for SMS and WhatsApp (not on WhatsApp = unreachable there), the first
    Telegram chat that has not blocked the bot, the first push subscription."""
    ordered = sorted(contacts, key=lambda c: (not c.is_primary, c.id or 0))
    out: dict[Medium, Address] = {}
    for c in ordered:
        if c.kind == "phone" and Medium.sms not in out:
            out[Medium.sms] = Address(c.value, c.id)
            no = c.whatsapp == Reachability.no
            out[Medium.whatsapp] = Address(
                c.value, c.id, unreachable=no, why="not on WhatsApp" if no else None
            )
        elif c.kind == "telegram":
            blocked = bool((c.details or {}).get("blocked_at"))
            found = out.get(Medium.telegram)
            if found is None or (found.unreachable and not blocked):
                out[Medium.telegram] = Address(
                    c.value,
                    c.id,
                    unreachable=blocked,
                    why="the chat blocked the bot" if blocked else None,
                )
        elif c.kind == "webpush" and Medium.webpush not in out:
            out[Medium.webpush] = Address(c.value, c.id)
    return out


# --- plans -----------------------------------------------------------------------------


class Skip(StrEnum):
    no_address = "no_address"
    unreachable = "unreachable"
    no_account = "no_account"


@dataclass(frozen=True)
class PlanStep:
    medium: Medium
    channel_account_id: int | None  # None only for inapp
    to: str | None  # None only for inapp
    contact_id: int | None = None
    fallback_after_seconds: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "medium": str(self.medium),
            "channel_account_id": self.channel_account_id,
            "to": self.to,
            "contact_id": self.contact_id,
            "fallback_after_seconds": self.fallback_after_seconds,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlanStep:
        return cls(
            Medium(raw["medium"]),
            raw.get("channel_account_id"),
            raw.get("to"),
            raw.get("contact_id"),
            raw.get("fallback_after_seconds"),
        )


@dataclass(frozen=True)
class Skipped:
    medium: Medium
    reason: Skip
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"medium": str(self.medium), "reason": str(self.reason), "detail": self.detail}


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlanStep, ...]
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)

    @property
    def unreachable_skips(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.reason is Skip.unreachable)

    def route_json(self) -> dict[str, Any] | None:
        """What the message row keeps of its plan; None when there is nothing to fall
        back to and nothing worth telling (one step, nothing skipped as unreachable)."""
        shown = self.unreachable_skips
        if len(self.steps) <= 1 and not shown:
            return None
        return {
            "steps": [s.as_json() for s in self.steps],
            "skipped": [s.as_json() for s in shown],
        }


def plan(
    route: Sequence[RouteStep],
    reach: Mapping[Medium, Address],
    accounts: Mapping[Medium, int],
    *,
    consumer: bool,
) -> Plan:
    """The steps of `route` that can be tried for this recipient, in order.

    `reach`: the recipient's address per medium (`addresses`); `accounts`: the tenant's
    channel account per medium; `consumer`: the recipient is a known consumer (only they
    have an inbox). Later steps keep their own timeout; the last step never times out
    (there is nothing to move on to).
    """
    steps: list[PlanStep] = []
    skipped: list[Skipped] = []
    for step in route:
        medium = step.medium
        if medium is Medium.inapp:
            if consumer:
                steps.append(PlanStep(Medium.inapp, None, None))
                break  # delivered at once: nothing after it would run
            skipped.append(Skipped(medium, Skip.no_address))
            continue
        address = reach.get(medium)
        if address is None:
            skipped.append(Skipped(medium, Skip.no_address))
            continue
        if address.unreachable:
            skipped.append(Skipped(medium, Skip.unreachable, address.why))
            continue
        account = accounts.get(medium)
        if account is None:
            skipped.append(Skipped(medium, Skip.no_account))
            continue
        steps.append(
            PlanStep(
                medium, account, address.value, address.contact_id, step.fallback_after_seconds
            )
        )
    if steps and steps[-1].fallback_after_seconds is not None:
        last = steps[-1]
        steps[-1] = PlanStep(last.medium, last.channel_account_id, last.to, last.contact_id, None)
    return Plan(tuple(steps), tuple(skipped))


def route_steps(route: Mapping[str, Any] | None) -> list[PlanStep]:
    """A message row's stored plan steps ([] when the row has none: a single step)."""
    if not route:
        return []
    return [PlanStep.from_json(s) for s in route.get("steps", [])]


def has_next_step(route: Mapping[str, Any] | None, step: int) -> bool:
    return step + 1 < len(route_steps(route))


# --- what a provider's report does to a routed message ----------------------------------


class Move(StrEnum):
    apply = "apply"  # the status moves forward within the current step
    ignore = "ignore"  # late, duplicate, or about an earlier step: history only
    fall_back = "fall_back"  # the current step failed and there is a next one


@dataclass(frozen=True)
class Position:
    step: int
    status: MessageStatus

    def key(self) -> tuple[int, int]:
        """Positions only ever increase in this order."""
        return (self.step, RANK[self.status])


def on_report(
    current: Position, report_step: int, reported: MessageStatus, *, steps: int
) -> tuple[Move, Position]:
    """What a provider's report about step `report_step` does to a message at `current`
    whose plan has `steps` steps: a report about an earlier step never moves it; a failure
    of the current step on a non-last step moves to the next step, queued; otherwise the
    status only moves forward."""
    if report_step != current.step:
        return Move.ignore, current
    if not moves_forward(current.status, reported):
        return Move.ignore, current
    if reported is MessageStatus.failed and current.step + 1 < steps:
        return Move.fall_back, Position(current.step + 1, MessageStatus.queued)
    return Move.apply, Position(current.step, reported)


def reachability(contact: ContactInfo) -> dict[str, str]:
    """What is known about reaching one contact point, per medium (``yes``, ``no``,
    ``unknown``): a phone's SMS (unknown until a provider says) and WhatsApp, a Telegram
    chat (``no`` once it blocked the bot), a push subscription (``yes`` while it exists)."""
    if contact.kind == "phone":
        return {"sms": str(Reachability.unknown), "whatsapp": str(contact.whatsapp)}
    if contact.kind == "telegram":
        blocked = bool((contact.details or {}).get("blocked_at"))
        return {"telegram": str(Reachability.no if blocked else Reachability.yes)}
    if contact.kind == "webpush":
        return {"webpush": str(Reachability.yes)}
    return {}
