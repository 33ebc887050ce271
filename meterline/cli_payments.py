"""The payments and dues-reminder commands of `meterline`.

meterline payments gateway add NAME --tenant SLUG --type razorpay --config '{...}'
meterline payments link --tenant SLUG --bill ID          # prints the /p/CODE link
meterline reminders preview --tenant SLUG [--area-id N --min-amount 500 --min-days 30]
meterline reminders send --tenant SLUG [same filter]
meterline reminders schedule --tenant SLUG --steps=-7,0,3
meterline reminders run --tenant SLUG                    # the schedule; cron-safe
meterline reminders report --tenant SLUG [--by day] [--csv]
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from meterline.services.errors import ServiceError

payments_app = typer.Typer(help="Payment gateways and payment links.", no_args_is_help=True)
gateway_app = typer.Typer(help="A tenant's payment gateway accounts.", no_args_is_help=True)
reminders_app = typer.Typer(help="Dues reminder runs and schedules.", no_args_is_help=True)
payments_app.add_typer(gateway_app, name="gateway")

Tenant = Annotated[str, typer.Option("--tenant", help="The tenant's slug")]
AreaId = Annotated[int | None, typer.Option(help="Only this area and the areas below it")]
MinAmount = Annotated[str | None, typer.Option(help="Dues at least this much (e.g. 500.00)")]
MaxAmount = Annotated[str | None, typer.Option(help="Dues at most this much")]
MinDays = Annotated[int | None, typer.Option(help="At least this many days past due")]


def register(app: typer.Typer) -> None:
    app.add_typer(payments_app, name="payments")
    app.add_typer(reminders_app, name="reminders")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _session(write: bool = True) -> Iterator[tuple[Session, Any]]:
    from meterline.cli import _runtime

    rt = _runtime()
    try:
        with rt.sessions() as session:
            if write:
                with session.begin():
                    yield session, rt
            else:
                yield session, rt
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        rt.close()


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def _key(rt: Any) -> bytes:
    from meterline.services.payments import link_key

    return link_key(rt.settings.secret_key.get_secret_value())


@gateway_app.command("add")
def gateway_add(
    name: str,
    tenant: Tenant,
    type_name: Annotated[str, typer.Option("--type", help="sandbox or razorpay")],
    config: Annotated[str, typer.Option(help="Settings as JSON; secrets as env:NAME")] = "{}",
    default: Annotated[bool, typer.Option(help="New payment links use it")] = True,
) -> None:
    """Add a payment gateway account; prints its id and webhook URL."""
    from meterline.services.payments import add_gateway, gateway_view
    from meterline.services.tenants import get_tenant

    try:
        settings = json.loads(config)
    except ValueError as exc:
        _fail(f"--config is not JSON: {exc}")
    with _session() as (session, rt):
        t = get_tenant(session, tenant)
        row = add_gateway(
            session, t.id, name=name, type_name=type_name, config=settings, is_default=default
        )
        view = gateway_view(row)
        view["webhook_url"] = (
            f"{rt.settings.public_url.rstrip('/')}/api/v1/payments/webhooks/{row.id}"
        )
        _echo(view)


@payments_app.command("link")
def payment_link(
    tenant: Tenant,
    bill: Annotated[int, typer.Option(help="The bill's id")],
    days: Annotated[int, typer.Option(help="Valid this many days")] = 30,
) -> None:
    """A signed payment link for a bill (the bill's live link when it has one)."""
    from meterline.services.payments import create_link, link_view
    from meterline.services.tenants import get_tenant

    with _session() as (session, rt):
        t = get_tenant(session, tenant)
        link = create_link(
            session, t, bill, now=datetime.now(UTC), key=_key(rt), ttl=timedelta(days=days)
        )
        _echo(link_view(link, rt.settings.public_url))


def _filter(
    area_id: int | None,
    min_amount: str | None,
    max_amount: str | None,
    min_days: int | None,
    currency: str,
) -> Any:
    from meterline.services.reminders import ReminderFilter
    from meterline.services.transactions import to_minor

    return ReminderFilter(
        area_id=area_id,
        min_amount_minor=to_minor(min_amount, currency, allow_zero=True) if min_amount else None,
        max_amount_minor=to_minor(max_amount, currency, allow_zero=True) if max_amount else None,
        min_days_overdue=min_days,
    )


def _today(t: Any, now: datetime) -> Any:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(t.timezone)).date()


