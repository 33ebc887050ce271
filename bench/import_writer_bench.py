"""The import's writing side alone: CPU per row of `_Writer` fed verdicts read beforehand.

    python bench/import_writer_bench.py --file /tmp/meterline-bench/master-100000.csv
    python bench/import_writer_bench.py --file ... --pg postgresql://postgres@127.0.0.1:5432/test

The sheet is read once, untimed, by the importer's own reading stage (`read_sheet`) in
this process; then a fresh database gets a first import of those verdicts and a
re-import of the same verdicts (all unchanged), each timed by this process's CPU
(`time.process_time`: the writing process's share of an import, without the reading
child and without unpickling). On PostgreSQL the server's work is not in the CPU figure;
the wall time shows it. `--profile FILE` writes a cProfile of the first import.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import text

from meterline.domain.enums import Billing, ImportStatus, Service
from meterline.domain.master_row import RowContext
from meterline.ingest.master_sheet import SheetRequest, Verdicts, read_sheet
from meterline.services.importer import ImportReport, _Writer
from meterline.services.tenants import create_tenant, get_tenant
from meterline.store.bulk_connection import bulk_connection
from meterline.store.db import make_engine, make_session_factory, normalise_url
from meterline.store.migrate import upgrade_engine
from meterline.store.models import ImportRun

BATCH = 2000
SLUG = "bench"


def read_verdicts(path: Path) -> list[Verdicts]:
    ctx = RowContext("IN", 2, Service.electricity, Billing.postpaid, "hi")
    req = SheetRequest(path, path.name, 1 << 40, None, None, ctx)
    return [v for v in read_sheet(req) if isinstance(v, Verdicts)]


def write_once(
    factory: Any, verdicts: list[Verdicts], profile: str | None, batch: int = BATCH
) -> tuple[float, float]:
    """(CPU s, wall s) of one import of `verdicts` through a fresh `_Writer`."""
    with factory() as session, session.begin():
        tenant = get_tenant(session, SLUG)
        session.expunge(tenant)
        run = ImportRun(
            tenant_id=tenant.id,
            filename="bench",
            file_sha256="",
            dry_run=False,
            status=ImportStatus.running,
            started_at=datetime.now(UTC),
        )
        session.add(run)
        session.flush()
        report = ImportReport(import_id=run.id, filename="bench", dry_run=False)

    def feed() -> None:
        # As import_master does: every batch through one connection set up for bulk writes.
        with bulk_connection(factory.kw["bind"]) as conn:
            sessions = partial(factory, bind=conn)
            writer = _Writer(sessions, tenant, report, batch, lambda: datetime.now(UTC))
            for v in verdicts:
                writer.take(v)
            writer.flush()

    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        prof = cProfile.Profile()
        prof.runcall(feed)
        prof.dump_stats(profile)
    else:
        feed()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"  inserted {report.inserted}, unchanged {report.unchanged}, updated {report.updated}"
        f", rejected {report.rejected}",
        flush=True,
    )
    return cpu, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--file", type=Path, required=True)
    p.add_argument("--pg", help="PostgreSQL URL (a private schema, dropped after); else SQLite")
    p.add_argument("--profile", help="write a cProfile of the first import here")
    p.add_argument("--profile-again", help="write a cProfile of the re-import here")
    p.add_argument("--batch", type=int, default=BATCH, help="rows per transaction")
    p.add_argument(
        "--pragma",
        action="append",
        default=[],
        help="SQLite: a PRAGMA run on every new connection, e.g. cache_size=-131072",
    )
    opts = p.parse_args()

    verdicts = read_verdicts(opts.file)
    rows = sum(len(v.records) for v in verdicts)
    print(f"{rows} records read from {opts.file}", flush=True)

    cleanup: Any = None
    if opts.pg:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        admin = create_engine(normalise_url(opts.pg), isolation_level="AUTOCOMMIT")
        schema = f"wbench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(normalise_url(opts.pg))
            .update_query_dict({"options": f"-csearch_path={schema},public"})
            .render_as_string(hide_password=False)
        )

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    else:
        tmp = tempfile.mkdtemp(prefix="writer-bench-")
        url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    try:
        engine = make_engine(url)
        if opts.pragma:
            from sqlalchemy import event

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                for pragma in opts.pragma:
                    dbapi_conn.execute(f"PRAGMA {pragma}")

        upgrade_engine(engine)
        factory = make_session_factory(engine)
        with factory() as session, session.begin():
            create_tenant(
                session,
                slug=SLUG,
                name="Bench",
                country="IN",
                currency="INR",
                timezone="Asia/Kolkata",
            )
        for label, prof in (("first import", opts.profile), ("re-import", opts.profile_again)):
            cpu, wall = write_once(factory, verdicts, prof, opts.batch)
            print(
                f"{label}: {cpu:.2f} CPU s, {wall:.2f} wall s, "
                f"{cpu / rows * 1e6:.1f} CPU µs/row, {wall / rows * 1e6:.1f} wall µs/row",
                flush=True,
            )
        engine.dispose()
    finally:
        if cleanup:
            cleanup()
    sys.exit(0)


if __name__ == "__main__":
    main()
