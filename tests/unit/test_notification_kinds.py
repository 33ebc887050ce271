"""Notification kinds: the variables, urgency and priority each kind declares."""

from __future__ import annotations

import dataclasses

import pytest

from meterline.domain.notification_kinds import (
    COMMON_OPTIONAL,
    COMMON_VARIABLES,
    KINDS,
    KindSpec,
    UnknownKind,
    VarType,
    kind_spec,
)

T = VarType

# kind -> (variables, optional, urgent, priority): the table from the design brief.
EXPECTED = {
    "deposit_received": (
        {"account": T.text, "amount": T.money, "balance": T.money, "at": T.datetime,
         "reference": T.text},
        set(), True, 60,
    ),
    "withdrawal_made": (
        {"account": T.text, "amount": T.money, "balance": T.money, "at": T.datetime,
         "reference": T.text},
        set(), True, 60,
    ),
    "payment_received": (
        {"account": T.text, "amount": T.money, "balance": T.money, "at": T.datetime,
         "reference": T.text},
        {"balance"}, True, 60,
    ),
    "dues_reminder": (
        {"account": T.text, "amount": T.money, "due_date": T.date, "pay_url": T.url},
        {"pay_url"}, False, 20,
    ),
    "low_balance": (
        {"account": T.text, "balance": T.money, "threshold": T.money, "at": T.datetime},
        set(), True, 80,
    ),
    "zero_balance": (
        {"account": T.text, "at": T.datetime, "balance": T.money, "grace": T.text},
        {"balance", "grace"}, True, 80,
    ),
    "overload_normal": (
        {"account": T.text, "load_kw": T.number, "sanctioned_kw": T.number,
         "at": T.datetime},
        set(), False, 50,
    ),
    "overload": (
        {"account": T.text, "load_kw": T.number, "sanctioned_kw": T.number,
         "at": T.datetime},
        set(), True, 80,
    ),
    "tamper": (
        {"account": T.text, "meter": T.text, "at": T.datetime, "code": T.text},
        {"code"}, True, 80,
    ),
    "tamper_restored": (
        {"account": T.text, "meter": T.text, "at": T.datetime, "code": T.text},
        {"code"}, False, 50,
    ),
    "otp": ({"code": T.text, "minutes": T.number}, set(), True, 100),
    "closing_balance": (
        {"account": T.text, "balance": T.money, "as_of": T.date}, set(), False, 10,
    ),
    "custom": ({"text": T.text}, set(), False, 10),
}  # fmt: skip


def test_the_registry_holds_exactly_the_declared_kinds() -> None:
    assert set(KINDS) == set(EXPECTED)
    for name, spec in KINDS.items():
        assert spec.name == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_kind_declares_its_variables_urgency_and_priority(name: str) -> None:
    variables, optional, urgent, priority = EXPECTED[name]
    spec = kind_spec(name)
    assert dict(spec.variables) == variables
    assert spec.optional == optional
    assert spec.required == set(variables) - optional
    assert spec.urgent is urgent
    assert spec.priority == priority
    # No kind is promotional by itself; a custom send is marked per send by its caller.
    assert spec.promotional is False


def test_variable_types_are_the_six_declared_ones() -> None:
    assert [t.value for t in VarType] == ["text", "money", "date", "datetime", "number", "url"]
    assert VarType("money") is VarType.money


def test_common_variables_are_available_to_every_kind() -> None:
    assert dict(COMMON_VARIABLES) == {"org_name": T.text, "consumer_name": T.text}
    assert set(COMMON_OPTIONAL) == {"consumer_name"}
    spec = kind_spec("dues_reminder")
    assert dict(spec.template_variables) == {**COMMON_VARIABLES, **spec.variables}
    assert spec.required_variables == {"org_name", "account", "amount", "due_date"}


def test_priorities_order_otp_before_alerts_before_reminders_before_statements() -> None:
    p = {name: spec.priority for name, spec in KINDS.items()}
    assert p["otp"] > p["tamper"] == p["low_balance"] > p["deposit_received"]
    assert p["deposit_received"] > p["dues_reminder"] > p["closing_balance"]


def test_only_urgent_kinds_may_break_quiet_hours() -> None:
    assert {n for n, s in KINDS.items() if not s.urgent} == {
        "dues_reminder",
        "closing_balance",
        "custom",
        "overload_normal",
        "tamper_restored",
    }


def test_unknown_kind_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownKind) as info:
        kind_spec("dues_remindr")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'dues_remindr'" in message
    for name in KINDS:
        assert name in message
    assert info.value.kind == "dues_remindr"


def test_unhashable_kind_name_is_an_unknown_kind_not_a_type_error() -> None:
    with pytest.raises(UnknownKind):
        kind_spec(["otp"])  # type: ignore[arg-type]


def test_specs_and_the_registry_are_immutable() -> None:
    spec = kind_spec("otp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.priority = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.variables["extra"] = T.text  # type: ignore[index]
    with pytest.raises(TypeError):
        KINDS["new"] = spec  # type: ignore[index]
    with pytest.raises(TypeError):
        COMMON_VARIABLES["x"] = T.text  # type: ignore[index]


def test_a_spec_copies_the_mapping_it_was_given() -> None:
    variables = {"a": T.text}
    spec = KindSpec("k", variables, urgent=False, priority=1)
    variables["b"] = T.money
    assert set(spec.variables) == {"a"}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"variables": {"a": T.text}, "optional": frozenset({"b"})}, "optional b"),
        ({"variables": {"org_name": T.text}}, "common variable"),
        ({"variables": {"a": T.text}, "priority": 101}, "priority"),
        ({"variables": {"a": T.text}, "priority": -1}, "priority"),
        ({"variables": {"not valid": T.text}}, "identifier"),
        ({"variables": {"a": "text"}}, "VarType"),
    ],
)
def test_inconsistent_specs_are_refused(kwargs: dict[str, object], reason: str) -> None:
    arguments: dict[str, object] = {"urgent": False, "priority": 5, **kwargs}
    with pytest.raises(ValueError, match=reason):
        KindSpec("k", **arguments)  # type: ignore[arg-type]
