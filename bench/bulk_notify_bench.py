"""Bulk notify benchmark: N month-end closing balances rendered, costed, credit-held and
queued in ONE `notify_many` call on SQLite, beside a plain-insert baseline.

    python bench/bulk_notify_bench.py --messages 1000000

Setup (not timed): a fresh SQLite database with N consumers, each with a phone and an
account, written with plain executemany. Then, timed:

  notify     `notify_many` for every consumer (kind closing_balance, the consumer's
             language, the tenant's SMS price), committed: recipients looked up per
             chunk, each text rendered and costed, one credit hold, rows inserted.
  baseline   the same number of rows, with bodies made by str.format and a fixed
             segment count, inserted by a bare sqlite3 executemany into a table of the
             same columns, in one transaction: the floor for writing the rows at all.

Target: notify under 60 s for 1,000,000 on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

TARGET_SECONDS_PER_MILLION = 60.0


def setup(path: Path, n: int) -> None:
    from meterline.runtime import open_runtime
    from meterline.services import credit
    from meterline.services.channel_accounts import add_channel_account
    from meterline.services.tenants import create_tenant
    from meterline.store.migrate import upgrade

    url = f"sqlite:///{path}"
    upgrade(url)
    rt = open_runtime(database_url=url)
    with rt.sessions() as s, s.begin():
        t = create_tenant(
            s,
            slug="bench",
            name="Shapla Cooperative",
            country="BD",
            currency="BDT",
            timezone="Asia/Dhaka",
            languages=["bn", "en"],
        )
        add_channel_account(
            s, t.id, name="sandbox", type_name="sandbox", config={}, rate_per_second=1000
        )
        credit.set_pricing(s, t.id, sms_price_minor=35, max_sms_parts=10)
        credit.top_up(s, t.id, 10**15, by="bench")
        tenant_id = t.id
    rt.close()
    now = datetime.now(UTC).isoformat()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO consumers (id, tenant_id, name, preferred_language, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (i, tenant_id, f"Member {i}", "bn" if i % 3 else "en", now, now)
                for i in range(1, n + 1)
            ),
        )
        db.executemany(
            "INSERT INTO contact_points (tenant_id, consumer_id, kind, value, is_primary,"
            " whatsapp, created_at) VALUES (?, ?, 'phone', ?, 1, 'unknown', ?)",
            ((tenant_id, i, f"+8801{700000000 + i:09d}", now) for i in range(1, n + 1)),
        )
        db.executemany(
            "INSERT INTO accounts (id, tenant_id, consumer_id, number, service, billing,"
            " dues_minor, balance_minor, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'savings', 'prepaid', 0, ?, ?, ?)",
            (
                (i, tenant_id, i, f"M-{i}", (i * 7919) % 10_000_000, now, now)
                for i in range(1, n + 1)
            ),
        )
    db.close()


def run_notify(path: Path, n: int) -> tuple[float, int, int]:
    from meterline.runtime import open_runtime
    from meterline.services.notify import Notification, notify_many
    from meterline.store.models import Tenant

    rt = open_runtime(database_url=f"sqlite:///{path}")
    as_of = date(2026, 10, 31)
    start = time.perf_counter()
    with rt.sessions() as s, s.begin():
        tenant = s.query(Tenant).one()
        result = notify_many(
            s,
            tenant,
            (
                Notification(
                    kind="closing_balance",
                    data={"account": f"M-{i}", "balance": (i * 7919) % 10_000_000, "as_of": as_of},
                    idempotency_key=f"close:2026-10:{i}",
                    consumer_id=i,
                    account_id=i,
                )
                for i in range(1, n + 1)
            ),
            now=datetime.now(UTC),
            note="closing balances 2026-10",
        )
    elapsed = time.perf_counter() - start
    rt.close()
    return elapsed, result.queued, result.segments


def run_baseline(path: Path, n: int) -> float:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE baseline (id INTEGER PRIMARY KEY, tenant_id INT, idempotency_key TEXT"
        " UNIQUE, kind TEXT, priority INT, consumer_id INT, account_id INT, medium TEXT,"
        " channel_account_id INT, to_address TEXT, language TEXT, body TEXT, data TEXT,"
        " encoding TEXT, segments INT, cost_minor INT, credit_state TEXT, status TEXT,"
        " attempts INT, due_at TEXT, created_at TEXT, updated_at TEXT)"
    )
    now = datetime.now(UTC).isoformat()
    start = time.perf_counter()
    with db:
        db.executemany(
            "INSERT INTO baseline (tenant_id, idempotency_key, kind, priority, consumer_id,"
            " account_id, medium, channel_account_id, to_address, language, body, data,"
            " encoding, segments, cost_minor, credit_state, status, attempts, due_at,"
            " created_at, updated_at) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    1,
                    f"close:2026-10:{i}",
                    "closing_balance",
                    10,
                    i,
                    i,
                    "sms",
                    1,
                    f"+8801{700000000 + i:09d}",
                    "bn",
                    f"Shapla Cooperative: balance on account M-{i} on 31 Oct 2026 is"
                    f" {(i * 7919) % 10_000_000}",
                    f'{{"account": "M-{i}"}}',
                    "UCS-2",
                    2,
                    70,
                    "held",
                    "queued",
                    0,
                    now,
                    now,
                    now,
                )
                for i in range(1, n + 1)
            ),
        )
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "bulk.db"
        t0 = time.perf_counter()
        setup(db, n)
        print(f"setup: {n:,} consumers in {time.perf_counter() - t0:.1f} s (not timed)")
        notify_s, queued, segments = run_notify(db, n)
        base_s = run_baseline(Path(tmp) / "baseline.db", n)
        size_mb = os.path.getsize(db) / 1e6
    target = TARGET_SECONDS_PER_MILLION * n / 1_000_000
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(
        f"notify_many: {queued:,} queued ({segments:,} segments) in {notify_s:.1f} s"
        f" = {queued / notify_s:,.0f} messages/s  (target < {target:.0f} s:"
        f" {'met' if notify_s < target else 'NOT met'})"
    )
    print(
        f"baseline   : {n:,} rows by bare executemany in {base_s:.1f} s = {n / base_s:,.0f} rows/s"
    )
    print(f"ratio notify/baseline: {notify_s / base_s:.1f}x  (database {size_mb:,.0f} MB)")


if __name__ == "__main__":
    main()
