"""Writing master-data records in bulk: insert the new, update what changed, skip the same.

One call handles one batch inside the caller's transaction, so a batch is applied whole
or not at all, and re-running an import converges on the same rows (upsert by account).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
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
from meterline.store.bulk_connection import check_foreign_keys
from meterline.store.driver_sql import DriverInsert, lookup, reserve_ids
from meterline.store.models import Account, Area, Bill, Consumer, ContactPoint, Meter, Tenant

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
    # No key of the batch was stored before it: the next batch of the same file may well
    # be all new too, worth trying without lookups (apply_batch's `assume_new`).
    all_new: bool = False


class AreaCache:
    """Area path -> id, creating the missing nodes of the tree on first sight."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._leaves: dict[tuple[str, ...], int | None] = {}  # whole path -> id, the fast way

    def clear(self) -> None:
        self._ids.clear()
        self._leaves.clear()

    def ids(self) -> set[int]:
        """Every area id handed out since the last clear()."""
        return set(self._ids.values())

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
    *,
    assume_new: bool = False,
) -> BatchOutcome:
    """Upsert one batch. `assume_new`: first try inserting every record as new, without
    looking up stored keys; a unique constraint refusing any of them sends the batch
    through the lookups instead, so the result is the same either way (see _insert_all).

    With `assume_new` the batch must open the session's transaction: a refusal rolls
    that whole transaction back (there is no savepoint to go back to; see _insert_all).
    """
    now = now or datetime.now(UTC)
    if assume_new and records:
        if session.in_transaction():
            raise ValueError("assume_new: the batch must open the session's transaction")
        if _insert_all(session, defaults, records, areas, now):
            return BatchOutcome(inserted=len(records), all_new=True)
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
    records, serials_taken = _reject_taken_serials(session, tid, records, out)

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

    consumers_found = False
    if new:
        keys = [rec.account for _, rec, _ in new]
        consumer_ids = _ids_by_key(session, CONSUMERS.import_key, CONSUMERS.id, tid, keys)
        consumers_found = bool(consumer_ids)
        _insert_new(session, defaults, new, areas, now, consumer_ids)
        out.inserted += len(new)
    for _row_no, rec, digest, current in changed:
        if _update_existing(session, defaults, rec, digest, current, areas, now):
            out.updated += 1
        else:
            out.unchanged += 1
    out.all_new = not (existing or serials_taken or consumers_found)
    return out


def _insert_all(
    session: Session,
    d: TenantDefaults,
    records: Sequence[tuple[int, MasterRecord]],
    areas: AreaCache,
    now: datetime,
) -> bool:
    """Insert every record as new; False, with the session's transaction rolled back, if
    any exists (or if the tenant or an area the rows point to does not).

    The lookups this skips can only find what a unique constraint also finds: a stored
    account (tenant, number), a consumer by import key (tenant, import_key) or a meter
    serial (tenant, serial). If none of those refuses an insert, none of them was stored,
    and the general path would have inserted exactly these rows.

    No savepoint: on SQLite one copies every page the batch first changes into a
    sub-journal, in case it is rolled back to; that was 7 to 10 % of the import's writing
    (docs/benchmarks.md). The transaction holds only this batch (apply_batch checks), so
    rolling all of it back loses nothing else.

    The caller may run this transaction without foreign key checks
    (store/bulk_connection.py, `foreign_keys_unchecked`): every row inserted here points
    to rows inserted here too, or to the tenant and areas, whose existence is checked
    below. A refusal turns the checks back on for the general path, which also updates
    and deletes.
    """
    conn = session.connection()
    refusals = (IntegrityError, conn.dialect.loaded_dbapi.IntegrityError)
    try:
        new = [(row_no, rec, rec.digest()) for row_no, rec in records]
        _insert_new(session, d, new, areas, now, {})
        complete = _tenant_and_areas_exist(conn, d.tenant_id, areas.ids())
    except refusals:
        complete = False
    if not complete:
        session.rollback()
        check_foreign_keys(session)
        areas.clear()  # areas created in the rolled-back transaction are gone with it
    return complete


def _tenant_and_areas_exist(conn: Connection, tenant_id: int, area_ids: set[int]) -> bool:
    """Whether the tenant exists and every one of `area_ids` is one of its areas."""
    if conn.execute(select(Tenant.id).where(Tenant.id == tenant_id)).first() is None:
        return False
    return len(lookup(conn, Area.__table__.c.id, [], tenant_id, sorted(area_ids))) == len(area_ids)


def _reject_taken_serials(
    session: Session, tid: int, records: Sequence[tuple[int, MasterRecord]], out: BatchOutcome
) -> tuple[list[tuple[int, MasterRecord]], bool]:
    """The records whose meter serial is free or their own, and whether any was stored."""
    serials = [r.given["meter_serial"] for _, r in records if r.given.get("meter_serial")]
    if not serials:
        return list(records), False
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
    return kept, bool(owners)


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


