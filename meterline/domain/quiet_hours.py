"""Quiet hours: when a non-urgent message may go out, in the recipient's local time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    """A daily window [start, end) in local time; it may wrap past midnight (21:00-08:00).

    start == end means no window at all.
    """

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        return cls(parse_hhmm(start), parse_hhmm(end))

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def parse_hhmm(value: str) -> time:
    """'21:00' -> time(21, 0); refuses anything else with a message naming the value."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise ValueError(f"time of day {value!r} is not HH:MM (e.g. 21:00)") from None


def _window_end_after(local: datetime, window: Window) -> datetime:
    """The first local moment at or after `local` that is outside `window`."""
    end = local.replace(hour=window.end.hour, minute=window.end.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def earliest_send(
    now: datetime,
    timezone: str,
    *,
    urgent: bool,
    promotional: bool,
    quiet: Window,
    promo_quiet: Window,
) -> datetime:
    """When a message created at `now` (aware) may be sent; `now` itself if it may go at once.

    Urgent kinds (OTP, alerts, transaction confirmations) ignore quiet hours. Promotional
    messages also wait out the promotional window, whatever the tenant's quiet hours say.
    The answer is aware and in the same zone as `now`.
    """
    if urgent:
        return now
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    windows = [quiet] + ([promo_quiet] if promotional else [])
    # Leaving one window may land inside another: repeat until outside all (bounded).
    for _ in range(4):
        inside = [w for w in windows if w.contains(local.time())]
        if not inside:
            break
        local = max(_window_end_after(local, w) for w in inside)
    # Local wall times are resolved by zoneinfo (a DST gap moves the time, never drops it).
    return local.astimezone(now.tzinfo)
