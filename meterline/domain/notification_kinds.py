"""What each kind of notification carries, how urgent it is, and how it is dispatched.

A *kind* (``dues_reminder``, ``low_balance``, ``otp`` ...) is the contract between the
code that raises a notification and the operator who writes its template: the kind
declares its variables and their types, so a template can be checked when it is saved
(`meterline.domain.templates.validate_template`) and the data for each message can be
checked and formatted for the recipient's locale when it is rendered.

Besides its own variables every kind sees `COMMON_VARIABLES` (``org_name``, required,
and ``consumer_name``, optional).

``urgent`` kinds may be sent during quiet hours; ``priority`` orders dispatch (higher
first: an OTP before a tamper alert before a reminder before a month-end statement).
``promotional`` marks marketing traffic (regulators treat it differently: DND lists,
sending windows, sender-id rules). No built-in kind is promotional; a ``custom`` send
is the one that may be, and its caller marks that per send, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "COMMON_OPTIONAL",
    "COMMON_VARIABLES",
    "KINDS",
    "KindSpec",
    "UnknownKind",
    "VarType",
    "kind_spec",
]


class VarType(StrEnum):
    """How a variable's value is checked and shown (see `templates.format_value`)."""

    text = "text"  # str, shown as is
    money = "money"  # int of minor units (paisa, poisha, kopeck), shown in the currency
    date = "date"  # datetime.date or ISO string, shown as a localised date
    datetime = "datetime"  # aware datetime, shown in the tenant's time zone
    number = "number"  # int, Decimal or numeric str (never float), localised digits
    url = "url"  # str, shown as is


COMMON_VARIABLES: Mapping[str, VarType] = MappingProxyType(
    {"org_name": VarType.text, "consumer_name": VarType.text}
)
"""Variables every kind's template may use, on top of the kind's own."""

COMMON_OPTIONAL: frozenset[str] = frozenset({"consumer_name"})
"""The common variables that data may leave out (they render as empty text)."""


class UnknownKind(ValueError):
    """A notification kind that is not in `KINDS`; the message lists the valid ones."""

    def __init__(self, name: str) -> None:
        self.kind = name
        super().__init__(f"unknown notification kind {name!r} (known: {', '.join(sorted(KINDS))})")


@dataclass(frozen=True)
class KindSpec:
    """One notification kind: its variables, urgency, dispatch priority.

    Every declared variable is required unless it is listed in ``optional``.
    """

    name: str
    variables: Mapping[str, VarType]
    urgent: bool
    priority: int
    promotional: bool = False
    optional: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Freeze the mapping so a spec cannot be changed behind the registry's back.
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))
        object.__setattr__(self, "optional", frozenset(self.optional))
        for name, vartype in self.variables.items():
            if not name.isidentifier():
                raise ValueError(f"kind {self.name}: variable name {name!r} is not an identifier")
            if not isinstance(vartype, VarType):
                raise ValueError(f"kind {self.name}: variable {name!r} has no VarType")
        clash = sorted(set(self.variables) & set(COMMON_VARIABLES))
        if clash:
            raise ValueError(f"kind {self.name}: {', '.join(clash)} is a common variable")
        stray = sorted(self.optional - set(self.variables))
        if stray:
            raise ValueError(f"kind {self.name}: optional {', '.join(stray)} is not declared")
        if not 0 <= self.priority <= 100:
            raise ValueError(f"kind {self.name}: priority must be 0..100, got {self.priority}")

    @property
    def required(self) -> frozenset[str]:
        """The kind's own variables that data must carry."""
        return frozenset(self.variables) - self.optional

    @property
    def template_variables(self) -> Mapping[str, VarType]:
        """Everything a template of this kind may use: its variables and the common ones."""
        return MappingProxyType({**COMMON_VARIABLES, **self.variables})

    @property
    def required_variables(self) -> frozenset[str]:
        """Everything data for this kind must carry: required own and common variables."""
        return self.required | (frozenset(COMMON_VARIABLES) - COMMON_OPTIONAL)


_T = VarType


def _kinds(*specs: KindSpec) -> Mapping[str, KindSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


KINDS: Mapping[str, KindSpec] = _kinds(
    KindSpec(
        "deposit_received",
        {
            "account": _T.text,
            "amount": _T.money,
            "balance": _T.money,
            "at": _T.datetime,
            "reference": _T.text,
        },
        urgent=True,
        priority=60,
    ),
    # Not in the original brief: the cooperative ledger service confirms withdrawals
    # (meterline/services/transactions.py maps LedgerKind.withdrawal to this kind).
    KindSpec(
        "withdrawal_made",
        {
            "account": _T.text,
            "amount": _T.money,
            "balance": _T.money,
            "at": _T.datetime,
            "reference": _T.text,
        },
        urgent=True,
        priority=60,
    ),
    KindSpec(
        "payment_received",
        {
            "account": _T.text,
            "amount": _T.money,
            "balance": _T.money,
            "at": _T.datetime,
            "reference": _T.text,
        },
        urgent=True,
        priority=60,
        optional=frozenset({"balance"}),
    ),
    KindSpec(
        "dues_reminder",
        {"account": _T.text, "amount": _T.money, "due_date": _T.date, "pay_url": _T.url},
        urgent=False,
        priority=20,
        optional=frozenset({"pay_url"}),
    ),
    KindSpec(
        "low_balance",
        {"account": _T.text, "balance": _T.money, "threshold": _T.money, "at": _T.datetime},
        urgent=True,
        priority=80,
    ),
    # balance (zero or negative) and the tenant's emergency-credit / grace text are
    # optional: smart-meter alerts fill them (meterline/services/meter_events.py).
    KindSpec(
        "zero_balance",
        {"account": _T.text, "at": _T.datetime, "balance": _T.money, "grace": _T.text},
        urgent=True,
        priority=80,
        optional=frozenset({"balance", "grace"}),
    ),
    KindSpec(
        "overload",
        {
            "account": _T.text,
            "load_kw": _T.number,
            "sanctioned_kw": _T.number,
            "at": _T.datetime,
        },
        urgent=True,
        priority=80,
    ),
    # Smart-meter episodes ending: overload "back to normal", a tamper code restored.
    KindSpec(
        "overload_normal",
        {
            "account": _T.text,
            "load_kw": _T.number,
            "sanctioned_kw": _T.number,
            "at": _T.datetime,
        },
        urgent=False,
        priority=50,
    ),
    KindSpec(
        "tamper",
        {"account": _T.text, "meter": _T.text, "at": _T.datetime, "code": _T.text},
        urgent=True,
        priority=80,
        optional=frozenset({"code"}),
    ),
    KindSpec(
        "tamper_restored",
        {"account": _T.text, "meter": _T.text, "at": _T.datetime, "code": _T.text},
        urgent=False,
        priority=50,
        optional=frozenset({"code"}),
    ),
    KindSpec(
        "otp",
        {"code": _T.text, "minutes": _T.number},
        urgent=True,
        priority=100,
    ),
    KindSpec(
        "closing_balance",
        {"account": _T.text, "balance": _T.money, "as_of": _T.date},
        urgent=False,
        priority=10,
    ),
    # Operator-written free text (greetings, notices). Not promotional by kind: whether
    # one send is promotional is the caller's decision, recorded with that send.
    KindSpec(
        "custom",
        {"text": _T.text},
        urgent=False,
        priority=10,
    ),
)


def kind_spec(name: str) -> KindSpec:
    """The spec of kind ``name``; `UnknownKind` (a ValueError) lists the valid names."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise UnknownKind(name) from None
