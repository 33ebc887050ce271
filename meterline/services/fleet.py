"""A demo fleet for a tenant, in bulk: consumers, prepaid accounts and their meters.

The simulator can only send events for meters that exist. This writes N of them through
the importer's batch writer (`store.master_data.apply_batch`), so a generated fleet is
stored exactly as an imported one would be: one consumer with a mobile number and a
language, one prepaid electricity account with a sanctioned load and an opening balance,
one meter. Serials, loads and balances come from `domain.demo_fleet`, as the simulator's do. Running
it again with the same prefix converges (accounts are upserted by number).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from meterline.domain.demo_fleet import (
    fleet_account,
    fleet_serial,
    opening_balance_minor,
    sanctioned_load,
)
from meterline.domain.enums import Billing, Service
from meterline.domain.master_row import MasterRecord
from meterline.services.importer import tenant_defaults
from meterline.services.tenants import get_tenant
from meterline.store.master_data import AreaCache, apply_batch
from meterline.store.planner_statistics import refresh_master_statistics

FEEDERS = ("Feeder 11kV Ramghat", "Feeder 11kV Quarsi", "Feeder 11kV Sasni Gate")


@dataclass
class FleetReport:
    tenant: str
    prefix: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    seconds: float = 0.0


def fleet_record(i: int, prefix: str, languages: list[str]) -> MasterRecord:
    serial = fleet_serial(prefix, i)
    return MasterRecord(
        account=fleet_account(prefix, i),
        given={
            "name": f"Consumer {i}",
            # 98xxxxxxxx: a valid Indian mobile range, distinct per meter up to 10^8.
            "phones": [f"+9198{i % 10**8:08d}"],
            "language": languages[i % len(languages)],
            "service": Service.electricity,
            "billing": Billing.prepaid,
            "sanctioned_load_kw": sanctioned_load(i),
            "balance_minor": opening_balance_minor(i),
            "meter_serial": serial,
            "area_path": ["Aligarh Urban", "EDD-I Aligarh", FEEDERS[i % len(FEEDERS)]],
        },
    )


def create_fleet(
    factory: sessionmaker[Session],
    tenant_slug: str,
    count: int,
    *,
    prefix: str = "SIM",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FleetReport:
    """Create (or bring up to date) `count` prepaid meters for the tenant."""
    import time

    if count < 1:
        raise ValueError("count must be at least 1")
    start = time.perf_counter()
    with factory() as session:
        tenant = get_tenant(session, tenant_slug)
        defaults = tenant_defaults(tenant)
        languages = tenant.language_list or ["en"]
    areas = AreaCache()
    report = FleetReport(tenant=tenant_slug, prefix=prefix)
    statistics = _Statistics()
    for lo in range(0, count, batch_size):
        batch = [
            (i + 1, fleet_record(i, prefix, languages))
            for i in range(lo, min(count, lo + batch_size))
        ]
        with factory() as session, session.begin():
            out = apply_batch(session, defaults, batch, areas, clock())
            statistics.after(session, out.inserted)
        report.created += out.inserted
        report.updated += out.updated
        report.unchanged += out.unchanged
        if progress:
            progress(lo + len(batch))
    if statistics.written:
        with factory() as session, session.begin():
            statistics.refresh(session)
    report.seconds = time.perf_counter() - start
    return report


class _Statistics:
    """Keeps the planner statistics of the fleet's tables up to date as they grow.

    Each batch looks its accounts, consumers and serials up by key (`IN` lists of 1,000).
    Planned with the statistics of a table a fraction of its size (autovacuum analyses
    late, or not at all when it is off), PostgreSQL scans the whole tenant's index range
    and filters it: every lookup then costs a pass over the table, and a million-meter
    fleet takes hours instead of minutes. SQLite without statistics reads a consumer's
    page through the tenant's whole index (store/planner_statistics.py). ANALYZE whenever
    the tables have doubled since the last one (a few dozen times for a million rows,
    ~0.1 s each on PostgreSQL, milliseconds on SQLite), and once at the end, so the
    events' lookups by serial are planned right from the start too."""

    def __init__(self) -> None:
        self.written = 0
        self.at_last = 0

    def after(self, session: Session, inserted: int) -> None:
        self.written += inserted
        if self.written >= 2 * max(self.at_last, 5000):
            self.refresh(session)

    def refresh(self, session: Session) -> None:
        refresh_master_statistics(session)
        self.at_last = self.written
