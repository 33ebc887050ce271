"""Writing master-data records in bulk: insert the new, update what changed, skip the same.

One call handles one batch inside the caller's transaction, so a batch is applied whole
or not at all, and re-running an import converges on the same rows (upsert by account).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import KeyedColumnElement

from meterline.domain.enums import (
    AreaLevel,
    Billing,
    BillStatus,
    ContactKind,
    Reachability,
    Service,
)
from meterline.domain.master_row import MasterRecord
from meterline.store.driver_sql import DriverInsert, lookup
from meterline.store.models import Account, Area, Bill, Consumer, ContactPoint, Meter

CONSUMERS = Consumer.__table__.c
ACCOUNTS = Account.__table__.c
METERS = Meter.__table__.c

AREA_LEVELS_UTILITY = (
    AreaLevel.circle,
    AreaLevel.division,
    AreaLevel.subdivision,
    AreaLevel.feeder,
)
AREA_LEVELS_COOP = (AreaLevel.district, AreaLevel.union, AreaLevel.village)

# Record field -> Account column, for fields that live on the account row.
ACCOUNT_FIELDS = {
    "service": "service",
    "billing": "billing",
    "address": "address",
    "apartment": "apartment",
    "sanctioned_load_kw": "sanctioned_load_kw",
    "dues_minor": "dues_minor",
    "due_date": "due_date",
    "balance_minor": "balance_minor",
}


@dataclass
class TenantDefaults:
    tenant_id: int
    service: Service
    billing: Billing
    language: str
    area_levels: tuple[AreaLevel, ...]


class _Stored(NamedTuple):
    """What a batch needs to know about an account already stored."""

    id: int
    consumer_id: int
    import_digest: str | None


@dataclass
class BatchOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # (row number, column, value, reason) for rows refused by a check against stored data.
    rejected: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)


class AreaCache:
    """Area path -> id, creating the missing nodes of the tree on first sight."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._leaves: dict[tuple[str, ...], int | None] = {}  # whole path -> id, the fast way

    def clear(self) -> None:
        self._ids.clear()
        self._leaves.clear()

    def resolve(
        self, session: Session, defaults: TenantDefaults, parts: Sequence[str]
    ) -> int | None:
        key = tuple(parts)
        leaf = self._leaves.get(key)
        if leaf is None:
            leaf = self._leaves[key] = self._resolve(session, defaults, parts)
        return leaf

    def _resolve(
        self, session: Session, defaults: TenantDefaults, parts: Sequence[str]
    ) -> int | None:
        parent: int | None = None
        for depth in range(len(parts)):
            path = " / ".join(parts[: depth + 1])
            found = self._ids.get(path)
            if found is None:
                found = session.scalar(
                    select(Area.id).where(Area.tenant_id == defaults.tenant_id, Area.path == path)
                )
                if found is None:
                    levels = defaults.area_levels
                    level = levels[depth] if depth < len(levels) else AreaLevel.area
                    if len(parts) == 1:
                        level = AreaLevel.area
                    found = session.scalar(
                        insert(Area)
                        .values(
                            tenant_id=defaults.tenant_id,
                            parent_id=parent,
                            level=level,
                            name=parts[depth],
                            path=path,
                        )
                        .returning(Area.id)
                    )
                assert found is not None
                self._ids[path] = found
            parent = found
        return parent


def apply_batch(
    session: Session,
    defaults: TenantDefaults,
    records: Sequence[tuple[int, MasterRecord]],
    areas: AreaCache,
    now: datetime | None = None,
) -> BatchOutcome:
    now = now or datetime.now(UTC)
    out = BatchOutcome()
    tid = defaults.tenant_id
    conn = session.connection()
    existing = {
        number: _Stored(*rest)
        for number, *rest in lookup(
            conn,
            ACCOUNTS.number,
            [ACCOUNTS.id, ACCOUNTS.consumer_id, ACCOUNTS.import_digest],
            tid,
            [r.account for _, r in records],
        )
    }
    records = _reject_taken_serials(session, tid, records, out)

    new: list[tuple[int, MasterRecord, str]] = []
    changed: list[tuple[int, MasterRecord, str, Any]] = []
    for row_no, rec in records:
        digest = rec.digest()
        current = existing.get(rec.account)
        if current is None:
            new.append((row_no, rec, digest))
        elif current.import_digest == digest:
            out.unchanged += 1
        else:
            changed.append((row_no, rec, digest, current))

    if new:
        _insert_new(session, defaults, new, areas, now)
        out.inserted += len(new)
    for _row_no, rec, digest, current in changed:
        if _update_existing(session, defaults, rec, digest, current, areas, now):
            out.updated += 1
        else:
            out.unchanged += 1
    return out


