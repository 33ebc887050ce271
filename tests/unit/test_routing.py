"""Routes, plans and what a provider's report does to a routed message (domain.routing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.domain.enums import Medium, MessageStatus, Reachability
from meterline.domain.routing import (
    Address,
    ContactInfo,
    Move,
    Position,
    RouteRefused,
    RouteStep,
    Skip,
    addresses,
    default_route,
    on_report,
    parse_route,
    plan,
    route_steps,
)

ALL_ACCOUNTS = {Medium.sms: 1, Medium.whatsapp: 2, Medium.telegram: 3, Medium.webpush: 4}


def media(route: tuple[RouteStep, ...]) -> list[str]:
    return [str(s.medium) for s in route]


def test_default_routes_per_kind() -> None:
    assert media(default_route("dues_reminder")) == ["whatsapp", "sms"]
    for kind in ("low_balance", "zero_balance", "overload", "tamper"):
        assert media(default_route(kind)) == ["webpush", "sms"]
    assert media(default_route("otp")) == ["sms"]
    assert media(default_route("deposit_received")) == ["sms"]
    assert media(default_route("custom")) == ["sms"]
    # WhatsApp waits 15 minutes for a delivery status; SMS and push never time out.
    assert default_route("dues_reminder")[0].fallback_after_seconds == 900
    assert default_route("low_balance")[0].fallback_after_seconds is None


def test_parse_route_accepts_names_and_objects() -> None:
    route = parse_route(
        "dues_reminder",
        ["WhatsApp", {"medium": "sms", "fallback_after_seconds": 0}],
    )
    assert route == (RouteStep(Medium.whatsapp, 900), RouteStep(Medium.sms, None))
    route = parse_route("tamper", [{"medium": "telegram", "fallback_after_seconds": 60}, "sms"])
    assert route[0] == RouteStep(Medium.telegram, 60)


@pytest.mark.parametrize(
    ("kind", "steps", "error"),
    [
        ("nope", ["sms"], "unknown notification kind 'nope'"),
        ("otp", [], "at least one medium"),
        ("otp", ["fax"], "step 1: unknown medium 'fax'"),
        ("otp", ["sms", "SMS"], "sms is listed twice"),
        ("otp", ["inapp", "sms"], "inapp must be the last step"),
        ("otp", [{"medium": "sms", "after": 3}], "unknown field 'after'"),
        ("otp", [{"medium": "whatsapp", "fallback_after_seconds": -5}], "between 1 and"),
        ("otp", [{"medium": "whatsapp", "fallback_after_seconds": 1.5}], "whole number"),
        ("otp", [3], "give a medium name"),
    ],
)
def test_parse_route_refuses_bad_routes_naming_what(kind: str, steps: list, error: str) -> None:
    with pytest.raises(RouteRefused, match=error):
        parse_route(kind, steps)


def phone(value: str = "+919876543210", whatsapp: Reachability = Reachability.unknown, **kw):  # type: ignore[no-untyped-def]
    return ContactInfo(kw.pop("id", 1), "phone", value, whatsapp, **kw)


def test_addresses_from_contact_points() -> None:
    reach = addresses(
        [
            phone("+911111111111", id=1),
            phone("+912222222222", Reachability.no, id=2, is_primary=True),
            ContactInfo(3, "telegram", "555", details={"blocked_at": "2026-01-01T00:00:00+00:00"}),
            ContactInfo(4, "telegram", "777"),
            ContactInfo(5, "webpush", "https://push.example/a", details={"keys": {}}),
        ]
    )
    # The primary phone, with its WhatsApp reachability.
    assert reach[Medium.sms] == Address("+912222222222", 2)
    assert reach[Medium.whatsapp].unreachable and reach[Medium.whatsapp].why == "not on WhatsApp"
    # A chat that has not blocked the bot wins over one that has.
    assert reach[Medium.telegram] == Address("777", 4)
    assert reach[Medium.webpush].value == "https://push.example/a"


def test_a_number_known_not_on_whatsapp_goes_straight_to_sms() -> None:
    route = default_route("dues_reminder")
    unknown = plan(route, addresses([phone()]), ALL_ACCOUNTS, consumer=True)
    assert [(s.medium, s.to) for s in unknown.steps] == [
        (Medium.whatsapp, "+919876543210"),
        (Medium.sms, "+919876543210"),
    ]
    assert unknown.steps[0].fallback_after_seconds == 900
    assert unknown.steps[-1].fallback_after_seconds is None  # the last never times out
    no = plan(route, addresses([phone(whatsapp=Reachability.no)]), ALL_ACCOUNTS, consumer=True)
    assert [s.medium for s in no.steps] == [Medium.sms]
    assert [(s.medium, s.reason) for s in no.skipped] == [(Medium.whatsapp, Skip.unreachable)]
    # Kept on the row so the message page can say why WhatsApp was not tried.
    stored = no.route_json()
    assert stored is not None and stored["skipped"][0]["detail"] == "not on WhatsApp"


def test_media_without_address_or_account_are_skipped() -> None:
    route = default_route("low_balance")  # webpush, sms
    reach = addresses([phone()])
    only_sms = plan(route, reach, ALL_ACCOUNTS, consumer=True)
    assert [s.medium for s in only_sms.steps] == [Medium.sms]
    assert only_sms.skipped[0].reason is Skip.no_address
    assert only_sms.route_json() is None  # one step, nothing worth telling: no plan stored
    push = addresses([phone(), ContactInfo(9, "webpush", "https://push.example/x")])
    no_push_account = plan(route, push, {Medium.sms: 1}, consumer=True)
    assert [s.medium for s in no_push_account.steps] == [Medium.sms]
    both = plan(route, push, ALL_ACCOUNTS, consumer=True)
    assert [(s.medium, s.channel_account_id, s.contact_id) for s in both.steps] == [
        (Medium.webpush, 4, 9),
        (Medium.sms, 1, 1),
    ]


def test_nothing_usable_leaves_only_the_inbox_copy() -> None:
    found = plan(default_route("dues_reminder"), {}, ALL_ACCOUNTS, consumer=True)
    assert found.steps == ()
    inapp = parse_route("custom", ["whatsapp", "inapp"])
    found = plan(inapp, addresses([phone(whatsapp=Reachability.no)]), ALL_ACCOUNTS, consumer=True)
    assert [s.medium for s in found.steps] == [Medium.inapp]
    # Only a consumer has an inbox.
    assert plan(inapp, {}, ALL_ACCOUNTS, consumer=False).steps == ()


def test_stored_plan_round_trips() -> None:
    found = plan(default_route("dues_reminder"), addresses([phone()]), ALL_ACCOUNTS, consumer=True)
    assert tuple(route_steps(found.route_json())) == found.steps
    assert route_steps(None) == []


# --- reports against a routed message -----------------------------------------------------

STATUSES = list(MessageStatus)
REPORTABLE = [
    MessageStatus.sent,
    MessageStatus.delivered,
    MessageStatus.read,
    MessageStatus.failed,
]


def test_a_failure_on_a_step_with_a_next_one_falls_back() -> None:
    at = Position(0, MessageStatus.sent)
    assert on_report(at, 0, MessageStatus.failed, steps=2) == (
        Move.fall_back,
        Position(1, MessageStatus.queued),
    )
    # On the last step it fails as before.
    assert on_report(Position(1, MessageStatus.sent), 1, MessageStatus.failed, steps=2) == (
        Move.apply,
        Position(1, MessageStatus.failed),
    )
    # A late failure after delivery, or any report about the earlier step, changes nothing.
    delivered = Position(0, MessageStatus.delivered)
    assert on_report(delivered, 0, MessageStatus.failed, steps=2)[0] is Move.ignore
    moved = Position(1, MessageStatus.queued)
    for reported in REPORTABLE:
        assert on_report(moved, 0, reported, steps=2) == (Move.ignore, moved)


@given(
    steps=st.integers(min_value=1, max_value=4),
    reports=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4), st.sampled_from(REPORTABLE)),
        max_size=30,
    ),
)
def test_reports_in_any_order_only_ever_move_a_message_forward(
    steps: int, reports: list[tuple[int, MessageStatus]]
) -> None:
    """Duplicates, reports out of order and reports about earlier steps never take a
    message back; the one way back to queued is the move to the next step."""
    at = Position(0, MessageStatus.sent)
    for step, reported in reports:
        move, after = on_report(at, step, reported, steps=steps)
        assert after.key() >= at.key()
        if move is Move.ignore:
            assert after == at
        elif move is Move.fall_back:
            assert after == Position(at.step + 1, MessageStatus.queued)
            assert after.step < steps
            # The next step is sent again by the dispatcher before reports can apply to it.
            after = Position(after.step, MessageStatus.sent)
        else:
            assert after.step == at.step and after.status is reported
        if step != at.step:
            assert move is Move.ignore
        at = after
    assert at.step < steps
