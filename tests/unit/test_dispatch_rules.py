"""Pure dispatch rules: quiet hours, forward-only status, retry backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.domain.enums import MessageStatus
from meterline.domain.message_status import moves_forward
from meterline.domain.quiet_hours import Window, earliest_send, parse_hhmm
from meterline.domain.retry import RetryPolicy

QUIET = Window.parse("21:00", "08:00")
PROMO = Window.parse("00:00", "06:00")
KOLKATA = ZoneInfo("Asia/Kolkata")


def at_local(hh: int, mm: int = 0, zone: ZoneInfo = KOLKATA) -> datetime:
    return datetime(2026, 3, 10, hh, mm, tzinfo=zone).astimezone(UTC)


def send(
    now: datetime,
    *,
    urgent: bool = False,
    promotional: bool = False,
    quiet: Window = QUIET,
    tz: str = "Asia/Kolkata",
) -> datetime:
    return earliest_send(
        now, tz, urgent=urgent, promotional=promotional, quiet=quiet, promo_quiet=PROMO
    )


def test_a_reminder_at_night_waits_for_eight_in_the_morning() -> None:
    out = send(at_local(22, 30)).astimezone(KOLKATA)
    assert (out.date().day, out.time()) == (11, time(8, 0))


def test_after_midnight_it_waits_for_the_same_morning() -> None:
    out = send(at_local(2, 15)).astimezone(KOLKATA)
    assert (out.date().day, out.time()) == (10, time(8, 0))


def test_daytime_and_urgent_messages_go_at_once() -> None:
    assert send(at_local(12)) == at_local(12)
    assert send(at_local(23), urgent=True) == at_local(23)


def test_promotional_sms_never_go_out_in_the_promotional_window() -> None:
    no_quiet = Window.parse("00:00", "00:00")  # the tenant switched quiet hours off
    assert send(at_local(3), quiet=no_quiet) == at_local(3)
    out = send(at_local(3), quiet=no_quiet, promotional=True).astimezone(KOLKATA)
    assert out.time() == time(6, 0)


def test_quiet_hours_are_the_recipients_local_time() -> None:
    moscow = ZoneInfo("Europe/Moscow")
    out = send(at_local(22, 0, moscow), tz="Europe/Moscow").astimezone(moscow)
    assert out.time() == time(8, 0)


def test_a_bad_time_of_day_is_named() -> None:
    with pytest.raises(ValueError, match="'25:99'"):
        parse_hhmm("25:99")


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    st.booleans(),
)
def test_the_send_time_is_never_earlier_and_never_inside_the_window(
    now: datetime, promotional: bool
) -> None:
    out = send(now, promotional=promotional)
    assert now <= out <= now + timedelta(hours=12)
    local = out.astimezone(KOLKATA).time()
    assert not QUIET.contains(local)
    if promotional:
        assert not PROMO.contains(local)


ORDER = list(MessageStatus)


@given(
    st.lists(
        st.sampled_from(
            [MessageStatus.sent, MessageStatus.delivered, MessageStatus.read, MessageStatus.failed]
        ),
        max_size=8,
    )
)
def test_status_never_moves_back_whatever_order_reports_arrive_in(reports: list) -> None:
    from meterline.domain.message_status import RANK

    status = MessageStatus.sending
    for r in reports:
        before = RANK[status]
        if moves_forward(status, r):
            status = r
        assert RANK[status] >= before
    # A duplicate of the last report changes nothing.
    assert not moves_forward(status, status)


def test_late_failed_after_delivered_is_ignored_and_read_wins() -> None:
    assert not moves_forward(MessageStatus.delivered, MessageStatus.failed)
    assert not moves_forward(MessageStatus.read, MessageStatus.delivered)
    assert moves_forward(MessageStatus.delivered, MessageStatus.read)
    assert not moves_forward(MessageStatus.sent, MessageStatus.queued)


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=10_000))
def test_backoff_grows_is_jittered_capped_and_respects_retry_after(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=600)
    rng = random.Random(seed)
    wait = policy.delay(attempt, rng)
    ceiling = min(600, 2 * 2 ** (attempt - 1))
    assert ceiling / 2 <= wait <= ceiling
    assert policy.delay(attempt, rng, retry_after=900) >= 900


def test_jitter_spreads_a_burst() -> None:
    rng = random.Random(1)
    waits = {round(RetryPolicy().delay(4, rng), 3) for _ in range(50)}
    assert len(waits) > 40