@reminders_app.command("preview")
def reminders_preview(
    tenant: Tenant,
    area_id: AreaId = None,
    min_amount: MinAmount = None,
    max_amount: MaxAmount = None,
    min_days: MinDays = None,
) -> None:
    """How many defaulters a run would remind, over which channels, at what SMS cost."""
    from meterline.services import reminders as rem
    from meterline.services.tenants import get_tenant

    now = datetime.now(UTC)
    with _session(write=False) as (session, rt):
        t = get_tenant(session, tenant)
        f = _filter(area_id, min_amount, max_amount, min_days, t.currency)
        targets = rem.select_defaulters(session, t.id, f, today=_today(t, now))
        _echo(
            rem.preview(session, t, targets, now=now, public_url=rt.settings.public_url).as_dict()
        )


@reminders_app.command("send")
def reminders_send(
    tenant: Tenant,
    area_id: AreaId = None,
    min_amount: MinAmount = None,
    max_amount: MaxAmount = None,
    min_days: MinDays = None,
) -> None:
    """Remind the defaulters matching the filter now (one run)."""
    from meterline.services import reminders as rem
    from meterline.services.tenants import get_tenant

    now = datetime.now(UTC)
    with _session() as (session, rt):
        t = get_tenant(session, tenant)
        f = _filter(area_id, min_amount, max_amount, min_days, t.currency)
        run = rem.send_run(
            session,
            t,
            f,
            now=now,
            today=_today(t, now),
            key=_key(rt),
            public_url=rt.settings.public_url,
            created_by="cli",
        )
        _echo(rem.run_view(run))


@reminders_app.command("schedule")
def reminders_schedule(
    tenant: Tenant,
    steps: Annotated[str, typer.Option(help="Days from the due date, e.g. -7,0,3")],
) -> None:
    """Set the tenant's reminder schedule."""
    from meterline.services import reminders as rem
    from meterline.services.tenants import get_tenant

    with _session() as (session, _rt):
        t = get_tenant(session, tenant)
        _echo(
            {
                "steps": rem.set_schedule(
                    session, t.id, rem.parse_steps(steps), now=datetime.now(UTC)
                )
            }
        )


@reminders_app.command("run")
def reminders_run(tenant: Tenant) -> None:
    """Send what the schedule says is due today, once per bill and step (cron-safe)."""
    from meterline.services import reminders as rem
    from meterline.services.tenants import get_tenant

    now = datetime.now(UTC)
    with _session() as (session, rt):
        t = get_tenant(session, tenant)
        if not rem.get_schedule(session, t.id):
            _fail(f"tenant {tenant!r} has no reminder schedule (meterline reminders schedule)")
        runs = rem.run_schedule(
            session,
            t,
            now=now,
            today=_today(t, now),
            key=_key(rt),
            public_url=rt.settings.public_url,
        )
        _echo({"runs": [rem.run_view(r) for r in runs]})


@reminders_app.command("report")
def reminders_report(
    tenant: Tenant,
    by: Annotated[str, typer.Option(help="run or day")] = "run",
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False,
) -> None:
    """Sent, delivered, read, failed, fell back, clicked, paid and cost per run or day."""
    from meterline.services import reminder_report as report
    from meterline.services.tenants import get_tenant

    if by not in ("run", "day"):
        _fail("--by: run or day")
    with _session(write=False) as (session, _rt):
        t = get_tenant(session, tenant)
        if by == "day":
            rows = report.by_day(session, t.id, t.timezone)
        else:
            rows = [row for _, row in report.runs_with_report(session, t.id, 500)]
        if as_csv:
            typer.echo(report.to_csv(rows, by), nl=False)
        else:
            _echo({"by": by, "rows": [r.as_dict() for r in rows]})