def _reject_taken_serials(
    session: Session, tid: int, records: Sequence[tuple[int, MasterRecord]], out: BatchOutcome
) -> list[tuple[int, MasterRecord]]:
    serials = [r.given["meter_serial"] for _, r in records if r.given.get("meter_serial")]
    if not serials:
        return list(records)
    owners = dict(
        lookup(
            session.connection(),
            METERS.serial,
            [ACCOUNTS.number],
            tid,
            serials,
            join="JOIN accounts ON meters.account_id = accounts.id",
        )
    )
    kept = []
    for row_no, rec in records:
        serial = rec.given.get("meter_serial")
        owner = owners.get(serial) if serial else None
        if owner is not None and owner != rec.account:
            out.rejected.append(
                (
                    row_no,
                    "meter_serial",
                    serial,
                    f"meter {serial} already belongs to account {owner}",
                )
            )
            continue
        kept.append((row_no, rec))
    return kept


CONSUMER_COLUMNS = (
    "tenant_id",
    "name",
    "preferred_language",
    "import_key",
    "created_at",
    "updated_at",
)
ACCOUNT_COLUMNS = (
    "tenant_id", "consumer_id", "number", "service", "billing", "address", "apartment",
    "sanctioned_load_kw", "area_id", "dues_minor", "due_date", "balance_minor",
    "import_digest", "created_at", "updated_at",
)  # fmt: skip
CONTACT_COLUMNS = (
    "tenant_id",
    "consumer_id",
    "kind",
    "value",
    "is_primary",
    "whatsapp",
    "created_at",
)
METER_COLUMNS = ("tenant_id", "account_id", "serial", "kind", "created_at")
BILL_COLUMNS = (
    "tenant_id", "account_id", "period", "amount_minor", "due_date", "status", "created_at",
    "updated_at",
)  # fmt: skip


# Columns whose values _insert_new passes through DriverInsert.bind once per batch.
_STAMPS = ("created_at", "updated_at")
_CONTACT_BOUND = ("created_at", "kind", "whatsapp", "is_primary")


