"""The master-data import use case: a sheet in, consumers and accounts upserted, a report out.

Rows are read as a stream and written in batches, each in its own transaction together
with its rejected rows and the run's running totals. Killing an import loses at most
the batch in flight, and running the file again converges on the same state, because
every write is an upsert keyed by (tenant, account number).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from meterline.config import IMPORT_BATCH_ROWS
from meterline.domain.enums import Billing, ImportStatus, Service, TenantKind
from meterline.domain.master_row import MasterRecord, RowContext
from meterline.gc_startup import fewer_collections
from meterline.ingest.master_sheet import (
    Issue,
    SheetInfo,
    SheetRefused,
    SheetRequest,
    Verdicts,
    read_sheet,
    read_sheet_in_subprocess,
)
from meterline.services.errors import ServiceError
from meterline.services.tenants import currency_exponent, get_tenant
from meterline.store.bulk_connection import bulk_connection, foreign_keys_unchecked
from meterline.store.master_data import (
    AREA_LEVELS_COOP,
    AREA_LEVELS_UTILITY,
    AreaCache,
    TenantDefaults,
    apply_batch,
)
from meterline.store.models import ImportRowError, ImportRun, Tenant
from meterline.store.planner_statistics import refresh_master_statistics

# Below this a second process costs more to start than it saves.
PARALLEL_FROM_BYTES = 4 * 1024 * 1024


class ImportFailed(ServiceError):
    """The file as a whole was refused; nothing it contains was stored."""

    def __init__(self, message: str, report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ImportReport:
    import_id: int | None
    filename: str
    dry_run: bool
    status: str = ImportStatus.running.value
    format: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    columns: dict[str, str] = field(default_factory=dict)  # header as written -> field
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    skipped: int = 0
    blank_rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tenant_defaults(tenant: Tenant) -> TenantDefaults:
    coop = tenant.kind == TenantKind.cooperative
    return TenantDefaults(
        tenant_id=tenant.id,
        service=Service.savings if coop else Service.electricity,
        billing=Billing.postpaid,
        language=tenant.default_language,
        area_levels=AREA_LEVELS_COOP if coop else AREA_LEVELS_UTILITY,
    )


class _Writer:
    """Applies verdicts batch by batch: each batch, its issues and the totals in one transaction."""

    def __init__(
        self,
        factory: Callable[[], Session],
        tenant: Tenant,
        report: ImportReport,
        batch_size: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.factory = factory
        self.report = report
        self.batch_size = batch_size
        self.clock = clock
        self.defaults = tenant_defaults(tenant)
        self.areas = AreaCache()
        self.batch: list[tuple[int, MasterRecord]] = []
        self.issues: list[Issue] = []
        self.batches = 0
        # Insert without looking stored keys up while the file's batches keep finding
        # none (a first import, or past the part a killed run had stored): apply_batch
        # falls back to the lookups by itself when a key turns out to exist.
        self.assume_new = False

    def take(self, verdicts: Verdicts) -> None:
        self.report.blank_rows += verdicts.blank_rows
        self.issues.extend(verdicts.issues)
        for item in verdicts.records:
            self.batch.append(item)
            if len(self.batch) >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        """Apply the pending batch and its issues in one transaction (rolled back on a dry run)."""
        if not self.batch and not self.issues:
            return
        rep = self.report
        with self.factory() as session, self._checks(session):
            try:
                outcome = apply_batch(
                    session,
                    self.defaults,
                    self.batch,
                    self.areas,
                    self.clock(),
                    assume_new=self.assume_new,
                )
                # The store names a field; the report names the column as the sheet heads it.
                headers = {f: header for header, f in rep.columns.items()}
                for row, column, value, reason in outcome.rejected:
                    column = headers.get(column, column) if column else column
                    self.issues.append(Issue(row, column, value, reason))
                rejected = [i for i in self.issues if not i.skipped]
                skipped = [i for i in self.issues if i.skipped]
                totals = {
                    "inserted": rep.inserted + outcome.inserted,
                    "updated": rep.updated + outcome.updated,
                    "unchanged": rep.unchanged + outcome.unchanged,
                    "rejected": rep.rejected + len({i.row for i in rejected}),
                    "skipped": rep.skipped + len(skipped),
                }
                if rep.dry_run:
                    # Undo the rows, then keep the report: a stored dry run reads like a real one.
                    session.rollback()
                    self.areas.clear()  # ids of rolled-back areas must not be reused
                self._store_issues(session)
                run = session.get(ImportRun, rep.import_id)
                assert run is not None
                for k, v in totals.items():
                    setattr(run, k, v)
                session.commit()
            except BaseException:
                session.rollback()
                self.areas.clear()
                raise
        for k, v in totals.items():
            setattr(rep, k, v)
        self.assume_new = outcome.all_new
        rep.errors.extend(_public(i) for i in rejected)
        rep.skipped_rows.extend(_public(i) for i in skipped)
        self.batch = []
        self.issues = []
        self.batches += 1
        self._refresh_statistics()

    def _checks(self, session: Session) -> AbstractContextManager[None]:
        """A batch tried as all new runs without foreign key checks on SQLite: it checks
        the references of what it inserts itself (store/master_data.py, `_insert_all`)."""
        return foreign_keys_unchecked(session) if self.assume_new else nullcontext()

    def _refresh_statistics(self) -> None:
        """Planner statistics after batches 1, 4, 16, 64, ... of an import, on both
        databases (store/planner_statistics.py says what each does without them)."""
        n = self.batches
        if n & (n - 1) or n.bit_length() % 2 == 0:  # only 1, 4, 16, 64, ...
            return
        with self.factory() as session:
            refresh_master_statistics(session)
            session.commit()

    def _store_issues(self, session: Session) -> None:
        if not self.issues:
            return
        rows = [
            {
                "import_run_id": self.report.import_id,
                "row": i.row,
                "column": i.column,
                "value": i.value,
                "reason": i.reason,
                "skipped": i.skipped,
                "raw": i.raw,
            }
            for i in self.issues
        ]
        session.execute(insert(ImportRowError), rows)


def _public(i: Issue | ImportRowError) -> dict[str, Any]:
    """An issue as the report shows it, whether just found or loaded from the database."""
    return {"row": i.row, "column": i.column, "value": i.value, "reason": i.reason}


def import_master(
    factory: sessionmaker[Session],
    tenant_slug: str,
    path: Path,
    *,
    original_name: str | None = None,
    dry_run: bool = False,
    mapping: Mapping[str, str] | None = None,
    sheet: str | None = None,
    batch_size: int = IMPORT_BATCH_ROWS,
    max_bytes: int = 100 * 1024 * 1024,
    started_by: str | None = None,
    parallel: bool | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportReport:
    """Import one master sheet for a tenant. Raises ImportFailed when the file is refused.

    `parallel` reads the sheet in a second process while this one writes; by default
    only for files big enough to repay starting it.
    """
    name = original_name or path.name
    with factory() as session, session.begin():
        tenant = get_tenant(session, tenant_slug)
        session.expunge(tenant)
        digest = sha256_of(path) if path.exists() else ""
        run = ImportRun(
            tenant_id=tenant.id,
            filename=name,
            file_sha256=digest,
            dry_run=dry_run,
            status=ImportStatus.running,
            started_by=started_by,
            started_at=clock(),
        )
        session.add(run)
        session.flush()
        report = ImportReport(import_id=run.id, filename=name, dry_run=dry_run)
    defaults = tenant_defaults(tenant)
    request = SheetRequest(
        path=path,
        name=name,
        max_bytes=max_bytes,
        sheet=sheet,
        mapping=dict(mapping) if mapping else None,
        ctx=RowContext(
            phone_region=tenant.phone_region,
            currency_exponent=currency_exponent(tenant.currency),
            default_service=defaults.service,
            default_billing=defaults.billing,
            default_language=defaults.language,
        ),
    )
    if parallel is None:
        parallel = path.exists() and path.stat().st_size >= PARALLEL_FROM_BYTES
    with factory() as session:
        engine = session.get_bind()
    assert isinstance(engine, Engine)
    try:
        # Every batch through one connection, set up for bulk writes (store/bulk_connection.py).
        with fewer_collections(), bulk_connection(engine) as conn:
            writer = _Writer(partial(factory, bind=conn), tenant, report, batch_size, clock)
            stream = read_sheet_in_subprocess(request) if parallel else read_sheet(request)
            for item in stream:
                if isinstance(item, SheetInfo):
                    report.format, report.sheet = item.format, item.sheet
                    report.warnings.extend(item.warnings)
                    report.header_row, report.columns = item.header_row, item.columns
                else:
                    writer.take(item)
            writer.flush()
    except SheetRefused as exc:
        _finish(factory, report, ImportStatus.failed, exc.message, clock)
        raise ImportFailed(exc.message, report) from None
    except BaseException as exc:
        _finish(factory, report, ImportStatus.failed, f"import stopped: {exc}", clock)
        raise
    _finish(factory, report, ImportStatus.done, None, clock)
    return report


def _finish(
    factory: sessionmaker[Session],
    report: ImportReport,
    status: ImportStatus,
    message: str | None,
    clock: Callable[[], datetime],
) -> None:
    report.status = status.value
    report.message = message
    with factory() as session, session.begin():
        run = session.get(ImportRun, report.import_id)
        if run is None:
            return
        run.status = status
        run.message = message
        run.finished_at = clock()
        run.details = {
            "format": report.format,
            "sheet": report.sheet,
            "header_row": report.header_row,
            "columns": report.columns,
            "warnings": report.warnings,
            "blank_rows": report.blank_rows,
        }


def _run_of(session: Session, tenant_id: int, import_id: int) -> ImportRun | None:
    return session.scalar(
        select(ImportRun).where(ImportRun.id == import_id, ImportRun.tenant_id == tenant_id)
    )


def load_report(session: Session, tenant_id: int, import_id: int) -> ImportReport | None:
    """A stored run's report, scoped to its tenant."""
    run = _run_of(session, tenant_id, import_id)
    if run is None:
        return None
    details = run.details or {}
    issues = session.scalars(
        select(ImportRowError)
        .where(ImportRowError.import_run_id == run.id)
        .order_by(ImportRowError.row)
    ).all()
    return ImportReport(
        import_id=run.id,
        filename=run.filename,
        dry_run=run.dry_run,
        status=run.status.value,
        format=details.get("format"),
        sheet=details.get("sheet"),
        header_row=details.get("header_row"),
        columns=details.get("columns") or {},
        inserted=run.inserted,
        updated=run.updated,
        unchanged=run.unchanged,
        rejected=run.rejected,
        skipped=run.skipped,
        blank_rows=details.get("blank_rows") or 0,
        errors=[_public(i) for i in issues if not i.skipped],
        skipped_rows=[_public(i) for i in issues if i.skipped],
        warnings=details.get("warnings") or [],
        message=run.message,
    )


def rejected_rows_csv(session: Session, tenant_id: int, import_id: int) -> str | None:
    """The rejected rows as they were, plus the reason, ready to fix and upload again."""
    run = _run_of(session, tenant_id, import_id)
    if run is None:
        return None
    issues = session.scalars(
        select(ImportRowError)
        .where(ImportRowError.import_run_id == run.id, ImportRowError.skipped.is_(False))
        .order_by(ImportRowError.row, ImportRowError.id)
    ).all()
    buf = io.StringIO()
    writer = csv.writer(buf)
    columns = list(((run.details or {}).get("columns") or {}).keys())
    writer.writerow(["row", "column", "reason", *columns])
    by_row: dict[int, list[ImportRowError]] = {}
    for i in issues:
        by_row.setdefault(i.row, []).append(i)
    for row, items in by_row.items():
        reasons = "; ".join(f"{i.column}: {i.reason}" if i.column else i.reason for i in items)
        cols = ", ".join(sorted({i.column for i in items if i.column}))
        writer.writerow([row, cols, reasons, *(items[0].raw or [])])
    return buf.getvalue()
