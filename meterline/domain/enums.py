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


class MessageStatus(StrEnum):
    """A message's life; it only ever moves forward (see domain.message_status)."""

    queued = "queued"  # waiting for its time (quiet hours, backoff) or a worker
    sending = "sending"  # claimed by a worker; the claim expires if the worker dies
    sent = "sent"  # the provider accepted it
    delivered = "delivered"
    read = "read"
    failed = "failed"


class CreditState(StrEnum):
    """What a message has done to the tenant's SMS credit."""

    free = "free"  # costs nothing (in-app, sandbox of a free medium)
    held = "held"  # reserved when queued
    debited = "debited"  # the provider accepted it
    refunded = "refunded"  # rejected before sending: the hold is released


class CreditEntryKind(StrEnum):
    topup = "topup"
    hold = "hold"
    debit = "debit"
    release = "release"
    adjustment = "adjustment"


class Medium(StrEnum):
    """What kind of channel a message travels on; templates and prices are per medium."""

    sms = "sms"
    whatsapp = "whatsapp"
    telegram = "telegram"
    webpush = "webpush"
    inapp = "inapp"
