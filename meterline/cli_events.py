"""The smart-meter event commands of `meterline`: load a file, settings, alerts, silent."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from meterline.services.errors import ServiceError

events_app = typer.Typer(help="Smart-meter events and alerts.", no_args_is_help=True)

CHUNK = 5000


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _chunks(path: Path, fmt: str) -> Iterator[tuple[int, list[Any]]]:
    """(line offset, items) per chunk: NDJSON lines, or CSV rows as dicts (blank = absent)."""
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            chunk: list[Any] = []
            first = 2  # the header is line 1
            for row in reader:
                chunk.append({k: v for k, v in row.items() if k and v not in (None, "")})
                if len(chunk) >= CHUNK:
                    yield first - 1, chunk
                    first += len(chunk)
                    chunk = []
            if chunk:
                yield first - 1, chunk
        return
    with path.open("rb") as handle:
        chunk, offset = [], 0
        for line in handle:
            chunk.append(line)
            if len(chunk) >= CHUNK:
                yield offset, chunk
                offset += len(chunk)
                chunk = []
        if chunk:
            yield offset, chunk


@events_app.command("load")
def load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="ndjson or csv (default: by extension)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object")] = False,
) -> None:
    """Ingest an NDJSON or CSV file of events (same field names as the API), in batches."""
    from meterline.cli import _runtime
    from meterline.services.meter_events import IngestReport, ingest_events

    fmt = (fmt or ("csv" if file.suffix.lower() == ".csv" else "ndjson")).lower()
    if fmt not in ("csv", "ndjson"):
        _fail(f"--format {fmt!r}: use ndjson or csv")
    total = IngestReport()
    rt = _runtime()
    try:
        for offset, items in _chunks(file, fmt):
            report = ingest_events(rt, tenant, items, source=f"file:{file.name}"[:100])
            for error in report.errors:
                error["line"] += offset
            total.add(report)
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()
    if as_json:
        typer.echo(json.dumps(total.as_dict(), ensure_ascii=False))
        return
    typer.echo(
        f"{total.accepted} accepted ({total.older} out of order), {total.duplicates} duplicates,"
        f" {total.rejected} rejected, {total.unknown_meters} for unknown meters;"
        f" {total.alerts} alerts, {total.messages} messages queued"
    )
    for error in total.errors[:50]:
        typer.echo(f"line {error['line']}: {error['reason']}")
    if len(total.errors) > 50:
        typer.echo(f"... and {len(total.errors) - 50} more rejected lines (--json lists them)")
    if total.unknown_serials:
        typer.echo("unknown serials: " + ", ".join(total.unknown_serials[:20]))


@events_app.command("settings")
def settings(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    low_balance: Annotated[
        int | None, typer.Option(help="Low-balance threshold, minor units (paisa)")
    ] = None,
    percent_levels: Annotated[
        str | None, typer.Option(help="Extra levels, %% of the last recharge, e.g. 30,10")
    ] = None,
    hysteresis: Annotated[int | None, typer.Option(help="Re-arm margin, minor units")] = None,
    overload_intervals: Annotated[
        int | None, typer.Option(help="Intervals above the sanctioned load")
    ] = None,
    stale_after: Annotated[int | None, typer.Option(help="Seconds; older alerts no one")] = None,
    silent_after: Annotated[int | None, typer.Option(help="Seconds without events")] = None,
    grace: Annotated[
        list[str] | None, typer.Option(help="LANG=TEXT: emergency-credit text, repeatable")
    ] = None,
    mandatory: Annotated[
        str | None, typer.Option(help="Kinds consumers cannot opt out of, comma-separated")
    ] = None,
) -> None:
    """Show or change the tenant's alert rule settings."""
    from meterline.cli import _runtime
    from meterline.services.meter_events import alert_settings
    from meterline.services.meter_views import set_alert_settings
    from meterline.services.tenants import get_tenant

    changes: dict[str, Any] = {}
    for name, value in (
        ("low_balance_minor", low_balance),
        ("percent_levels", percent_levels),
        ("hysteresis_minor", hysteresis),
        ("overload_intervals", overload_intervals),
        ("stale_after_s", stale_after),
        ("silent_after_s", silent_after),
        ("mandatory_kinds", mandatory),
    ):
        if value is not None:
            changes[name] = value
    if grace:
        texts: dict[str, str] = {}
        for item in grace:
            lang, sep, text = item.partition("=")
            if not sep or not lang.strip():
                _fail(f"--grace {item!r}: write LANG=TEXT, e.g. en='Emergency credit 50'")
            texts[lang.strip()] = text.strip()
        changes["grace_text"] = texts
    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            t = get_tenant(session, tenant)
            if changes:
                set_alert_settings(session, t.id, **changes)
            current = alert_settings(session, t)
    except ServiceError as exc:
        _fail(exc.message)
        return
    finally:
        rt.close()
    typer.echo(
        json.dumps(
            {
                "low_balance_minor": current.low_balance_minor,
                "percent_levels": list(current.percent_levels),
                "hysteresis_minor": current.hysteresis,
                "overload_intervals": current.overload_intervals,
                "stale_after_s": int(current.stale_after.total_seconds()),
                "silent_after_s": int(current.silent_after.total_seconds()),
                "grace_text": dict(current.grace_text),
                "mandatory_kinds": sorted(current.mandatory),
            },
            ensure_ascii=False,
        )
    )


@events_app.command("alerts")
def alerts(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    open_only: Annotated[bool, typer.Option("--open", help="Open episodes only")] = False,
    limit: int = 50,
) -> None:
    """The newest alert episodes, one JSON object a line."""
    from meterline.cli import _runtime
    from meterline.services.meter_views import list_alerts
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.reader() as session:
            t = get_tenant(session, tenant)
            for row in list_alerts(session, t.id, open_only=open_only, limit=limit):
                typer.echo(json.dumps(row, ensure_ascii=False))
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


@events_app.command("silent")
def silent(tenant: Annotated[str, typer.Option(help="Tenant slug")], limit: int = 100) -> None:
    """Meters that stopped reporting, longest silent first."""
    from meterline.cli import _runtime
    from meterline.services.meter_views import silent_meters
    from meterline.services.tenants import get_tenant

    rt = _runtime()
    try:
        with rt.reader() as session:
            t = get_tenant(session, tenant)
            for row in silent_meters(session, t.id, now=datetime.now(UTC), limit=limit):
                typer.echo(f"{row['meter']}\t{row['account'] or '-'}\t{row['last_seen']}")
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()