# Columns whose values _insert_new passes through DriverInsert.bind itself.
_STAMPS = ("created_at", "updated_at")
_ACCOUNT_BOUND = (*_STAMPS, "service", "billing", "sanctioned_load_kw", "due_date")
_CONTACT_BOUND = ("created_at", "kind", "whatsapp", "is_primary")
_METER_BOUND = ("created_at", "kind")
_BILL_BOUND = (*_STAMPS, "status", "due_date")


def _insert_new(
    session: Session,
    d: TenantDefaults,
    new: Sequence[tuple[int, MasterRecord, str]],
    areas: AreaCache,
    now: datetime,
    consumer_ids: dict[str, int],
) -> None:
    """Insert `new` with their consumers, phones, meters and open bills.

    `consumer_ids`: consumers already stored for some of these accounts (by import key),
    reused instead of inserted. Plain tuples of values the driver takes as they are go
    through its executemany (or COPY; see store/driver_sql.py), with primary keys
    reserved beforehand, so no lookup is needed to learn the new rows' ids.
    """
    conn = session.connection()
    tid = d.tenant_id
    # In index order (account number here, phone and serial below): a sheet's keys come
    # in any order, and in order consecutive inserts land on the same index pages
    # (docs/benchmarks.md). The ids reserved below follow this order.
    new = sorted(new, key=lambda item: item[1].account)
    fresh = [rec for _, rec, _ in new if rec.account not in consumer_ids]
    if fresh:
        language = d.language
        ins = DriverInsert(conn, Consumer.__table__, ("id", *CONSUMER_COLUMNS), _STAMPS)
        at = ins.bind("created_at", now)
        ids = reserve_ids(conn, Consumer.__table__, len(fresh))
        ins.execute(
            conn,
            [
                (
                    cid,
                    tid,
                    rec.given.get("name") or "",
                    rec.given.get("language") or language,
                    rec.account,
                    at,
                    at,
                )
                for cid, rec in zip(ids, fresh, strict=True)
            ],
        )
        consumer_ids.update(zip([r.account for r in fresh], ids, strict=True))
    accounts = DriverInsert(conn, Account.__table__, ("id", *ACCOUNT_COLUMNS), _ACCOUNT_BOUND)
    at = accounts.bind("created_at", now)
    services, billings = accounts.binder("service"), accounts.binder("billing")
    loads, dates = accounts.binder("sanctioned_load_kw"), accounts.binder("due_date")
    account_ids = reserve_ids(conn, Account.__table__, len(new))
    account_rows: list[tuple[Any, ...]] = []
    kinds: list[Service] = []
    resolve = areas.resolve
    for account_id, (_, rec, digest) in zip(account_ids, new, strict=True):
        g = rec.given
        service = g.get("service") or d.service
        kinds.append(service)
        path = g.get("area_path")
        account_rows.append(
            (
                account_id,
                tid,
                consumer_ids[rec.account],
                rec.account,
                services[service],
                billings[g.get("billing") or d.billing],
                g.get("address"),
                g.get("apartment"),
                loads[g.get("sanctioned_load_kw")],
                resolve(session, d, path) if path else None,
                g.get("dues_minor") or 0,
                dates[g.get("due_date")],
                g.get("balance_minor"),
                digest,
                at,
                at,
            )
        )
    accounts.execute(conn, account_rows)
    contact_ins = DriverInsert(conn, ContactPoint.__table__, CONTACT_COLUMNS, _CONTACT_BOUND)
    meter_ins = DriverInsert(conn, Meter.__table__, METER_COLUMNS, _METER_BOUND)
    bill_ins = DriverInsert(conn, Bill.__table__, BILL_COLUMNS, _BILL_BOUND)
    at = contact_ins.bind("created_at", now)
    phone = contact_ins.bind("kind", ContactKind.phone)
    unknown = contact_ins.bind("whatsapp", Reachability.unknown)
    first, other = contact_ins.bind("is_primary", True), contact_ins.bind("is_primary", False)
    meter_kinds = meter_ins.binder("kind")
    open_, bill_dates = bill_ins.bind("status", BillStatus.open), bill_ins.binder("due_date")
    contacts, meters, bills = [], [], []
    for account_id, (_, rec, _), kind in zip(account_ids, new, kinds, strict=True):
        g = rec.given
        consumer_id = consumer_ids[rec.account]
        for i, number in enumerate(g.get("phones") or ()):
            contacts.append((tid, consumer_id, phone, number, other if i else first, unknown, at))
        serial = g.get("meter_serial")
        if serial:
            meters.append((tid, account_id, serial, meter_kinds[kind], at))
        dues: int = g.get("dues_minor") or 0
        if dues > 0:
            due = g.get("due_date")
            bills.append((tid, account_id, bill_period(due), dues, bill_dates[due], open_, at, at))
    contacts.sort(key=lambda row: row[3])
    meters.sort(key=lambda row: row[2])
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


@lru_cache(maxsize=4096)
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
