"""A backend-independent picture of the master data, keyed by natural keys (not ids)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from meterline.store.models import Account, Area, Consumer, ContactPoint, Meter


def master_snapshot(sessions: sessionmaker[Session], tenant_id: int) -> dict[str, Any]:
    with sessions() as s:
        areas = {a.id: a.path for a in s.scalars(select(Area).where(Area.tenant_id == tenant_id))}
        phones: dict[int, list[tuple[str, bool]]] = {}
        for c in s.scalars(select(ContactPoint).where(ContactPoint.tenant_id == tenant_id)):
            phones.setdefault(c.consumer_id, []).append((c.value, c.is_primary))
        meters: dict[int, list[str]] = {}
        for m in s.scalars(select(Meter).where(Meter.tenant_id == tenant_id)):
            meters.setdefault(m.account_id or 0, []).append(m.serial)
        out: dict[str, Any] = {}
        rows = s.execute(
            select(Account, Consumer)
            .join(Consumer, Account.consumer_id == Consumer.id)
            .where(Account.tenant_id == tenant_id)
        )
        for acc, con in rows:
            out[acc.number] = (
                con.name,
                con.preferred_language,
                sorted(phones.get(con.id, [])),
                acc.service.value,
                acc.billing.value,
                acc.address,
                acc.apartment,
                str(acc.sanctioned_load_kw) if acc.sanctioned_load_kw is not None else None,
                areas.get(acc.area_id) if acc.area_id else None,
                acc.dues_minor,
                acc.due_date.isoformat() if acc.due_date else None,
                acc.balance_minor,
                sorted(meters.get(acc.id, [])),
            )
        out["__areas__"] = sorted(areas.values())
        return out


def count(sessions: sessionmaker[Session], model: type, tenant_id: int) -> int:
    from sqlalchemy import func

    with sessions() as s:
        return int(
            s.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))
            or 0
        )  # type: ignore[attr-defined]
