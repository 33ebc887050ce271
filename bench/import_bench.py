"""Master-data import benchmark: rows/s and peak memory, against a plain-insert baseline.

    python bench/import_bench.py --rows 1000000 --backend both --formats csv,xlsx

For each format the sheet is generated once (not timed). Each measured step then runs
in a fresh child process, so its peak RSS (VmHWM, reset after setup) is its own:

  read      the spreadsheet reader alone (open the file, iterate every row)
  parse     the importer's reading stage (reader, header, read_row, in-file duplicate
            checks) in one process: the CPU any import of this file must spend
  import    `import_master` into a freshly migrated database (the thing measured);
            for files of 4 MB or more it reads in a second process while it writes
  baseline  the same reading stage, run the same way, with its accepted rows written by
            a plain executemany (SQLite) or COPY (PostgreSQL) into one bare table with
            the same columns, one transaction per batch of the importer's batch size

CPU is user + system of the measuring process and its children (PostgreSQL's server
work is not in it); peak is the measuring process's VmHWM (reset after setup) plus its
largest child's maximum RSS.

import / baseline is the figure to watch: both run on the same machine in the same
run, so the ratio holds when absolute figures move with the machine's load. Where the
machine drifts within minutes, `--repeat N` runs the import and its baseline N times as
pairs, the order alternating (import first in pair 1, baseline first in pair 2, ...),
and prints each pair's ratio and their median.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import platform
import pstats
import resource
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from meterline.config import Settings
from meterline.ingest import sample_sheet

TARGETS = {"csv": 20_000, "xlsx": 10_000}  # rows/s on SQLite, 2-core machine
PEAK_TARGET_MB = 500
# The importer's own batch (METERLINE_IMPORT_BATCH_SIZE); the baseline commits as often.
BATCH = Settings().import_batch_size
TODAY = date(2025, 3, 15)  # fixed, so every run generates the same file
SLUG = "bench"
BARE_COLUMNS = (
    "account", "name", "phones", "area_path", "address", "service", "billing",
    "meter_serial", "sanctioned_load_kw", "dues_minor", "due_date", "balance_minor", "language",
)  # fmt: skip


@dataclass
class Result:
    backend: str
    fmt: str
    step: str
    rows: int
    seconds: float
    cpu: float  # of the measuring process only (PostgreSQL's server work is not in it)
    peak_mb: float
    start_mb: float
    note: str = ""
    pair: int = 0  # with --repeat: which import/baseline pair this step belongs to

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.rows / self.cpu if self.cpu else 0.0


# --- measuring in a child process --------------------------------------------------


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children.

    Steadier than wall time on a busy machine. The importer reads big sheets in a child
    process; that child's CPU counts here once it has been waited for.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def _children_peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so the
    # peak reported is the measured step's, not the setup's.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _child(step: str, args: dict[str, Any], conn: Any) -> None:
    try:
        setup = STEPS[step]
        run = setup(args)  # untimed: imports, migrations, tenant
        _reset_peak()
        start_kb = _rss_kb("VmRSS")
        cpu0 = _cpu()
        t0 = time.perf_counter()
        if args.get("profile"):
            prof = cProfile.Profile()
            rows, note = prof.runcall(run)
        else:
            rows, note = run()
        seconds = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        # Peak of this process plus the largest child's: an upper bound on the pair's
        # memory at any one moment (the reading child and the writing parent).
        peak_kb = _rss_kb("VmHWM") + _children_peak_kb()
        if args.get("profile"):
            prof.dump_stats(args["profile"])
        conn.send(("ok", rows, seconds, cpu, peak_kb / 1024, start_kb / 1024, note))
    except BaseException as exc:  # report, don't hang the parent
        import traceback

        conn.send(("error", traceback.format_exc(), 0, 0, 0, 0, repr(exc)))
    finally:
        conn.close()


def measure(step: str, backend: str, fmt: str, args: dict[str, Any]) -> Result:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(step, args, child))
    proc.start()
    child.close()
    status, rows, seconds, cpu, peak, start, note = parent.recv()
    proc.join()
    if status != "ok":
        raise SystemExit(f"{step} {backend} {fmt} failed:\n{rows}")
    return Result(backend, fmt, step, rows, seconds, cpu, peak, start, note)


# --- the steps (each returns a zero-argument callable: the timed part) ---------------


def _open(path: Path) -> Any:
    from meterline.ingest.readers import open_table

    return open_table(path, max_bytes=1 << 40, original_name=path.name)


def _request(path: Path) -> Any:
    from meterline.domain.enums import Billing, Service
    from meterline.domain.master_row import RowContext
    from meterline.ingest.master_sheet import SheetRequest

    ctx = RowContext("IN", 2, Service.electricity, Billing.postpaid, "hi")
    return SheetRequest(path, path.name, 1 << 40, None, None, ctx)


def _parsed_rows(path: Path, parallel: bool) -> Iterator[tuple[Any, ...]]:
    """The records the importer's reading stage accepts, as flat tuples.

    The same stage as `import_master` (reader, header, read_row, in-file duplicate
    checks), in a second process when `parallel`, as the importer does for big files.
    """
    from meterline.ingest.master_sheet import Verdicts, read_sheet, read_sheet_in_subprocess

    req = _request(path)
    for item in read_sheet_in_subprocess(req) if parallel else read_sheet(req):
        if not isinstance(item, Verdicts):
            continue
        for _, rec in item.records:
            g = rec.given
            load = g.get("sanctioned_load_kw")
            yield (
                rec.account, g.get("name"), ",".join(rec.phones), " / ".join(rec.area_path),
                g.get("address"), g.get("service"), g.get("billing"), g.get("meter_serial"),
                None if load is None else str(load), g.get("dues_minor") or 0, g.get("due_date"),
                g.get("balance_minor"), g.get("language"),
            )  # fmt: skip


def setup_read(args: dict[str, Any]) -> Callable[[], tuple[int, str]]:
    path = Path(args["path"])
    import meterline.ingest.readers  # noqa: F401  (imported before the clock starts)

    def run() -> tuple[int, str]:
        n = 0
        with _open(path) as table:
            for _ in table.rows():
                n += 1
        return n, ""

    return run


def setup_parse(args: dict[str, Any]) -> Callable[[], tuple[int, str]]:
    path = Path(args["path"])
    rows = int(args["data_rows"])

    def run() -> tuple[int, str]:
        good = sum(1 for _ in _parsed_rows(path, parallel=False))
        return rows, f"{good} accepted, one process"

    return run


def _parallel(path: Path) -> bool:
    from meterline.services.importer import PARALLEL_FROM_BYTES

    return path.stat().st_size >= PARALLEL_FROM_BYTES


def _fresh_db(args: dict[str, Any]) -> Any:
    from meterline.store.db import make_engine
    from meterline.store.migrate import upgrade_engine

    engine = make_engine(args["url"])
    upgrade_engine(engine)
    return engine


def setup_import(args: dict[str, Any]) -> Callable[[], tuple[int, str]]:
    from meterline.services.importer import import_master
    from meterline.services.tenants import create_tenant
    from meterline.store.db import make_session_factory

    engine = _fresh_db(args)
    factory = make_session_factory(engine)
    with factory() as session, session.begin():
        create_tenant(
            session, slug=SLUG, name="Bench", country="IN", currency="INR", timezone="Asia/Kolkata"
        )
    path = Path(args["path"])
    rows = int(args["data_rows"])

    def run() -> tuple[int, str]:
        r = import_master(factory, SLUG, path, max_bytes=1 << 40, batch_size=BATCH)
        how = "two processes" if _parallel(path) else "one process"
        return rows, f"{r.inserted} inserted, {r.rejected} rejected, {r.skipped} skipped; {how}"

    return run


def setup_baseline(args: dict[str, Any]) -> Callable[[], tuple[int, str]]:
    path = Path(args["path"])
    rows = int(args["data_rows"])
    cols = ", ".join(BARE_COLUMNS)
    ddl = (
        "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, account VARCHAR(64), name VARCHAR(300),"
        " phones VARCHAR(500), area_path VARCHAR(1000), address VARCHAR(500),"
        " service VARCHAR(20), billing VARCHAR(20), meter_serial VARCHAR(64),"
        " sanctioned_load_kw NUMERIC(10,3), dues_minor BIGINT, due_date DATE,"
        " balance_minor BIGINT, language VARCHAR(8))"
    )
    import meterline.ingest.master_sheet  # noqa: F401

    if args["backend"] == "sqlite":
        db = sqlite3.connect(args["file"])
        db.execute("PRAGMA journal_mode=WAL")  # the same pragmas as meterline.store.db
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(ddl)
        db.commit()
        sql = f"INSERT INTO bench_rows ({cols}) VALUES ({', '.join('?' * len(BARE_COLUMNS))})"

        def write(batch: list[tuple[Any, ...]]) -> None:
            db.executemany(sql, [_sqlite_values(r) for r in batch])
            db.commit()
    else:
        import psycopg

        pg = psycopg.connect(args["dsn"], options=f"-csearch_path={args['schema']},public")
        pg.execute(ddl.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))
        pg.commit()

        def write(batch: list[tuple[Any, ...]]) -> None:
            with pg.cursor() as cur, cur.copy(f"COPY bench_rows ({cols}) FROM STDIN") as copy:
                for r in batch:
                    copy.write_row(r)
            pg.commit()

    def run() -> tuple[int, str]:
        written, spent = 0, 0.0
        batch: list[tuple[Any, ...]] = []
        for r in _parsed_rows(path, parallel=_parallel(path)):
            batch.append(r)
            if len(batch) >= BATCH:
                t = time.perf_counter()
                write(batch)
                spent += time.perf_counter() - t
                written += len(batch)
                batch = []
        if batch:
            t = time.perf_counter()
            write(batch)
            spent += time.perf_counter() - t
            written += len(batch)
        how = "two processes" if _parallel(path) else "one process"
        return rows, f"{written} written, {spent:.1f}s in executemany/COPY; {how}"

    return run


def _sqlite_values(r: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.isoformat() if isinstance(v, date) else v for v in r)


STEPS: dict[str, Callable[[dict[str, Any]], Callable[[], tuple[int, str]]]] = {
    "read": setup_read,
    "parse": setup_parse,
    "import": setup_import,
    "baseline": setup_baseline,
}


# --- orchestration ---------------------------------------------------------------


def generate(workdir: Path, rows: int, fmt: str, reuse: bool) -> Path:
    path = workdir / f"master-{rows}.{fmt}"
    if reuse and path.exists():
        return path
    t = time.perf_counter()
    writer = sample_sheet.write_csv if fmt == "csv" else sample_sheet.write_xlsx
    writer(path, rows, bad_rows=True, totals=True, title=True, today=TODAY)
    size = path.stat().st_size / 1e6
    print(f"generated {path} ({size:.0f} MB) in {time.perf_counter() - t:.0f}s", flush=True)
    return path


def _pg_admin(pg_url: str) -> Any:
    from sqlalchemy import create_engine

    from meterline.store.db import normalise_url

    return create_engine(normalise_url(pg_url), isolation_level="AUTOCOMMIT")


def _pg_schema_url(pg_url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    from meterline.store.db import normalise_url

    url = make_url(normalise_url(pg_url)).update_query_dict(
        {"options": f"-csearch_path={schema},public"}
    )
    return url.render_as_string(hide_password=False)


def run_backend_step(
    step: str, backend: str, fmt: str, path: Path, data_rows: int, opts: argparse.Namespace
) -> Result:
    from sqlalchemy import text

    args: dict[str, Any] = {"path": str(path), "data_rows": data_rows, "backend": backend}
    if opts.profile and step == "import":
        args["profile"] = str(opts.workdir / f"import-{backend}-{fmt}.pstats")
    if backend == "sqlite":
        db = opts.workdir / f"bench-{step}-{fmt}.db"
        # The database, its WAL and shared memory, and the writers' lock (store/sqlite_lock.py).
        leftovers = [db, *(Path(f"{db}-{end}") for end in ("wal", "shm", "writers"))]
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        args |= {"url": f"sqlite:///{db}", "file": str(db)}
        try:
            return measure(step, backend, fmt, args)
        finally:
            if not opts.keep:
                for leftover in leftovers:
                    leftover.unlink(missing_ok=True)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin(opts.pg_url)
    with admin.connect() as conn:
        # The migration's trigram indexes need pg_trgm, kept in public as the tests do.
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    dsn = opts.pg_url.replace("postgresql+psycopg://", "postgresql://")
    args |= {"url": _pg_schema_url(opts.pg_url, schema), "dsn": dsn, "schema": schema}
    try:
        return measure(step, backend, fmt, args)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem}, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, {platform.platform()}"
    )


def report(results: list[Result]) -> str:
    base = {(r.backend, r.fmt, r.pair): r for r in results if r.step == "baseline"}
    lines = [
        "| backend | format | step | rows | wall s | rows/s | CPU s | rows/CPU-s | peak RSS MB"
        " | import/baseline (wall, CPU) | note |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        ratio = ""
        b = base.get((r.backend, r.fmt, r.pair))
        if r.step == "import" and b:
            ratio = f"{r.rate / b.rate:.2f}, {r.cpu_rate / b.cpu_rate:.2f}"
        lines.append(
            f"| {r.backend} | {r.fmt} | {r.step} | {r.rows:,} | {r.seconds:.1f} | "
            f"{r.rate:,.0f} | {r.cpu:.1f} | {r.cpu_rate:,.0f} | {r.peak_mb:.0f} | {ratio} |"
            f" {r.note} |"
        )
    checks = []
    for r in results:
        if r.step != "import":
            continue
        target = TARGETS[r.fmt] if r.backend == "sqlite" else None
        verdict = []
        if target:
            verdict.append(f"{r.rate:,.0f} rows/s {'>=' if r.rate >= target else '<'} {target:,}")
        ok_mem = r.peak_mb < PEAK_TARGET_MB
        verdict.append(f"peak {r.peak_mb:.0f} MB {'<' if ok_mem else '>='} {PEAK_TARGET_MB}")
        pair = f" (pair {r.pair})" if r.pair else ""
        checks.append(f"- {r.backend} {r.fmt}{pair}: " + ", ".join(verdict))
    return "\n".join([*lines, "", *checks, *_pair_summary(results)])


def _pair_summary(results: list[Result]) -> list[str]:
    """With --repeat: each pair's import/baseline wall ratio, and their median."""
    ratios: dict[tuple[str, str], list[float]] = {}
    base = {(r.backend, r.fmt, r.pair): r for r in results if r.step == "baseline"}
    for r in results:
        b = base.get((r.backend, r.fmt, r.pair))
        if r.step == "import" and r.pair and b:
            ratios.setdefault((r.backend, r.fmt), []).append(r.rate / b.rate)
    return [
        f"- {backend} {fmt}: import / baseline by pair {', '.join(f'{x:.2f}' for x in rs)};"
        f" median {statistics.median(rs):.2f}"
        for (backend, fmt), rs in ratios.items()
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="good rows in the generated sheet")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument(
        "--pg-url",
        default=os.environ.get(
            "METERLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    p.add_argument("--formats", default="csv,xlsx")
    p.add_argument("--steps", default="read,parse,import,baseline")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/meterline-bench"))
    p.add_argument("--reuse", action="store_true", help="reuse generated sheets in --workdir")
    p.add_argument("--keep", action="store_true", help="keep the SQLite databases")
    p.add_argument("--profile", action="store_true", help="cProfile the import steps")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run import and baseline as N pairs, alternating which goes first",
    )
    opts = p.parse_args()
    opts.workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgresql"] if opts.backend == "both" else [opts.backend]
    formats = [f.strip() for f in opts.formats.split(",") if f.strip()]
    steps = [s.strip() for s in opts.steps.split(",") if s.strip()]

    print(machine(), flush=True)
    results: list[Result] = []
    log = opts.workdir / "results.md"

    def record(r: Result) -> None:
        results.append(r)
        line = report([r]).splitlines()[2]
        print(line, flush=True)
        with log.open("a") as f:  # partial figures survive an interrupted run
            f.write(line + "\n")

    paths = {fmt: generate(opts.workdir, opts.rows, fmt, opts.reuse) for fmt in formats}
    # Rows below the header: the good ones, the bad ones and the totals row.
    data_rows = {fmt: opts.rows + sample_sheet.bad_row_count(opts.rows) + 1 for fmt in paths}
    for fmt, path in paths.items():
        for step in ("read", "parse"):
            if step in steps:
                record(measure(step, "-", fmt, {"path": str(path), "data_rows": data_rows[fmt]}))
    for backend in backends:
        for fmt, path in paths.items():
            for pair in range(1, opts.repeat + 1):
                order = ("import", "baseline") if pair % 2 else ("baseline", "import")
                for step in order:
                    if step in steps:
                        r = run_backend_step(step, backend, fmt, path, data_rows[fmt], opts)
                        r.pair = pair if opts.repeat > 1 else 0
                        record(r)
    print()
    print(report(results))
    if opts.profile:
        for f in sorted(opts.workdir.glob("import-*.pstats")):
            out = io.StringIO()
            pstats.Stats(str(f), stream=out).sort_stats("tottime").print_stats(25)
            print(f"\n== {f.name} (by own time) ==\n{out.getvalue()}")


if __name__ == "__main__":
    main()