def _insert_new(
    session: Session,
    d: TenantDefaults,
    new: Sequence[tuple[int, MasterRecord, str]],
    areas: AreaCache,
    now: datetime,
) -> None:
    # Plain tuples through the driver's executemany (see store/driver_sql.py), then one
    # SELECT per table to learn the new ids by their natural keys.
    conn = session.connection()
    tid = d.tenant_id
    keys = [rec.account for _, rec, _ in new]
    consumer_ids = _ids_by_key(session, CONSUMERS.import_key, CONSUMERS.id, tid, keys)
    fresh = [rec for _, rec, _ in new if rec.account not in consumer_ids]
    if fresh:
        language = d.language
        ins = DriverInsert(conn, Consumer.__table__, CONSUMER_COLUMNS, _STAMPS)
        at = ins.bind("created_at", now)
        ins.execute(
            conn,
            [
                (
                    tid,
                    rec.given.get("name") or "",
                    rec.given.get("language") or language,
                    rec.account,
                    at,
                    at,
                )
                for rec in fresh
            ],
        )
        consumer_ids.update(
            _ids_by_key(
                session, CONSUMERS.import_key, CONSUMERS.id, tid, [r.account for r in fresh]
            )
        )
    accounts = DriverInsert(conn, Account.__table__, ACCOUNT_COLUMNS, _STAMPS)
    at = accounts.bind("created_at", now)
    account_rows: list[tuple[Any, ...]] = []
    kinds: list[Service] = []
    for _, rec, digest in new:
        g = rec.given
        service = g.get("service") or d.service
        kinds.append(service)
        path = g.get("area_path")
        account_rows.append(
            (
                tid,
                consumer_ids[rec.account],
                rec.account,
                service,
                g.get("billing") or d.billing,
                g.get("address"),
                g.get("apartment"),
                g.get("sanctioned_load_kw"),
                areas.resolve(session, d, path) if path else None,
                g.get("dues_minor") or 0,
                g.get("due_date"),
                g.get("balance_minor"),
                digest,
                at,
                at,
            )
        )
    accounts.execute(conn, account_rows)
    account_ids = _ids_by_key(session, ACCOUNTS.number, ACCOUNTS.id, tid, keys)
    contact_ins = DriverInsert(conn, ContactPoint.__table__, CONTACT_COLUMNS, _CONTACT_BOUND)
    meter_ins = DriverInsert(conn, Meter.__table__, METER_COLUMNS, _STAMPS)
    bill_ins = DriverInsert(conn, Bill.__table__, BILL_COLUMNS, (*_STAMPS, "status"))
    at = contact_ins.bind("created_at", now)
    phone = contact_ins.bind("kind", ContactKind.phone)
    unknown = contact_ins.bind("whatsapp", Reachability.unknown)
    first, other = contact_ins.bind("is_primary", True), contact_ins.bind("is_primary", False)
    open_ = bill_ins.bind("status", BillStatus.open)
    contacts, meters, bills = [], [], []
    for (_, rec, _), kind in zip(new, kinds, strict=True):
        g = rec.given
        account_id = account_ids[rec.account]
        consumer_id = consumer_ids[rec.account]
        for i, number in enumerate(g.get("phones") or ()):
            contacts.append((tid, consumer_id, phone, number, other if i else first, unknown, at))
        serial = g.get("meter_serial")
        if serial:
            meters.append((tid, account_id, serial, kind, at))
        dues: int = g.get("dues_minor") or 0
        if dues > 0:
            due = g.get("due_date")
            bills.append((tid, account_id, bill_period(due), dues, due, open_, at, at))
    contact_ins.execute(conn, contacts)
    meter_ins.execute(conn, meters)
    bill_ins.execute(conn, bills)


def _ids_by_key(
    session: Session,
    key_col: KeyedColumnElement[Any],
    id_col: KeyedColumnElement[Any],
    tenant_id: int,
    keys: Sequence[str],
) -> dict[str, int]:
    return dict(lookup(session.connection(), key_col, [id_col], tenant_id, keys))


def bill_period(due: date | None) -> str:
    """The bill an imported dues figure stands for: the month it falls due."""
    return due.strftime("%Y-%m") if due else "arrears"


def _bill_row(
    tid: int, account_id: int, amount: int, due: date | None, now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tid,
        "account_id": account_id,
        "period": bill_period(due),
        "amount_minor": amount,
        "due_date": due,
        "status": BillStatus.open,
        "created_at": now,
        "updated_at": now,
    }


def _sync_bill(
    session: Session, tid: int, account_id: int, amount: int, due: date | None, now: datetime
) -> None:
    """Dues on the sheet are an open bill; a changed figure for the same month updates it."""
    if amount <= 0:
        return  # nothing owed says nothing about which bill was paid; payments record that
    bill = session.scalar(
        select(Bill).where(Bill.account_id == account_id, Bill.period == bill_period(due))
    )
    if bill is None:
        session.execute(insert(Bill).values(**_bill_row(tid, account_id, amount, due, now)))
    elif bill.status == BillStatus.open and (bill.amount_minor, bill.due_date) != (amount, due):
        bill.amount_minor, bill.due_date, bill.updated_at = amount, due, now


def _phone_row(
    tid: int, consumer_id: int, phone: str, primary: bool, now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tid,
        "consumer_id": consumer_id,
        "kind": ContactKind.phone,
        "value": phone,
        "is_primary": primary,
        "whatsapp": Reachability.unknown,
        "created_at": now,
    }


