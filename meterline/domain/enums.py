"""The closed vocabularies of the data model; stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class TenantKind(StrEnum):
    utility = "utility"
    cooperative = "cooperative"


class AreaLevel(StrEnum):
    circle = "circle"
    division = "division"
    subdivision = "subdivision"
    feeder = "feeder"
    district = "district"
    union = "union"
    village = "village"
    area = "area"


class Service(StrEnum):
    electricity = "electricity"
    water = "water"
    heat = "heat"
    gas = "gas"
    savings = "savings"


class Billing(StrEnum):
    prepaid = "prepaid"
    postpaid = "postpaid"


class ContactKind(StrEnum):
    phone = "phone"
    telegram = "telegram"
    webpush = "webpush"
    email = "email"


class Reachability(StrEnum):
    unknown = "unknown"
    yes = "yes"
    no = "no"


class BillStatus(StrEnum):
    open = "open"
    paid = "paid"
    cancelled = "cancelled"


class LedgerKind(StrEnum):
    recharge = "recharge"
    payment = "payment"
    deposit = "deposit"
    withdrawal = "withdrawal"
    charge = "charge"
    adjustment = "adjustment"


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class ImportStatus(StrEnum):
    running = "running"
    done = "done"
    failed = "failed"


LANGUAGES = ("en", "hi", "bn", "ru")
