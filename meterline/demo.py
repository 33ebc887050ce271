"""`meterline demo`: a demo electricity utility on SQLite, filled the way a real one is.

The consumer master is generated as a real .xlsx (title row, a few bad rows, a totals
row) and imported through `import_master`, the same path as the CLI and the API, so
the demo shows the importer's report as an operator would see it. Every run starts
from an empty database, so the demo is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from meterline.domain.enums import Role
from meterline.ingest.sample_sheet import bad_row_count, write_xlsx
from meterline.services.importer import ImportReport, import_master
from meterline.services.security import create_operator
from meterline.services.tenants import create_tenant
from meterline.store.db import make_engine, make_session_factory
from meterline.store.migrate import upgrade

TENANT_SLUG = "demo-electric"
TENANT_NAME = "Aligarh Electricity Office (demo)"
TIMEZONE = "Asia/Kolkata"
USERNAME = "admin"
# A local demo on the operator's own machine: a fixed, printed password is the point.
PASSWORD = "meterline-demo"
SHEET_NAME = "consumer-master.xlsx"
SEED = 2024


@dataclass
class DemoInfo:
    database_url: str
    username: str
    password: str
    tenant_slug: str
    sheet: Path
    consumers: int
    report: ImportReport

    def summary(self) -> str:
        r = self.report
        lines = [
            f"demo tenant {self.tenant_slug!r}: {self.database_url}",
            f"master sheet: {self.sheet} ({self.consumers} consumers"
            f" + {bad_row_count(self.consumers)} deliberately bad rows)",
            f"import: {r.inserted} inserted, {r.updated} updated, {r.rejected} rejected,"
            f" {r.skipped} skipped (totals row)",
        ]
        for e in r.errors[:5]:
            col = f" [{e['column']}]" if e["column"] else ""
            lines.append(f"  row {e['row']}{col}: {e['reason']}")
        if len(r.errors) > 5:
            lines.append(f"  ... and {len(r.errors) - 5} more rejected rows")
        lines.append(f"login: {self.username} / {self.password}")
        return "\n".join(lines)


def prepare_demo(directory: Path, consumers: int = 3000, today: date | None = None) -> DemoInfo:
    """Create (or recreate) the demo database in `directory` and import a generated sheet."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "meterline.db"
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    upgrade(url)

    # "Today" where the utility is, so due dates fall either side of the tenant's today.
    today = today or datetime.now(ZoneInfo(TIMEZONE)).date()
    sheet = write_xlsx(
        directory / SHEET_NAME, consumers, seed=SEED, bad_rows=True, totals=True, today=today
    )

    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        with factory() as session, session.begin():
            tenant = create_tenant(
                session,
                slug=TENANT_SLUG,
                name=TENANT_NAME,
                country="IN",
                currency="INR",
                timezone=TIMEZONE,
                languages=["hi", "en", "bn", "ru"],
            )
            create_operator(session, tenant, USERNAME, PASSWORD, Role.admin, language="en")
        report = import_master(
            factory,
            TENANT_SLUG,
            sheet,
            started_by=USERNAME,
            max_bytes=max(sheet.stat().st_size, 100 * 1024 * 1024),
        )
    finally:
        engine.dispose()
    return DemoInfo(
        database_url=url,
        username=USERNAME,
        password=PASSWORD,
        tenant_slug=TENANT_SLUG,
        sheet=sheet,
        consumers=consumers,
        report=report,
    )