def _update_existing(
    session: Session,
    d: TenantDefaults,
    rec: MasterRecord,
    digest: str,
    current: Any,
    areas: AreaCache,
    now: datetime,
) -> bool:
    """Update only the columns whose value differs; returns whether anything did."""
    g = rec.given
    account = session.get(Account, current.id)
    assert account is not None
    consumer = session.get(Consumer, current.consumer_id)
    assert consumer is not None
    acc_changes: dict[str, Any] = {}
    for fname, column in ACCOUNT_FIELDS.items():
        if fname not in g:
            continue
        value = g[fname]
        if fname in ("service", "billing") and value is None:
            continue
        if fname == "dues_minor" and value is None:
            value = 0
        if getattr(account, column) != value:
            acc_changes[column] = value
    if "area_path" in g:
        area_id = areas.resolve(session, d, rec.area_path) if rec.area_path else None
        if account.area_id != area_id:
            acc_changes["area_id"] = area_id
    cons_changes: dict[str, Any] = {}
    if "name" in g and (g["name"] or "") != consumer.name:
        cons_changes["name"] = g["name"] or ""
    if "language" in g and g["language"] and g["language"] != consumer.preferred_language:
        cons_changes["preferred_language"] = g["language"]
    phones_changed = "phones" in g and _sync_phones(
        session, d.tenant_id, consumer.id, rec.phones, now
    )
    serial_changed = "meter_serial" in g and _sync_meter(
        session, d, account, g["meter_serial"], now
    )

    if cons_changes:
        session.execute(
            update(Consumer)
            .where(Consumer.id == consumer.id)
            .values(**cons_changes, updated_at=now)
        )
    acc_values: dict[str, Any] = {**acc_changes, "import_digest": digest}
    if acc_changes or cons_changes or phones_changed or serial_changed:
        acc_values["updated_at"] = now
    session.execute(update(Account).where(Account.id == account.id).values(**acc_values))
    if "dues_minor" in acc_changes or "due_date" in acc_changes:
        _sync_bill(
            session,
            d.tenant_id,
            account.id,
            g.get("dues_minor") or 0,
            g.get("due_date", account.due_date),
            now,
        )
    return bool(acc_changes or cons_changes or phones_changed or serial_changed)


def _sync_phones(
    session: Session, tid: int, consumer_id: int, phones: list[str], now: datetime
) -> bool:
    rows = session.execute(
        select(ContactPoint.id, ContactPoint.value, ContactPoint.is_primary).where(
            ContactPoint.consumer_id == consumer_id, ContactPoint.kind == ContactKind.phone
        )
    ).all()
    have = {r.value: r for r in rows}
    changed = False
    # A number dropped from the master sheet must stop receiving messages.
    gone = [r.id for r in rows if r.value not in phones]
    if gone:
        session.execute(delete(ContactPoint).where(ContactPoint.id.in_(gone)))
        changed = True
    for i, phone in enumerate(phones):
        primary = i == 0
        row = have.get(phone)
        if row is None:
            session.execute(
                insert(ContactPoint).values(**_phone_row(tid, consumer_id, phone, primary, now))
            )
            changed = True
        elif row.is_primary != primary:
            session.execute(
                update(ContactPoint).where(ContactPoint.id == row.id).values(is_primary=primary)
            )
            changed = True
    return changed


def _sync_meter(
    session: Session, d: TenantDefaults, account: Account, serial: str | None, now: datetime
) -> bool:
    current = session.scalars(select(Meter).where(Meter.account_id == account.id)).all()
    if serial is None or any(m.serial == serial for m in current):
        return False
    existing = session.scalar(
        select(Meter).where(Meter.tenant_id == d.tenant_id, Meter.serial == serial)
    )
    if existing is not None:  # an unattached meter (owner checked earlier) moves to this account
        existing.account_id = account.id
    else:
        session.execute(
            insert(Meter).values(
                tenant_id=d.tenant_id,
                account_id=account.id,
                serial=serial,
                kind=account.service,
                created_at=now,
            )
        )
    # A replaced meter stays on record but no longer belongs to the account.
    for m in current:
        m.account_id = None
    return True
